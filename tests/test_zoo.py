"""Building a zoo: cards, resume after an interruption, nothing half-written read as finished."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import uapfp.zoo.build as zoo_mod
from uapfp.cards import card_is_finished, load_model_from_card
from uapfp.errors import ConfigError
from uapfp.zoo import Zoo, ZooConfig, build_zoo, plan_jobs, plan_rounds, preset, zoo_table

MINI = dict(archs=("C",), include_victim_arch=False, optimizers=("adam",), piracy_per_cell=1, homologous_per_cell=2, epochs=1,
            attacks=("knockoff",), attack_options={"knockoff": {"budget": 500}}, siblings=0)  # fmt: skip


def test_plan_is_deterministic_and_spreads_attacks():
    cfg = preset("small")
    jobs = plan_jobs(cfg)
    assert jobs == plan_jobs(cfg)
    assert len(jobs) == 5 * 3 * (6 + 9)
    for arch in "ABCDE":
        attacks = {j.attack for j in jobs if j.arch == arch and j.role == "piracy"}
        assert attacks == {"knockoff", "copycat", "jbda", "cloudleak"}, (arch, attacks)
    assert {j.batch_size for j in jobs} <= {64, 128, 256}
    paper = plan_jobs(preset("paper"))
    assert {j.arch for j in paper} == {"B", "C", "D", "E"} and len(paper) == 4 * 3 * 20


def test_growing_a_zoo_by_a_round_keeps_its_models():
    small = preset("small")
    first = plan_jobs(replace(small, piracy_per_cell=2, homologous_per_cell=3))
    second = plan_jobs(replace(small, piracy_per_cell=4, homologous_per_cell=6))
    grown = plan_jobs(small)
    assert second[: len(first)] == first  # the 2 + 3 zoo's jobs, unchanged, then the second round
    assert grown[: len(second)] == second  # and the 4 + 6 zoo's, then the third
    assert len({j.id for j in grown}) == len(grown)
    for arch in "ABCDE":
        for opt in ("sgd", "adam", "rmsprop"):
            ids = sorted(j.id for j in grown if (j.arch, j.optimizer, j.role) == (arch, opt, "piracy"))
            assert ids == [f"piracy-{arch}-{opt}-{i:02d}" for i in range(6)]
            assert sum((j.arch, j.optimizer, j.role) == (arch, opt, "homologous") for j in grown) == 9
    # Rounds never exceed the totals; what they leave out forms the last round.
    assert plan_rounds(replace(small, piracy_per_cell=1, homologous_per_cell=5)) == [(1, 3), (0, 2)]
    assert plan_rounds(replace(small, piracy_per_cell=7, homologous_per_cell=9)) == [(2, 3), (2, 3), (3, 3)]
    assert plan_rounds(replace(small, rounds=())) == [(6, 9)]
    with pytest.raises(ConfigError):
        replace(small, rounds=((1, -1),))
    assert ZooConfig.from_dict(small.to_dict()) == small


def test_build_cards_and_resume_after_interruption(tmp_path, monkeypatch):
    cfg = preset("tiny", **MINI)
    real_train_job = zoo_mod._train_job
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(args[2].id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-build
        return real_train_job(*args, **kwargs)

    monkeypatch.setattr(zoo_mod, "_train_job", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(tmp_path, cfg, progress=False)
    first, second, third = [j.id for j in plan_jobs(cfg)]
    assert card_is_finished(tmp_path / "models" / "victim.json")
    assert card_is_finished(tmp_path / "models" / f"{first}.json")
    assert not (tmp_path / "models" / f"{second}.json").exists()

    # A weights file whose card says otherwise (e.g. a crash after a later rewrite) is not finished.
    card = json.loads((tmp_path / "models" / f"{first}.json").read_text())
    (tmp_path / "models" / card["weights"]).write_bytes(b"half-written")
    assert not card_is_finished(tmp_path / "models" / f"{first}.json")

    calls.clear()
    monkeypatch.setattr(zoo_mod, "_train_job", lambda *a, **k: (calls.append(a[2].id), real_train_job(*a, **k))[1])
    zoo = build_zoo(tmp_path, cfg, progress=False)
    assert calls == [first, second, third]  # victim skipped; the damaged and unfinished ones redone
    calls.clear()
    build_zoo(tmp_path, cfg, progress=False)
    assert calls == []  # everything finished: nothing retrained
    assert {c["id"] for c in zoo.cards} == {"victim", first, second, third}
    assert not list(tmp_path.rglob("*.tmp"))

    # A model trained with an older recipe (here: another learning rate) is trained again.
    path = tmp_path / "models" / f"{third}.json"
    card = json.loads(path.read_text())
    card["train"]["lr"] *= 2
    path.write_text(json.dumps(card))
    build_zoo(tmp_path, cfg, progress=False)
    assert calls == [third]
    assert json.loads(path.read_text())["train"]["lr"] == card["train"]["lr"] / 2

    # A victim of another recipe is never kept under models measured against this one.
    path = tmp_path / "models" / "victim.json"
    card = json.loads(path.read_text())
    card["train"]["augment"] = "crop:4+flip"
    path.write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="victim.json was trained with another recipe"):
        build_zoo(tmp_path, cfg, progress=False)
    # Begun in bfloat16 on a CPU with AMX, resumed on one without: the message says so.
    card["train"]["augment"] = cfg.augment
    card["train"]["cpu_bf16"] = True
    path.write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="trained in bfloat16: a preset trains in bfloat16 only on a CPU with AMX"):
        build_zoo(tmp_path, cfg, progress=False)


def test_cards_hold_what_the_issue_lists(tmp_path):
    zoo = build_zoo(tmp_path, preset("tiny", **MINI), progress=False)
    pir = zoo.select("piracy")[0]
    for key in (
        "role",
        "arch",
        "optimizer",
        "batch_size",
        "seed",
        "data",
        "attack",
        "queries",
        "test_accuracy",
        "fidelity",
        "recovery_rate",
        "train_seconds",
        "weights_sha256",
    ):
        assert key in pir, key
    assert pir["queries"] == 500 and pir["attack"]["name"] == "knockoff"
    assert 0 < pir["fidelity"] <= 1 and pir["recovery_rate"] == pytest.approx(
        pir["test_accuracy"] / zoo.victim["test_accuracy"], abs=1e-4
    )
    hom = zoo.select("homologous")[0]
    assert hom["queries"] == 0 and hom["data"]["overlap"] == 0.5
    model = load_model_from_card(pir)
    assert sum(p.numel() for p in model.parameters()) > 0
    rows = zoo_table(Zoo.load(tmp_path))
    assert [r["role"] for r in rows] == ["victim", "piracy", "homologous", "homologous"]


def test_other_settings_refused(tmp_path):
    build_zoo(tmp_path, preset("tiny", **{**MINI, "piracy_per_cell": 0, "homologous_per_cell": 0}), progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        build_zoo(tmp_path, preset("tiny", **{**MINI, "seed": 5}), progress=False)


def test_victim_arch_joins_the_zoo(tmp_path, monkeypatch):
    planned = []
    monkeypatch.setattr(zoo_mod, "_train_job", lambda *a, **k: planned.append(a[2].arch))
    cfg = preset("tiny", **{**MINI, "include_victim_arch": True, "epochs": 1})
    build_zoo(tmp_path, cfg, progress=False)
    assert sorted(set(planned)) == ["A", "C"]  # the victim's architecture A was added


def test_siblings_are_the_victims_architecture_and_recipe_on_its_data(tmp_path):
    """Siblings: the victim retrained with other seeds; they neither train the encoder nor calibrate it."""
    from uapfp.config import ProtectConfig
    from uapfp.protect import split_models
    from uapfp.zoo.config import plan_siblings

    cfg = preset("tiny", **{**MINI, "piracy_per_cell": 0, "homologous_per_cell": 0, "siblings": 2})
    zoo = build_zoo(tmp_path, cfg, progress=False)
    siblings = zoo.select("sibling")
    victim = zoo.victim
    assert [c["id"] for c in siblings] == ["sibling-00", "sibling-01"] and not plan_jobs(cfg)  # no other job
    for card in siblings:
        assert card["arch"] == victim["arch"] and card["optimizer"] == victim["optimizer"]
        assert card["batch_size"] == victim["batch_size"] and card["train"]["epochs"] == victim["train"]["epochs"]
        assert card["data"]["size"] == victim["data"]["size"] and card["data"]["split"] == "sibling"
        assert card["seed"] != victim["seed"]
    assert [c["seed"] for c in siblings] == [j.seed for j in plan_siblings(cfg, "A")]
    assert split_models(zoo.cards, ProtectConfig(), victim["arch"]) == {}
    with pytest.raises(ConfigError, match="siblings"):
        replace(cfg, siblings=1)


def _without_timing(card):
    timing = {"train_seconds", "wall_seconds", "_path"}
    return {k: v for k, v in card.items() if k not in timing}


def test_a_ray_build_writes_the_sequential_builds_cards_and_weights(tmp_path):
    """Ray tasks (a local instance with 2 CPUs) and the sequential build, both with one torch thread
    per model, write the same cards (timing aside) and the same weights; a Ray build resumes too."""
    import ray
    import torch

    cfg = preset("tiny", **{**MINI, "piracy_per_cell": 2, "attacks": ("knockoff", "jbda"), "siblings": 2,
                            "attack_options": {"knockoff": {"budget": 500},
                                               "jbda": {"seed_size": 150, "rounds": 1, "round_epochs": 1}}})  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = build_zoo(tmp_path / "seq", cfg, progress=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            on_ray = build_zoo(tmp_path / "ray", cfg, progress=False, ray_address="local")
            assert ray.is_initialized()  # an instance the caller started is left running
            # Resume: a model whose card is gone is trained again, and only it.
            gone = tmp_path / "ray" / "models" / "piracy-C-adam-01.json"
            gone.unlink()
            stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "models").glob("*.json")}
            resumed = build_zoo(tmp_path / "ray", cfg, progress=False, ray_address="local")
        finally:
            ray.shutdown()
    finally:
        torch.set_num_threads(threads)
    seq = {c["id"]: _without_timing(c) for c in sequential.cards}
    assert len(seq) == 1 + 2 + 2 + 2  # the victim, 2 piracy and 2 homologous models of C, 2 siblings
    assert {c["id"]: _without_timing(c) for c in on_ray.cards} == seq
    assert {c["id"]: _without_timing(c) for c in resumed.cards} == seq
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in (tmp_path / "ray" / "models").glob("*.json")
               if p.name in stamps)  # fmt: skip
    assert not list((tmp_path / "ray").rglob("*.tmp"))


def test_the_quick_preset_is_the_small_presets_first_round_in_bfloat16_where_the_cpu_has_amx(monkeypatch):
    from uapfp.zoo import config as zoo_config
    from uapfp.zoo.config import job_train_config, plan_siblings, victim_epochs

    small = preset("small")
    for amx in (True, False):
        monkeypatch.setattr(zoo_config, "cpu_has_amx", lambda amx=amx: amx)
        cfg = preset("quick")
        assert cfg.cpu_bf16 is amx and not preset("small").cpu_bf16  # small keeps float32 (its figures' recipe)
        jobs = plan_jobs(cfg)
        assert jobs == plan_jobs(replace(small, piracy_per_cell=2, homologous_per_cell=3))
        assert len(jobs) == 5 * 3 * (2 + 3) and cfg.siblings == 8
        assert {job_train_config(cfg, j).cpu_bf16 for j in (*jobs, *plan_siblings(cfg, cfg.victim_arch))} == {amx}
    # Grown by two rounds, it plans small's models (in its own precision).
    assert plan_jobs(preset("quick", piracy_per_cell=6, homologous_per_cell=9)) == plan_jobs(small)
    assert victim_epochs(small) == small.epochs  # unset: the victim trains the zoo's epochs
    with pytest.raises(ConfigError, match="victim_epochs"):
        preset("quick", victim_epochs=0)
