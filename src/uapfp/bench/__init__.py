"""Benchmarks: named experiments, each a typed function from a config dataclass to a report dataclass.

``uapfp bench NAME [options]`` runs one; its flags are generated from the config's fields
(:mod:`uapfp.options`), and its report, with the machine it ran on, is printed and written to
``--out``. Speed and detection quality are measured here, never by timed tests. One module
holds one experiment; the registry below lists them, explicitly.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ..options import option


@dataclass(frozen=True)
class Experiment:
    """A registered benchmark: its name, what it measures, its config class and its function."""

    name: str
    help: str
    config: type
    run: Callable[[Any], Any]


# The fields experiments share, each defined once.
def kit_field() -> Any:
    return field(metadata=option("the kit (a folder made by uapfp protect)"))


def zoo_field(help: str = "the zoo the kit was built from") -> Any:
    return field(metadata=option(help))


def data_dir_field() -> Any:
    return field(default=None, metadata=option("folder holding the dataset files"))


def outputs_field() -> Any:
    return field(default="probs", metadata=option("suspects answer probs, topk:K or label"))


def experiments() -> dict[str, Experiment]:
    """Every experiment by name (importing their modules, hence torch)."""
    from . import (
        cifar10,
        detection,
        error_agreement,
        families,
        http_verify,
        outside,
        robustness,
        sequential,
        train_speed,
        uap_choice,
        verify_speed,
    )  # fmt: skip

    modules = (
        train_speed,
        http_verify,
        detection,
        families,
        uap_choice,
        robustness,
        verify_speed,
        sequential,
        error_agreement,
        outside,
        cifar10,
    )
    return {m.EXPERIMENT.name: m.EXPERIMENT for m in modules}


def machine() -> dict[str, Any]:
    """What a figure was measured on."""
    import torch

    from uapfp.training import cpuinfo

    return {
        "cpu": cpuinfo("model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_experiment(name: str, config: Any) -> dict[str, Any]:
    """Run experiment ``name`` with ``config``; its report as JSON-able data, with the machine and times."""
    table = experiments()
    if name not in table:
        raise ConfigError(f"unknown experiment {name!r}; choose one of {', '.join(table)}")
    start = time.perf_counter()
    report = asdict(table[name].run(config))
    report["config"] = asdict(config)
    report["machine"] = machine()
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report["command"] = "uapfp " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("uapfp") else None
    return report


def verdict_counts(scored: list[tuple[str, float, str]]) -> dict[str, Any]:
    """AUC and ``detected/total`` counts of (role, similarity, verdict) triples."""
    from ..evaluate import tally

    t = tally(scored)
    return {
        "auc": None if t["auc"] is None else round(t["auc"], 4),
        "piracy_detected": f"{t['piracy_detected']}/{t['piracy_models']}",
        "homologous_flagged": f"{t['homologous_flagged']}/{t['homologous_models']}",
    }
