"""``uapfp bench families``: every method on suspects of families the zoo never held.

The suspects (:mod:`uapfp.bench.suspects_zoo`) are copies, modified copies and honest models of
architectures no zoo holds, in two halves with different families and seeds: decide on the
development half, report on the test half. Each suspect is asked each query set once; every
method then scores the same answers, at full probabilities and as a label-only API, with the
kit's test at the benchmark's alpha. One row per (half, answers, method): AUC, TPR at 1 %
FPR, copies detected and honest models flagged, queries and seconds per suspect. With
``--family-null N``, each method is also scored against N honest models of each suspect's own
architecture, built as ``uapfp family-null`` builds it by default (:mod:`uapfp.family_null`: its recipe
spans the zoo's epochs), those models joining the honest suspects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..options import option
from . import Experiment, data_dir_field, kit_field, zoo_field
from .scoring import score_suspects
from .suspects_zoo import DEV_FAMILIES, KINDS, TEST_FAMILIES

log = logging.getLogger(__name__)

METHODS = ("uap", "uap-raw", "errors", "sac", "ipguard", "siblings", "uap+siblings", "uap+errors", "errors+siblings")


@dataclass(frozen=True)
class FamiliesConfig:
    zoo: str = zoo_field("the zoo whose victim the suspects copy (its D_V, pool and test set)")
    kit: str = kit_field()
    models: str = field(default="runs/families", metadata=option("folder caching the suspects (trained once)"))
    halves: tuple[str, ...] = field(default=("dev",), metadata=option("dev, test, or both: which families to score"))
    methods: tuple[str, ...] = field(default=METHODS, metadata=option("methods (and A+B combinations) to compare"))
    outputs: tuple[str, ...] = field(default=("probs", "label"), metadata=option("answer modes"))
    alpha: float = field(default=0.01, metadata=option("significance level of the verdicts"))
    epochs: int = field(default=4, metadata=option("training epochs of the suspects"))
    family_null: int = field(default=0, metadata=option(
        "honest models per architecture in a null of the suspect's own family, as uapfp family-null builds it by "
        "default (trained once into MODELS/family-null-ARCH-span); every method is then scored against it too; 0: not"
    ))  # fmt: skip
    data_dir: str | None = data_dir_field()


@dataclass
class FamiliesReport:
    experiment: str
    zoo: str
    kit: str
    alpha: float
    families: dict[str, list[str]]
    rows: list[dict[str, Any]]
    suspects: list[dict[str, Any]]


def families(config: FamiliesConfig) -> FamiliesReport:
    """Train (once) the suspects of the halves asked for, query each once, score every method."""
    from ..cards import load_model_from_card
    from ..kit import Kit
    from ..zoo import Zoo
    from .suspects_zoo import build_suspects

    zoo = Zoo.load(config.zoo)
    kit = Kit.load(config.kit)
    data = zoo.load_dataset(config.data_dir)
    victim = load_model_from_card(zoo.victim)
    halves = {"dev": DEV_FAMILIES, "test": TEST_FAMILIES}
    wanted = [f for h in ("dev", "test") if h in config.halves or "both" in config.halves for f in halves[h]]
    records = build_suspects(config.models, victim, data, zoo.splits(), families=tuple(wanted), kinds=KINDS,
                             epochs=config.epochs)  # fmt: skip
    nulls = None
    if config.family_null:
        from pathlib import Path

        from ..family_null import build_family_null

        nulls = {  # as `uapfp family-null` builds it by default: its recipe spans the zoo's epochs
            arch: build_family_null(kit, zoo, arch, Path(config.models) / f"family-null-{arch}-span",
                                    count=config.family_null, data_dir=config.data_dir)
            for arch in dict.fromkeys(r.arch for r in records)
        }  # fmt: skip
    rows, per_suspect = score_suspects(
        kit, config.models, records, data, methods=config.methods, outputs=config.outputs, alpha=config.alpha,
        family_nulls=nulls,
    )  # fmt: skip
    return FamiliesReport(
        "families", str(zoo.path), str(kit.path), config.alpha,
        {"dev": list(DEV_FAMILIES), "test": list(TEST_FAMILIES)}, rows, per_suspect,
    )  # fmt: skip


EXPERIMENT = Experiment(
    "families", "every method on copies and honest models of families the zoo never held (dev and test halves)",
    FamiliesConfig, families,
)  # fmt: skip
