"""``uapfp bench detection``: held-out AUC and verdicts, on the default split and leaving one
architecture or one attack out of the encoder (docs/results-fmnist.md)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..config import CALIBRATION_CHOICES, TEST_NAMES, ProtectConfig
from ..errors import ConfigError
from ..options import option
from . import Experiment, data_dir_field, outputs_field, zoo_field

log = logging.getLogger(__name__)

FOLDS = ("none", "archs", "attacks")
#: The kit settings a detection study may change (the fold decides what is excluded).
STUDY_SETTINGS = (
    "uap_method", "norm", "xi", "uap_images", "n_probes", "n_views", "encoder", "train_fraction",
    "calibration_fraction", "paper_split", "alpha", "fingerprints", "null", "calibration", "seed",
)  # fmt: skip


@dataclass(frozen=True)
class DetectionConfig:
    zoo: str = zoo_field("the zoo")
    data_dir: str | None = data_dir_field()
    outputs: str = outputs_field()
    folds: tuple[str, ...] = field(
        default=FOLDS, metadata=option("none (the default split), archs (leave each out), attacks (likewise)")
    )
    nulls: tuple[str, ...] = field(default=(), metadata=option("tests to compare on the same kits (models, global)"))
    calibrations: tuple[str, ...] = field(
        default=(), metadata=option("calibrations to compare on the same kits (auto, kit, leave-arch-out)")
    )
    protect: ProtectConfig = field(default_factory=ProtectConfig, metadata=option(prefix="", only=STUDY_SETTINGS))

    def __post_init__(self) -> None:
        for name, given, known in (("folds", self.folds, FOLDS), ("nulls", self.nulls, TEST_NAMES),
                                   ("calibrations", self.calibrations, CALIBRATION_CHOICES)):  # fmt: skip
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise ConfigError(f"--{name} takes {', '.join(known)}, not {', '.join(unknown)}")


@dataclass
class DetectionReport:
    experiment: str
    zoo: str
    protect: dict[str, Any]
    uap: dict[str, Any]
    outputs: str
    folds: list[dict[str, Any]]


def detection(config: DetectionConfig) -> DetectionReport:
    """In-distribution and leave-one-out detection quality of a zoo's kits.

    The UAP, probes and fingerprints are computed once; each fold trains an encoder without
    the held-out architecture (or attack) and scores every held-out model through
    :func:`uapfp.evaluate.evaluate` from those stored fingerprints, once per test and
    calibration asked for (a leave-arch-out kit holds the kit's encoder too, so one kit serves
    both calibrations). For an architecture fold the AUC compares that architecture's piracy
    and homologous models; for an attack fold, that attack's piracy models against every
    held-out homologous model.
    """
    from ..evaluate import evaluate
    from ..protect import fit_kit, profile_zoo, resolve_calibration, split_models
    from ..zoo import Zoo

    zoo = Zoo.load(config.zoo)
    base = config.protect
    profile = profile_zoo(zoo, base, data_dir=config.data_dir, progress=False)
    cards = {c["id"]: c for c in zoo.cards}
    stored = profile.stored()
    victim_arch = zoo.victim["arch"]
    plan: list[tuple[str, str, ProtectConfig]] = []
    if "none" in config.folds:
        plan.append(("default", "-", base))
    if "archs" in config.folds:
        archs = sorted({c["arch"] for c in zoo.cards if c["role"] != "victim"})
        plan += [
            ("arch", a, replace(base, exclude_archs=(a,))) for a in archs if not (base.paper_split and a == victim_arch)
        ]
    if "attacks" in config.folds:
        attacks = sorted({(c.get("attack") or {}).get("name") for c in zoo.cards if c["role"] == "piracy"})
        plan += [("attack", t, replace(base, exclude_attacks=(t,))) for t in attacks]
    tests = config.nulls or (base.null,)
    asked = config.calibrations or (base.calibration,)
    folds = []
    for kind, name, cfg in plan:
        start = time.perf_counter()
        assignment = split_models(zoo.cards, cfg, victim_arch)
        calibrations = list(dict.fromkeys(
            resolve_calibration(cards, assignment, replace(cfg, calibration=c)) for c in asked
        ))  # fmt: skip
        fit_calibration = "leave-arch-out" if "leave-arch-out" in calibrations else "kit"
        # the study of the paper's method (its encoder, tests and calibrations): scored by uap, whatever the default
        method = "uap" if cfg.method == "auto" else cfg.method
        kit = fit_kit(zoo, profile, replace(cfg, calibration=fit_calibration, method=method), progress=False)
        for test, calibration in [(t, c) for c in calibrations for t in tests]:
            ev = evaluate(kit, zoo, output=config.outputs, fingerprints=cfg.fingerprints, stored=stored,
                          test=test, calibration=calibration)  # fmt: skip
            if kind == "arch":
                ids = {s.id for s in ev.scores if cards[s.id]["arch"] == name}
            elif kind == "attack":
                ids = {
                    s.id for s in ev.scores
                    if s.role == "homologous" or (cards[s.id].get("attack") or {}).get("name") == name
                }  # fmt: skip
            else:
                ids = None
            row = {"fold": kind, "held_out": name, "null": test, "calibration": calibration, **ev.summary(ids),
                   "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            if kind == "default":
                row["groups"] = ev.groups
                row["models"] = [asdict(s) for s in ev.scores]
            folds.append(row)
            log.info("fold %s %s null %s calibration %s: %s", kind, name, test, calibration,
                     {k: row[k] for k in ("auc", "piracy_mean_similarity", "homologous_mean_similarity", "homologous_flagged")})  # fmt: skip
    return DetectionReport("detection", str(zoo.path), base.to_dict(), profile.uap.summary(), config.outputs, folds)


EXPERIMENT = Experiment(
    "detection",
    "held-out AUC and verdicts: the default split, then leave one architecture / one attack out of the encoder",
    DetectionConfig, detection,
)  # fmt: skip
