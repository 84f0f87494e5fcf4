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


def test_augmented_fingerprints_are_those_of_modified_copies(tiny_zoo, tiny_kit):
    from uapfp.errors import ConfigError
    from uapfp.fingerprint import fingerprint
    from uapfp.kit import ProtectConfig, zoo_fingerprints
    from uapfp.modify import Quantize
    from uapfp.zoo import card_suspect

    for bad in (("finetune",), ("prune:2",), ("blur",)):
        with pytest.raises(ConfigError):
            ProtectConfig(augment=bad)
    ids = [tiny_zoo.victim["id"]]
    plain = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images, ids=ids)[ids[0]]
    quant = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images, ids=ids, modification="quantize:3")[ids[0]]
    suspect = card_suspect(tiny_zoo.victim)
    suspect.model = Quantize(bits=3).apply(suspect.model)
    assert torch.allclose(quant, fingerprint(suspect, tiny_kit.v, tiny_kit.probe_images))
    assert not torch.allclose(quant, plain)
    # The cache keeps both, apart.
    again = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images, ids=ids)[ids[0]]
    assert torch.equal(again, plain)


def _cards():
    cards = [{"id": "victim", "role": "victim", "arch": "A", "optimizer": "adam", "attack": None}]
    for arch in ("A", "B"):
        for opt in ("adam", "sgd"):
            for i, attack in enumerate(("knockoff", "jbda")):
                cards.append({"id": f"piracy-{arch}-{opt}-{i}", "role": "piracy", "arch": arch, "optimizer": opt,
                              "attack": {"name": attack}})  # fmt: skip
            for i in range(3):
                cards.append({"id": f"homologous-{arch}-{opt}-{i}", "role": "homologous", "arch": arch,
                              "optimizer": opt, "attack": None})  # fmt: skip
    return cards


def test_split_is_stratified_by_the_given_card_fields():
    from collections import Counter

    from uapfp.errors import ConfigError
    from uapfp.kit import ProtectConfig, split_models

    cards = _cards()
    split = split_models(cards, ProtectConfig(), "A")
    assert split == split_models(cards, ProtectConfig(), "A") and "victim" not in split
    # Default, per (role, architecture): 4 piracy -> 2 train, 2 held out; 6 homologous -> 2 each.
    per_arch = Counter((c["role"], c["arch"], split[c["id"]]) for c in cards[1:])
    for arch in ("A", "B"):
        assert per_arch[("piracy", arch, "train")] == per_arch[("piracy", arch, "heldout")] == 2
        for part in ("calibration", "train", "heldout"):
            assert per_arch[("homologous", arch, part)] == 2
    # Per (role, architecture, optimizer): every cell gives the encoder one model of each role.
    fine = split_models(cards, ProtectConfig(stratify=("arch", "optimizer")), "A")
    per_cell = Counter((c["role"], c["arch"], c["optimizer"], fine[c["id"]]) for c in cards[1:])
    for arch in ("A", "B"):
        for opt in ("adam", "sgd"):
            assert per_cell[("piracy", arch, opt, "train")] == per_cell[("piracy", arch, opt, "heldout")] == 1
            for part in ("calibration", "train", "heldout"):
                assert per_cell[("homologous", arch, opt, part)] == 1
    held = split_models(cards, ProtectConfig(exclude_archs=("B",)), "A")
    assert all(held[c["id"]] == "heldout" for c in cards if c["arch"] == "B")
    paper = split_models(cards, ProtectConfig(paper_split=True), "A")
    assert all(paper[c["id"]] == "excluded" for c in cards[1:] if c["arch"] == "A")
    with pytest.raises(ConfigError):
        ProtectConfig(stratify=("colour",))


def test_augmented_copies_join_the_encoders_training_set(tiny_zoo, tiny_kit, monkeypatch):
    from dataclasses import replace

    import uapfp.kit as kit_mod
    from uapfp.kit import Profile, fit_kit, zoo_fingerprints
    from uapfp.uap import UAPResult

    seen = []
    real = kit_mod.train_encoder

    def spy(fingerprints, labels, **kwargs):
        seen.append((fingerprints.shape[0], labels.tolist()))
        return real(fingerprints, labels, **kwargs)

    monkeypatch.setattr(kit_mod, "train_encoder", spy)
    uap = UAPResult(
        tiny_kit.v, "sgd", "linf", 0.25, fooling_rate_train=0.0, fooling_rate_val=None, seconds=0.0, passes=0
    )
    fps = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images)
    profile = Profile(uap, tiny_kit.probe_images, fps, tiny_kit.input_shape, tuple(tiny_kit.info["classes"]))
    base = tiny_kit.config
    config = replace(base, augment=("prune:0.3", "quantize:4"), encoder=replace(base.encoder, steps=5))
    kit = fit_kit(tiny_zoo, profile, config, progress=False)
    n_train = 1 + len(kit.info["models"]["train"])  # the victim and the training models
    assert seen[0][0] == 3 * n_train and seen[0][1] == seen[0][1][:n_train] * 3
    assert kit.info["config"]["augment"] == ["prune:0.3", "quantize:4"]
