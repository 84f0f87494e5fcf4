"""K-means, probe selection (deterministic, nearest to centroids, views without replacement)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uapfp.errors import ConfigError
from uapfp.probes import kmeans, select_probes, victim_representation


def test_kmeans_finds_separated_blobs():
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = torch.cat([c + 0.5 * torch.randn(50, 2) for c in centers])
    cent, labels = kmeans(z, 3, seed=1)
    for i in range(3):
        block = labels[i * 50 : (i + 1) * 50]
        assert (block == block[0]).all()
    assert torch.cdist(cent, centers).min(dim=1).values.max() < 0.5
    c2, l2 = kmeans(z, 3, seed=1)
    assert torch.equal(l2, labels) and torch.equal(c2, cent)


class Identityish(nn.Module):
    """A 'victim' whose logits are a fixed linear map of the image: outputs vary smoothly."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(16, 4)

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_select_probes_deterministic_and_well_formed():
    model = Identityish().eval()
    x = torch.rand(400, 1, 4, 4)
    p1 = select_probes(model, x, n_clusters=10, n_views=5, seed=0)
    p2 = select_probes(model, x, n_clusters=10, n_views=5, seed=0)
    assert torch.equal(p1.sets, p2.sets) and p1.sets.shape == (6, 10)
    assert not torch.equal(p1.sets, select_probes(model, x, n_clusters=10, n_views=5, seed=1).sets)
    z = victim_representation(model, x)
    for c in range(10):
        column = p1.sets[:, c]
        assert len(set(column.tolist())) == 6  # anchor and 5 distinct neighbours (no replacement)
        members = (p1.clusters == c).nonzero().squeeze(1)
        anchor = int(column[0])
        assert int(p1.clusters[anchor]) == c
        centroid = z[members].mean(0)
        dists = (z[members] - centroid).norm(dim=1)
        assert float((z[anchor] - centroid).norm()) == pytest.approx(float(dists.min()), abs=1e-4)
        if len(members) > 6:  # views are the anchor's nearest neighbours inside its cluster
            assert all(int(p1.clusters[i]) == c for i in column[1:].tolist())


def test_too_few_points():
    with pytest.raises(ConfigError, match="too few"):
        select_probes(Identityish(), torch.rand(50, 1, 4, 4), n_clusters=10, n_views=5)
