"""A built zoo folder: its configuration, splits, dataset and finished model cards."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..cards import ROLES, card_is_finished, read_card
from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..storage import load_tensors, read_json
from .config import ZooConfig

ZOO_FORMAT = "uapfp-zoo/1"
log = logging.getLogger(__name__)


@dataclass
class Zoo:
    """A built zoo folder: its configuration, splits and model cards."""

    path: Path
    config: ZooConfig
    cards: list[dict[str, Any]]
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Zoo:
        path = Path(path)
        meta_path = path / "zoo.json"
        if not meta_path.is_file():
            raise ConfigError(f"{path} is not a zoo (no zoo.json); build one with: uapfp zoo build --out {path}")
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise ConfigError(f"{meta_path} is damaged (no zoo settings); rebuild the zoo with uapfp zoo build")
        config = ZooConfig.from_dict(meta["config"])
        cards = []
        for card_file in sorted((path / "models").glob("*.json")):
            try:
                card = read_card(card_file)
            except ConfigError as exc:  # damaged or foreign: not a finished model, and said so
                log.warning("%s; uapfp zoo build trains it again", exc)
                continue
            if card_is_finished(card_file):
                cards.append(card)
        return cls(path=path, config=config, cards=cards, info=meta)

    @property
    def victim(self) -> dict[str, Any]:
        for c in self.cards:
            if c["role"] == "victim":
                return c
        raise ConfigError(f"zoo {self.path} has no finished victim; rerun uapfp zoo build")

    def select(self, role: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.cards if role is None or c["role"] == role]

    def splits(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.path / "splits.safetensors")

    def load_dataset(self, data_dir: str | None = None) -> Dataset:
        return load_dataset(self.config.dataset, data_dir=data_dir)


def zoo_table(zoo: Zoo, *, roles: Iterable[str] = ROLES) -> list[dict[str, Any]]:
    """One row per finished model, for ``uapfp zoo list`` and docs."""
    rows = []
    order = {r: i for i, r in enumerate(ROLES)}
    for card in sorted(zoo.cards, key=lambda c: (order.get(c["role"], 9), c["id"])):
        if card["role"] not in roles:
            continue
        rows.append(
            {
                "id": card["id"],
                "role": card["role"],
                "arch": card["arch"],
                "opt": card.get("optimizer") or "-",
                "batch": card.get("batch_size") or "-",
                "attack": (card.get("attack") or {}).get("name", "-"),
                "queries": card.get("queries", 0),
                "accuracy": card.get("test_accuracy"),
                "fidelity": card.get("fidelity"),
                "recovery": card.get("recovery_rate"),
                "train_s": card.get("train_seconds"),
                "wall_s": card.get("wall_seconds"),
            }
        )
    return rows
