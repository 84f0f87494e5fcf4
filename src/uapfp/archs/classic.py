"""Classic families that thieves reuse and no default zoo holds: an MLP, LeNet-5, a wide BN CNN.

Each is built for any input shape and class count. ``uapfp bench outside`` trains its
suspects from these (docs/results-fmnist.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _flat_size(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, *image_size)).numel()


def mlp(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """Two hidden layers of 256 and 128 ReLU units."""
    h, w = image_size
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * h * w, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )  # fmt: skip


def lenet5(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998): tanh, average pooling, 6 and 16 maps, 120 and 84 units."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2 if min(image_size) < 20 else 0), nn.Tanh(), nn.AvgPool2d(2),
    )  # fmt: skip
    n = _flat_size(features, in_channels, image_size)
    return nn.Sequential(
        features, nn.Flatten(), nn.Linear(n, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes)
    )


def widebn(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """Two 3x3 convolutions of 32 and 48 maps with batch normalisation, ReLU, a 64-unit layer."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    n = _flat_size(features, in_channels, image_size)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(n, 64), nn.ReLU(), nn.Linear(64, num_classes))


#: name -> (factory, description), registered by :mod:`uapfp.archs`.
ARCHS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "mlp": (mlp, "MLP, hidden layers of 256 and 128 ReLU units"),
    "lenet5": (lenet5, "LeNet-5: tanh, average pooling"),
    "widebn": (widebn, "wide CNN with batch normalisation, 32 and 48 maps"),
}
