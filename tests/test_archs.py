"""The architecture registry: every entry through one contract, and user factories."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uapfp.archs import arch_info, create_model, list_archs
from uapfp.errors import ConfigError


@pytest.mark.parametrize("name", list_archs())
@pytest.mark.parametrize("shape", [(1, (28, 28), 10), (3, (32, 32), 7), (1, (16, 20), 2)])
def test_every_registered_arch_output_shape(name, shape):
    channels, size, classes = shape
    model = create_model(name, in_channels=channels, image_size=size, num_classes=classes).eval()
    out = model(torch.rand(5, channels, *size))
    assert out.shape == (5, classes) and torch.isfinite(out).all()


def test_paper_table_1_attributes():
    def convs(m):
        return [layer for layer in m.modules() if isinstance(layer, nn.Conv2d)]

    expected = {"A": (nn.ELU, False, 3, 2), "B": (nn.ELU, False, 5, 3), "C": (nn.ReLU, False, 3, 2),
                "D": (nn.PReLU, False, 3, 4), "E": (nn.ReLU, True, 5, 2)}  # fmt: skip
    for name, (act, dropout, kernel, layers) in expected.items():
        m = create_model(name)
        assert len(convs(m)) == layers and all(c.kernel_size == (kernel, kernel) for c in convs(m))
        assert any(isinstance(x, act) for x in m.modules())
        assert any(isinstance(x, nn.Dropout) for x in m.modules()) == dropout


def test_user_factory_and_unknown_arch(monkeypatch):
    from uapfp.archs import trusting

    monkeypatch.delenv("UAPFP_TRUST_CODE", raising=False)
    with pytest.raises(ConfigError, match="--trust-code tests.helpers"):
        create_model("tests.helpers:tiny_mlp")  # code named by a string runs only when allowed
    with trusting(["tests"]):  # a package allows its modules
        m = create_model("tests.helpers:tiny_mlp", in_channels=1, image_size=(28, 28), num_classes=10)
        with pytest.raises(ConfigError, match="cannot import"):
            create_model("tests.no_such_module:factory")
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="--trust-code tests"):
        create_model("tests.helpers:tiny_mlp")  # the permission ended with the block
    monkeypatch.setenv("UAPFP_TRUST_CODE", "other, tests.helpers")
    assert isinstance(create_model("tests.helpers:linear_classifier"), torch.nn.Module)
    with pytest.raises(ConfigError, match="unknown architecture 'Z'"):
        create_model("Z")
    assert arch_info("A").description
