"""Modifications a thief may apply to a piracy model before serving it (paper section 5.4).

Registered by name, each returns a modified *copy*:

- ``finetune``: more training on a few thousand labelled images of the thief's own;
- ``prune``: global magnitude pruning of convolution and linear weights;
- ``quantize``: symmetric per-tensor INT8 quantization of every weight (stored de-quantized,
  so the copy computes exactly what an INT8-weight model computes).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import ConfigError
from .training import TrainConfig, train_model


class Modification(ABC):
    """Base class: keyword-only hyperparameters, ``apply`` returns a modified copy."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def hyperparameters(self) -> dict[str, Any]:
        return dict(vars(self))

    def apply(
        self, model: nn.Module, *, x: torch.Tensor | None = None, y: torch.Tensor | None = None, seed: int = 0
    ) -> nn.Module:
        """A modified copy of ``model``; ``x``, ``y`` are the thief's own labelled images."""
        out = copy.deepcopy(model)
        return self._apply(out, x=x, y=y, seed=seed).eval()

    @abstractmethod
    def _apply(self, model: nn.Module, *, x: torch.Tensor | None, y: torch.Tensor | None, seed: int) -> nn.Module:
        """Subclass: modify ``model`` (already a copy) in place and return it."""


_MODIFICATIONS: dict[str, type[Modification]] = {}


def register_modification(cls: type[Modification]) -> type[Modification]:
    _MODIFICATIONS[cls.name] = cls
    return cls


def list_modifications() -> list[str]:
    return sorted(_MODIFICATIONS)


def create_modification(spec: str) -> Modification:
    """Build from ``name`` or ``name:value`` (the main hyperparameter: epochs, amount or bits)."""
    name, _, value = spec.partition(":")
    if name not in _MODIFICATIONS:
        raise ConfigError(f"unknown modification {name!r}; choose one of {', '.join(list_modifications())}")
    cls = _MODIFICATIONS[name]
    return cls(**({cls.main: type(getattr(cls(), cls.main))(value)} if value else {}))  # type: ignore[attr-defined]


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@register_modification
class FineTune(Modification):
    """Train ``epochs`` more epochs at a low learning rate on the thief's labelled images."""

    name = "finetune"
    main = "epochs"

    def __init__(self, *, epochs: int = 2, lr: float = 2e-4, batch_size: int = 128) -> None:
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size

    def _apply(self, model, *, x, y, seed):  # type: ignore[no-untyped-def]
        if x is None or y is None:
            raise ConfigError("fine-tuning needs labelled images")
        cfg = TrainConfig(optimizer="adam", lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, seed=seed)
        train_model(model, x, y, config=cfg, progress=False, desc="finetune")
        return model


@register_modification
class Prune(Modification):
    """Zero the ``amount`` fraction of smallest-magnitude weights (global, conv and linear)."""

    name = "prune"
    main = "amount"

    def __init__(self, *, amount: float = 0.5) -> None:
        if not 0 <= amount < 1:
            raise ConfigError("prune amount must be in [0, 1)")
        self.amount = amount

    @torch.no_grad()
    def _apply(self, model, *, x, y, seed):  # type: ignore[no-untyped-def]
        weights = _weights(model)
        mags = torch.cat([w.abs().flatten() for w in weights])
        k = int(self.amount * len(mags))
        if k == 0:
            return model
        threshold = mags.kthvalue(k).values
        for w in weights:
            w.mul_((w.abs() > threshold).to(w.dtype))
        return model


@register_modification
class Quantize(Modification):
    """Round every weight to ``bits``-bit symmetric per-tensor levels (INT8 by default)."""

    name = "quantize"
    main = "bits"

    def __init__(self, *, bits: int = 8) -> None:
        if not 2 <= bits <= 16:
            raise ConfigError("bits must be between 2 and 16")
        self.bits = bits

    @torch.no_grad()
    def _apply(self, model, *, x, y, seed):  # type: ignore[no-untyped-def]
        levels = 2 ** (self.bits - 1) - 1
        for w in _weights(model):
            scale = w.abs().max().clamp_min(1e-12) / levels
            w.copy_(torch.round(w / scale).clamp(-levels, levels) * scale)
        return model
