"""The training loop: determinism, soft labels, and the divergence guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uapfp.training import TrainConfig, soft_cross_entropy, train_model


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 4, 4, generator=g)
    y = (x.flatten(1).mean(1) > 0.5).long()
    return x, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def test_deterministic_with_a_seed():
    x, y = _data()
    a, b = _model(), _model()
    train_model(a, x, y, config=TrainConfig(epochs=2, seed=3), progress=False)
    train_model(b, x, y, config=TrainConfig(epochs=2, seed=3), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_soft_labels_equal_hard_labels_when_one_hot():
    logits = torch.randn(5, 3)
    y = torch.tensor([0, 2, 1, 1, 0])
    assert torch.allclose(soft_cross_entropy(logits, y), soft_cross_entropy(logits, torch.eye(3)[y]))


class Fragile(nn.Module):
    """A linear model whose output turns NaN once a weight grows past 5, as a diverging run does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(16, 2)

    def forward(self, x):
        out = self.lin(x.flatten(1))
        return out if self.lin.weight.abs().max() < 5 else out * float("nan")


def test_divergence_restarts_at_half_rate():
    x, y = _data()
    model = Fragile()
    result = train_model(model, x * 100, y, config=TrainConfig(optimizer="sgd", lr=50.0, epochs=2, seed=0),
                         progress=False, max_restarts=30)  # fmt: skip
    assert result.restarts > 0 and result.lr == 50.0 / 2**result.restarts
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(model.lin.weight.abs().max()) < 5


def test_divergence_gives_up_with_a_clear_error():
    x, y = _data()
    import pytest

    with pytest.raises(RuntimeError, match="diverged"):
        train_model(Fragile(), x * 100, y, config=TrainConfig(optimizer="sgd", lr=1e6, epochs=1, seed=0),
                    progress=False, max_restarts=1)  # fmt: skip


def test_sgd_rate_scales_linearly_with_the_batch():
    rates = {b: TrainConfig(optimizer="sgd", batch_size=b).resolved_lr for b in (64, 128, 256)}
    assert rates == pytest.approx({64: 0.025, 128: 0.05, 256: 0.1})
    assert TrainConfig(optimizer="sgd", batch_size=256, lr=0.01).resolved_lr == 0.01
    assert (
        TrainConfig(optimizer="adam", batch_size=64).resolved_lr
        == TrainConfig(optimizer="adam", batch_size=256).resolved_lr
    )
