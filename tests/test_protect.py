"""Building a kit: the model split, the calibration it settles on, the leave-arch-out encoders, the flags."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import replace

import pytest
import torch

from tests.conftest import profile_of
from uapfp.config import ProtectConfig
from uapfp.errors import ConfigError, KitIntegrityError
from uapfp.kit import NULL_ENCODERS_FILE, Kit


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


def test_split_is_per_role_and_architecture():
    from uapfp.protect import split_models

    cards = _cards()
    split = split_models(cards, ProtectConfig(), "A")
    assert split == split_models(cards, ProtectConfig(), "A") and "victim" not in split
    # Per (role, architecture): 4 piracy -> 2 train, 2 held out; 6 homologous -> 2 each.
    per_arch = Counter((c["role"], c["arch"], split[c["id"]]) for c in cards[1:])
    for arch in ("A", "B"):
        assert per_arch[("piracy", arch, "train")] == per_arch[("piracy", arch, "heldout")] == 2
        for part in ("calibration", "train", "heldout"):
            assert per_arch[("homologous", arch, part)] == 2
    held = split_models(cards, ProtectConfig(exclude_archs=("B",)), "A")
    assert all(held[c["id"]] == "heldout" for c in cards if c["arch"] == "B")
    paper = split_models(cards, ProtectConfig(paper_split=True), "A")
    assert all(paper[c["id"]] == "excluded" for c in cards[1:] if c["arch"] == "A")


def test_auto_calibration_needs_four_architectures():
    from uapfp.protect import resolve_calibration

    def cards_of(archs):
        return {f"{r}-{a}-{k}": {"arch": a, "role": r} for a in archs for r in ("piracy", "homologous") for k in (0, 1)}

    auto = ProtectConfig()
    assert auto.calibration == "auto"
    for archs, expected in (("AB", "kit"), ("ABC", "kit"), ("ABCD", "leave-arch-out"), ("ABCDE", "leave-arch-out")):
        cards = cards_of(archs)
        train = {i: ("train" if i.endswith("0") else "calibration") for i in cards}
        assert resolve_calibration(cards, train, auto) == expected
        assert resolve_calibration(cards, train, ProtectConfig(calibration="kit")) == "kit"


def test_leave_arch_out_encoders_train_without_the_architecture(tiny_zoo, tiny_kit, monkeypatch):
    import uapfp.protect as protect_mod
    from uapfp.protect import fit_kit

    seen = []
    real = protect_mod.train_encoder

    def spy(fingerprints, labels, **kwargs):
        seen.append((fingerprints, labels.tolist()))
        return real(fingerprints, labels, **kwargs)

    monkeypatch.setattr(protect_mod, "train_encoder", spy)
    profile = profile_of(tiny_zoo, tiny_kit)
    base = tiny_kit.config
    config = replace(base, calibration="leave-arch-out", encoder=replace(base.encoder, steps=5))
    kit = fit_kit(tiny_zoo, profile, config, progress=False)
    cards = {c["id"]: c for c in tiny_zoo.cards}
    models = kit.info["models"]
    train = sorted(models["train"])
    archs = sorted({cards[i]["arch"] for i in models["calibration"]})
    assert archs == ["A", "C"] and sorted(kit.null_encoders) == archs and len(seen) == 1 + len(archs)
    victim = tiny_zoo.victim["id"]
    for (fingerprints, labels), arch in zip(seen, [None, *archs]):
        # the kit's encoder, then one per calibration architecture; the victim is always the reference
        ids = [victim] + [i for i in train if cards[i]["arch"] != arch]
        assert torch.equal(fingerprints, torch.stack([profile.fingerprints[i] for i in ids]))
        assert labels == [0 if cards[i]["role"] in ("victim", "piracy") else 1 for i in ids]
    assert kit.null_archs == [cards[i]["arch"] for i in kit.info["models"]["calibration"]]


def test_null_similarities_follow_the_calibration(lao_kit):
    from uapfp.calibration import get_calibration
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
    # a leave-arch-out kit holds the kit's encoder too: both calibrations, without editing the kit
    torch.testing.assert_close(get_calibration("kit").similarities(kit, "probs", n), by_kit)
    torch.testing.assert_close(get_calibration("leave-arch-out").similarities(kit, "probs", n), by_arch)
    # label-only suspects are compared label to label, by every encoder
    label = get_calibration("leave-arch-out").similarities(kit, "label", n)
    assert label.shape == (len(kit.null_archs), n) and not torch.allclose(label, by_arch)


def test_kit_without_leave_arch_out_encoders(lao_kit, tmp_path):
    """A kit made before the calibration option loads as ``kit``; one that claims more is refused."""
    from uapfp.calibration import get_calibration
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
    with pytest.raises(KitIntegrityError, match="leave-arch-out encoders"):
        get_calibration("leave-arch-out").similarities(old, "probs", old.n_sets)


def test_leave_arch_out_needs_another_architecture(tiny_zoo, tiny_kit):
    from dataclasses import replace

    from uapfp.protect import fit_kit

    base = tiny_kit.config
    config = replace(base, exclude_archs=("C",), calibration="leave-arch-out", encoder=replace(base.encoder, steps=5))
    with pytest.raises(ConfigError, match="other than A"):
        fit_kit(tiny_zoo, profile_of(tiny_zoo, tiny_kit), config, progress=False)
    kit = fit_kit(tiny_zoo, profile_of(tiny_zoo, tiny_kit), replace(config, calibration="kit"), progress=False)
    assert not kit.null_encoders


def test_protect_takes_few_flags_and_a_config_file(tmp_path):
    """The command line's flags and ``--config FILE`` build the same config as the library."""
    from uapfp.cli import build_parser
    from uapfp.options import given, merged

    def config(*argv):
        args = build_parser(["protect"]).parse_args(["protect", "--zoo", "z", "--out", "k", *argv])
        settings = json.loads(open(args.config).read()) if args.config else {}
        return ProtectConfig.from_dict(merged(settings, given(ProtectConfig, args)))

    assert config() == ProtectConfig()
    assert config("--method", "uap+siblings", "--xi", "0.2", "--paper-split", "--seed", "3") == ProtectConfig(
        method="uap+siblings", xi=0.2, paper_split=True, seed=3
    )
    (tmp_path / "c.json").write_text(json.dumps({"encoder": {"temperature": 0.1, "steps": 7}, "n_views": 4}))
    cfg = config("--config", str(tmp_path / "c.json"), "--fingerprints", "5")  # the file alone is not valid
    assert cfg == ProtectConfig(
        n_views=4, fingerprints=5, encoder=replace(ProtectConfig().encoder, temperature=0.1, steps=7)
    )
    assert ProtectConfig().encoder.temperature == 0.15
    (tmp_path / "bad.json").write_text(json.dumps({"encoder_steps": 3}))
    with pytest.raises(ConfigError, match="unknown kit setting.*'encoder_steps'"):
        config("--config", str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="calibration must be"):
        ProtectConfig(calibration="pooled")
    # at most 15 options, none of those measured and not adopted (docs/method.md)
    parser = build_parser(["protect"])
    protect = parser._subparsers._group_actions[0].choices["protect"]
    flags = [o for a in protect._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert len(flags) <= 15, flags
    retired = ("--train-on-calibration", "--augment", "--stratify", "--temperature-jitter")
    assert not set(flags) & set(retired) and "pooled" not in protect.format_help()


def test_the_default_method_is_decided_when_the_kit_is_built(tiny_kit, tmp_path):
    from uapfp.protect import choose_method

    assert ProtectConfig().method == "auto"
    assert choose_method(8) == "siblings" and choose_method(2) == "siblings" and choose_method(0) == "uap"
    assert choose_method(8, own_victim=True) == "uap"
    # an own victim's uap that cannot show a copy at alpha gives way to siblings, where the zoo has them
    # (siblings the user handed in; the zoo's own siblings of a user's victim flagged its honest models)
    assert choose_method(8, own_victim=True, handed_in=8, floor=0.0137, alpha=0.01) == "siblings"
    assert choose_method(8, own_victim=True, handed_in=8, floor=0.003, alpha=0.01) == "uap"
    assert choose_method(8, own_victim=True, handed_in=0, floor=0.0137, alpha=0.01) == "uap"
    assert choose_method(1, own_victim=True, handed_in=1, floor=0.5, alpha=0.01) == "uap"
    # a kit never says auto: one that does was not built by protect
    kit = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, kit)
    info = json.loads((kit / "kit.json").read_text())
    info["config"]["method"] = "auto"
    (kit / "kit.json").write_text(json.dumps(info))
    from uapfp.storage import sha256_file

    manifest = json.loads((kit / "manifest.json").read_text())
    manifest["files"]["kit.json"] = sha256_file(kit / "kit.json")
    (kit / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KitIntegrityError, match="decided when it is built"):
        Kit.load(kit)


