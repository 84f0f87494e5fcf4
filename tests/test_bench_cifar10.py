"""``uapfp bench cifar10``'s glue on the tiny zoo and kit: held-out suspects of the zoo's
architectures and of one left out, every method on the same answers, the report, and a rerun
that resumes instead of training again. The CIFAR presets themselves are measured by the
benchmark (docs/benchmark-cifar10.md), not here."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace

import pytest

from uapfp.bench import cifar10 as bench
from uapfp.errors import ConfigError

from .conftest import tiny_zoo_config

KINDS = ("honest-dv-b", "honest-overlap", "copy-knockoff", "mod-prune60", "mod-int8")


@pytest.fixture()
def tiny_preset(monkeypatch):
    preset = bench.Cifar10Preset(zoo=tiny_zoo_config(), suspect_archs=("A", "C", "E"), suspect_kinds=KINDS,
                                 suspect_epochs=1)  # fmt: skip
    monkeypatch.setitem(bench.PRESETS, "tiny-test", preset)


def test_the_benchmark_scores_every_method_on_suspects_in_and_out_of_the_zoo(tiny_zoo, tiny_kit, tiny_preset, tmp_path,
                                                                              caplog):  # fmt: skip
    work = tmp_path / "work"
    shutil.copytree(tiny_zoo.path, work / "zoo")  # the zoo and kit the preset would build, already built
    shutil.copytree(tiny_kit.path, work / "kit")
    config = bench.Cifar10Config(preset="tiny-test", data="fashion-mnist-slice", work=str(work), outputs=("probs",))
    built = {p: p.stat().st_mtime_ns for p in [*(work / "zoo" / "models").iterdir(), *(work / "kit").iterdir()]}
    caplog.set_level(logging.INFO, logger="uapfp.bench.suspects_zoo")
    report = bench.cifar10(config)
    assert len([r for r in caplog.records if r.name == "uapfp.bench.suspects_zoo"]) == 3 * len(KINDS)  # each trained

    assert {(s["arch"], s["half"]) for s in report.suspects} == {("A", "in-zoo"), ("C", "in-zoo"), ("E", "left-out")}
    methods = ("uap", "uap-raw", "errors", "sac", "ipguard", "siblings")
    assert {(r["half"], r["method"]) for r in report.rows} == {(h, m) for h in ("in-zoo", "left-out") for m in methods}
    for row in report.rows:  # knockoff, pruned and INT8 copies and two honest models per architecture
        assert (row["copies"], row["honest"]) == ((6, 4) if row["half"] == "in-zoo" else (3, 2))
        mine = [s for s in report.suspects if (s["half"], s["method"], s["outputs"]) == (row["half"], row["method"], "probs")]
        pos = [s["similarity"] for s in mine if s["role"] == "piracy"]
        neg = [s["similarity"] for s in mine if s["role"] == "homologous"]
        assert row["auc"] == pytest.approx(sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg)), abs=1e-4)
        assert row["detected"] == sum(s["verdict"] == "piracy" for s in mine if s["role"] == "piracy")
    assert report.default_method == tiny_kit.config.method
    attacks = {a["attack"]: a for a in report.attacks}
    assert set(attacks) >= {"knockoff", "copycat", "cloudleak"}  # the zoo's copies and the suspects'
    zoo_copies = [c for c in tiny_zoo.select("piracy") if c["attack"]["name"] == "copycat"]
    want = sum(c["test_accuracy"] for c in zoo_copies) / len(zoo_copies) / tiny_zoo.victim["test_accuracy"]
    assert attacks["copycat"]["mean_recovery"] == pytest.approx(want, abs=1e-4)
    dv_e = next(s["test_accuracy"] for s in report.suspects if s["name"] == "E-honest-dv-b")
    arch_e = next(a for a in report.archs if a["arch"] == "E")
    assert arch_e["honest_on_dv_recovery"] == pytest.approx(dv_e / tiny_zoo.victim["test_accuracy"], abs=1e-4)
    per_arch = {r["arch"]: r for r in report.per_arch}
    assert set(per_arch) == {"A", "C", "E"} and per_arch["E"]["half"] == "left-out"
    mine = [s for s in report.suspects
            if (s["arch"], s["role"], s["method"]) == ("E", "piracy", report.default_method)]  # fmt: skip
    assert per_arch["E"]["copies_mean_similarity"] == pytest.approx(sum(s["similarity"] for s in mine) / len(mine), abs=1e-4)
    text = (work / "report.md").read_text()
    assert text == report.markdown and "| left-out |" in text
    assert "uapfp bench cifar10 --data fashion-mnist-slice --preset tiny-test" in text
    assert json.loads((work / "report.json").read_text())["rows"] == report.rows
    # The zoo and kit were resumed, not built again.
    assert {p: p.stat().st_mtime_ns for p in built} == built

    # A rerun trains nothing (every suspect is read back) and scores the same.
    caplog.clear()
    again = bench.cifar10(config)
    untimed = [{k: v for k, v in r.items() if k != "seconds_per_suspect"} for r in report.rows]
    assert [{k: v for k, v in r.items() if k != "seconds_per_suspect"} for r in again.rows] == untimed
    assert again.attacks == report.attacks
    assert not [r for r in caplog.records if r.name == "uapfp.bench.suspects_zoo"]

    # Suspects trained with another recipe are never mixed in silently.
    bench.PRESETS["tiny-test"] = replace(bench.PRESETS["tiny-test"], suspect_epochs=2)
    with pytest.raises(ConfigError, match="was trained with"):
        bench.cifar10(config)


def test_a_kit_is_reused_only_for_the_zoo_it_was_protected_from(tiny_zoo, tiny_kit, tmp_path):
    import os

    from uapfp.kit import Kit
    from uapfp.zoo import Zoo

    work = tmp_path / "work"
    shutil.copytree(tiny_zoo.path, work / "zoo")
    shutil.copytree(tiny_kit.path, work / "kit")
    zoo, kit = Zoo.load(work / "zoo"), Kit.load(work / "kit")
    assert bench._kit_of(kit, zoo)
    honest = next(c for c in zoo.cards if c["role"] == "homologous")
    # A zoo of other models (one fewer here) is another zoo.
    assert not bench._kit_of(kit, replace(zoo, cards=[c for c in zoo.cards if c is not honest]))
    # A zoo model written after the kit (trained again with another recipe) makes the kit stale.
    later = (work / "kit" / "manifest.json").stat().st_mtime + 10
    os.utime(honest["_path"], (later, later))
    assert not bench._kit_of(kit, Zoo.load(work / "zoo"))


def test_benchmark_suspects_of_another_victim_are_refused(tiny_zoo, tmp_path):
    import copy

    import torch

    from uapfp.bench.suspects_zoo import build_suspects
    from uapfp.cards import load_model_from_card

    data, victim = tiny_zoo.load_dataset(), load_model_from_card(tiny_zoo.victim)
    kw = dict(families=("C",), kinds=("honest-dv-b",), epochs=1, half=lambda family: "dev")
    first = build_suspects(tmp_path, victim, data, tiny_zoo.splits(), **kw)
    assert build_suspects(tmp_path, victim, data, tiny_zoo.splits(), **kw) == first  # read back, not trained
    other = copy.deepcopy(victim)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # another victim: the cached suspects copied (or not) this one
    with pytest.raises(ConfigError, match="another victim"):
        build_suspects(tmp_path, other, data, tiny_zoo.splits(), **kw)
    # A card from before the victim was recorded is read back as it was.
    card = tmp_path / "C-honest-dv-b.json"
    old = json.loads(card.read_text())
    del old["recipe"]["victim"]
    card.write_text(json.dumps(old))
    assert [r.name for r in build_suspects(tmp_path, other, data, tiny_zoo.splits(), **kw)] == ["C-honest-dv-b"]
    # So is one from before ART's schedule, augmentation and the copies' budget were recorded (constant,
    # none, 20,000 queries: the defaults) ...
    for key in ("art_schedule", "art_augment", "budget"):
        del old["recipe"][key]
    card.write_text(json.dumps(old))
    assert [r.name for r in build_suspects(tmp_path, other, data, tiny_zoo.splits(), **kw)] == ["C-honest-dv-b"]
    # ... and refused where the recipe asks for another (the CIFAR presets': cosine, the whole pool).
    for other_recipe in ({"art_schedule": "cosine"}, {"budget": None}):
        with pytest.raises(ConfigError, match="was trained with"):
            build_suspects(tmp_path, other, data, tiny_zoo.splits(), **kw, **other_recipe)
    with pytest.raises(ConfigError, match="budget must be"):
        build_suspects(tmp_path, other, data, tiny_zoo.splits(), **kw, budget=0)


def test_arts_thief_trains_its_own_model_with_augmentation_inside_and_a_cosine_rate(tiny_zoo, monkeypatch):
    """ART's KnockoffNets as the CIFAR presets run it: the budget's queries, the thief's model
    returned trained, its augmentation in training mode only, the rate annealed over the epochs
    of each fit (the adaptive strategy fits once per query: each fit starts from the rate again)."""
    import numpy as np
    import torch
    from torch import nn

    import uapfp.training
    from uapfp.archs import create_model
    from uapfp.bench.suspects_zoo import _art_knockoff, _art_thief, _TrainTimeAugment
    from uapfp.cards import load_model_from_card
    from uapfp.suspects.local import TorchSuspect

    flip = _TrainTimeAugment(nn.Identity(), "flip", seed=0)
    x = torch.rand(64, 1, 5, 5)
    assert torch.equal(flip.eval()(x), x)
    out = flip.train()(x)
    mirrored, same = ((out == x.flip(3)).flatten(1).all(1), (out == x).flatten(1).all(1))
    assert (mirrored | same).all() and 10 < int(mirrored.sum()) < 54  # about half, each image whole

    # Two fits, as the adaptive strategy makes them: the second still trains (its rate starts at 1e-3).
    net = nn.Sequential(nn.Flatten(), nn.Linear(25, 3))
    thief = _art_thief(net, "cosine", input_shape=(1, 5, 5), nb_classes=3, device_type="cpu")
    xs, ys = np.random.default_rng(0).random((32, 1, 5, 5), dtype=np.float32), np.eye(3)[np.arange(32) % 3]
    thief.fit(x=xs, y=ys, batch_size=8, nb_epochs=1, verbose=False)
    after_one = [p.detach().clone() for p in net.parameters()]
    assert thief.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # annealed over its one epoch
    thief.fit(x=xs, y=ys, batch_size=8, nb_epochs=3, verbose=False)
    assert any(not torch.equal(a, b) for a, b in zip(after_one, net.parameters()))

    calls = []
    augment_batch = uapfp.training.augment_batch
    monkeypatch.setattr(uapfp.training, "augment_batch", lambda *a: calls.append(1) or augment_batch(*a))
    data, victim = tiny_zoo.load_dataset(), load_model_from_card(tiny_zoo.victim)
    pool = data.x_train[tiny_zoo.splits()["pool"]][:400]
    oracle = TorchSuspect(victim, input_shape=data.input_shape, num_classes=data.num_classes, name="victim")
    torch.manual_seed(0)
    model = create_model("C", in_channels=1, image_size=(28, 28), num_classes=10)
    before = [p.detach().clone() for p in model.parameters()]
    stolen, queries = _art_knockoff(oracle, pool, None, model, adaptive=False, seed=0, epochs=3, schedule="cosine",
                                    augment="crop:2+flip", budget=300)  # fmt: skip
    assert stolen is model and not stolen.training and queries == oracle.queries == 300
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # trained in place
    assert len(calls) == 3 * 3  # every batch of 128 of the 300 images, each of the 3 epochs
