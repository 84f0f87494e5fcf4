"""The kit: contents, round trip, and refusal of tampered files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from uapfp.errors import KitIntegrityError
from uapfp.kit import KIT_FILES, Kit


def test_kit_holds_what_verification_needs(tiny_kit):
    info = tiny_kit.info
    assert tiny_kit.v.shape == (1, 28, 28) and float(tiny_kit.v.abs().max()) <= 0.25 + 1e-6
    assert tiny_kit.probe_images.shape == (9, 30, 1, 28, 28)  # m + 1 = 9 sets of N = 30 points
    assert tiny_kit.victim_fingerprints.shape == (9, 2 * 30 * 10)
    assert tiny_kit.null_fingerprints.shape[0] == len(info["models"]["calibration"]) >= 2
    for key in ("input_shape", "num_classes", "config", "uap", "versions", "models", "victim"):
        assert key in info
    assert info["uap"]["fooling_rate_val"] is not None
    files = json.loads((tiny_kit.path / "manifest.json").read_text())["files"]
    assert set(files) == set(KIT_FILES)
    # The training, calibration and held-out models are disjoint.
    m = info["models"]
    assert not set(m["train"]) & set(m["calibration"]) and not set(m["train"]) & set(m["heldout"])
    assert not set(m["calibration"]) & set(m["heldout"])


def test_round_trip_same_embeddings(tiny_kit, tmp_path):
    again = Kit.load(tiny_kit.path)
    assert torch.equal(again.victim_embeddings(), tiny_kit.victim_embeddings())
    assert again.sha256 == tiny_kit.sha256


@pytest.mark.parametrize("name", ["encoder.safetensors", "kit.json", "uap.safetensors", "probes.safetensors"])
def test_tampered_file_refused(tiny_kit, tmp_path, name):
    copy = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(KitIntegrityError, match=f"{name} does not match its manifest"):
        Kit.load(copy)


def test_missing_file_and_not_a_kit(tiny_kit, tmp_path):
    copy = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, copy)
    (copy / "reference.safetensors").unlink()
    with pytest.raises(KitIntegrityError, match="missing"):
        Kit.load(copy)
    with pytest.raises(KitIntegrityError, match="uapfp protect"):
        Kit.load(tmp_path / "empty")
