"""The supervised contrastive loss against a slow loop written from the formula, and the encoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from uapfp.config import EncoderConfig
from uapfp.encoder import FingerprintEncoder, SupConLoss, train_encoder


def slow_supcon(z, labels, tau):
    """L = mean over anchors with positives of -1/|P(i)| sum_p log(exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau))."""
    total, anchors = 0.0, 0
    n = len(z)
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(n) if a != i)
        term = sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator) for p in positives)
        total += -term / len(positives)
        anchors += 1
    return total / anchors


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_matches_slow_loop(tau):
    torch.manual_seed(0)
    z = F.normalize(torch.randn(9, 5, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 0, 2, 1, 3])  # classes 2 and 3: anchors without positives
    got = SupConLoss(temperature=tau)(z, labels)
    assert float(got) == pytest.approx(slow_supcon(z, labels.tolist(), tau), rel=1e-10)


def test_supcon_no_positives_is_zero_with_gradient():
    z = F.normalize(torch.randn(4, 3), dim=1).requires_grad_(True)
    loss = SupConLoss()(z, torch.arange(4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and z.grad is not None


def test_supcon_rejects_bad_shapes():
    with pytest.raises(ValueError):
        SupConLoss()(torch.randn(4, 3), torch.zeros(5))
    with pytest.raises(ValueError):
        SupConLoss(temperature=0.0)


def test_encoder_embeddings_are_unit_and_training_separates():
    torch.manual_seed(0)
    # Two groups of "models" whose fingerprints differ in which classes they favour.
    k, n, s = 3, 4, 5
    base0, base1 = torch.rand(2 * n, k), torch.rand(2 * n, k)

    def fps(base, m):
        noise = 0.3 * torch.rand(m, s, 2 * n, k)
        return torch.softmax(4 * (base + noise), dim=-1).reshape(m, s, -1)

    f = torch.cat([fps(base0, 4), fps(base1, 4)])
    labels = torch.tensor([0] * 4 + [1] * 4)
    enc = train_encoder(
        f, labels, num_classes=k, config=EncoderConfig(steps=80, batch_size=64, hidden=32, rep_dim=16, proj_dim=8)
    )
    z = enc(f.reshape(-1, f.shape[-1]))
    assert torch.allclose(z.norm(dim=1), torch.ones(len(z)), atol=1e-5)
    z = z.reshape(8, s, -1)
    within = (z[0] * z[1]).sum(-1).mean()
    across = (z[0] * z[5]).sum(-1).mean()
    assert within > across + 0.5
    assert isinstance(enc, FingerprintEncoder)
