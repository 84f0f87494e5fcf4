"""The CIFAR forms of the deep families the paper's CIFAR-10 results use: ResNet18, ResNet34,
VGG16, GoogLeNet and DenseNet121, and VGG11 and VGG13 (SAC's CIFAR-10 benchmark extracts a VGG13
student from a VGG16 victim); 3x3 stems without the ImageNet downsampling, as in the common CIFAR
code bases, e.g. kuangliu/pytorch-cifar.

Each takes ``width``, a multiplier of every layer's channels (1.0: the published widths), so
that reduced versions train on a CPU; a registered name with a ``-w`` suffix selects it
(``resnet18-w0.25``, :func:`uapfp.archs.arch_info`). Each is built for any input shape and
class count: the downsampling steps that an input too small for them would make empty are left
out, and the features are pooled globally before the classifier.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .classic import ResidualBlock  # ResNet's basic block


def _c(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _resnet(
    blocks: tuple[int, ...], in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    size = min(image_size)
    c = _c(64, width)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
    for stage, n in enumerate(blocks):
        c_out = _c(64 * 2**stage, width)
        stride = 2 if stage > 0 and size >= 2 else 1
        size = (size + 1) // 2 if stride == 2 else size
        for i in range(n):
            layers.append(ResidualBlock(c, c_out, stride if i == 0 else 1))
            c = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def resnet18(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """ResNet18, CIFAR form (He et al., 2016): basic blocks 2-2-2-2 of 64-512 channels."""
    return _resnet((2, 2, 2, 2), in_channels, image_size, num_classes, width)


def resnet34(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """ResNet34, CIFAR form: basic blocks 3-4-6-3 of 64-512 channels."""
    return _resnet((3, 4, 6, 3), in_channels, image_size, num_classes, width)


#: The convolution layers of VGG's configurations A, B and D (Simonyan and Zisserman, 2015: VGG11,
#: VGG13, VGG16); "M" is a 2x2 max-pool.
_VGG = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def _vgg(depth: int, *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float) -> nn.Module:
    size, c = min(image_size), in_channels
    layers: list[nn.Module] = []
    for v in _VGG[depth]:
        if v == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        c_out = _c(int(v), width)
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        c = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def vgg11(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """VGG11 with batch normalisation, CIFAR form: 8 3x3 convolutions, five max-pools, one linear classifier."""
    return _vgg(11, in_channels=in_channels, image_size=image_size, num_classes=num_classes, width=width)


def vgg13(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """VGG13 with batch normalisation, CIFAR form: 10 3x3 convolutions, five max-pools, one linear classifier."""
    return _vgg(13, in_channels=in_channels, image_size=image_size, num_classes=num_classes, width=width)


def vgg16(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """VGG16 with batch normalisation (Simonyan and Zisserman, 2015), CIFAR form: 13 3x3
    convolutions, five max-pools, one linear classifier."""
    return _vgg(16, in_channels=in_channels, image_size=image_size, num_classes=num_classes, width=width)


def _cbr(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class _Inception(nn.Module):
    """GoogLeNet's inception module: 1x1, 1x1-3x3, 1x1-3x3-3x3 (the 5x5 as two 3x3) and pool-1x1 branches."""

    def __init__(self, c_in: int, n1: int, n3r: int, n3: int, n5r: int, n5: int, pool: int) -> None:
        super().__init__()
        self.b1 = nn.Sequential(*_cbr(c_in, n1, 1))
        self.b2 = nn.Sequential(*_cbr(c_in, n3r, 1), *_cbr(n3r, n3, 3))
        self.b3 = nn.Sequential(*_cbr(c_in, n5r, 1), *_cbr(n5r, n5, 3), *_cbr(n5, n5, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *_cbr(c_in, pool, 1))
        self.out_channels = n1 + n3 + n5 + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


_GOOGLENET = {  # name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), Szegedy et al. (2015) table 1
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}  # fmt: skip


def googlenet(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """GoogLeNet (Szegedy et al., 2015), CIFAR form: a 3x3 stem of 192 channels, nine inception
    modules, two max-pools between their groups."""
    size = min(image_size)
    c = _c(192, width)
    layers: list[nn.Module] = _cbr(in_channels, c, 3)
    for name, spec in _GOOGLENET.items():
        if name in ("4a", "5a") and size >= 2:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            size = (size + 1) // 2
        block = _Inception(c, *(_c(n, width) for n in spec))
        layers.append(block)
        c = block.out_channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


class _Dense(nn.Module):
    """DenseNet's bottleneck layer: BN-ReLU-1x1 (4 growth) then BN-ReLU-3x3 (growth), concatenated to its input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def densenet121(
    *, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10, width: float = 1.0
) -> nn.Module:
    """DenseNet121 (Huang et al., 2017), CIFAR form: growth rate 32 (times ``width``), dense
    blocks of 6-12-24-16 layers, transitions halving the channels (and the size)."""
    growth = _c(32, width)
    size, c = min(image_size), 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, padding=1, bias=False)]
    for i, n in enumerate((6, 12, 24, 16)):
        for _ in range(n):
            layers.append(_Dense(c, growth))
            c += growth
        if i < 3:
            c_out = c // 2
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c_out, 1, bias=False)]
            if size >= 2:
                layers.append(nn.AvgPool2d(2))
                size //= 2
            c = c_out
    return nn.Sequential(
        *layers, nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)
    )


#: name -> (factory, description), registered by :mod:`uapfp.archs`; each takes ``width``.
ARCHS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "resnet18": (resnet18, "ResNet18, CIFAR form (basic blocks 2-2-2-2); -wW scales its channels"),
    "resnet34": (resnet34, "ResNet34, CIFAR form (basic blocks 3-4-6-3); -wW scales its channels"),
    "vgg11": (vgg11, "VGG11 with batch normalisation, CIFAR form; -wW scales its channels"),
    "vgg13": (vgg13, "VGG13 with batch normalisation, CIFAR form; -wW scales its channels"),
    "vgg16": (vgg16, "VGG16 with batch normalisation, CIFAR form; -wW scales its channels"),
    "googlenet": (googlenet, "GoogLeNet, CIFAR form (nine inception modules); -wW scales its channels"),
    "densenet121": (densenet121, "DenseNet121, CIFAR form (growth 32, blocks 6-12-24-16); -wW scales it"),
}
