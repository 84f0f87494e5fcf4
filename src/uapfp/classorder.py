"""A suspect's class order: which of its outputs is which of the victim's classes.

A suspect may number the classes otherwise than the victim: a serving stack that sorts the class
names, a model trained from a folder per class, or a thief who permutes the outputs so that a copy
looks honest (every fingerprint compares answers class by class, and the API's own users only see
names). The kit keeps a few held-out images per class that the victim labels right with the most
confidence (the ``classes`` query set, in a seeded order). ``verify`` sends them first. Where the
suspect labels them right in another order far more often than in the victim's (:data:`MIN_ALIGNED`,
:data:`MIN_GAIN`), and its answers to the method's own queries also agree with the victim's labels
more in that order than as given (:func:`confirms`), they are read in the victim's order before they
are scored, and the verdict says so. The second condition keeps a suspect that answers the check's
images otherwise than the rest (to turn the check against the owner) from being read worse than a kit
without the check would read it: its answers are then scored as given, and the verdict says that too.

A model in the victim's order keeps it unless it labels far fewer of these easy images right in that
order than in another, which a classifier of the victim's classes does not do; a weak model that
labels few right in any order is left as it answers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .training import predict_logits

log = logging.getLogger(__name__)

#: The name of the kit's query set (a :class:`~uapfp.methods.Reference`, one set).
CLASSES_KEY = "classes"
#: About how many images the check sends in all (``per_class(K)`` of each class, at least one).
TARGET_IMAGES = 50
#: Another order is taken only where the suspect labels at least this share of the images right in it...
MIN_ALIGNED = 0.8
#: ...and at least this share more than in the victim's order.
MIN_GAIN = 0.2


def per_class(num_classes: int) -> int:
    """How many images of each class the kit keeps: ``TARGET_IMAGES`` in all, at least one per class."""
    return max(1, TARGET_IMAGES // num_classes)


def class_queries(
    victim: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out images the victim labels right with the most confidence, ``per_class(K)`` of each class, in a
    seeded order (not class by class, which would tell a suspect what they are): (images (1, n, C, H, W),
    labels (1, n)). A class the victim labels fewer held-out images of right gets those (a warning says so)."""
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
    idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))]
    return x[idx].unsqueeze(0), y[idx].unsqueeze(0)


@dataclass(frozen=True)
class ClassOrder:
    """What the suspect's answers to the ``classes`` set say about its class order.

    Attributes:
        images: how many images were asked.
        right: how many it labels right in the victim's order.
        right_reordered: how many it labels right in the order that fits it best.
        order: ``order[j]`` is the victim's class that the suspect's output j answers, where the suspect
            was found to use another order; None where its answers are scored as given.
        contradicted: another order fit these images, but not the suspect's answers to the method's queries
            (:func:`confirms`), so they were scored as given.
        unconfirmed: another order fit these images, but no answer to the method's queries was there to bear it
            out (the suspect stopped, or the budget ran out), so the answers were scored as given.
    """

    images: int
    right: int
    right_reordered: int
    order: tuple[int, ...] | None = None
    contradicted: bool = False
    unconfirmed: bool = False

    def apply(self, answers: torch.Tensor) -> torch.Tensor:
        """Answers (..., K) in the suspect's order -> the same answers in the victim's order."""
        if self.order is None:
            return answers
        return answers[..., np.argsort(self.order).tolist()]

    def refuted(self, *, evidence: bool = True) -> ClassOrder:
        """This finding, where the suspect's other answers did not bear out its order (``evidence``: there were
        some; else none): scored as given."""
        return ClassOrder(self.images, self.right, self.right_reordered, None, contradicted=evidence,
                          unconfirmed=not evidence)  # fmt: skip

    def to_dict(self, classes: list[str] | None = None) -> dict[str, Any]:
        """As a verdict records it, with ``note``, a line for a person (``classes``: the victim's class names)."""
        return {
            "images": self.images, "right": self.right, "right_reordered": self.right_reordered,
            "order": list(self.order) if self.order is not None else None, "contradicted": self.contradicted,
            "unconfirmed": self.unconfirmed, "note": self.describe(classes),
        }  # fmt: skip

    def describe(self, classes: list[str] | None = None) -> str:
        """One line for a person."""
        of = f"of the {self.images} of the victim's easiest held-out images"
        if self.contradicted:
            return (
                f"read as given, though another order fits its answers {of} better ({self.right_reordered} right, "
                f"{self.right} in the victim's order): its answers to the other queries agree with the victim's "
                "no more in that order than as given. It may answer those images otherwise than the rest"
            )  # fmt: skip
        if self.unconfirmed:
            return (
                f"read as given, though another order fits its answers {of} better ({self.right_reordered} right, "
                f"{self.right} in the victim's order): no answer to the other queries was there to bear it out"
            )  # fmt: skip
        if self.order is None:
            if self.right >= _at_least(MIN_ALIGNED, self.images):
                return f"the victim's order (it labels {self.right} {of} right)"
            if self.right_reordered >= _at_least(MIN_ALIGNED, self.images):
                return (
                    f"the victim's order, as far as these images tell: it labels {self.right} {of} right in it, "
                    f"{self.right_reordered} in another, too few more to read it otherwise"
                )  # fmt: skip
            return (
                f"not established: it labels {self.right} {of} right in the victim's order, {self.right_reordered} "
                "at best in any order; it may not classify the victim's classes"
            )  # fmt: skip
        name = (lambda c: f"{c} ({classes[c]})") if classes and len(classes) == len(self.order) else str
        moved = [f"its output {j} answers class {name(c)}" for j, c in enumerate(self.order) if j != c]
        return (
            f"REORDERED: in the victim's order it labels {self.right} {of} right, in another "
            f"{self.right_reordered}: {', '.join(moved)}; its answers to the other queries agree with the victim's "
            "more in that order too, so they were put in it before scoring"
        )  # fmt: skip


