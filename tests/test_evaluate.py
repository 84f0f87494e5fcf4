"""Evaluation on a zoo: AUC and the tallies of verdicts, against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from uapfp.bench import verdict_counts
from uapfp.evaluate import auc, tally


def test_auc_hand_computed():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.9, 0.3], [0.5, 0.1]) == 0.75


def test_benchmark_tallies_hand_computed():
    scored = [("piracy", 0.9, "piracy"), ("piracy", 0.3, "not shown"), ("homologous", 0.5, "piracy"),
              ("homologous", 0.1, "not shown"), ("homologous", 0.2, "not shown")]  # fmt: skip
    t = tally(scored)
    assert t["auc"] == pytest.approx(5 / 6) and (t["piracy_models"], t["homologous_models"]) == (2, 3)
    assert (t["piracy_detected"], t["homologous_flagged"]) == (1, 1)
    assert t["piracy_mean_similarity"] == pytest.approx(0.6) and t["homologous_mean_similarity"] == pytest.approx(
        0.8 / 3
    )
    assert verdict_counts(scored) == {"auc": round(5 / 6, 4), "piracy_detected": "1/2", "homologous_flagged": "1/3"}
    assert tally(scored[:2])["auc"] is None  # no homologous model: no AUC


def test_repeated_errors_hand_computed():
    from uapfp.bench.error_agreement import repeated_errors

    labels = torch.tensor([0, 1, 2, 3, 4])
    victim = torch.tensor([0, 2, 1, 3, 0])  # wrong on images 1, 2 and 4
    assert repeated_errors(victim, torch.tensor([0, 2, 2, 3, 0]), labels) == pytest.approx(2 / 3)
    assert repeated_errors(victim, labels, labels) == 0.0  # a perfect model repeats none
    with pytest.raises(ValueError):
        repeated_errors(labels, victim, labels)