def test_a_kit_records_what_an_exact_copy_gets_and_warns_when_that_cannot_reach_alpha(tiny_zoo, tiny_kit, caplog):
    """The floor is the p-value verify gives the victim itself as a suspect; a kit whose floor is not below
    the level its verdicts are tested at (alpha, or the sequential test's last level) can show no copy, and
    protect says so."""
    from uapfp.protect import fit_kit, p_floor
    from uapfp.sequential import verdict_level
    from uapfp.suspects.spec import card_suspect
    from uapfp.verify import verify

    floor = p_floor(tiny_kit)
    for mode in ("probs", "label"):
        itself = verify(tiny_kit, card_suspect(tiny_zoo.victim, output=mode), sequential=False)
        assert floor[mode] == pytest.approx(itself.p_value, rel=1e-9)
        assert tiny_kit.info["p_floor"][mode] == pytest.approx(floor[mode], rel=1e-5)
    assert "a suspect answering exactly as the victim gets p" in tiny_kit.summary()
    old = replace(tiny_kit, info={k: v for k, v in tiny_kit.info.items() if k != "p_floor"})  # a kit made before
    assert "exactly as the victim" not in old.summary() and "verdicts by method uap" in old.summary()
    for crafted in ({"probs": True, "label": 0.5}, {"probs": "0.1", "label": 0.5}, [0.1], {"probs": 10**400, "label": 0.5}):
        assert "exactly as the victim" not in replace(tiny_kit, info={**tiny_kit.info, "p_floor": crafted}).summary()

    # the sequential test's last look: alpha minus the two early looks' 2.5 % each (20 sets: looks at 5, 10, 20)
    assert verdict_level(0.01, 20, sequential=True) == pytest.approx(0.0095)
    assert verdict_level(0.01, 20, sequential=False) == 0.01

    profile = profile_of(tiny_zoo, tiny_kit)
    fast = replace(tiny_kit.config, encoder=replace(tiny_kit.config.encoder, steps=5))
    # at an alpha below the floor: a warning per answer mode, and the summary says it
    with caplog.at_level("WARNING", logger="uapfp.protect"):
        kit = fit_kit(tiny_zoo, profile, replace(fast, alpha=1e-15), progress=False)
    said = [r.getMessage() for r in caplog.records if "an exact copy gets that" in r.getMessage()]
    assert len(said) == 2 and "with probs answers (uap)" in said[0] and "with label answers (uap)" in said[1]
    assert kit.summary().count(": no copy can be shown)") == 2
    # a floor just below alpha but not below the sequential test's last level (`errors`: no encoder in its floor)
    errors = replace(fast, method="errors")
    errors_floor = p_floor(replace(tiny_kit, config=replace(tiny_kit.config, method="errors")))["probs"]
    for sequential, warned in ((True, 1), (False, 0)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="uapfp.protect"):
            kit = fit_kit(tiny_zoo, profile, replace(errors, alpha=errors_floor / 0.97, sequential=sequential),
                          progress=False)  # fmt: skip
        said = [r.getMessage() for r in caplog.records if "an exact copy gets that" in r.getMessage()]
        assert [s for s in said if "with probs answers (errors)" in s] == said[:warned] and len(said) >= warned
        assert kit.info["p_floor"]["probs"] == pytest.approx(errors_floor, rel=1e-5)


