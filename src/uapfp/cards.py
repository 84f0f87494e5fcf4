"""Model cards: one JSON record per zoo model, stored beside its weights (the zoo is data).

A card holds the model's role, architecture, recipe, seed, data, queries, accuracy, fidelity
and the SHA-256 of its weights; a model counts as finished only when its card exists and its
weights match that hash.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from .errors import ConfigError
from .modelfiles import load_torchscript, model_with_weights
from .storage import read_json, sha256_file

CARD_FORMAT = "uapfp-model-card/1"
ROLES = ("victim", "piracy", "homologous")


def card_path(zoo_dir: Path, model_id: str) -> Path:
    """Where the card of ``model_id`` lives in a zoo folder."""
    return zoo_dir / "models" / f"{model_id}.json"


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model card (``_path`` is added: where it was read from)."""
    card = read_json(path)
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ConfigError(f"{path} is not a uapfp model card")
    card["_path"] = str(path)
    return card


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
    if verify_hash and sha256_file(weights) != card["weights_sha256"]:
        raise ConfigError(f"{weights} does not match the SHA-256 in its card; rebuild this model")
    if card.get("weights_format") == "torchscript":
        return load_torchscript(weights)
    return model_with_weights(
        card["arch"], weights, input_shape=tuple(card["input_shape"]), num_classes=card["num_classes"]
    )
