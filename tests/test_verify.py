"""Verification: the statistics, end to end on the tiny zoo, budgets, and a user's own victim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uapfp.verify import INCONCLUSIVE, NOT_SHOWN, PIRACY, auc, evaluate, open_suspect, verify, welch_greater
from uapfp.zoo import card_suspect


def test_welch_against_the_formula():
    a = np.array([0.9, 0.95, 0.85, 0.92])
    b = np.array([0.1, 0.3, -0.2, 0.05, 0.2])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.special import stdtr

    assert welch_greater(a, b) == pytest.approx(1 - stdtr(df, t), rel=1e-9)
    assert welch_greater(b, a) > 0.99
    assert welch_greater([1.0, 1.0], [0.0, 0.0]) == 0.0 and welch_greater([0.0, 0.0], [1.0, 1.0]) == 1.0


def test_auc_hand_computed():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.9, 0.3], [0.5, 0.1]) == 0.75


def _card(zoo, kit, role):
    ids = kit.info["models"]["heldout"]
    return next(c for c in zoo.cards if c["id"] in ids and c["role"] == role)


def test_end_to_end_separates_piracy_from_homologous(tiny_zoo, tiny_kit):
    pir = verify(tiny_kit, card_suspect(_card(tiny_zoo, tiny_kit, "piracy")))
    hom = verify(tiny_kit, card_suspect(_card(tiny_zoo, tiny_kit, "homologous")))
    assert pir.similarity > hom.similarity + 0.3, (pir.similarity, hom.similarity)
    assert pir.verdict == PIRACY and pir.p_value < 0.01
    assert hom.verdict == NOT_SHOWN
    assert pir.queries == 2 * 30 * 8 and pir.fingerprints == 8 and len(pir.per_fingerprint) == 8
    victim = verify(tiny_kit, card_suspect(tiny_zoo.victim))
    assert victim.similarity == pytest.approx(1.0, abs=1e-5) and victim.verdict == PIRACY


def test_evaluate_reports_table(tiny_zoo, tiny_kit):
    ev = evaluate(tiny_kit, tiny_zoo)
    s = ev.summary()
    assert s["piracy_models"] >= 2 and s["homologous_models"] >= 2
    assert set(s) >= {"auc", "piracy_mean_similarity", "homologous_mean_similarity", "homologous_flagged"}
    assert {g["role"] for g in ev.groups} == {"piracy", "homologous"}
    assert "AUC" in ev.render()


def test_budget_exhausted_is_inconclusive(tiny_zoo, tiny_kit):
    card = _card(tiny_zoo, tiny_kit, "piracy")
    s = card_suspect(card, max_queries=2 * 30 * 3 + 10)
    v = verify(tiny_kit, s)
    assert v.verdict == INCONCLUSIVE and v.fingerprints == 3 and s.queries <= 2 * 30 * 3 + 10
    assert "budget" in v.message and math.isfinite(v.similarity)


def test_label_only_suspect_is_compared_label_to_label(tiny_zoo, tiny_kit):
    card = _card(tiny_zoo, tiny_kit, "piracy")
    v = verify(tiny_kit, card_suspect(card, output="label"))
    assert v.output_mode == "label" and math.isfinite(v.similarity)


def test_user_victim_through_zoo_protect_verify(tmp_path, capsys):
    """A victim trained elsewhere (tests.helpers:tiny_mlp, safetensors weights) goes through the CLI."""
    from safetensors.torch import save_file

    from tests.helpers import tiny_mlp
    from uapfp.cli import main
    from uapfp.data import load_dataset
    from uapfp.training import TrainConfig, train_model

    data = load_dataset("fashion-mnist-slice")
    model = tiny_mlp()
    train_model(model, data.x_train[:3000], data.y_train[:3000], config=TrainConfig(epochs=2), progress=False)
    save_file(model.state_dict(), tmp_path / "victim.safetensors")
    zoo_dir, kit_dir = tmp_path / "zoo", tmp_path / "kit"
    args = ["-q", "zoo", "build", "--preset", "tiny", "--victim", "tests.helpers:tiny_mlp",
            "--victim-weights", str(tmp_path / "victim.safetensors"), "--victim-data", "fashion-mnist-slice[0:3000]",
            "--archs", "C", "--attacks", "knockoff,copycat", "--piracy", "2", "--homologous", "3", "--epochs", "1",
            "--out", str(zoo_dir)]  # fmt: skip
    assert main(args) == 0
    from uapfp.zoo import Zoo

    zoo = Zoo.load(zoo_dir)
    assert zoo.victim["arch"] == "tests.helpers:tiny_mlp" and zoo.splits()["victim"].tolist() == list(range(3000))
    assert main(["-q", "protect", "--zoo", str(zoo_dir), "--out", str(kit_dir), "--uap-method", "sgd", "--xi", "0.25",
                 "--probes", "20", "--views", "4", "--fingerprints", "5", "--encoder-steps", "60"]) == 0  # fmt: skip
    capsys.readouterr()
    pir = zoo_dir / "models" / "piracy-C-adam-00.json"
    assert main(["verify", "--kit", str(kit_dir), "--suspect", str(pir), "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and (tmp_path / "v.json").is_file() and (tmp_path / "v.queries.jsonl").is_file()
    # The same victim, given as factory + weights, is the victim: similarity 1.
    s = open_suspect("tests.helpers:tiny_mlp", input_shape=(1, 28, 28), num_classes=10,
                     weights=str(tmp_path / "victim.safetensors"))  # fmt: skip
    from uapfp.kit import Kit

    assert verify(Kit.load(kit_dir), s).similarity == pytest.approx(1.0, abs=1e-5)
    assert torch.is_tensor(zoo.splits()["pool"])
