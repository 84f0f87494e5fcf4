"""The kit: contents, round trip, and refusal of tampered files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from uapfp.errors import KitIntegrityError
from uapfp.kit import KIT_FILES, NULL_ENCODERS_FILE, Kit


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
    # two architectures: the default (auto) calibration is the kit's own encoder, no extra file
    assert set(files) == set(KIT_FILES) and tiny_kit.config.calibration == "kit" and not tiny_kit.null_encoders
    # The training, calibration and held-out models are disjoint.
    m = info["models"]
    assert not set(m["train"]) & set(m["calibration"]) and not set(m["train"]) & set(m["heldout"])
    assert not set(m["calibration"]) & set(m["heldout"])


def test_round_trip_same_embeddings(tiny_kit, tmp_path):
    again = Kit.load(tiny_kit.path)
    assert torch.equal(again.victim_embeddings(), tiny_kit.victim_embeddings())
    assert again.sha256 == tiny_kit.sha256


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


def _profile(tiny_zoo, tiny_kit):
    from uapfp.kit import Profile, zoo_fingerprints
    from uapfp.uap import UAPResult

    uap = UAPResult(
        tiny_kit.v, "sgd", "linf", 0.25, fooling_rate_train=0.0, fooling_rate_val=None, seconds=0.0, passes=0
    )
    fps = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images)
    return Profile(uap, tiny_kit.probe_images, fps, tiny_kit.input_shape, tuple(tiny_kit.info["classes"]))


@pytest.fixture(scope="module")
def lao_kit(tiny_zoo, tiny_kit, tmp_path_factory):
    """The tiny kit with leave-arch-out calibration (few encoder steps: its numbers are not judged)."""
    from dataclasses import replace

    from uapfp.kit import fit_kit

    base = tiny_kit.config
    config = replace(base, calibration="leave-arch-out", encoder=replace(base.encoder, steps=20))
    kit = fit_kit(tiny_zoo, _profile(tiny_zoo, tiny_kit), config, progress=False)
    return Kit.load(kit.save(tmp_path_factory.mktemp("lao-kit")).path)


def test_auto_calibration_needs_four_architectures():
    from uapfp.kit import ProtectConfig, resolve_calibration

    def cards_of(archs):
        return {f"{r}-{a}-{k}": {"arch": a, "role": r} for a in archs for r in ("piracy", "homologous") for k in (0, 1)}

    auto = ProtectConfig()
    assert auto.calibration == "auto"
    for archs, expected in (("AB", "kit"), ("ABC", "kit"), ("ABCD", "leave-arch-out"), ("ABCDE", "leave-arch-out")):
        cards = cards_of(archs)
        train = {i: ("train" if i.endswith("0") else "calibration") for i in cards}
        assert resolve_calibration(cards, train, auto) == expected
        assert resolve_calibration(cards, train, ProtectConfig(calibration="pooled")) == "pooled"


def test_augmented_copies_join_the_encoders_training_set(tiny_zoo, tiny_kit, monkeypatch):
    from dataclasses import replace

    import uapfp.kit as kit_mod
    from uapfp.kit import fit_kit

    seen = []
    real = kit_mod.train_encoder

    def spy(fingerprints, labels, **kwargs):
        seen.append((fingerprints.shape[0], labels.tolist()))
        return real(fingerprints, labels, **kwargs)

    monkeypatch.setattr(kit_mod, "train_encoder", spy)
    base = tiny_kit.config
    config = replace(base, augment=("prune:0.3", "quantize:4"), encoder=replace(base.encoder, steps=5))
    kit = fit_kit(tiny_zoo, _profile(tiny_zoo, tiny_kit), config, progress=False)
    n_train = 1 + len(kit.info["models"]["train"])  # the victim and the training models
    assert seen[0][0] == 3 * n_train and seen[0][1] == seen[0][1][:n_train] * 3
    assert kit.info["config"]["augment"] == ["prune:0.3", "quantize:4"]


@pytest.mark.parametrize("train_on_calibration", [False, True])
def test_leave_arch_out_encoders_train_without_the_architecture(tiny_zoo, tiny_kit, monkeypatch, train_on_calibration):
    from dataclasses import replace

    import uapfp.kit as kit_mod
    from uapfp.kit import fit_kit

    seen = []
    real = kit_mod.train_encoder

    def spy(fingerprints, labels, **kwargs):
        seen.append((fingerprints, labels.tolist()))
        return real(fingerprints, labels, **kwargs)

    monkeypatch.setattr(kit_mod, "train_encoder", spy)
    profile = _profile(tiny_zoo, tiny_kit)
    base = tiny_kit.config
    config = replace(
        base, calibration="leave-arch-out", train_on_calibration=train_on_calibration,
        encoder=replace(base.encoder, steps=5),
    )  # fmt: skip
    kit = fit_kit(tiny_zoo, profile, config, progress=False)
    cards = {c["id"]: c for c in tiny_zoo.cards}
    models = kit.info["models"]
    train = sorted(models["train"] + (models["calibration"] if train_on_calibration else []))
    archs = sorted({cards[i]["arch"] for i in models["calibration"]})
    assert archs == ["A", "C"] and sorted(kit.null_encoders) == archs and len(seen) == 1 + len(archs)
    assert kit.config.train_on_calibration is train_on_calibration
    victim = tiny_zoo.victim["id"]
    for (fingerprints, labels), arch in zip(seen, [None, *archs]):
        # the kit's encoder, then one per calibration architecture; the victim is always the reference
        ids = [victim] + [i for i in train if cards[i]["arch"] != arch]
        assert torch.equal(fingerprints, torch.stack([profile.fingerprints[i] for i in ids]))
        assert labels == [0 if cards[i]["role"] in ("victim", "piracy") else 1 for i in ids]
    assert kit.null_archs == [cards[i]["arch"] for i in kit.info["models"]["calibration"]]


def test_null_similarities_follow_the_calibration(lao_kit):
    from uapfp.verify import cosine_similarities

    kit = Kit.load(lao_kit.path)
    n = kit.config.fingerprints
    f_v = kit.victim_fingerprints[:n]
    by_kit = torch.stack([cosine_similarities(kit.encoder, f_v, f[:n]) for f in kit.null_fingerprints])
    by_arch = torch.stack([
        cosine_similarities(kit.null_encoders[arch], f_v, f[:n])
        for f, arch in zip(kit.null_fingerprints, kit.null_archs)
    ])  # fmt: skip
    assert kit.config.calibration == "leave-arch-out"
    torch.testing.assert_close(kit.null_similarities(n_sets=n), by_arch)
    assert not torch.allclose(by_arch, by_kit)
    for calibration, expected in (("kit", by_kit), ("pooled", torch.cat([by_kit, by_arch]))):
        kit.info["config"]["calibration"] = calibration
        torch.testing.assert_close(kit.null_similarities(n_sets=n), expected)
    # label-only suspects are compared label to label, by every encoder
    kit.info["config"]["calibration"] = "pooled"
    pooled = kit.null_similarities("label", n)
    assert pooled.shape == (2 * len(kit.null_archs), n)
    # nearest:K picks both scores of the calibration models nearest the suspect
    kit.info["config"]["null"] = "nearest:4"
    picked = kit.null_for(kit.null_fingerprints[0, :n], "label")
    assert picked.shape == (4, n)
    assert any(torch.equal(picked[0], row) for row in pooled[[0, len(kit.null_archs)]])


def test_kit_without_leave_arch_out_encoders(lao_kit, tmp_path):
    """A kit made before the calibration option loads as ``kit``; one that claims more is refused."""
    from uapfp.storage import sha256_file

    copy = tmp_path / "kit"
    shutil.copytree(lao_kit.path, copy)
    (copy / NULL_ENCODERS_FILE).unlink()
    info = json.loads((copy / "kit.json").read_text())
    del info["config"]["calibration"]
    (copy / "kit.json").write_text(json.dumps(info))
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"][NULL_ENCODERS_FILE]
    manifest["files"]["kit.json"] = sha256_file(copy / "kit.json")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    old = Kit.load(copy)
    assert old.config.calibration == "kit" and not old.null_encoders
    assert old.null_similarities().shape[0] == len(old.info["models"]["calibration"])
    old.info["config"]["calibration"] = "pooled"
    with pytest.raises(KitIntegrityError, match="leave-arch-out encoders"):
        old.null_similarities()


def test_leave_arch_out_needs_another_architecture(tiny_zoo, tiny_kit):
    from dataclasses import replace

    from uapfp.errors import ConfigError
    from uapfp.kit import fit_kit

    base = tiny_kit.config
    config = replace(base, exclude_archs=("C",), calibration="leave-arch-out", encoder=replace(base.encoder, steps=5))
    with pytest.raises(ConfigError, match="other than A"):
        fit_kit(tiny_zoo, _profile(tiny_zoo, tiny_kit), config, progress=False)
    kit = fit_kit(tiny_zoo, _profile(tiny_zoo, tiny_kit), replace(config, calibration="kit"), progress=False)
    assert not kit.null_encoders


def test_train_on_calibration_needs_the_leave_arch_out_null(tiny_zoo, tiny_kit):
    """An encoder that trained on the calibration models must not be the one that scores them."""
    from dataclasses import replace

    from uapfp.errors import ConfigError
    from uapfp.kit import ProtectConfig, fit_kit

    for calibration in ("kit", "pooled"):
        with pytest.raises(ConfigError, match="leave-arch-out"):
            ProtectConfig(calibration=calibration, train_on_calibration=True)
    # the tiny zoo has two architectures: auto would fall back to kit
    config = replace(tiny_kit.config, calibration="auto", train_on_calibration=True)
    with pytest.raises(ConfigError, match="too few"):
        fit_kit(tiny_zoo, _profile(tiny_zoo, tiny_kit), config, progress=False)


def test_protect_config_from_command_line_settings():
    from dataclasses import replace

    from uapfp.errors import ConfigError
    from uapfp.kit import ProtectConfig, protect_config, protect_settings

    assert protect_config() == ProtectConfig() == protect_config(xi=None, augment=None)
    cfg = protect_config(probes=50, views=30, exclude_archs="A, B", augment="", encoder_steps=7, seed=3)
    assert (cfg.n_probes, cfg.n_views, cfg.exclude_archs, cfg.augment) == (50, 30, ("A", "B"), ())
    assert cfg.encoder.steps == 7 and cfg.seed == 3 and cfg.encoder.seed == 0
    assert protect_config(encoder_seed=4, encoder_temperature=0.2).encoder == replace(
        ProtectConfig().encoder, seed=4, temperature=0.2
    )
    settings = {"zoo": "z", "xi": 0.2, "temperature_jitter": 0.5}
    assert protect_settings(settings) == {"xi": 0.2, "temperature_jitter": 0.5}
    # `uapfp protect` passes its encoder flags through (the paper's temperature, another seed)
    from uapfp.cli import build_parser

    args = build_parser().parse_args(
        ["protect", "--zoo", "z", "--out", "k", "--encoder-temperature", "0.1", "--encoder-seed", "2"]
    )
    assert protect_config(**protect_settings(vars(args))).encoder == replace(
        ProtectConfig().encoder, temperature=0.1, seed=2
    )
    assert ProtectConfig().encoder.temperature == 0.15
    with pytest.raises(ConfigError, match="unknown kit setting 'encoder'"):
        protect_config(encoder=1)
    with pytest.raises(ConfigError, match="calibration must be"):
        protect_config(calibration="nope")
