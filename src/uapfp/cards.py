"""Model cards: one JSON record per zoo model, stored beside its weights (the zoo is data).

A card holds the model's role, architecture, recipe, seed, data, queries, accuracy, fidelity
and the SHA-256 of its weights; a model counts as finished only when its card exists and its
weights match that hash.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from torch import nn

from .errors import ConfigError
from .modelfiles import load_torchscript, model_with_weights
from .storage import read_json, sha256_file

CARD_FORMAT = "uapfp-model-card/1"
ROLES = ("victim", "piracy", "homologous", "sibling")


def card_path(zoo_dir: Path, model_id: str) -> Path:
    """Where the card of ``model_id`` lives in a zoo folder."""
    return zoo_dir / "models" / f"{model_id}.json"


WEIGHTS_FORMATS = ("safetensors", "torchscript")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a model card (``_path`` is added: where it was read from).

    A card is data, and may come from someone else: every field a model is rebuilt from is
    checked here (its weights must be a file beside the card; its architecture is imported
    only if registered or trusted, see :mod:`uapfp.archs`).
    """
    card = read_json(path)
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ConfigError(f"{path} is not a uapfp model card")
    problem = _card_problem(card)
    if problem:
        raise ConfigError(f"{path} is a damaged model card ({problem}); rebuild the model with uapfp zoo build")
    card["_path"] = str(path)
    return card


def _card_problem(card: dict[str, Any]) -> str:
    """What is wrong with a card's fields, or ''."""
    shape = card.get("input_shape")
    weights = card.get("weights")
    if not isinstance(card.get("id"), str) or not _ID.match(card["id"]):
        return f"id {str(card.get('id'))[:60]!r} is not a model name (letters, digits, '_', '.', '-')"
    if card.get("role") not in ROLES:
        return f"role {card.get('role')!r} is not one of {', '.join(ROLES)}"
    if not isinstance(card.get("arch"), str) or not card["arch"]:
        return "no architecture"
    if not (isinstance(shape, list) and len(shape) == 3 and all(_positive_int(d) for d in shape)):
        return f"input_shape {shape!r} is not [C, H, W]"
    if not (_positive_int(card.get("num_classes")) and card["num_classes"] >= 2):
        return f"num_classes {card.get('num_classes')!r} is not a class count"
    if (
        not isinstance(weights, str)
        or not weights
        or len(weights) > 255
        or Path(weights).name != weights
        or weights.startswith(".")
        or "\x00" in weights
    ):
        return f"weights {weights!r} is not a file name beside the card"
    if not isinstance(card.get("weights_sha256"), str) or not _SHA256.match(card["weights_sha256"]):
        return "weights_sha256 is not a SHA-256"
    if card.get("weights_format", "safetensors") not in WEIGHTS_FORMATS:
        return f"weights_format {card.get('weights_format')!r} is not one of {', '.join(WEIGHTS_FORMATS)}"
    return ""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 20


def attack_of(card: dict[str, Any]) -> str | None:
    """The extraction attack that made a card's model (None for a model no attack made)."""
    return (card.get("attack") or {}).get("name")


def card_is_finished(path: Path) -> bool:
    """A card exists and its weights file matches the card's SHA-256."""
    if not path.is_file():
        return False
    try:
        card = read_card(path)
    except ConfigError:
        return False
    weights = path.parent / str(card.get("weights"))
    return weights.is_file() and sha256_file(weights) == card.get("weights_sha256")


def load_model_from_card(card: dict[str, Any] | str | os.PathLike[str], *, verify_hash: bool = True) -> nn.Module:
    """Rebuild a zoo model from its card (safetensors or TorchScript weights, never a pickle)."""
    if not isinstance(card, dict):
        card = read_card(card)
    weights = Path(card["_path"]).parent / card["weights"]
    if not weights.is_file():
        raise ConfigError(f"{weights}, the weights of {card['_path']}, does not exist; rebuild this model")
    if verify_hash and sha256_file(weights) != card["weights_sha256"]:
        raise ConfigError(f"{weights} does not match the SHA-256 in its card; rebuild this model")
    if card.get("weights_format") == "torchscript":
        return load_torchscript(weights)
    return model_with_weights(
        card["arch"], weights, input_shape=tuple(card["input_shape"]), num_classes=card["num_classes"]
    )
