"""The model zoo: a victim, honest homologous models and piracy models, as data.

A zoo is a folder: ``zoo.json`` (the resolved configuration), ``splits.safetensors`` (D_V and
the attacker's pool) and ``models/``, one weights file and one JSON card per model
(:mod:`uapfp.cards`). :mod:`.config` says what a zoo holds and plans its jobs, :mod:`.build`
trains (and resumes) them, :mod:`.folder` reads a built zoo.
"""

from __future__ import annotations

from .build import VictimSource, build_zoo
from .config import PRESETS, Job, ZooConfig, job_train_config, plan_jobs, plan_rounds, preset
from .folder import ZOO_FORMAT, Zoo, zoo_table

__all__ = [
    "PRESETS",
    "ZOO_FORMAT",
    "Job",
    "VictimSource",
    "Zoo",
    "ZooConfig",
    "build_zoo",
    "job_train_config",
    "plan_jobs",
    "plan_rounds",
    "preset",
    "zoo_table",
]
