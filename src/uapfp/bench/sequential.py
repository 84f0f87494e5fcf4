"""``uapfp bench sequential``: the sequential test against the fixed one, on held-out zoo models.

Every held-out model of the kit is verified twice per method: with every requested set at
alpha (the fixed test) and with the sequential test (:mod:`uapfp.sequential`, verify's
default). One row per method: how often the two verdicts agree, the queries each spends
(median and mean), and the copies detected and honest models flagged by each.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ..options import option
from . import Experiment, kit_field, zoo_field


@dataclass(frozen=True)
class SequentialConfig:
    kit: str = kit_field()
    zoo: str = zoo_field("the zoo the kit was built from (its held-out models are the suspects)")
    methods: tuple[str, ...] = field(default=("siblings", "uap"), metadata=option("methods to compare"))
    alpha: float | None = field(default=None, metadata=option("significance level (default: the kit's)"))


@dataclass
class SequentialReport:
    experiment: str
    kit: str
    alpha: float
    rows: list[dict[str, Any]]
    suspects: list[dict[str, Any]]


def compare_sequential(config: SequentialConfig) -> SequentialReport:
    """Verify every held-out model with the fixed and the sequential test, per method."""
    from ..kit import Kit
    from ..suspects.spec import card_suspect
    from ..verify import PIRACY, verify
    from ..zoo import Zoo

    kit = Kit.load(config.kit)
    zoo = Zoo.load(config.zoo)
    held = set(kit.info["models"]["heldout"])
    cards = [c for c in zoo.cards if c["id"] in held]
    alpha = config.alpha if config.alpha is not None else kit.config.alpha
    rows, per = [], []
    for method in config.methods:
        pairs = []
        for card in cards:
            fixed = verify(kit, card_suspect(card), method=method, alpha=alpha, sequential=False)
            seq = verify(kit, card_suspect(card), method=method, alpha=alpha, sequential=True)
            pairs.append((card, fixed, seq))
            per.append({"method": method, "id": card["id"], "role": card["role"], "fixed": fixed.verdict,
                        "fixed_p": fixed.p_value, "fixed_queries": fixed.queries, "sequential": seq.verdict,
                        "sequential_p": seq.p_value, "sequential_queries": seq.queries,
                        "settled_after": seq.sequential.get("settled_after")})  # fmt: skip
        piracy = [(f, s) for c, f, s in pairs if c["role"] == "piracy"]
        honest = [(f, s) for c, f, s in pairs if c["role"] == "homologous"]
        rows.append({
            "method": method, "suspects": len(pairs),
            "agreement": round(sum(f.verdict == s.verdict for _, f, s in pairs) / len(pairs), 4) if pairs else None,
            "disagree": [c["id"] for c, f, s in pairs if f.verdict != s.verdict],
            "median_queries_fixed": statistics.median(f.queries for _, f, _ in pairs) if pairs else None,
            "median_queries_sequential": statistics.median(s.queries for _, _, s in pairs) if pairs else None,
            "mean_queries_sequential": round(statistics.mean(s.queries for _, _, s in pairs), 1) if pairs else None,
            "copies_detected_fixed": f"{sum(f.verdict == PIRACY for f, _ in piracy)}/{len(piracy)}",
            "copies_detected_sequential": f"{sum(s.verdict == PIRACY for _, s in piracy)}/{len(piracy)}",
            "honest_flagged_fixed": f"{sum(f.verdict == PIRACY for f, _ in honest)}/{len(honest)}",
            "honest_flagged_sequential": f"{sum(s.verdict == PIRACY for _, s in honest)}/{len(honest)}",
        })  # fmt: skip
    return SequentialReport("sequential", config.kit, alpha, rows, per)


EXPERIMENT = Experiment(
    "sequential", "the sequential test against the fixed one: verdict agreement and queries, held-out zoo models",
    SequentialConfig, compare_sequential,
)  # fmt: skip
