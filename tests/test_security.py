"""Nothing a suspect owner hands over is unpickled, and ONNX files cannot read outside their folder."""

from __future__ import annotations

import json
import os
import pathlib
import pickle

import numpy as np
import pytest
import torch

from tests.helpers import external, linear_onnx
from uapfp.cli import main
from uapfp.errors import UnsafeFileError
from uapfp.storage import sha256_file
from uapfp.suspects.onnx_runtime import OnnxSuspect
from uapfp.suspects.spec import open_suspect


class Evil:
    """Unpickling this creates ``marker``: any code could run instead."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _one_error(capsys) -> str:
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("uapfp: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def evil_files(tmp_path):
    marker = tmp_path / "PWNED"
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Evil(marker)))
    zipped = tmp_path / "evil.pt"
    torch.save(Evil(marker), zipped)
    nested = tmp_path / "evil-state.pt"
    torch.save({"0.weight": torch.zeros(1), "payload": Evil(marker)}, nested)
    # the payload is real: unpickling a copy does run it
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Evil(proof)))
    assert proof.exists()
    return marker, [raw, zipped, nested]


def test_pickled_weights_are_refused(tiny_kit, evil_files, capsys):
    marker, files = evil_files
    for evil in files:
        with pytest.raises(UnsafeFileError, match="safetensors"):
            open_suspect("tests.helpers:tiny_mlp", input_shape=(1, 28, 28), num_classes=10, weights=str(evil))
        code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", "tests.helpers:tiny_mlp",
                     "--weights", str(evil)])  # fmt: skip
        line = _one_error(capsys)
        assert code == 2 and ("never read" in line or "weights_only" in line), line
        assert not marker.exists()


def test_pickle_as_torchscript_or_card_is_refused(tiny_zoo, tiny_kit, evil_files, tmp_path, capsys):
    marker, files = evil_files
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(files[1])])
    assert code == 2 and "not a TorchScript file" in _one_error(capsys)
    # a model card whose weights are a pickle (with the right hash, so only the format stops it)
    card = {k: v for k, v in tiny_zoo.victim.items() if not k.startswith("_")}
    card.update(weights=files[1].name, weights_sha256=sha256_file(files[1]))
    card_path = tmp_path / "card.json"
    card_path.write_text(json.dumps(card))
    with pytest.raises(UnsafeFileError):
        open_suspect(str(card_path), input_shape=(1, 28, 28), num_classes=10)
    assert not marker.exists()


# --------------------------------------------------------------------------- ONNX external data


def _onnx_with_external(folder: pathlib.Path, location: str) -> pathlib.Path:
    """Flatten + MatMul whose weight (784, 10) is read from ``location``."""
    return linear_onnx(folder, external(np.full((784, 10), 0.01, dtype=np.float32), "W", location))


def test_onnx_external_data_inside_the_folder_works(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.full((784, 10), 0.01, dtype=np.float32).tobytes())
    path = _onnx_with_external(tmp_path, "w.bin")
    out = OnnxSuspect(path, input_shape=(1, 28, 28), num_classes=10)(torch.rand(3, 1, 28, 28))
    assert torch.allclose(out, torch.full((3, 10), 0.1))


@pytest.mark.parametrize("where", ["absolute", "parent", "symlink"])
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, where, capsys, tiny_kit):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(os.urandom(784 * 10 * 4))
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"absolute": str(outside), "parent": "../secret.bin", "symlink": "link.bin"}[where]
    if where == "symlink":
        (folder / "link.bin").symlink_to(outside)
    path = _onnx_with_external(folder, location)
    with pytest.raises(UnsafeFileError, match="model's folder"):
        OnnxSuspect(path, input_shape=(1, 28, 28), num_classes=10)
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"onnx:{path}"])
    assert code == 2 and "model's folder" in _one_error(capsys)
