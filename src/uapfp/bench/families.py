"""``uapfp bench families``: every method on suspects of families the zoo never held.

The suspects (:mod:`uapfp.bench.suspects_zoo`) are copies, modified copies and honest models of
architectures no zoo holds, in two halves with different families and seeds: decide on the
development half, report on the test half. Each suspect is asked each query set once; every
method then scores the same answers, at full probabilities and as a label-only API, with the
kit's test at the benchmark's alpha. One row per (half, answers, method): AUC, TPR at 1 %
FPR, copies detected and honest models flagged, queries and seconds per suspect.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..options import option
from . import Experiment, data_dir_field, kit_field, zoo_field
from .suspects_zoo import DEV_FAMILIES, KINDS, TEST_FAMILIES

log = logging.getLogger(__name__)

METHODS = ("uap", "uap-raw", "errors", "sac", "ipguard", "siblings", "uap+siblings", "uap+errors")


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


def tpr_at_fpr(positive: list[float], negative: list[float], fpr: float = 0.01) -> float:
    """The share of positives above the threshold that at most ``fpr`` of the negatives exceed."""
    import math

    neg = sorted(negative, reverse=True)
    allowed = math.floor(fpr * len(neg))  # negatives that may lie above the threshold
    threshold = neg[allowed] if allowed < len(neg) else float("-inf")
    return sum(p > threshold for p in positive) / len(positive) if positive else float("nan")


def families(config: FamiliesConfig) -> FamiliesReport:
    """Train (once) the suspects of the halves asked for, query each once, score every method."""
    from ..cards import load_model_from_card
    from ..evaluate import auc
    from ..kit import Kit
    from ..methods import truncate
    from ..suspects.base import OutputMode
    from ..suspects.local import TorchSuspect
    from ..suspects.onnx_runtime import OnnxSuspect
    from ..verify import PIRACY, Scoring, query_plan, score_answers
    from ..zoo import Zoo
    from .suspects_zoo import build_suspects, load_suspect_model

    zoo = Zoo.load(config.zoo)
    kit = Kit.load(config.kit)
    data = zoo.load_dataset(config.data_dir)
    victim = load_model_from_card(zoo.victim)
    halves = {"dev": DEV_FAMILIES, "test": TEST_FAMILIES}
    wanted = [f for h in ("dev", "test") if h in config.halves or "both" in config.halves for f in halves[h]]
    records = build_suspects(config.models, victim, data, zoo.splits(), families=tuple(wanted), kinds=KINDS,
                             epochs=config.epochs)  # fmt: skip
    scorings = {name: Scoring.of(kit, method=name, alpha=config.alpha) for name in config.methods}
    keys = {key: ch for s in scorings.values() for key, ch in query_plan(s.method).items()}
    n = kit.config.fingerprints
    answers: dict[str, dict[str, torch.Tensor]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for rec in records:
        model = load_suspect_model(config.models, rec, data)
        if isinstance(model, str):
            suspect: Any = OnnxSuspect(model, input_shape=kit.input_shape, num_classes=kit.num_classes, output="logits")
        else:
            suspect = TorchSuspect(model, input_shape=kit.input_shape, num_classes=kit.num_classes, name=rec.name)
        answers[rec.name], seconds[rec.name] = {}, {}
        for key, channel in keys.items():
            start = time.perf_counter()
            answers[rec.name][key] = torch.stack([suspect(s) for s in channel.sets(kit)[:n]])
            seconds[rec.name][key] = time.perf_counter() - start
    rows, per_suspect = [], []
    for half in [h for h in ("dev", "test") if h in config.halves or "both" in config.halves]:
        recs = [r for r in records if r.half == half]
        for output in config.outputs:
            mode = OutputMode.parse(output)
            for name, scoring in scorings.items():
                plan = query_plan(scoring.method)
                scored = []
                for rec in recs:
                    start = time.perf_counter()
                    got = {key: truncate(answers[rec.name][key], mode) for key in plan}
                    queries = sum(
                        int(answers[rec.name][key].shape[0] * answers[rec.name][key].shape[1]) for key in plan
                    )
                    v = score_answers(kit, got, mode=mode, scoring=scoring, n_req=n, name=rec.name, queries=queries,
                                      start=start)  # fmt: skip
                    spent = sum(seconds[rec.name][key] for key in plan) + v.seconds
                    scored.append((rec, v, spent))
                    per_suspect.append({"half": half, "outputs": output, "method": name, **asdict(rec),
                                        "similarity": v.similarity, "p_value": v.p_value, "verdict": v.verdict})  # fmt: skip
                pos = [v.similarity for r, v, _ in scored if r.role == "piracy"]
                neg = [v.similarity for r, v, _ in scored if r.role == "homologous"]
                row = {
                    "half": half, "outputs": output, "method": name, "copies": len(pos), "honest": len(neg),
                    "auc": round(auc(pos, neg), 4), "tpr_at_1pct_fpr": round(tpr_at_fpr(pos, neg), 4),
                    "detected": sum(v.verdict == PIRACY for r, v, _ in scored if r.role == "piracy"),
                    "flagged": sum(v.verdict == PIRACY for r, v, _ in scored if r.role == "homologous"),
                    "queries_per_suspect": scored[0][1].queries if scored else 0,
                    "seconds_per_suspect": round(sum(s for *_, s in scored) / max(1, len(scored)), 3),
                }  # fmt: skip
                rows.append(row)
                log.info("%s", row)
    return FamiliesReport(
        "families", str(zoo.path), str(kit.path), config.alpha,
        {"dev": list(DEV_FAMILIES), "test": list(TEST_FAMILIES)}, rows, per_suspect,
    )  # fmt: skip


EXPERIMENT = Experiment(
    "families", "every method on copies and honest models of families the zoo never held (dev and test halves)",
    FamiliesConfig, families,
)  # fmt: skip
