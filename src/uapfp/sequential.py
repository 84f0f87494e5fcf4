"""The sequential test: stop querying a suspect once its verdict is settled, at the kit's alpha.

A verification requests n query sets per channel. The sequential procedure looks at the
answers after ``k_1 < k_2 < ... < k_L = n`` sets (:func:`looks`: n/4, n/2 and n). At look j
it runs the fixed procedure's own test on the first ``k_j`` sets (the suspect's mean
similarity over those sets against the calibration models' means over the same sets), which
is a valid test at every look, and compares its p-value with a level of its own
(:func:`levels`): ``alpha / 40`` at every early look, the rest of ``alpha`` at the last, so
that the levels sum to ``alpha`` and, by the union bound, an honest suspect is flagged at some
look with probability at most ``alpha`` whatever the looks' correlation (the share spent early
was decided by measurement, docs/method.md; a query log records it, so that ``uapfp recheck``
applies the rule its verification ran). It stops

- for ``piracy`` when ``p_j`` is below look j's level;
- for ``not shown`` when ``p_j > FUTILITY`` at an early look (the suspect scores below the
  honest models' average: a stop that can only remove false alarms, never add one);
- at the last look, with the verdict of its level.

The test on simulated honest suspects is in ``tests/test_sequential.py``; its agreement with
the fixed 20-set test and the queries it spends, on held-out zoo models, are measured by
``uapfp bench sequential`` (docs/method.md).
"""

from __future__ import annotations

from collections.abc import Callable

EARLY_SHARE = 0.025  # the share of alpha spent at each early look (docs/method.md: 0.1 until 2026-12-04)
LEGACY_EARLY_SHARE = 0.1  # the share of a sequential query log written before logs recorded it
FUTILITY = 0.5  # an early p-value above this settles "not shown"


def looks(n: int) -> list[int]:
    """The numbers of sets after which the answers are tested (n/4, n/2, n; at least 2 each)."""
    if n < 2:
        raise ValueError("a verification needs at least 2 sets")
    return sorted({max(2, n // 4), max(2, n // 2), n})


def levels(alpha: float, n_looks: int, *, early_share: float | None = None) -> list[float]:
    """Each look's significance level: ``alpha * early_share`` early (None: :data:`EARLY_SHARE`),
    the rest of alpha at the last."""
    early_share = EARLY_SHARE if early_share is None else early_share
    if not 0 < early_share * (n_looks - 1) < 1 and n_looks > 1:
        raise ValueError(f"early looks cannot spend {early_share} of alpha each over {n_looks - 1} looks")
    early = [alpha * early_share] * (n_looks - 1)
    return [*early, alpha - sum(early)]


def verdict_level(alpha: float, n: int, *, sequential: bool) -> float:
    """The level a verdict on all ``n`` sets is tested at: ``alpha``, or (``sequential``) what the last look
    has left of it."""
    return levels(alpha, len(looks(n)))[-1] if sequential else alpha


def decision(p: float, level: float, *, last: bool) -> str | None:
    """``piracy``, ``not shown``, or None (query on) for a look's p-value and level."""
    from .verify import NOT_SHOWN, PIRACY

    if p < level:
        return PIRACY
    if last or p > FUTILITY:
        return NOT_SHOWN
    return None


def run(
    p_after: Callable[[int], float], n: int, alpha: float, *, early_share: float | None = None
) -> tuple[str, int, float, float]:
    """Apply the procedure to ``p_after(k)``, the p-value on the first k sets: (verdict, sets, p, level)."""
    points = looks(n)
    for j, (k, level) in enumerate(zip(points, levels(alpha, len(points), early_share=early_share))):
        p = p_after(k)
        verdict = decision(p, level, last=j == len(points) - 1)
        if verdict is not None:
            return verdict, k, p, level
    raise AssertionError("the last look always decides")
