"""The Suspect protocol: validation, output modes, query counting and budgets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uapfp.errors import BudgetExhaustedError, ConfigError, SuspectError
from uapfp.suspects.base import OutputMode
from uapfp.suspects.local import TorchSuspect


def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def test_output_modes():
    p = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert torch.equal(OutputMode.parse("probs").apply(p), p)
    assert torch.allclose(OutputMode.parse("topk:2").apply(p), torch.tensor([[0.0, 0.6, 0.3], [0.5, 0.0, 0.3]]))
    assert torch.equal(OutputMode.parse("label").apply(p), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert OutputMode.parse("topk:1") == OutputMode.parse("label")
    for mode in ("probs", "topk:2", "label"):
        once = OutputMode.parse(mode).apply(p)
        assert torch.equal(OutputMode.parse(mode).apply(once), once)  # idempotent
    with pytest.raises(ConfigError):
        OutputMode.parse("topk:0")


def test_torch_suspect_counts_and_budget():
    s = TorchSuspect(_linear(), input_shape=(1, 2, 2), num_classes=3, max_queries=10, batch_size=4)
    out = s(torch.rand(7, 1, 2, 2))
    assert out.shape == (7, 3) and torch.allclose(out.sum(1), torch.ones(7)) and s.queries == 7
    with pytest.raises(BudgetExhaustedError):
        s(torch.rand(4, 1, 2, 2))  # 7 + 4 > 10: refused before sending the batch
    assert s.queries == 7
    s(torch.rand(3, 1, 2, 2))
    assert s.queries == 10


def test_label_mode_returns_one_hot():
    s = TorchSuspect(_linear(), input_shape=(1, 2, 2), num_classes=3, output="label")
    out = s(torch.rand(5, 1, 2, 2))
    assert torch.equal(out.sum(1), torch.ones(5)) and set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda x: torch.full((len(x), 3), float("nan")), "NaN"),
        (lambda x: torch.full((len(x), 3), -0.1), "negative"),
        (lambda x: torch.full((len(x), 3), 0.5), "do not sum to 1"),
        (lambda x: torch.full((len(x), 4), 0.25), "returned 4 classes, the kit expects 3"),
    ],
)
def test_bad_outputs_are_named(fn, message):
    s = TorchSuspect(fn, logits=False, input_shape=(1, 2, 2), num_classes=3)
    with pytest.raises(SuspectError, match=message):
        s(torch.rand(2, 1, 2, 2))


def test_bad_inputs():
    s = TorchSuspect(_linear(), input_shape=(1, 2, 2), num_classes=3)
    with pytest.raises(SuspectError, match="shape"):
        s(torch.rand(2, 1, 3, 3))
    with pytest.raises(SuspectError, match=r"\[0, 1\]"):
        s(torch.full((2, 1, 2, 2), 2.0))
