"""The fingerprint-method protocol, in the decomposition of QuRD (Godinot et al., AAAI 2025):
which queries are sent, how the answers are represented, how close they are to the victim's.

A method sends S query sets of n images each (:meth:`Method.sets`); from a suspect's answers
(S, n, K) it computes one similarity to the victim per set (:meth:`Method.similarities`); and
it knows the same similarities of the kit's calibration models, the honest null
(:meth:`Method.null`). Every method is then tested by the same statistical test
(:mod:`uapfp.significance`) against that null.

Methods that learn nothing keep their references in the kit (:class:`Reference`): the query
images, the victim's answers, the true labels where the method needs them, and the
calibration models' answers, all at full probability; a suspect answering top-k or labels only
is compared with them truncated the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..suspects.base import OutputMode

if TYPE_CHECKING:
    from ..calibration import Calibration
    from ..kit import Kit


@dataclass
class Reference:
    """What methods that learn nothing keep in the kit, for one set of queries.

    Attributes:
        queries: (S, n, C, H, W) the images sent, set by set.
        victim: (S, n, K) the victim's probabilities on them.
        labels: (S, n) their true labels.
        null: (H, S, n, K) the calibration models' probabilities on them.
        siblings: (M, S, n, K) the victim's siblings' probabilities (M = 0 where the zoo has none).
    """

    queries: torch.Tensor
    victim: torch.Tensor
    labels: torch.Tensor
    null: torch.Tensor
    siblings: torch.Tensor

    def truncated(self, mode: OutputMode | str, n_sets: int) -> Reference:
        """The first ``n_sets`` sets, the answers as a suspect in ``mode`` would have given them."""
        return Reference(
            self.queries[:n_sets], truncate(self.victim[:n_sets], mode), self.labels[:n_sets],
            truncate(self.null[:, :n_sets], mode), truncate(self.siblings[:, :n_sets], mode),
        )  # fmt: skip

    def tensors(self, key: str) -> dict[str, torch.Tensor]:
        """Its tensors as a kit file stores them, under ``KEY/NAME``."""
        return {f"{key}/{k}": getattr(self, k) for k in ("queries", "victim", "labels", "null", "siblings")}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], key: str) -> Reference:
        return cls(**{k: state[f"{key}/{k}"] for k in ("queries", "victim", "labels", "null", "siblings")})


def truncate(answers: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
    """Answers (..., K) as a suspect in ``mode`` would have given them."""
    mode = OutputMode.parse(mode)
    if mode.kind == "probs":
        return answers
    shape = answers.shape
    return mode.apply(answers.reshape(-1, shape[-1])).reshape(shape)


class Method(ABC):
    """A fingerprint method: queries, a representation of the answers, a similarity."""

    name: ClassVar[str]
    #: The name of the query sets it sends (methods that send the same ones share their answers).
    query_key: ClassVar[str]
    #: One line for reports: what the method compares, and whose it is.
    description: ClassVar[str]
    #: Whether the method's similarities come from a model trained on the zoo (an encoder).
    learned: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def channels(self) -> tuple[Method, ...]:
        """The methods whose queries this one sends (itself; a combination: its parts)."""
        return (self,)

    @abstractmethod
    def sets(self, kit: Kit) -> torch.Tensor:
        """The query sets (S, n, C, H, W) a suspect is asked, set by set."""

    @abstractmethod
    def similarities(self, kit: Kit, answers: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
        """Similarities (..., S') to the victim of answers (..., S', n, K) to the first S' sets, in ``mode``."""

    @abstractmethod
    def null(self, kit: Kit, mode: OutputMode | str, n_sets: int, calibration: Calibration) -> torch.Tensor:
        """The calibration models' similarities (H, n_sets), in ``mode`` (``calibration`` for learned methods)."""


class ReferenceMethod(Method):
    """A method that learns nothing: its similarity is a function of the suspect's answers and the
    kit's :class:`Reference` of the queries named ``query_key`` (methods may share queries)."""

    def reference(self, kit: Kit) -> Reference:
        from ..errors import KitIntegrityError

        ref = kit.references.get(self.query_key)
        if ref is None:
            raise KitIntegrityError(
                f"this kit holds no {self.query_key!r} queries for the {self.name!r} method (it was made by an "
                "earlier uapfp); rebuild it with uapfp protect"
            )
        return ref

    def sets(self, kit: Kit) -> torch.Tensor:
        return self.reference(kit).queries

    def similarities(self, kit: Kit, answers: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
        return self.compare(self.reference(kit).truncated(mode, answers.shape[-3]), truncate(answers, mode))

    def null(self, kit: Kit, mode: OutputMode | str, n_sets: int, calibration: Calibration) -> torch.Tensor:
        return self.compare(
            self.reference(kit).truncated(mode, n_sets), truncate(self.reference(kit).null[:, :n_sets], mode)
        )

    @abstractmethod
    def compare(self, ref: Reference, answers: torch.Tensor) -> torch.Tensor:
        """Per-set similarity (..., S) of answers (..., S, n, K) to the victim's, given the reference
        (truncated to the suspect's answer mode and to S sets)."""
