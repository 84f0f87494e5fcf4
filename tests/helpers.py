"""Tiny user-side architectures, imported by tests as ``tests.helpers:factory``."""

from __future__ import annotations

from torch import nn


def tiny_mlp(in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """A user's own victim architecture: a two-layer MLP."""
    h, w = image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, 64), nn.ReLU(), nn.Linear(64, num_classes))


def linear_classifier(num_classes: int = 10) -> nn.Module:
    """A factory that accepts only some of the keyword arguments."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))
