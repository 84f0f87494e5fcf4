"""``uapfp bench uap``: fooling rate (held-out data) and time of UAP methods, norms and radii."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import NORMS
from ..errors import ConfigError
from ..options import option
from . import Experiment, data_dir_field, zoo_field

log = logging.getLogger(__name__)

CANDIDATES = ("sgd:linf:0.1", "sgd:linf:0.2", "sgd:linf:0.3", "sgd:l2:2", "sgd:l2:4", "sgd:l2:6",
              "deepfool:linf:0.3", "deepfool:l2:6")  # fmt: skip


@dataclass(frozen=True)
class UapConfig:
    zoo: str = zoo_field("the zoo whose victim is perturbed")
    data_dir: str | None = data_dir_field()
    candidates: tuple[str, ...] = field(default=CANDIDATES, metadata=option("METHOD:NORM:XI candidates"))
    uap_images: int = 2000
    seed: int = 0


@dataclass
class UapReport:
    experiment: str
    zoo: str
    uap_images: int
    rows: list[dict[str, Any]]


def _parse(candidate: str) -> tuple[str, str, float]:
    from ..uap import UAP_METHODS

    method, _, rest = candidate.partition(":")
    norm, _, xi = rest.partition(":")
    try:
        radius = float(xi)
    except ValueError:
        radius = 0.0
    if method not in UAP_METHODS or norm not in NORMS or not radius > 0:
        raise ConfigError(
            f"a candidate is METHOD:NORM:XI ({', '.join(UAP_METHODS)}; l2 or linf; XI > 0), not {candidate!r}"
        )
    return method, norm, radius


def uap_choice(config: UapConfig) -> UapReport:
    """Fooling rate on the victim's held-out test set for each ``method:norm:xi`` candidate."""
    from ..cards import load_model_from_card
    from ..uap import create_uap_method
    from ..zoo import Zoo

    candidates = [_parse(c) for c in config.candidates]
    zoo = Zoo.load(config.zoo)
    victim = load_model_from_card(zoo.victim)
    data = zoo.load_dataset(config.data_dir)
    x_v = data.x_train[zoo.splits()["victim"]]
    gen = torch.Generator().manual_seed(config.seed)
    x = x_v[torch.randperm(len(x_v), generator=gen)[: config.uap_images]]
    rows = []
    for method, norm, xi in candidates:
        res = create_uap_method(method, xi=xi, norm=norm)(victim, x, x_val=data.x_test, seed=config.seed)
        rows.append(res.summary())
        log.info("%s %s %g: fooling rate %.3f (%.1f s)", method, norm, xi, res.fooling_rate_val, res.seconds)
    return UapReport("uap", str(zoo.path), len(x), rows)


EXPERIMENT = Experiment(
    "uap", "fooling rate (held-out data) and time of UAP methods, norms and radii on a zoo's victim",
    UapConfig, uap_choice,
)  # fmt: skip
