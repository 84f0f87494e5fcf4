"""The Suspect protocol: anything that maps images in [0, 1] to class probabilities.

A suspect takes a float batch (N, C, H, W) in [0, 1] and returns probabilities (N, K). Its
public :meth:`Suspect.__call__` is final: it validates the inputs, charges the query budget
once per image, calls the backend's one hook :meth:`Suspect._answer` (where a backend batches,
retries or runs requests concurrently), validates what came back once, and applies the output
mode (full probabilities, top-k, label only). The method never sees a backend.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import final

import numpy as np
import torch

from ..errors import BudgetExhaustedError, ConfigError, SuspectError


@dataclass(frozen=True)
class OutputMode:
    """What a suspect returns: ``probs``, ``topk:K`` (other classes zeroed) or ``label``."""

    kind: str = "probs"
    k: int = 0

    @classmethod
    def parse(cls, text: str | OutputMode | None) -> OutputMode:
        if isinstance(text, OutputMode):
            return text
        if text is None or text == "probs":
            return cls("probs")
        if text in ("label", "topk:1"):
            return cls("label", 1)
        if text.startswith("topk:"):
            try:
                k = int(text.split(":", 1)[1])
            except ValueError:
                k = 0
            if k >= 1:
                return cls("topk", k)
        raise ConfigError(f"unknown output mode {text!r}; use probs, topk:K or label")

    def __str__(self) -> str:
        return "probs" if self.kind == "probs" else ("label" if self.kind == "label" else f"topk:{self.k}")

    def richer_than(self, other: OutputMode) -> bool:
        """Whether answers in this mode hold everything an answer in ``other`` holds."""

        def level(m: OutputMode) -> int:
            return 1 << 30 if m.kind == "probs" else m.k  # label is top-1

        return level(self) >= level(other)

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """Truncate probabilities (N, K) as an API in this mode would (idempotent)."""
        if self.kind == "probs":
            return probs
        if self.kind == "label":
            return torch.nn.functional.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
        k = min(self.k, probs.shape[1])
        top = probs.topk(k, dim=1)
        return torch.zeros_like(probs).scatter_(1, top.indices, top.values)


class Suspect(ABC):
    """A classifier reachable only through queries.

    Args:
        input_shape: (C, H, W) it accepts.
        num_classes: K, the length of each output row.
        output: the :class:`OutputMode` of its answers.
        max_queries: hard budget of images sent (None: unlimited).
        name: a label for logs and reports.
    """

    #: The suspect's architecture where its spec names it (a zoo card's ``arch``, a ``package.module:factory``);
    #: None for a file or a server, whose architecture uapfp cannot read. ``verify --family-null`` checks it.
    architecture: str | None = None
    #: What to tell a user whose suspect answered negative numbers (a backend may know the fix).
    negative_hint = "it returns something other than probabilities"

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        output: str | OutputMode = "probs",
        max_queries: int | None = None,
        name: str = "suspect",
    ) -> None:
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.output = OutputMode.parse(output)
        if max_queries is not None and max_queries < 1:
            raise ConfigError(f"--max-queries must be a positive number of images, got {max_queries}")
        self.max_queries = max_queries
        self.name = name
        self._queries = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, output='{self.output}', max_queries={self.max_queries})"
        )

    @property
    def queries(self) -> int:
        """Images charged so far: each image of a call once, plus every resend of a remote backend."""
        return self._queries

    def reset_queries(self) -> None:
        self._queries = 0

    def _charge(self, n: int) -> None:
        """Count ``n`` queries, refusing (before anything is sent) any that would pass the budget."""
        with self._lock:
            if self.max_queries is not None and self._queries + n > self.max_queries:
                raise BudgetExhaustedError(
                    f"query budget of {self.max_queries} exhausted ({self._queries} spent, "
                    f"{n} more needed); raise --max-queries or use fewer --fingerprints"
                )
            self._queries += n

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a batch (N, C, H, W) in [0, 1] and return it as contiguous float32."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"queries must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise SuspectError(
                f"{self.name} takes inputs of shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        x = x.detach().to(torch.float32).contiguous()
        if not torch.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise SuspectError("queries must be finite and in [0, 1]")
        return x

    @property
    def backend_output(self) -> OutputMode:
        """What the backend itself returns: full probabilities for local models (the output
        mode is then simulated here), the declared mode for a remote API that truncates."""
        return OutputMode("probs")

    def check_output(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """Validate returned rows: shape (n, K), finite, non-negative, summing as the mode says."""
        if not isinstance(probs, torch.Tensor):
            raise SuspectError(f"{self.name} returned {type(probs).__name__}, not a tensor")
        if probs.dim() != 2 or probs.shape[0] != n:
            raise SuspectError(f"{self.name} returned shape {tuple(probs.shape)} for {n} queries")
        if probs.shape[1] != self.num_classes:
            raise SuspectError(f"{self.name} returned {probs.shape[1]} classes, the kit expects {self.num_classes}")
        probs = probs.detach().to(torch.float32)
        if not torch.isfinite(probs).all():
            raise SuspectError(f"{self.name} returned NaN or infinite outputs")
        if (probs < 0).any():
            raise SuspectError(f"{self.name} returned negative outputs; {self.negative_hint}")
        mode = self.backend_output
        sums = probs.sum(dim=1)
        if mode.kind == "probs" and not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            worst = float((sums - 1).abs().max())
            raise SuspectError(
                f"{self.name} declared probabilities but its rows do not sum to 1 (off by up to {worst:.3g}); "
                f"{self.negative_hint}, or declare topk:K / label if it truncates"
            )
        if mode.kind != "probs":
            if (sums > 1 + 1e-3).any():
                raise SuspectError(f"{self.name} returned rows summing to more than 1")
            if ((probs > 0).sum(dim=1) > mode.k).any():
                raise SuspectError(
                    f"{self.name} returned more than {mode.k} non-zero classes per row; it is not a {mode} API"
                )
        return probs

    @final
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Query the suspect: (N, C, H, W) in [0, 1] -> outputs (N, K) in its output mode.

        A call the budget cannot cover in full sends nothing.
        """
        x = self.check_input(x)
        n = len(x)
        if n == 0:
            return torch.zeros(0, self.num_classes)
        self._charge(n)
        with torch.no_grad():  # answers carry no graph: nobody backpropagates into a suspect
            answer = self._answer(x)
        return self.output.apply(self.check_output(answer, n))

    @abstractmethod
    def _answer(self, x: torch.Tensor) -> torch.Tensor:
        """The backend: validated inputs (n, C, H, W), already charged -> outputs (n, K) in
        :attr:`backend_output`'s mode. A backend that sends an image again charges it again."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release resources (connections, sessions)."""

    def __enter__(self) -> Suspect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def labels_to_one_hot(labels: np.ndarray, n: int, num_classes: int, name: str) -> torch.Tensor:
    """Class indices of shape (n,) or (n, 1) -> one-hot rows (n, K)."""
    labels = np.asarray(labels)
    if labels.shape not in ((n,), (n, 1)):
        raise SuspectError(f"{name} returned labels of shape {labels.shape} for {n} queries")
    idx = torch.from_numpy(labels.reshape(n).astype(np.int64))
    if n and (idx.min() < 0 or idx.max() >= num_classes):
        raise SuspectError(
            f"{name} returned a class label outside 0..{num_classes - 1}; the kit expects {num_classes} classes"
        )
    return torch.nn.functional.one_hot(idx, num_classes).to(torch.float32)
