"""An architecture of the owner's own, outside uapfp's registry: a small ConvMixer (Trockman and
Kolter, 2022: a patch embedding, then depthwise and pointwise convolutions with GELU and batch
normalisation). The lineage benchmark's second victim (docs/results-fmnist.md); an owner names
it as ``owner_nets:convmixer`` with ``PYTHONPATH=examples`` and ``--trust-code owner_nets``.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


def convmixer(
    *, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10,
    dim: int = 48, depth: int = 4, kernel: int = 3, patch: int = 4,
) -> nn.Module:  # fmt: skip
    """ConvMixer-``dim``/``depth``: patches of ``patch`` pixels, ``kernel``-wide depthwise mixing."""
    del image_size  # global pooling: any input size

    def block() -> nn.Module:
        mix = nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding="same"), nn.GELU(), nn.BatchNorm2d(dim))
        return nn.Sequential(Residual(mix), nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim))

    return nn.Sequential(
        nn.Conv2d(in_channels, dim, patch, stride=patch), nn.GELU(), nn.BatchNorm2d(dim),
        *(block() for _ in range(depth)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_classes),
    )  # fmt: skip