def test_a_method_the_zoo_or_the_test_cannot_serve_is_refused_before_the_long_work(tiny_zoo):
    from types import SimpleNamespace

    from uapfp.protect import plan_models

    without = SimpleNamespace(cards=[c for c in tiny_zoo.cards if c["role"] != "sibling"], victim=tiny_zoo.victim)
    for method in ("siblings", "uap+siblings"):
        with pytest.raises(ConfigError, match=re.escape(f"--method {method} needs 2 or more of the victim's siblings")):
            plan_models(without, ProtectConfig(method=method))
    plan_models(without, ProtectConfig(method="uap"))  # uap needs none
    plan_models(without, ProtectConfig())  # nor does auto, which then takes uap
    with pytest.raises(ConfigError, match="combined method is tested by the model-level test"):
        plan_models(tiny_zoo, ProtectConfig(method="uap+errors", null="global"))
    # a method that reads the victim's errors in fewer sets than a verification asks for (auto: it may take siblings)
    for method in ("siblings", "errors", "auto"):
        with pytest.raises(ConfigError, match=r"lineage_sets \(5\).*fewer than --fingerprints \(8\)"):
            plan_models(tiny_zoo, ProtectConfig(method=method, lineage_sets=5, fingerprints=8))
    plan_models(tiny_zoo, ProtectConfig(method="uap", lineage_sets=5, fingerprints=8))
