"""A suspect's class order: which of its outputs is which of the victim's classes.

A suspect may number the classes otherwise than the victim: a serving stack that sorts the class
names, a model trained from a folder per class, or a thief who permutes the outputs so that a copy
looks honest (every fingerprint compares answers class by class, and the API's own users only see
names). The kit keeps a few held-out images per class that the victim labels right with the most
confidence (the ``classes`` query set). ``verify`` sends them first; where the suspect labels them
right in another order far more often than in the victim's (:data:`MIN_ALIGNED`, :data:`MIN_GAIN`),
its answers are re-ordered into the victim's before they are scored, and the verdict says so.

A model in the victim's order keeps it unless it labels far fewer of these easy images right in that
order than in another, which a classifier of the victim's classes does not do; a weak model that
labels few right in any order is left as it answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .training import predict_logits

log = logging.getLogger(__name__)

#: The name of the kit's query set (a :class:`~uapfp.methods.Reference`, one set).
CLASSES_KEY = "classes"
#: Images per class, so that about 50 are sent in all (at least one per class).
TARGET_IMAGES = 50
#: Another order is taken only where the suspect labels at least this share of the images right in it...
MIN_ALIGNED = 0.8
#: ...and at least this share more than in the victim's order.
MIN_GAIN = 0.2


def per_class(num_classes: int) -> int:
    """How many images of each class the kit keeps: ``TARGET_IMAGES`` in all, at least one per class."""
    return max(1, TARGET_IMAGES // num_classes)


def class_queries(
    victim: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out images the victim labels right with the most confidence, ``per_class(K)`` of each class in
    turn (class 0's first, then class 1's, ...): (images (1, n, C, H, W), labels (1, n)). A class the victim
    labels fewer held-out images of right gets those (a warning says so)."""
    probs = predict_logits(victim, x).softmax(-1)
    conf, label = probs.max(-1)
    k = per_class(num_classes)
    chosen, short = [], []
    for c in range(num_classes):
        right = ((label == c) & (y == c)).nonzero().squeeze(1)
        if len(right) < k:
            short.append(f"{c} ({len(right)})")
        chosen.append(right[conf[right].argsort(descending=True, stable=True)[:k]])
    if short:
        log.warning(
            "the victim labels fewer than %d held-out images right for the classes %s: the class-order check has "
            "fewer images of them", k, ", ".join(short),
        )  # fmt: skip
    idx = torch.cat(chosen)
    return x[idx].unsqueeze(0), y[idx].unsqueeze(0)


@dataclass(frozen=True)
class ClassOrder:
    """What the suspect's answers to the ``classes`` set say about its class order.

    Attributes:
        images: how many images were asked.
        right: the share it labels right in the victim's order.
        right_reordered: the share it labels right in the order that fits it best.
        order: ``order[j]`` is the victim's class that the suspect's output j answers, where the suspect
            was found to use another order; None where its answers are scored as given.
    """

    images: int
    right: float
    right_reordered: float
    order: tuple[int, ...] | None = None

    def apply(self, answers: torch.Tensor) -> torch.Tensor:
        """Answers (..., K) in the suspect's order -> the same answers in the victim's order."""
        if self.order is None:
            return answers
        return answers[..., np.argsort(self.order).tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "right": round(self.right, 6), "right_reordered": round(self.right_reordered, 6),
            "order": list(self.order) if self.order is not None else None,
        }  # fmt: skip

    def describe(self, classes: list[str] | None = None) -> str:
        """One line for a person."""
        right = round(self.right * self.images)
        if self.order is None:
            if self.right >= MIN_ALIGNED:
                return f"the victim's order (it labels {right} of {self.images} of the victim's easiest held-out images right)"
            return (
                f"not established: it labels {right} of {self.images} of the victim's easiest held-out images right "
                f"in the victim's order, {round(self.right_reordered * self.images)} at best in any order; it may not "
                "classify the victim's classes"
            )  # fmt: skip
        name = (lambda c: f"{c} ({classes[c]})") if classes and len(classes) == len(self.order) else str
        moved = [f"its output {j} answers class {name(c)}" for j, c in enumerate(self.order) if j != c]
        return (
            f"REORDERED: in the victim's order it labels {right} of {self.images} of the victim's easiest held-out "
            f"images right, in another {round(self.right_reordered * self.images)}: {', '.join(moved)}; its answers were "
            "put in the victim's order before scoring"
        )  # fmt: skip


def find_order(answers: torch.Tensor, labels: torch.Tensor) -> ClassOrder:
    """The suspect's class order from its answers (n, K) (probabilities, top-k or one-hot labels) to the
    ``classes`` set, whose true labels are ``labels`` (n,): the one-to-one map of its outputs onto the
    victim's classes that labels the most images right (an assignment problem), taken where it labels at
    least ``MIN_ALIGNED`` of them right and ``MIN_GAIN`` more than the victim's order."""
    from scipy.optimize import linear_sum_assignment

    answers, labels = answers.reshape(-1, answers.shape[-1]), labels.reshape(-1)
    n, k = answers.shape
    if n == 0 or len(labels) != n:
        raise ValueError(f"{n} answers for {len(labels)} labels")
    said = answers.argmax(-1).numpy()
    counts = np.zeros((k, k))
    np.add.at(counts, (said, labels.numpy()), 1)  # counts[j, c]: the suspect said j for an image of class c
    # among orders that label as many right, the victim's own wherever it ties (k / (k + 1) < 1 in all)
    rows, cols = linear_sum_assignment(counts + np.eye(k) / (k + 1), maximize=True)
    order = np.empty(k, dtype=int)
    order[rows] = cols
    right, best = float(np.trace(counts)) / n, float(counts[rows, cols].sum()) / n
    slack = 0.5 / n  # shares of n images: compare them as counts, not as floats that 0.8 - 0.6 misses
    take = best >= MIN_ALIGNED - slack and best - right >= MIN_GAIN - slack and not (order == np.arange(k)).all()
    return ClassOrder(images=n, right=right, right_reordered=best, order=tuple(int(c) for c in order) if take else None)
