"""Evaluating a kit on a zoo's held-out models (the layout of the paper's table 2), and AUC."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .calibration import Calibration
from .errors import ConfigError
from .kit import Kit
from .methods import Method, truncate
from .significance import StatTest
from .suspects.base import OutputMode
from .suspects.spec import card_suspect
from .verify import PIRACY, Scoring, fingerprint_count, query_plan, score_answers, verify
from .zoo import Zoo


def auc(positive: np.ndarray | list[float], negative: np.ndarray | list[float]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2."""
    p = np.asarray(positive, dtype=np.float64)
    n = np.asarray(negative, dtype=np.float64)
    if len(p) == 0 or len(n) == 0:
        return float("nan")
    greater = (p[:, None] > n[None, :]).sum()
    ties = (p[:, None] == n[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(p) * len(n)))


def tally(scored: Iterable[tuple[str, float, str]]) -> dict[str, Any]:
    """AUC, counts, mean similarities, detections and false alarms of (role, similarity, verdict) triples."""
    scored = list(scored)
    pir = [(sim, verdict) for role, sim, verdict in scored if role == "piracy"]
    hom = [(sim, verdict) for role, sim, verdict in scored if role == "homologous"]
    value = auc([sim for sim, _ in pir], [sim for sim, _ in hom])
    return {
        "auc": None if math.isnan(value) else value,
        "piracy_models": len(pir),
        "homologous_models": len(hom),
        "piracy_mean_similarity": float(np.mean([sim for sim, _ in pir])) if pir else None,
        "homologous_mean_similarity": float(np.mean([sim for sim, _ in hom])) if hom else None,
        "piracy_detected": sum(verdict == PIRACY for _, verdict in pir),
        "homologous_flagged": sum(verdict == PIRACY for _, verdict in hom),
    }


@dataclass
class ModelScore:
    """One held-out zoo model's result."""

    id: str
    role: str
    arch: str
    optimizer: str | None
    attack: str | None
    similarity: float
    similarity_std: float
    p_value: float
    verdict: str


@dataclass
class Evaluation:
    """Held-out models' scores and their summary (the layout of the paper's table 2)."""

    scores: list[ModelScore]
    auc: float
    fingerprints: int
    output_mode: str
    alpha: float
    kit_sha256: str
    groups: list[dict[str, Any]] = field(default_factory=list)
    method: str = "uap"

    def summary(self, ids: set[str] | None = None) -> dict[str, Any]:
        """:func:`tally` of the scores (those of ``ids``), with the largest piracy p-value and the flag rate."""
        scores = [s for s in self.scores if ids is None or s.id in ids]
        out = tally((s.role, s.similarity, s.verdict) for s in scores)
        out["piracy_max_p"] = max((s.p_value for s in scores if s.role == "piracy"), default=None)
        hom = out["homologous_models"]
        out["homologous_flag_rate"] = out["homologous_flagged"] / hom if hom else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kit_sha256": self.kit_sha256,
            "method": self.method,
            "fingerprints": self.fingerprints,
            "output_mode": self.output_mode,
            "alpha": self.alpha,
            "summary": self.summary(),
            "groups": self.groups,
            "models": [asdict(s) for s in self.scores],
        }

    def render(self) -> str:
        lines = [
            f"{'arch':<6}{'optimizer':<10}{'role':<12}{'n':>3}{'mean sim':>10}{'std':>8}{'max p (pir) / min p (hom)':>28}",
        ]
        for g in self.groups:
            p = g["max_p"] if g["role"] == "piracy" else g["min_p"]
            lines.append(
                f"{g['arch']:<6}{g['optimizer'] or '-':<10}{g['role']:<12}{g['n']:>3}{g['mean']:>10.4f}{g['std']:>8.4f}{p:>28.3g}"
            )
        s = self.summary()

        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.4f}"

        lines.append("")
        lines.append(
            f"AUC {f(s['auc'])}; piracy mean similarity {f(s['piracy_mean_similarity'])}, detected "
            f"{s['piracy_detected']}/{s['piracy_models']}; homologous mean similarity "
            f"{f(s['homologous_mean_similarity'])}, flagged {s['homologous_flagged']}/{s['homologous_models']} "
            f"(method {self.method}, alpha {self.alpha}, {self.fingerprints} fingerprints, outputs {self.output_mode})"
        )
        return "\n".join(lines)