def _at_least(share: float, n: int) -> int:
    """The fewest of ``n`` images that make ``share`` of them (counted, so that 0.8 of 49 is 40, not 39.2)."""
    return math.ceil(share * n - 1e-9)


def find_order(answers: torch.Tensor, labels: torch.Tensor) -> ClassOrder:
    """The suspect's class order from its answers (n, K) (probabilities, top-k or one-hot labels) to the
    ``classes`` set, whose true labels are ``labels`` (n,): the one-to-one map of its outputs onto the
    victim's classes that labels the most images right (an assignment problem), taken where it labels at
    least ``MIN_ALIGNED`` of them right and ``MIN_GAIN`` of them more than the victim's order."""
    from scipy.optimize import linear_sum_assignment

    answers, labels = answers.reshape(-1, answers.shape[-1]), labels.reshape(-1)
    n, k = answers.shape
    if n == 0 or len(labels) != n:
        raise ValueError(f"{n} answers for {len(labels)} labels")
    said = answers.argmax(-1).numpy()
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (said, labels.numpy()), 1)  # counts[j, c]: the suspect said j for an image of class c
    # among orders that label as many right, the victim's own wherever it ties (k / (k + 1) < 1 in all)
    rows, cols = linear_sum_assignment(counts + np.eye(k) / (k + 1), maximize=True)
    order = np.empty(k, dtype=int)
    order[rows] = cols
    right, best = int(np.trace(counts)), int(counts[rows, cols].sum())
    take = best >= _at_least(MIN_ALIGNED, n) and best - right >= _at_least(MIN_GAIN, n)
    take = take and not (order == np.arange(k)).all()
    return ClassOrder(images=n, right=right, right_reordered=best, order=tuple(int(c) for c in order) if take else None)


def confirms(order: ClassOrder, answers: list[torch.Tensor], victim: list[torch.Tensor]) -> bool:
    """Whether the suspect's answers (..., K) to other queries, ``answers``, agree with the victim's labels on
    them (``victim``: the victim's answers (..., K), or its labels (...)) on more of them in ``order`` than as
    given. An order the check's images alone suggest is only taken where this holds."""
    if order.order is None:
        return False
    given = reordered = 0
    for a, v in zip(answers, victim):
        labels = v.argmax(-1) if v.dim() == a.dim() else v
        given += int((a.argmax(-1) == labels).sum())
        reordered += int((order.apply(a).argmax(-1) == labels).sum())
    return reordered > given
