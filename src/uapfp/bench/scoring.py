"""Scoring benchmark suspects: every method on the same answers of the same suspects (the
families and CIFAR-10 benchmarks), and the figures of merit of a score."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import torch

from .suspects_zoo import SuspectRecord

if TYPE_CHECKING:
    from ..data import Dataset
    from ..family_null import FamilyNull
    from ..kit import Kit

log = logging.getLogger(__name__)


def tpr_at_fpr(positive: list[float], negative: list[float], fpr: float = 0.01) -> float:
    """The share of positives above the threshold that at most ``fpr`` of the negatives exceed."""
    neg = sorted(negative, reverse=True)
    allowed = math.floor(fpr * len(neg))  # negatives that may lie above the threshold
    threshold = neg[allowed] if allowed < len(neg) else float("-inf")
    return sum(p > threshold for p in positive) / len(positive) if positive else float("nan")


def score_suspects(
    kit: Kit, models: str, records: list[SuspectRecord], data: Dataset, *, methods: tuple[str, ...],
    outputs: tuple[str, ...], alpha: float, family_nulls: dict[str, FamilyNull] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Ask each suspect each query set once, then score every method on the same answers, per
    half (each record's ``half``, in order of first appearance) and answer mode: the summary
    rows and one row per (half, answers, method, suspect).

    With ``family_nulls`` (architecture -> :class:`~uapfp.family_null.FamilyNull`), every method is
    scored a second time, as ``METHOD (family null)``: each suspect against the null of its own
    architecture, and each model of a null, as one more honest suspect of its half, against the
    other models of its null."""
    from ..methods import truncate
    from ..suspects.base import OutputMode
    from ..verify import Scoring, query_plan, score_answers
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
    # the nulls' own models: honest suspects of the family variant, each against the rest of its null
    null_of: dict[str, FamilyNull] = {}
    extra: list[SuspectRecord] = []
    for arch, half in dict.fromkeys((r.arch, r.half) for r in records):  # each half with a suspect of the arch
        null = (family_nulls or {}).get(arch)
        for j, m in enumerate(null.models if null is not None else []):
            rec = SuspectRecord(
                name=f"{arch}-null-{m['name']}@{half}", role="homologous", family=arch, arch=arch,
                kind=f"null-{m['kind']}", half=half, weights="", test_accuracy=m["test_accuracy"], queries=0,
                seconds=0.0,
            )  # fmt: skip
            answers[rec.name] = {key: null.answers[key][j, :n] for key in keys}
            seconds[rec.name] = dict.fromkeys(keys, 0.0)  # not queried: their time is left out of the mean
            null_of[rec.name] = null.without(j)
            extra.append(rec)
    variants = [("", lambda rec, scoring: scoring, False)]
    if family_nulls:
        variants.append((
            " (family null)",
            lambda rec, scoring: replace(scoring, family=null_of.get(rec.name) or family_nulls[rec.arch]),
            True,
        ))  # fmt: skip
    rows, per_suspect = [], []
    for half in dict.fromkeys(r.half for r in records):
        for output in outputs:
            mode = OutputMode.parse(output)
            for name, base in scorings.items():
                plan = query_plan(base.method)
                for suffix, scoring_of, with_nulls in variants:
                    label = name + suffix
                    recs = [r for r in records + (extra if with_nulls else []) if r.half == half]
                    scored = []
                    for rec in recs:
                        start = time.perf_counter()
                        got = {key: truncate(answers[rec.name][key], mode) for key in plan}
                        queries = sum(
                            int(answers[rec.name][key].shape[0] * answers[rec.name][key].shape[1]) for key in plan
                        )
                        v = score_answers(kit, got, mode=mode, scoring=scoring_of(rec, base), n_req=n, name=rec.name,
                                          queries=queries, start=start)  # fmt: skip
                        spent = sum(seconds[rec.name][key] for key in plan) + v.seconds
                        scored.append((rec, v, spent))
                        per_suspect.append({"half": half, "outputs": output, "method": label, **asdict(rec),
                                            "similarity": v.similarity, "p_value": v.p_value, "verdict": v.verdict})  # fmt: skip
                    rows.append(_row(half, output, label, scored))
                    log.info("%s", rows[-1])
    return rows, per_suspect


def _row(half: str, output: str, label: str, scored: list[Any]) -> dict[str, Any]:
    """The summary row of one (half, answers, method): AUC, TPR at 1 % FPR, detections, queries, seconds."""
    from ..evaluate import auc
    from ..verify import PIRACY

    pos = [v.similarity for r, v, _ in scored if r.role == "piracy"]
    neg = [v.similarity for r, v, _ in scored if r.role == "homologous"]
    timed = [s for r, _, s in scored if r.weights]  # the suspects that were queried
    return {
        "half": half, "outputs": output, "method": label, "copies": len(pos), "honest": len(neg),
        "auc": round(auc(pos, neg), 4), "tpr_at_1pct_fpr": round(tpr_at_fpr(pos, neg), 4),
        "detected": sum(v.verdict == PIRACY for r, v, _ in scored if r.role == "piracy"),
        "flagged": sum(v.verdict == PIRACY for r, v, _ in scored if r.role == "homologous"),
        "queries_per_suspect": scored[0][1].queries if scored else 0,
        "seconds_per_suspect": round(sum(timed) / max(1, len(timed)), 3),
    }  # fmt: skip
