"""The kit artifact: contents, round trip, refusal of tampered, missing or retired files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from uapfp.errors import KitIntegrityError
from uapfp.kit import KIT_FILES, NULL_ENCODERS_FILE, REFERENCES_FILE, Kit
from uapfp.storage import sha256_file


def test_kit_holds_what_verification_needs(tiny_kit):
    info = tiny_kit.info
    assert tiny_kit.v.shape == (1, 28, 28) and float(tiny_kit.v.abs().max()) <= 0.25 + 1e-6
    assert tiny_kit.probe_images.shape == (9, 30, 1, 28, 28)  # m + 1 = 9 sets of N = 30 points
    assert tiny_kit.victim_fingerprints.shape == (9, 2 * 30 * 10)
    assert tiny_kit.null_fingerprints.shape[0] == len(info["models"]["calibration"]) >= 2
    for key in ("input_shape", "num_classes", "uap", "versions", "models", "victim"):
        assert key in info
    assert "config" not in info and json.loads((tiny_kit.path / "kit.json").read_text())["config"] == (
        tiny_kit.config.to_dict()
    )
    assert info["uap"]["fooling_rate_val"] is not None
    files = json.loads((tiny_kit.path / "manifest.json").read_text())["files"]
    # two architectures: the default (auto) calibration is the kit's own encoder, no null encoders
    assert set(files) == {*KIT_FILES, REFERENCES_FILE} and tiny_kit.config.calibration == "kit"
    assert not tiny_kit.null_encoders
    # the references of the methods that learn nothing: the victim's errors and boundary points
    errors = tiny_kit.references["errors"]
    s, n = errors.labels.shape
    assert s == 20 and errors.queries.shape == (s, n, 1, 28, 28) and errors.victim.shape == (s, n, 10)
    assert (errors.victim.argmax(-1) != errors.labels).all()  # every query is a mistake of the victim's
    assert errors.null.shape == (len(info["models"]["calibration"]), s, n, 10)
    assert errors.siblings.shape[0] == len(info["siblings"]) == 8
    assert tiny_kit.references["ipguard"].queries.shape[:2] == (20, tiny_kit.references["ipguard"].victim.shape[1])
    # The training, calibration and held-out models are disjoint.
    m = info["models"]
    assert not set(m["train"]) & set(m["calibration"]) and not set(m["train"]) & set(m["heldout"])
    assert not set(m["calibration"]) & set(m["heldout"])


def test_round_trip_same_embeddings(tiny_kit, tmp_path):
    again = Kit.load(tiny_kit.path)
    assert torch.equal(again.victim_embeddings(), tiny_kit.victim_embeddings())
    assert again.sha256 == tiny_kit.sha256 and again.config == tiny_kit.config


@pytest.mark.parametrize(
    "name", ["encoder.safetensors", "kit.json", "uap.safetensors", "probes.safetensors", NULL_ENCODERS_FILE]
)
def test_tampered_file_refused(tiny_kit, lao_kit, tmp_path, name):
    copy = tmp_path / "kit"
    shutil.copytree(lao_kit.path if name == NULL_ENCODERS_FILE else tiny_kit.path, copy)
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


def _rewrite(folder, edit) -> None:
    """Edit ``kit.json`` and rehash the manifest, as an old uapfp would have written the kit."""
    info = json.loads((folder / "kit.json").read_text())
    edit(info)
    (folder / "kit.json").write_text(json.dumps(info))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["kit.json"] = sha256_file(folder / "kit.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_kits_of_earlier_versions(tiny_kit, tmp_path):
    """Retired settings at their defaults load; a kit that used one, or a retired test, is refused."""
    copy = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, copy)
    _rewrite(copy, lambda i: i["config"].update(augment=[], stratify=["arch"], train_on_calibration=False))
    assert Kit.load(copy).config == tiny_kit.config
    for key, value in (("augment", ["prune:0.4"]), ("stratify", ["arch", "optimizer"]), ("null", "nearest:5")):
        shutil.rmtree(copy)
        shutil.copytree(tiny_kit.path, copy)
        _rewrite(copy, lambda i, k=key, v=value: i["config"].update({k: v}))
        with pytest.raises(KitIntegrityError, match="rebuild"):
            Kit.load(copy)
