"""DeepFool against the closed form on linear classifiers, projections, and both UAP algorithms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from uapfp.uap import DeepFoolUAP, SgdUAP, deepfool, fooling_rate, project


def _linear(d=12, k=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k)).double()


def _closed_form(model, x, norm):
    """Minimal perturbation of an affine classifier, one image at a time, in numpy."""
    W = model[1].weight.detach().numpy()
    b = model[1].bias.detach().numpy()
    out = []
    for xi in x.reshape(len(x), -1).numpy():
        f = W @ xi + b
        l0 = int(np.argmax(f))
        best, best_r = np.inf, None
        for k in range(len(f)):
            if k == l0:
                continue
            w = W[k] - W[l0]
            fk = f[k] - f[l0]
            if norm == "l2":
                dist = abs(fk) / np.linalg.norm(w)
                r = abs(fk) / np.linalg.norm(w) ** 2 * w
            else:
                dist = abs(fk) / np.abs(w).sum()
                r = abs(fk) / np.abs(w).sum() * np.sign(w)
            if dist < best:
                best, best_r = dist, r
        out.append(best_r)
    return torch.from_numpy(np.stack(out)).reshape(x.shape)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_linear_closed_form(norm):
    model = _linear()
    x = torch.randn(16, 1, 3, 4, dtype=torch.float64)
    res = deepfool(model, x, overshoot=0.0, norm=norm, bounds=None, num_candidates=5)
    expected = _closed_form(model, x, norm)
    assert res.converged.all() and (res.iterations == 1).all()
    # DeepFool's step is the closed form plus 1e-4 along the step direction.
    extra = (res.perturbation - expected).flatten(1)
    limit = 1e-4 * (1.0001 if norm == "l2" else 1.0001) * (1 if norm == "l2" else np.sqrt(12))
    assert extra.norm(dim=1).max() <= limit + 1e-9
    # The closed form lands on the boundary: the top two logits tie.
    top2 = model(x + expected).topk(2, dim=1).values
    assert torch.allclose(top2[:, 0], top2[:, 1], atol=1e-9)


def test_deepfool_overshoot_and_candidates():
    model = _linear()
    x = torch.randn(8, 1, 3, 4, dtype=torch.float64)
    base = deepfool(model, x, overshoot=0.0, bounds=None)
    over = deepfool(model, x, overshoot=0.02, bounds=None)
    assert torch.allclose(over.perturbation, 1.02 * base.perturbation)
    # With 2 candidates only the runner-up class is considered.
    two = deepfool(model, x, overshoot=0.0, bounds=None, num_candidates=2)
    assert two.converged.all()


def test_projections():
    v = torch.tensor([[3.0, 4.0]])  # L2 norm 5
    assert torch.allclose(project(v, 2.0, "l2"), torch.tensor([[1.2, 1.6]]))
    assert torch.equal(project(v, 10.0, "l2"), v)
    assert torch.equal(project(torch.tensor([0.5, -2.0, 0.1]), 0.3, "linf"), torch.tensor([0.3, -0.3, 0.1]))
    batch = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 0.1)])  # norms 2 and 0.2
    proj = project(batch, 1.0, "l2")
    assert torch.allclose(proj[0].norm(), torch.tensor(1.0)) and torch.equal(proj[1], batch[1])


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 4))


def test_uap_deepfool_batch_one_is_the_reference_loop():
    model = _tiny_cnn().eval()
    x = torch.rand(12, 1, 6, 6)
    xi, norm = 1.0, "l2"
    got = DeepFoolUAP(xi=xi, norm=norm, batch_size=1, max_passes=2, delta=0.0)(model, x, seed=3)
    # The original algorithm, written plainly: one point at a time, in the same order.
    v = torch.zeros(1, 6, 6)
    gen = torch.Generator().manual_seed(3)
    clean = model(x).argmax(1)
    best_v, best = v, 0.0
    for _ in range(2):
        for i in torch.randperm(len(x), generator=gen).tolist():
            xv = (x[i : i + 1] + v).clamp(0, 1)
            if model(xv).argmax(1) == clean[i]:
                df = deepfool(model, xv, overshoot=0.02, max_iter=50, norm=norm)
                if df.converged[0] and df.iterations[0] < 49:
                    v = v + df.perturbation[0]
                    v = v * min(1.0, xi / float(v.norm()))
        rate = float((model((x + v).clamp(0, 1)).argmax(1) != clean).float().mean())
        if rate >= best:
            best_v, best = v, rate
    assert torch.allclose(got.v, best_v, atol=1e-5)
    assert got.fooling_rate_train == pytest.approx(best)
    assert float(got.v.norm()) <= xi + 1e-5


@pytest.mark.parametrize("norm, xi", [("linf", 0.3), ("l2", 2.0)])
def test_uap_sgd_respects_radius_and_reports_heldout(norm, xi):
    model = _tiny_cnn().eval()
    x, x_val = torch.rand(64, 1, 6, 6), torch.rand(32, 1, 6, 6)
    res = SgdUAP(xi=xi, norm=norm, epochs=3, batch_size=16)(model, x, x_val=x_val)
    size = res.v.abs().max() if norm == "linf" else res.v.norm()
    assert float(size) <= xi + 1e-6
    assert res.fooling_rate_val == pytest.approx(fooling_rate(model, x_val, res.v))
    assert res.fooling_rate_train > 0.0
