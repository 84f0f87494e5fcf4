"""How the training set is divided (paper section 5.1): D_V, D_H and the attacker's pool.

The victim's data D_V is half the training set by default; homologous data D_H has the size
of D_V and overlaps it at a chosen rate; the attacker's unlabeled pool is disjoint from D_V by
default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..options import JsonConfig


@dataclass(frozen=True)
class SplitConfig(JsonConfig):
    """How the training set is divided (paper section 5.1; docs/zoo.md)."""

    victim_fraction: float = 0.5
    homologous_overlap: float = 0.5
    pool_disjoint: bool = True

    what = "split"

    def __post_init__(self) -> None:
        if not 0.0 < self.victim_fraction <= 1.0:
            raise ConfigError("victim_fraction must be in (0, 1]")
        if not 0.0 <= self.homologous_overlap <= 1.0:
            raise ConfigError("homologous_overlap must be in [0, 1]")


def victim_indices(n_train: int, *, seed: int, fraction: float = 0.5) -> np.ndarray:
    """D_V: a seeded random ``fraction`` of the training set (sorted indices)."""
    rng = np.random.default_rng([seed, 0xD5])
    size = max(1, round(fraction * n_train))
    return np.sort(rng.permutation(n_train)[:size])


def homologous_indices(n_train: int, victim: np.ndarray, *, seed: int, overlap: float) -> np.ndarray:
    """D_H: as many images as D_V, of which a fraction ``overlap`` is drawn from D_V.

    The rest comes from outside D_V; when outside is too small, the error says so.
    """
    rng = np.random.default_rng([seed, 0xD4])
    size = len(victim)
    n_in = round(overlap * size)
    outside = np.setdiff1d(np.arange(n_train), victim, assume_unique=True)
    n_out = size - n_in
    if n_out > len(outside):
        raise ConfigError(
            f"overlap {overlap} needs {n_out} images outside D_V but only {len(outside)} "
            "exist; raise the overlap or shrink the victim's share"
        )
    chosen = np.concatenate([rng.choice(victim, n_in, replace=False), rng.choice(outside, n_out, replace=False)])
    return np.sort(chosen)


def attacker_pool(n_train: int, victim: np.ndarray, *, disjoint: bool = True) -> np.ndarray:
    """The attacker's unlabeled pool: the training images outside D_V (or all of them)."""
    if not disjoint:
        return np.arange(n_train, dtype=np.int64)
    pool = np.setdiff1d(np.arange(n_train), victim, assume_unique=True)
    if len(pool) == 0:
        raise ConfigError("D_V covers the whole training set: no images are left for the attacker's pool")
    return pool


def overlap_rate(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a|."""
    return len(np.intersect1d(a, b)) / max(1, len(a))
