"""``uapfp bench train-speed``: seconds and test accuracy of one model per architecture and optimizer on D_V."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..options import option
from . import Experiment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpeedConfig:
    archs: tuple[str, ...] = field(default=("A", "B", "C", "D", "E"), metadata=option("architectures"))
    optimizers: tuple[str, ...] = field(default=("sgd", "adam", "rmsprop"), metadata=option("optimizers"))
    epochs: int = 5
    batch_size: int = 128
    data_dir: str | None = field(default=None, metadata=option("folder holding the Fashion-MNIST IDX files"))


@dataclass
class TrainSpeedReport:
    experiment: str
    train_images: int
    epochs: int
    batch_size: int
    rows: list[dict[str, Any]]
    median_seconds: float
    max_seconds: float


def train_speed(config: TrainSpeedConfig) -> TrainSpeedReport:
    """Train one model per (architecture, optimizer) on the full D_V (30,000 images)."""
    from ..archs import create_model
    from ..data import load_fashion_mnist, victim_indices
    from ..training import TrainConfig, accuracy, train_model

    data = load_fashion_mnist(config.data_dir)
    idx = torch.from_numpy(victim_indices(len(data.x_train), seed=0))
    x, y = data.x_train[idx], data.y_train[idx]
    rows = []
    for arch in config.archs:
        for opt in config.optimizers:
            torch.manual_seed(0)
            model = create_model(arch)
            cfg = TrainConfig(optimizer=opt, batch_size=config.batch_size, epochs=config.epochs, seed=0)
            start = time.perf_counter()
            train_model(model, x, y, config=cfg, progress=False)
            seconds = time.perf_counter() - start
            acc = accuracy(model, data.x_test, data.y_test)
            rows.append({"arch": arch, "optimizer": opt, "seconds": round(seconds, 1), "test_accuracy": round(acc, 4)})
            log.info("%s %s: %.1f s, accuracy %.4f", arch, opt, seconds, acc)
    secs = [r["seconds"] for r in rows]
    return TrainSpeedReport(
        "train-speed", len(x), config.epochs, config.batch_size, rows, statistics.median(secs), max(secs)
    )


EXPERIMENT = Experiment(
    "train-speed", "seconds and test accuracy of one model per architecture and optimizer on D_V",
    TrainSpeedConfig, train_speed,
)  # fmt: skip
