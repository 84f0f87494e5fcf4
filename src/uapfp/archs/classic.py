"""Families thieves reuse, beside the paper's CNNs: an MLP, LeNet-5, a wide BN CNN, a BN residual
net, a depthwise-separable net, a small VGG and an all-convolutional net.

Each is built for any input shape and class count, small enough to train on two CPU cores in
under a minute on Fashion-MNIST. ``uapfp bench families`` and ``uapfp bench outside`` train
suspects of these (docs/results-fmnist.md).
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


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 strided) shortcut (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )  # fmt: skip
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """A small ResNet: a strided 16-map stem, residual blocks of 16, 32 and 48 maps (strides 1, 2, 2), global pooling."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        ResidualBlock(16, 16, 1), ResidualBlock(16, 32, 2), ResidualBlock(32, 48, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, num_classes),
    )  # fmt: skip


def _dw_block(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), nn.ReLU6(),
        nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6(),
    )  # fmt: skip


def dwsep(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """A MobileNet-like net (Howard et al., 2017): depthwise-separable blocks, ReLU6, global pooling."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        _dw_block(16, 32, 1), _dw_block(32, 64, 2), _dw_block(64, 96, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, num_classes),
    )  # fmt: skip


def vgg(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """A small VGG (Simonyan and Zisserman, 2015): pairs of 3x3 conv + BN + ReLU, max pooling, a 128-unit layer."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    n = _flat_size(features, in_channels, image_size)
    return nn.Sequential(
        features, nn.Flatten(), nn.Linear(n, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, num_classes)
    )


def allconv(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """An all-convolutional net (Springenberg et al., 2015): strided convolutions instead of pooling, SiLU, no dense layer."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 24, 3, padding=1), nn.SiLU(), nn.Conv2d(24, 24, 3, stride=2, padding=1), nn.SiLU(),
        nn.Conv2d(24, 48, 3, padding=1), nn.SiLU(), nn.Conv2d(48, 48, 3, stride=2, padding=1), nn.SiLU(),
        nn.Conv2d(48, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


#: name -> (factory, description), registered by :mod:`uapfp.archs`.
ARCHS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "mlp": (mlp, "MLP, hidden layers of 256 and 128 ReLU units"),
    "lenet5": (lenet5, "LeNet-5: tanh, average pooling"),
    "widebn": (widebn, "wide CNN with batch normalisation, 32 and 48 maps"),
    "resnet": (resnet, "small ResNet: residual blocks with batch normalisation, global pooling"),
    "dwsep": (dwsep, "MobileNet-like: depthwise-separable convolutions, ReLU6"),
    "vgg": (vgg, "small VGG: pairs of 3x3 convolutions with batch normalisation"),
    "allconv": (allconv, "all-convolutional: strided convolutions, SiLU, no dense layer"),
}