def evaluate(
    kit: Kit,
    zoo: Zoo | str,
    *,
    fingerprints: int | None = None,
    alpha: float | None = None,
    output: str = "probs",
    ids: list[str] | None = None,
    stored: dict[str, dict[str, torch.Tensor]] | None = None,
    method: Method | str | None = None,
    test: StatTest | str | None = None,
    calibration: Calibration | str | None = None,
    progress: bool = False,
) -> Evaluation:
    """Verify every held-out model of ``zoo`` (or the models ``ids``) with ``kit``.

    Each model goes through the same :func:`verify` as any suspect (a local
    :class:`TorchSuspect` in answer mode ``output``). ``stored`` (query-set name -> model id ->
    full-probability answers (S, n, K) to this kit's sets, e.g. :meth:`uapfp.protect.Profile.stored`)
    skips the queries: each model is scored from its stored answers, truncated to ``output`` as
    the suspect would have answered, with the same verdict (the zoo's models answer in the victim's class
    order, so the class-order check is not asked for: its queries and note differ). ``method``, ``test`` and
    ``calibration`` replace the kit's own. Every requested set is sent and tested at alpha (no
    sequential stop), so that copies and honest models are scored on the same sets.
    """
    from tqdm.auto import tqdm

    zoo = zoo if isinstance(zoo, Zoo) else Zoo.load(zoo)
    if zoo.victim["weights_sha256"] != kit.info["victim"]["weights_sha256"]:
        raise ConfigError("this zoo's victim is not the kit's victim; evaluate a kit on the zoo it was built from")
    wanted = set(ids) if ids is not None else set(kit.info["models"]["heldout"])
    cards = [c for c in zoo.cards if c["id"] in wanted and c["role"] in ("piracy", "homologous")]
    if not cards:
        raise ConfigError("no held-out piracy or homologous models to evaluate; rebuild the kit with a held-out share")
    scoring = Scoring.of(kit, method=method, test=test, calibration=calibration, alpha=alpha)
    n = fingerprint_count(kit, fingerprints, scoring.method)
    scores = []
    mode = OutputMode.parse(output)
    plan = query_plan(scoring.method)
    queries = sum(n * ch.sets(kit).shape[1] for ch in plan.values())  # what querying the sets would cost
    for card in tqdm(cards, desc="evaluate", disable=not progress, leave=False):
        if stored is None:
            v = verify(kit, card_suspect(card, output=output), method=scoring.method, fingerprints=n,
                       alpha=scoring.alpha, test=scoring.test, calibration=scoring.calibration,
                       sequential=False)  # fmt: skip
        else:
            answers = {key: truncate(stored[key][card["id"]][:n], mode) for key in plan}
            v = score_answers(kit, answers, mode=mode, scoring=scoring, n_req=n, name=card["id"],
                              queries=queries, start=time.perf_counter())  # fmt: skip
        scores.append(
            ModelScore(
                id=card["id"], role=card["role"], arch=card["arch"], optimizer=card.get("optimizer"),
                attack=(card.get("attack") or {}).get("name"), similarity=v.similarity,
                similarity_std=v.similarity_std, p_value=v.p_value, verdict=v.verdict,
            )
        )  # fmt: skip
    pos = [s.similarity for s in scores if s.role == "piracy"]
    neg = [s.similarity for s in scores if s.role == "homologous"]
    groups = []
    keyf = lambda s: (s.arch, s.optimizer or "", s.role)  # noqa: E731
    for key in sorted({keyf(s) for s in scores}):
        grp = [s for s in scores if keyf(s) == key]
        sims = np.array([s.similarity for s in grp])
        ps = [s.p_value for s in grp]
        groups.append(
            {
                "arch": key[0], "optimizer": key[1] or None, "role": key[2], "n": len(grp),
                "mean": float(sims.mean()), "std": float(sims.std(ddof=1)) if len(grp) > 1 else 0.0,
                "max_p": float(max(ps)), "min_p": float(min(ps)),
            }
        )  # fmt: skip
    return Evaluation(scores, auc(pos, neg), n, output, scoring.alpha, kit.sha256, groups, scoring.method.name)
