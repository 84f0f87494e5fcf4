"""``uapfp bench verify-speed``: seconds to verify one local suspect with a loaded kit."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from . import Experiment, kit_field, zoo_field


@dataclass(frozen=True)
class VerifySpeedConfig:
    kit: str = kit_field()
    zoo: str = zoo_field("the zoo the kit was built from (its held-out models are the suspects)")
    fingerprints: int = 20
    repeats: int = 3


@dataclass
class VerifySpeedReport:
    experiment: str
    kit_load_seconds: float
    verifications: int
    fingerprints: int
    first_seconds: float
    median_seconds: float
    max_seconds: float


def verify_speed(config: VerifySpeedConfig) -> VerifySpeedReport:
    """Load the kit once, then time :func:`uapfp.verify.verify` on every held-out zoo model.

    The model's own loading is not timed (it is the suspect's, not the verification's).
    """
    from ..kit import Kit
    from ..suspects.spec import card_suspect
    from ..verify import verify
    from ..zoo import Zoo

    start = time.perf_counter()
    kit = Kit.load(config.kit)
    load_seconds = time.perf_counter() - start
    zoo = Zoo.load(config.zoo)
    held = set(kit.info["models"]["heldout"])
    suspects = [card_suspect(c) for c in zoo.cards if c["id"] in held]
    times = []
    for _ in range(config.repeats):
        for s in suspects:
            t = time.perf_counter()
            verify(kit, s, fingerprints=config.fingerprints, sequential=False)  # the time of every set
            times.append(time.perf_counter() - t)
    return VerifySpeedReport(
        "verify-speed", round(load_seconds, 3), len(times), config.fingerprints, round(times[0], 3),
        round(statistics.median(times), 3), round(max(times), 3),
    )  # fmt: skip


EXPERIMENT = Experiment(
    "verify-speed", "seconds to verify one local suspect with a loaded kit (held-out zoo models)",
    VerifySpeedConfig, verify_speed,
)  # fmt: skip
