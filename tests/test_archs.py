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


@pytest.mark.parametrize("name", ["A", "D", "widebn", "resnet18-w0.125"])
def test_registered_archs_come_channels_last_and_compute_the_same_function(name):
    """create_model gives the convolutions channels-last weights (faster on a CPU); the function is the default format's."""
    channels, size = (1, 28) if len(name) == 1 else (3, 32)
    torch.manual_seed(0)
    model = create_model(name, in_channels=channels, image_size=(size, size)).eval()
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    plain = create_model(name, in_channels=channels, image_size=(size, size)).eval()
    plain.to(memory_format=torch.contiguous_format)
    plain.load_state_dict(model.state_dict())
    x = torch.rand(6, channels, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)


def test_a_users_factory_keeps_its_own_memory_format():
    """A user's net may flatten with view, which channels-last activations refuse: create_model leaves it as made."""
    from uapfp.archs import trusting

    with trusting(["tests"]):
        model = create_model("tests.helpers:ConvView", in_channels=3, image_size=(8, 8), num_classes=5)
    assert model.conv.weight.is_contiguous()
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 5)
    model.to(memory_format=torch.channels_last)  # what create_model does to its own architectures
    with pytest.raises(RuntimeError, match="view"):
        model(torch.rand(2, 3, 8, 8))


def test_the_training_loop_trains_a_net_that_refuses_channels_last_in_its_own_format():
    from uapfp.archs import trusting
    from uapfp.training import TrainConfig, train_model

    with trusting(["tests"]):
        model = create_model("tests.helpers:ConvView", in_channels=1, image_size=(8, 8), num_classes=3)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))
    train_model(model, x, y, config=TrainConfig(epochs=2, batch_size=16), progress=False)
    assert model.conv.weight.is_contiguous() and model(x[:4]).shape == (4, 3)
    registered = create_model("widebn", image_size=(8, 8), num_classes=3)
    train_model(registered, x, y, config=TrainConfig(epochs=1, batch_size=16), progress=False)
    assert registered[0][0].weight.is_contiguous(memory_format=torch.channels_last)


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


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "vgg11", "vgg13", "vgg16", "googlenet", "densenet121"])
def test_cifar_families_take_a_width_multiplier(name):
    def params(m):
        return sum(p.numel() for p in m.parameters())

    full = create_model(name, in_channels=3, image_size=(32, 32), num_classes=10)
    for shape in [(3, (32, 32)), (1, (28, 28))]:
        small = create_model(f"{name}-w0.25", in_channels=shape[0], image_size=shape[1], num_classes=10).eval()
        assert small(torch.rand(4, shape[0], *shape[1])).shape == (4, 10)
    small = create_model(f"{name}-w0.25", in_channels=3, image_size=(32, 32), num_classes=10)
    assert params(small) < params(full) / 8  # convolutions scale with the square of the width
    assert "width x0.25" in arch_info(f"{name}-w0.25").description


def test_the_published_sizes_of_the_cifar_forms():
    counts = {name: sum(p.numel() for p in create_model(name, in_channels=3, image_size=(32, 32)).parameters())
              for name in ("resnet18", "resnet34", "vgg11", "vgg13", "vgg16", "googlenet", "densenet121")}  # fmt: skip
    # kuangliu/pytorch-cifar's figures: ResNet18 11.2 M, ResNet34 21.3 M, VGG11 9.23 M, VGG13 9.42 M, VGG16
    # 14.7 M, GoogLeNet 6.2 M, DenseNet121 7.0 M parameters (ours: BN without conv biases in VGG, two 3x3
    # for the 5x5 branch).
    assert counts["resnet18"] == pytest.approx(11.17e6, rel=0.02)
    assert counts["resnet34"] == pytest.approx(21.28e6, rel=0.02)
    assert counts["vgg11"] == pytest.approx(9.23e6, rel=0.02)
    assert counts["vgg13"] == pytest.approx(9.41e6, rel=0.02)
    assert counts["vgg16"] == pytest.approx(14.73e6, rel=0.02)
    assert counts["googlenet"] == pytest.approx(6.17e6, rel=0.05)
    assert counts["densenet121"] == pytest.approx(6.96e6, rel=0.05)


def test_a_width_suffix_needs_a_family_that_takes_one():
    with pytest.raises(ConfigError, match="unknown architecture 'A-w0.5'"):
        create_model("A-w0.5")
    with pytest.raises(ConfigError, match="width multiplier"):
        create_model("resnet18-w0")


def test_the_examples_owner_architecture_is_outside_the_registry_and_builds(monkeypatch):
    """examples/owner_nets.py (the lineage benchmark's second victim) as an owner names it."""
    from pathlib import Path

    from uapfp.archs import trusting

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    assert not any("convmixer" in name for name in list_archs())
    with trusting(["owner_nets"]):
        for channels, size, classes in [(1, (28, 28), 10), (3, (32, 32), 7)]:
            model = create_model("owner_nets:convmixer", in_channels=channels, image_size=size, num_classes=classes)
            out = model.eval()(torch.rand(3, channels, *size))
            assert out.shape == (3, classes) and torch.isfinite(out).all()
