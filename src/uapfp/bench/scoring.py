"""Scoring benchmark suspects: every method on the same answers of the same suspects (the
families and CIFAR-10 benchmarks), and the figures of merit of a score."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..data import Dataset
    from ..kit import Kit
    from .suspects_zoo import SuspectRecord

log = logging.getLogger(__name__)


def tpr_at_fpr(positive: list[float], negative: list[float], fpr: float = 0.01) -> float:
    """The share of positives above the threshold that at most ``fpr`` of the negatives exceed."""
    neg = sorted(negative, reverse=True)
    allowed = math.floor(fpr * len(neg))  # negatives that may lie above the threshold
    threshold = neg[allowed] if allowed < len(neg) else float("-inf")
    return sum(p > threshold for p in positive) / len(positive) if positive else float("nan")


def score_suspects(
    kit: Kit, models: str, records: list[SuspectRecord], data: Dataset, *, methods: tuple[str, ...],
    outputs: tuple[str, ...], alpha: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Ask each suspect each query set once, then score every method on the same answers, per
    half (each record's ``half``, in order of first appearance) and answer mode: the summary
    rows and one row per (half, answers, method, suspect)."""
    from ..evaluate import auc
    from ..methods import truncate
    from ..suspects.base import OutputMode
    from ..verify import PIRACY, Scoring, query_plan, score_answers
    from .suspects_zoo import load_suspect

    scorings = {name: Scoring.of(kit, method=name, alpha=alpha) for name in methods}
    keys = {key: ch for s in scorings.values() for key, ch in query_plan(s.method).items()}
    n = kit.config.fingerprints
    answers: dict[str, dict[str, torch.Tensor]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for rec in records:
        suspect = load_suspect(models, rec, data)
        answers[rec.name], seconds[rec.name] = {}, {}
        for key, channel in keys.items():
            start = time.perf_counter()
            answers[rec.name][key] = torch.stack([suspect(s) for s in channel.sets(kit)[:n]])
            seconds[rec.name][key] = time.perf_counter() - start
    rows, per_suspect = [], []
    for half in dict.fromkeys(r.half for r in records):
        recs = [r for r in records if r.half == half]
        for output in outputs:
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
    return rows, per_suspect
