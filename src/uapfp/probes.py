"""Probe points and their views (paper sections 4.2 and 4.3).

The victim's training points are clustered by K-means on the victim's output vector (its
log-probabilities: the logits up to the per-image constant that softmax ignores) into N
clusters; the point nearest each centroid is a probe point, X = {x_1..x_N}. Each probe's k
nearest neighbours within its cluster, in the same output space, feed m further sets
X^(1)..X^(m): view j takes, in every cluster, the j-th of a seeded random ordering of those
neighbours, so that no neighbour is used twice (sampling without replacement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .training import predict_logits

log = logging.getLogger(__name__)


def kmeans(
    z: torch.Tensor, k: int, *, seed: int = 0, iters: int = 100, tol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """K-means (Lloyd, k-means++ seeding) of rows ``z`` (n, d) -> (centroids (k, d), labels (n,)).

    Deterministic for a seed; an empty cluster is re-seeded at the point farthest from its
    centroid.
    """
    n = len(z)
    if not 1 <= k <= n:
        raise ConfigError(f"cannot make {k} clusters from {n} points")
    z = z.double()
    gen = torch.Generator().manual_seed(seed)
    centroids = torch.empty(k, z.shape[1], dtype=z.dtype)
    centroids[0] = z[torch.randint(n, (1,), generator=gen)]
    d2 = ((z - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        centroids[i] = z[torch.multinomial(probs, 1, generator=gen)]
        d2 = torch.minimum(d2, ((z - centroids[i]) ** 2).sum(1))
    labels = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        dist = torch.cdist(z, centroids)
        labels = dist.argmin(1)
        new = torch.zeros_like(centroids).index_add_(0, labels, z)
        counts = torch.bincount(labels, minlength=k)
        for c in (counts == 0).nonzero().squeeze(1).tolist():
            far = dist.gather(1, labels[:, None]).squeeze(1).argmax()
            new[c], counts[c] = z[far], 1
            labels[far] = c
        new = new / counts[:, None].to(z.dtype)
        shift = (new - centroids).norm(dim=1).max()
        centroids = new
        if shift < tol:
            break
    labels = torch.cdist(z, centroids).argmin(1)
    return centroids.float(), labels


@dataclass
class Probes:
    """Indices (into the victim's data) of the probe sets.

    Attributes:
        sets: (m + 1, N): row 0 is X (the points nearest the centroids), rows 1..m the views.
        clusters: (n,) the cluster of every candidate point.
    """

    sets: torch.Tensor
    clusters: torch.Tensor

    @property
    def n_points(self) -> int:
        return self.sets.shape[1]

    @property
    def n_sets(self) -> int:
        return self.sets.shape[0]


def victim_representation(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The victim's output vector used for clustering: log-probabilities (n, K)."""
    return torch.log_softmax(predict_logits(model, x), dim=1)


def select_probes(
    model: nn.Module,
    x: torch.Tensor,
    *,
    n_clusters: int = 100,
    n_views: int = 20,
    n_neighbors: int | None = None,
    seed: int = 0,
) -> Probes:
    """Choose N = ``n_clusters`` probe points and ``n_views`` views among images ``x``.

    ``n_neighbors`` (k, default m) nearest neighbours of each probe within its cluster are
    candidates for the views; k must be at least m. A cluster with fewer than k other
    members borrows the nearest points outside it.
    """
    m = n_views
    k = n_neighbors if n_neighbors is not None else m
    if k < m:
        raise ConfigError(f"n_neighbors ({k}) must be at least n_views ({m})")
    if len(x) < n_clusters * (1 + k):
        raise ConfigError(
            f"{len(x)} images are too few for {n_clusters} probes with {k} neighbours each; lower --probes or --views"
        )
    z = victim_representation(model, x)
    centroids, labels = kmeans(z, n_clusters, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    anchors = torch.empty(n_clusters, dtype=torch.long)
    views = torch.empty(m, n_clusters, dtype=torch.long)
    for c in range(n_clusters):
        members = (labels == c).nonzero().squeeze(1)
        anchor = members[(z[members] - centroids[c]).norm(dim=1).argmin()]
        anchors[c] = anchor
        d = (z - z[anchor]).norm(dim=1)
        d[anchor] = float("inf")
        inside = labels == c
        # Rank members of the cluster first (by distance), then the rest of the data.
        order = torch.argsort(d + torch.where(inside, 0.0, 1e9))
        neighbours = order[:k]
        pick = neighbours[torch.randperm(k, generator=gen)[:m]]
        views[:, c] = pick
    sets = torch.cat([anchors[None], views], dim=0)
    return Probes(sets=sets, clusters=labels)
