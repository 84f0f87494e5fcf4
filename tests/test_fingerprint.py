"""The fingerprint layout: [M(x_1), M(x_1 + v), ..., M(x_N), M(x_N + v)], 2N queries per fingerprint."""

from __future__ import annotations

import torch

from uapfp.fingerprint import apply_output_mode, fingerprint, probe_batch
from uapfp.suspects.local import TorchSuspect


def _model(x):
    # A deterministic "classifier": 3 classes from the image's mean and first pixel.
    m = x.flatten(1).mean(1, keepdim=True)
    return torch.softmax(torch.cat([m, x.flatten(1)[:, :1], 1 - m], dim=1) * 5, dim=1)


def test_layout_and_query_count():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 1, 2, 2)  # S=4 sets of N=3 points
    v = torch.full((1, 2, 2), 0.3)
    suspect = TorchSuspect(_model, logits=False, input_shape=(1, 2, 2), num_classes=3)
    f = fingerprint(suspect, v, images)
    assert f.shape == (4, 2 * 3 * 3) and suspect.queries == 2 * 3 * 4
    for s in range(4):
        for i in range(3):
            clean = _model(images[s, i : i + 1])[0]
            adv = _model((images[s, i : i + 1] + v).clamp(0, 1))[0]
            assert torch.allclose(f[s, 2 * i * 3 : (2 * i + 1) * 3], clean)
            assert torch.allclose(f[s, (2 * i + 1) * 3 : (2 * i + 2) * 3], adv)


def test_probe_batch_clips_and_interleaves():
    x = torch.tensor([[[[0.9]]], [[[0.1]]]])
    b = probe_batch(x, torch.tensor([[[0.5]]]))
    assert torch.allclose(b.flatten(), torch.tensor([0.9, 1.0, 0.1, 0.6]))


def test_output_mode_truncation_of_stored_fingerprints():
    f = torch.tensor([[0.2, 0.5, 0.3, 0.6, 0.1, 0.3]])  # two outputs of 3 classes
    assert torch.equal(apply_output_mode(f, "label", 3), torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]]))
    assert torch.allclose(apply_output_mode(f, "topk:2", 3), torch.tensor([[0.0, 0.5, 0.3, 0.6, 0.0, 0.3]]))
