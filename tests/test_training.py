"""The training loop: determinism, soft labels, augmentation and the divergence guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uapfp.errors import ConfigError
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


def test_crop_and_flip_match_a_per_image_reference():
    """crop:P+flip against a slow per-image loop fed the same random draws."""
    from uapfp.training import _parse_augment, augment_batch

    x = torch.arange(5 * 2 * 6 * 7, dtype=torch.float32).reshape(5, 2, 6, 7)
    got = augment_batch(x, _parse_augment("crop:2+flip"), torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    off = torch.randint(0, 5, (2, 5), generator=gen)
    flips = torch.rand(5, generator=gen) < 0.5
    assert 0 < int(flips.sum()) < 5  # the seed exercises both branches
    for i in range(5):
        padded = torch.zeros(2, 10, 11)
        padded[:, 2:8, 2:9] = x[i]
        want = padded[:, off[0, i] : off[0, i] + 6, off[1, i] : off[1, i] + 7]
        if flips[i]:
            want = want.flip(2)
        assert torch.equal(got[i], want)
    assert got.shape == x.shape


def test_augment_recipes_parse_or_are_refused():
    from uapfp.training import Augment, _parse_augment

    assert _parse_augment("none") == Augment()
    assert _parse_augment("crop:4+flip") == Augment(crop=4, flip=True)
    assert _parse_augment("shift:2") == Augment(shift=2)
    for bad in ("crop", "crop:0", "flip:1", "crop:4+crop:2", "blur:3", "crop:4,flip", "crop:\u00b2"):
        with pytest.raises(ConfigError, match="augment"):
            TrainConfig(augment=bad)
    # One recipe, one name: cards written with either spelling match.
    assert TrainConfig(augment="flip+crop:04").augment == "crop:4+flip"
    assert TrainConfig(augment="shift:2").augment == "shift:2"


def test_training_with_augmentation_is_deterministic():
    x, y = torch.rand(64, 3, 8, 8), torch.randint(0, 3, (64,))
    cfg = TrainConfig(epochs=1, batch_size=16, augment="crop:2+flip", seed=4)
    a, b = (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)) for _ in range(2))
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
    b.load_state_dict(a.state_dict())
    plain.load_state_dict(a.state_dict())
    train_model(a, x, y, config=cfg, progress=False)
    train_model(b, x, y, config=cfg, progress=False)
    train_model(plain, x, y, config=TrainConfig(epochs=1, batch_size=16, seed=4), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[1].weight, plain[1].weight)  # the augmentation changed what was learnt


def test_the_training_device_is_the_cpu_unless_cuda_is_asked_for_or_present(monkeypatch):
    from uapfp.training import training_device

    monkeypatch.setenv("UAPFP_DEVICE", "cpu")
    assert training_device().type == "cpu"
    monkeypatch.setenv("UAPFP_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="UAPFP_DEVICE must be cpu or cuda"):
        training_device()
    monkeypatch.delenv("UAPFP_DEVICE")
    assert training_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_bf16_trains_in_bfloat16_deterministically_and_old_recipes_still_match(monkeypatch):
    monkeypatch.setenv("UAPFP_DEVICE", "cpu")
    x, y = _data()
    a, b, full = _model(), _model(), _model()
    cfg = TrainConfig(epochs=2, seed=3, cpu_bf16=True)
    train_model(a, x, y, config=cfg, progress=False)
    train_model(b, x, y, config=cfg, progress=False)
    train_model(full, x, y, config=TrainConfig(epochs=2, seed=3), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # bfloat16 matmuls round the logits to 8 bits of mantissa: the weights differ from float32's, not by much.
    assert not torch.equal(a[1].weight, full[1].weight)
    assert torch.allclose(a[1].weight, full[1].weight, atol=0.05)
    assert all(p.dtype == torch.float32 for p in a.parameters())  # autocast, the weights stay float32
    # A card written before the field existed is the float32 recipe, not the bfloat16 one.
    old = {k: v for k, v in TrainConfig(epochs=2).to_dict().items() if k != "cpu_bf16"}
    assert TrainConfig(epochs=2).matches(old) and not TrainConfig(epochs=2, cpu_bf16=True).matches(old)


def test_cpu_has_amx_and_cpuinfo_read_the_cpu_flags_and_fields(monkeypatch, tmp_path):
    import builtins

    from uapfp import training

    real_open = builtins.open
    for flags, want in (("fpu avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open",
                            lambda f, *a, info=info, **k: real_open(info if f == "/proc/cpuinfo" else f, *a, **k))  # fmt: skip
        assert training.cpu_has_amx() is want
        assert training.cpuinfo("model name") == "Test CPU @ 2.0GHz" and training.cpuinfo("no such field") is None
