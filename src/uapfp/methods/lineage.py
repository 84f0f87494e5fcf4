"""Methods that read lineage from the victim's own mistakes and boundary, and learn nothing.

- ``errors`` (after AKH, QuRD benchmark, Godinot et al. AAAI 2025): the held-out images the
  victim gets wrong. A copy inherits the victim's mistakes; an honest model, even one trained
  on the victim's data, makes its own. The similarity is the share of the suspect's
  wrong-class mass that lands on the victim's wrong class,
  ``(sum_i p_i(v_i) + 1/(K-1)) / (sum_i sum_{c != y_i} p_i(c) + 1)`` over a set's images, with
  ``v_i`` the victim's label and ``y_i`` the true one: conditioned on the suspect's own errors,
  so that a more (or less) accurate honest model is not favoured (or penalised) for making
  fewer (or more) of them. With label-only answers it is the share of the suspect's mistakes
  that are the victim's, with a prior of one chance-level agreement.
- ``sac`` (SAC-w, Guan et al., NeurIPS 2022): the same images; the similarity is minus the mean
  absolute difference of the sample-correlation matrices (cosine similarities between the
  answers to every pair of images) of victim and suspect.
- ``ipguard`` (Cao et al., AsiaCCS 2021): held-out images moved to just inside the victim's
  decision boundary; the similarity is the share of labels the suspect gives as the victim does.
- ``siblings`` (ours): on the same images as ``errors``, the victim's deviation from models
  trained exactly like it with other seeds, found again in the suspect (:class:`SiblingsMethod`).

All four work with probabilities, top-k and label-only answers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, KitIntegrityError
from ..training import predict_logits
from .base import Reference, ReferenceMethod


class ErrorsMethod(ReferenceMethod):
    name = "errors"
    query_key = "errors"
    description = (
        "the suspect's share of its own mistakes that are the victim's, on the victim's held-out errors (after AKH)"
    )

    def compare(self, ref: Reference, answers: torch.Tensor) -> torch.Tensor:
        return repeated_mistakes(ref.victim.argmax(-1), ref.labels, answers)


def repeated_mistakes(victim_labels: torch.Tensor, labels: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """``(sum_i p_i(v_i) + 1/(K-1)) / (sum_i sum_{c != y_i} p_i(c) + 1)`` per set.

    Args:
        victim_labels: (S, n) the victim's (wrong) labels ``v_i``.
        labels: (S, n) the true labels ``y_i``.
        answers: (..., S, n, K) a suspect's probabilities (or one-hot labels) ``p_i``.
    """
    k = answers.shape[-1]
    on_victims = answers.gather(-1, victim_labels.expand(answers.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    on_truth = answers.gather(-1, labels.expand(answers.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    wrong_mass = answers.sum(-1) - on_truth
    return (on_victims.sum(-1) + 1 / (k - 1)) / (wrong_mass.sum(-1) + 1)


class SacMethod(ReferenceMethod):
    name = "sac"
    query_key = "errors"
    description = "L1 distance of sample-correlation matrices on the victim's held-out errors (SAC-w)"

    def compare(self, ref: Reference, answers: torch.Tensor) -> torch.Tensor:
        def correlation(a: torch.Tensor) -> torch.Tensor:
            a = F.normalize(a, dim=-1)
            return a @ a.transpose(-1, -2)

        return -(correlation(ref.victim) - correlation(answers)).abs().mean(dim=(-1, -2))


class IPGuardMethod(ReferenceMethod):
    name = "ipguard"
    query_key = "ipguard"
    description = "label agreement on points just inside the victim's decision boundary (IPGuard)"

    def compare(self, ref: Reference, answers: torch.Tensor) -> torch.Tensor:
        return (answers.argmax(-1) == ref.victim.argmax(-1)).float().mean(-1)


class SiblingsMethod(ReferenceMethod):
    """The victim's own idiosyncrasy, which a copy inherits and no honest model shares.

    The victim's siblings (its architecture and recipe on exactly D_V, other seeds: what it
    would have been with another seed) are split in two halves, A and B. On the victim's
    held-out errors, the victim's deviation from half A's mean answer, ``r_v = v - mean_A``,
    is what is particular to this training run. A suspect's deviation from half B's mean,
    ``r_s = s - mean_B``, points along ``r_v`` only if it learnt from the victim; the two
    halves are independent, so an honest model's (a sibling's included) is orthogonal to
    ``r_v`` on average. The similarity is the cosine of the two, per set.
    """

    name = "siblings"
    query_key = "errors"
    description = (
        "cosine of the suspect's and the victim's deviations from the victim's siblings, on its held-out errors"
    )

    def compare(self, ref: Reference, answers: torch.Tensor) -> torch.Tensor:
        m = ref.siblings.shape[0]
        if m < 2:
            raise KitIntegrityError(
                "the siblings method needs the victim's siblings, which this kit's zoo lacks; build the zoo with "
                "siblings (uapfp zoo build, ZooConfig.siblings) and rebuild the kit"
            )
        half_a, half_b = ref.siblings[: m // 2].mean(0), ref.siblings[m // 2 :].mean(0)
        r_v = (ref.victim - half_a).flatten(-2)
        r_s = (answers - half_b).flatten(-2)
        return F.cosine_similarity(r_s, r_v.expand_as(r_s), dim=-1)


# --------------------------------------------------------------------------- building the queries


def error_queries(
    victim: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_sets: int, per_set: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out images the victim misclassifies, in a seeded order, as ``n_sets`` sets: (images, labels).

    Sets are made as large as the victim's errors allow, up to ``per_set``.
    """
    wrong = (predict_logits(victim, x).argmax(1) != y).nonzero().squeeze(1)
    n = min(per_set, len(wrong) // n_sets)
    if n < 5:
        raise ConfigError(
            f"the victim makes {len(wrong)} errors on the {len(x)} held-out images, too few for {n_sets} sets "
            "of at least 5; give more held-out data or fewer sets"
        )
    order = wrong[torch.randperm(len(wrong), generator=torch.Generator().manual_seed(seed))[: n * n_sets]]
    shape = (n_sets, n)
    return x[order].reshape(*shape, *x.shape[1:]), y[order].reshape(shape)


def boundary_queries(
    victim: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_sets: int, per_set: int, seed: int = 0, steps: int = 12
) -> torch.Tensor:
    """Held-out images the victim gets right, each moved along its DeepFool direction to just
    inside the victim's boundary (the largest fraction of the way, by bisection, that keeps its
    label): (n_sets, n, C, H, W), n as large as the held-out data allows, up to ``per_set``."""
    from ..uap import deepfool

    right = (predict_logits(victim, x).argmax(1) == y).nonzero().squeeze(1)
    per_set = min(per_set, len(right) // n_sets)
    n = n_sets * per_set
    if per_set < 5:
        raise ConfigError(f"{len(right)} held-out images are too few for {n_sets} sets of at least 5 boundary points")
    x0 = x[right[torch.randperm(len(right), generator=torch.Generator().manual_seed(seed + 7))[:n]]]
    df = deepfool(victim, x0, overshoot=0.0, max_iter=30)
    label = df.labels
    low, high = torch.zeros(n), torch.full((n,), 1.5)
    for _ in range(steps):
        mid = (low + high) / 2
        moved = (x0 + mid[:, None, None, None] * df.perturbation).clamp(0, 1)
        keeps = predict_logits(victim, moved).argmax(1) == label
        low, high = torch.where(keeps, mid, low), torch.where(keeps, high, mid)
    points = (x0 + low[:, None, None, None] * df.perturbation).clamp(0, 1)
    return points.reshape(n_sets, per_set, *x.shape[1:])
