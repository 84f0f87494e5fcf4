"""What a zoo holds: :class:`ZooConfig`, the presets, and the deterministic plan of its jobs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..archs import arch_info
from ..data import SplitConfig
from ..errors import ConfigError
from ..extraction import create_attack
from ..options import JsonConfig
from ..training import BATCH_SIZES, OPTIMIZERS, TrainConfig, cpu_has_amx


@dataclass(frozen=True)
class ZooConfig(JsonConfig):
    """What a zoo holds. Counts are per (architecture, optimizer) cell.

    ``attacks`` are assigned to piracy models round-robin, so that every architecture sees
    every attack once it has as many piracy models as there are attacks.
    ``homologous_overlaps`` (default: the split's single overlap) and ``pool_fractions`` (the
    share of the attacker's pool a thief holds) are cycled over homologous and piracy models,
    so that the zoo spans honest models trained on data from disjoint to identical to D_V,
    and thieves with small and large pools.
    Jobs are planned in rounds, each a pass over the cells: ``rounds`` gives the (piracy,
    homologous) counts per cell of the leading rounds, and a last round adds the rest up to
    the totals. Seeds, batch sizes and attacks are drawn in that order, so a zoo grown by one
    more round keeps every model it has (the ``small`` preset grew from 2 + 3 to 4 + 6, then 6 + 9 that way).
    ``include_victim_arch`` adds the victim's own architecture (a user's factory too) to
    ``archs``: thieves often reuse a public architecture, and an encoder that never saw
    honest models of the victim's architecture cannot tell them from the victim.
    ``siblings`` models of the victim's own architecture are trained on exactly D_V with the
    victim's recipe and other seeds: what the victim would have been with another seed. The
    ``siblings`` method reads lineage as the victim's deviation from them (docs/method.md).
    ``victim_epochs`` (default: ``epochs``) is the victim's recipe, its siblings' too; the
    homologous and piracy models train ``epochs``. ``augment`` is every zoo model's training
    augmentation (:class:`uapfp.training.TrainConfig`): ``crop:4+flip`` for natural images;
    ``cpu_bf16`` every zoo model's bfloat16 autocast on the CPU (a CPU with AMX).
    """

    dataset: str = "fashion-mnist"
    archs: tuple[str, ...] = ("A", "B", "C", "D", "E")
    optimizers: tuple[str, ...] = OPTIMIZERS
    piracy_per_cell: int = 2
    homologous_per_cell: int = 2
    attacks: tuple[str, ...] = ("knockoff", "copycat", "jbda", "cloudleak")
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    victim_arch: str = "A"
    victim_optimizer: str = "adam"
    victim_batch_size: int = 128
    epochs: int = 5
    victim_epochs: int | None = None
    augment: str = "none"
    cpu_bf16: bool = False
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    split: SplitConfig = field(default_factory=SplitConfig)
    include_victim_arch: bool = True
    homologous_overlaps: tuple[float, ...] | None = None
    pool_fractions: tuple[float, ...] = (1.0,)
    rounds: tuple[tuple[int, int], ...] = ()
    siblings: int = 8
    seed: int = 0

    what = "zoo"

    def __post_init__(self) -> None:
        for a in self.archs:
            if ":" not in a:
                arch_info(a)  # a ConfigError naming the registered ones
        for o in self.optimizers:
            TrainConfig(optimizer=o)
        TrainConfig(augment=self.augment)
        for at in self.attacks:
            create_attack(at, **self.attack_options.get(at, {}))
        if not self.attacks and self.piracy_per_cell:
            raise ConfigError("piracy models need at least one extraction attack")
        if any(len(r) != 2 or min(r) < 0 for r in self.rounds):
            raise ConfigError("rounds are (piracy, homologous) counts per cell, each >= 0")
        if self.epochs < 1 or (self.victim_epochs is not None and self.victim_epochs < 1):
            raise ConfigError("epochs and victim_epochs must be at least 1")
        if self.siblings < 0 or self.siblings == 1:
            raise ConfigError("siblings must be 0, or 2 or more (they are split in two halves)")


# Scaled-down attack budgets for the 6,000-image slice (its pool holds 3,000 images).
_TINY_ATTACKS = {
    "jbda": {"seed_size": 1000, "rounds": 2, "round_epochs": 2},
    "cloudleak": {"natural": 2000, "adversarial": 1000},
}

_SMALL = ZooConfig(piracy_per_cell=6, homologous_per_cell=9, rounds=((2, 3), (2, 3)))

PRESETS: dict[str, ZooConfig] = {
    "tiny": ZooConfig(
        dataset="fashion-mnist-slice",
        optimizers=("adam",),
        piracy_per_cell=2,
        homologous_per_cell=3,
        attack_options=_TINY_ATTACKS,
        epochs=4,
        batch_sizes=(128,),
    ),
    # The default: small's first round (84 models with the victim and its siblings), in bfloat16 autocast on a
    # CPU with AMX: a kit from nothing in about 20 minutes on 2 cores with --ray there (docs/zoo.md). Grow it
    # into small's plan with --piracy 6 --homologous 9 (in bfloat16 too where AMX, unlike small itself).
    "quick": replace(_SMALL, piracy_per_cell=2, homologous_per_cell=3, cpu_bf16=True),
    "small": _SMALL,
    "paper": ZooConfig(
        archs=("B", "C", "D", "E"),
        include_victim_arch=False,
        piracy_per_cell=10,
        homologous_per_cell=10,
        attacks=("cloudleak",),
    ),
}


def preset(name: str, **overrides: Any) -> ZooConfig:
    """A named preset (``tiny``, ``quick``, ``small``, ``paper``) with optional field overrides.

    A preset's bfloat16 autocast (``quick``'s) holds on a CPU with AMX only; elsewhere it trains in
    float32, where bfloat16 has no fast kernels (the choice is in the zoo's recorded config and cards).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[name]
    if chosen.cpu_bf16 and not cpu_has_amx():
        chosen = replace(chosen, cpu_bf16=False)
    return replace(chosen, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Job:
    """One model to train."""

    id: str
    role: str
    arch: str
    optimizer: str
    batch_size: int
    seed: int
    attack: str | None = None
    overlap: float | None = None
    pool_fraction: float | None = None


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plan_rounds(config: ZooConfig) -> list[tuple[int, int]]:
    """The (piracy, homologous) counts per cell of each planning round, summing to the totals."""
    rounds, left = [], [config.piracy_per_cell, config.homologous_per_cell]
    for r in config.rounds:
        take = [min(n, k) for n, k in zip(r, left)]
        rounds.append((take[0], take[1]))
        left = [k - t for k, t in zip(left, take)]
    if any(left):
        rounds.append((left[0], left[1]))
    return rounds


def plan_jobs(config: ZooConfig) -> list[Job]:
    """The deterministic list of homologous and piracy models of ``config``, round by round."""
    rng = np.random.default_rng([config.seed, 0x200])
    jobs: list[Job] = []
    piracy_index = homologous_index = 0
    overlaps = config.homologous_overlaps or (config.split.homologous_overlap,)
    done: dict[tuple[str, str, str], int] = {}  # models planned so far per (arch, optimizer, role)
    for counts in plan_rounds(config):
        for arch, opt in itertools.product(config.archs, config.optimizers):
            for role, count in zip(("piracy", "homologous"), counts):
                first = done.get((arch, opt, role), 0)
                done[(arch, opt, role)] = first + count
                for i in range(first, first + count):
                    attack = overlap = fraction = None
                    if role == "piracy":
                        attack = config.attacks[piracy_index % len(config.attacks)]
                        # Cycled at a different period than the attacks, so that they mix.
                        fraction = config.pool_fractions[
                            (piracy_index // len(config.attacks)) % len(config.pool_fractions)
                        ]
                        piracy_index += 1
                    else:
                        overlap = overlaps[homologous_index % len(overlaps)]
                        homologous_index += 1
                    jobs.append(
                        Job(
                            id=f"{role}-{_safe_id(arch)}-{opt}-{i:02d}",
                            role=role,
                            arch=arch,
                            optimizer=opt,
                            batch_size=int(rng.choice(config.batch_sizes)),
                            seed=int(rng.integers(0, 2**31 - 1)),
                            attack=attack,
                            overlap=overlap,
                            pool_fraction=fraction,
                        )
                    )
    return jobs


def plan_siblings(config: ZooConfig, arch: str) -> list[Job]:
    """The sibling jobs: the victim's architecture and recipe on exactly D_V, seeds of their own
    (drawn apart from the other jobs', so that adding siblings changes none of those)."""
    rng = np.random.default_rng([config.seed, 0x51B])
    return [
        Job(id=f"sibling-{i:02d}", role="sibling", arch=arch, optimizer=config.victim_optimizer,
            batch_size=config.victim_batch_size, seed=int(rng.integers(0, 2**31 - 1)), overlap=1.0)
        for i in range(config.siblings)
    ]  # fmt: skip


def victim_epochs(config: ZooConfig) -> int:
    """The epochs of the victim's recipe (its siblings')."""
    return config.epochs if config.victim_epochs is None else config.victim_epochs


def job_train_config(config: ZooConfig, job: Job) -> TrainConfig:
    """The training recipe of one zoo model; a finished model with another recipe is trained again."""
    epochs = victim_epochs(config) if job.role == "sibling" else config.epochs
    return TrainConfig(optimizer=job.optimizer, batch_size=job.batch_size, epochs=epochs, seed=job.seed,
                       augment=config.augment, cpu_bf16=config.cpu_bf16)  # fmt: skip
