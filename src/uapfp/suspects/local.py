"""The local backend: a PyTorch model, a TorchScript module, or any function of image batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import SuspectError
from ..training import INFERENCE_BATCH
from .base import OutputMode, Suspect


class TorchSuspect(Suspect):
    """A local PyTorch model (or TorchScript module, or plain function) returning logits or probabilities.

    Args:
        model: the network, called in eval mode without gradients; or any function from
            images (n, C, H, W) to outputs (n, K), for tests and glue code.
        logits: True when the model returns logits (softmax applied here); False when it
            returns probabilities, which are then checked.
        batch_size: images per forward pass.
        architecture: what the model is, where known (:attr:`Suspect.architecture`).
        input_shape, num_classes, output, max_queries, name: as for :class:`Suspect`.
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        output: str | OutputMode = "probs",
        max_queries: int | None = None,
        name: str = "suspect",
        logits: bool = True,
        batch_size: int = INFERENCE_BATCH,
        architecture: str | None = None,
    ) -> None:
        super().__init__(
            input_shape=input_shape, num_classes=num_classes, output=output, max_queries=max_queries, name=name
        )
        self.model = model.eval() if isinstance(model, nn.Module) else model
        self.logits = logits
        self.batch_size = batch_size
        self.architecture = architecture

    def _answer(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, len(x), self.batch_size):
            out = self.model(x[i : i + self.batch_size])
            if not isinstance(out, torch.Tensor):
                raise SuspectError(f"{self.name} returned {type(out).__name__}, not a tensor")
            out = out.float()
            if out.dim() != 2:
                raise SuspectError(f"{self.name} returned shape {tuple(out.shape)}, expected (N, K)")
            outs.append(torch.softmax(out, dim=1) if self.logits else out)
        return torch.cat(outs)
