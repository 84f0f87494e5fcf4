"""``uapfp bench robustness``: verdicts on held-out models after fine-tuning, pruning and quantization."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from ..options import option
from . import Experiment, data_dir_field, kit_field, outputs_field, verdict_counts, zoo_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobustnessConfig:
    kit: str = kit_field()
    zoo: str = zoo_field()
    data_dir: str | None = data_dir_field()
    modifications: tuple[str, ...] = field(
        default=("finetune:2", "prune:0.3", "prune:0.6", "quantize:8", "quantize:4"),
        metadata=option("modifications, NAME:VALUE"),
    )
    finetune_images: int = field(default=5000, metadata=option("the thief's own labelled images"))
    outputs: str = outputs_field()


@dataclass
class RobustnessReport:
    experiment: str
    kit: str
    outputs: str
    rows: list[dict[str, Any]]


def robustness(config: RobustnessConfig) -> RobustnessReport:
    """Modify every held-out piracy and homologous model and verify the copies.

    Fine-tuning uses ``finetune_images`` images of the attacker's pool with their true
    labels (the thief's own labelled data), which moves a copy away from the victim.
    """
    from ..cards import load_model_from_card
    from ..kit import Kit
    from ..modify import create_modification
    from ..suspects.local import TorchSuspect
    from ..training import accuracy
    from ..verify import verify
    from ..zoo import Zoo

    mods = {spec: create_modification(spec) for spec in config.modifications}  # refuse a bad name before work
    kit = Kit.load(config.kit)
    zoo = Zoo.load(config.zoo)
    data = zoo.load_dataset(config.data_dir)
    pool = zoo.splits()["pool"]
    gen = torch.Generator().manual_seed(0)
    pick = pool[torch.randperm(len(pool), generator=gen)[: config.finetune_images]]
    x_ft, y_ft = data.x_train[pick], data.y_train[pick]
    held = set(kit.info["models"]["heldout"])
    cards = [c for c in zoo.cards if c["id"] in held and c["role"] in ("piracy", "homologous")]
    rows = []
    for spec in ("none", *mods):
        mod = mods.get(spec)
        scores = []
        for card in cards:
            model = load_model_from_card(card)
            if mod is not None:
                model = mod.apply(model, x=x_ft, y=y_ft, seed=card["seed"])
            acc = accuracy(model, data.x_test, data.y_test)
            suspect = TorchSuspect(
                model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=config.outputs, name=card["id"]
            )
            v = verify(kit, suspect, sequential=False)  # every set: the figures compare copies on equal terms
            scores.append((card["role"], v.similarity, v.verdict, acc))
        pir = [s for s in scores if s[0] == "piracy"]
        hom = [s for s in scores if s[0] == "homologous"]
        row = {
            "modification": spec,
            **verdict_counts([s[:3] for s in scores]),
            "piracy_mean_similarity": round(sum(s[1] for s in pir) / len(pir), 4),
            "homologous_mean_similarity": round(sum(s[1] for s in hom) / len(hom), 4),
            "piracy_mean_accuracy": round(sum(s[3] for s in pir) / len(pir), 4),
        }
        rows.append(row)
        log.info("%s: %s", spec, row)
    return RobustnessReport("robustness", str(kit.path), config.outputs, rows)


EXPERIMENT = Experiment(
    "robustness", "verdicts on held-out models after fine-tuning, pruning and quantization",
    RobustnessConfig, robustness,
)  # fmt: skip
