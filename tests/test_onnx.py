"""ONNX suspects run by ONNX Runtime: same similarities as local PyTorch, output detection, bad models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from uapfp.cards import load_model_from_card
from uapfp.cli import main
from uapfp.errors import ConfigError, SuspectError
from uapfp.suspects.onnx_runtime import OnnxSuspect
from uapfp.suspects.spec import card_suspect, open_suspect
from uapfp.verify import verify


def export(model: nn.Module, path, *, shape=(1, 28, 28), dynamic: bool = True) -> str:
    """torch.onnx.export with the TorchScript exporter (the dynamo one needs onnxscript)."""
    x = torch.rand(2 if dynamic else 1, *shape)
    axes = {"input": {0: "n"}, "output": {0: "n"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (x,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=axes,
            dynamo=False,
        )
    return str(path)


class _Softmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


class _Argmax(_Softmax):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(dim=1)


class _Nan(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x.flatten(1)[:, :10] - 2.0)


@pytest.fixture(scope="module")
def pirate(tiny_zoo, tiny_kit):
    held = set(tiny_kit.info["models"]["heldout"])
    return next(c for c in tiny_zoo.cards if c["role"] == "piracy" and c["id"] in held)


@pytest.fixture(scope="module")
def exports(pirate, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model = load_model_from_card(pirate)
    return {
        "logits": export(model, folder / "logits.onnx"),
        "probs": export(_Softmax(model), folder / "probs.onnx"),
        "fixed": export(model, folder / "fixed1.onnx", dynamic=False),
        "argmax": export(_Argmax(model), folder / "argmax.onnx"),
    }


def _onnx(path, kit, **kwargs) -> OnnxSuspect:
    return OnnxSuspect(path, input_shape=kit.input_shape, num_classes=kit.num_classes, **kwargs)


@pytest.mark.parametrize(
    "file, declared, detected",
    [("logits", None, "logits"), ("probs", None, "probs"), ("logits", "logits", "logits"),
     ("probs", "probs", "probs"), ("fixed", None, "logits")],
)  # fmt: skip
def test_onnx_matches_torch(tiny_kit, pirate, exports, file, declared, detected):
    local = verify(tiny_kit, card_suspect(pirate))
    suspect = _onnx(exports[file], tiny_kit, output=declared)
    v = verify(tiny_kit, suspect)
    assert suspect.raw_output == detected and str(suspect.output) == "probs"
    assert np.allclose(v.per_fingerprint, local.per_fingerprint, atol=1e-5)
    assert abs(v.similarity - local.similarity) < 1e-5 and v.verdict == local.verdict
    assert v.queries == local.queries == suspect.queries


def test_onnx_label_modes(tiny_kit, pirate, exports):
    local = verify(tiny_kit, card_suspect(pirate, output="label"))
    for path in (exports["logits"], exports["argmax"]):  # truncated here, or an INT64 label output
        v = verify(tiny_kit, _onnx(path, tiny_kit, output="label"))
        assert v.output_mode == "label" and np.allclose(v.per_fingerprint, local.per_fingerprint, atol=1e-5)
    with pytest.raises(ConfigError, match="--outputs label"):
        _onnx(exports["argmax"], tiny_kit)


def test_onnx_cli(tiny_kit, exports, capsys):
    code = main(
        ["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"onnx:{exports['logits']}", "--outputs", "logits"]
    )
    out, _ = capsys.readouterr()
    assert code == 0 and "PIRACY" in out


def test_bad_onnx_models(tiny_kit, exports, tmp_path, capsys):
    with pytest.raises(ConfigError, match="does not exist"):
        _onnx(tmp_path / "none.onnx", tiny_kit)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    with pytest.raises(ConfigError, match="not a valid ONNX model|cannot load"):
        _onnx(junk, tiny_kit)
    small = export(nn.Sequential(nn.Flatten(), nn.Linear(196, 10)), tmp_path / "small.onnx", shape=(1, 14, 14))
    with pytest.raises(ConfigError, match=r"takes inputs \(N, 1, 14, 14\), the kit expects \(N, 1, 28, 28\)"):
        _onnx(small, tiny_kit)
    nine = export(nn.Sequential(nn.Flatten(), nn.Linear(784, 9)), tmp_path / "nine.onnx")
    with pytest.raises(ConfigError, match="returns 9 classes, the kit expects 10"):
        _onnx(nine, tiny_kit)
    nan = export(_Nan(), tmp_path / "nan.onnx")
    with pytest.raises(SuspectError, match="NaN"):
        verify(tiny_kit, _onnx(nan, tiny_kit))
    with pytest.raises(SuspectError, match="--outputs logits"):  # logits declared as probabilities
        verify(tiny_kit, _onnx(exports["logits"], tiny_kit, output="probs"))
    with pytest.raises(ConfigError, match="logits applies to ONNX models only"):
        open_suspect("tests.helpers:tiny_mlp", input_shape=(1, 28, 28), num_classes=10, output="logits")
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(small)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("uapfp: error:") == 1 and "Traceback" not in err
