"""Fingerprint methods: every registered one through one contract, the hand-computed cases, the combined test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uapfp.methods import METHODS, Reference, get_method, repeated_mistakes, standardise
from uapfp.significance import prediction_greater
from uapfp.suspects.base import OutputMode
from uapfp.suspects.spec import card_suspect
from uapfp.verify import PIRACY, verify


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_through_one_contract(tiny_zoo, tiny_kit, name):
    """Shapes, answer modes, and the victim's own answers scored at least as close as an honest model's."""
    method = METHODS[name]
    sets = method.sets(tiny_kit)
    assert sets.dim() == 5 and tuple(sets.shape[2:]) == tiny_kit.input_shape and sets.shape[0] >= 8
    honest = next(
        c for c in tiny_zoo.cards if c["role"] == "homologous" and c["id"] in tiny_kit.info["models"]["heldout"]
    )
    for mode in ("probs", "topk:3", "label"):
        answers = {}
        for who, card in (("victim", tiny_zoo.victim), ("honest", honest)):
            suspect = card_suspect(card, output=mode)
            answers[who] = torch.stack([suspect(s) for s in sets[:6]])
        sims = {who: method.similarities(tiny_kit, a, mode) for who, a in answers.items()}
        null = method.null(tiny_kit, mode, 6, get_calibration_of(tiny_kit))
        assert sims["victim"].shape == (6,) and null.shape == (tiny_kit.null_fingerprints.shape[0], 6)
        assert torch.isfinite(sims["victim"]).all() and torch.isfinite(null).all()
        assert sims["victim"].mean() >= sims["honest"].mean(), (name, mode)
        # the same answers, given as a batch of two suspects, score as each alone
        both = method.similarities(tiny_kit, torch.stack([answers["victim"], answers["honest"]]), mode)
        torch.testing.assert_close(both[1], sims["honest"])


def get_calibration_of(kit):  # type: ignore[no-untyped-def]
    from uapfp.calibration import get_calibration

    return get_calibration(kit.config.calibration)


def _reference(victim, labels, null, siblings):  # type: ignore[no-untyped-def]
    s, n = labels.shape
    return Reference(torch.zeros(s, n, 1, 2, 2), victim, labels, null, siblings)


def test_lineage_methods_score_a_copy_closer_than_an_honest_model():
    """A synthetic case: siblings share the victim's 'data function'; the victim adds its own
    deviation; a copy keeps it (with noise); an honest model has a deviation of its own."""
    gen = torch.Generator().manual_seed(0)
    s, n, k = 10, 40, 5

    def probs(logits):  # type: ignore[no-untyped-def]
        return torch.softmax(logits, -1)

    base = torch.randn(s, n, k, generator=gen) * 2
    labels = base.argmax(-1)
    own = torch.randn(s, n, k, generator=gen)
    victim = probs(base + own)
    siblings = probs(base + torch.randn(8, s, n, k, generator=gen))
    copy = probs(base + own + 0.3 * torch.randn(s, n, k, generator=gen))
    honest = probs(base + torch.randn(s, n, k, generator=gen))
    ref = _reference(victim, labels, torch.stack([honest, honest]), siblings)
    for name in ("errors", "sac", "ipguard", "siblings"):
        method = METHODS[name]
        for mode in ("probs", "label"):
            r = ref.truncated(mode, s)
            from uapfp.methods import truncate

            c, h = method.compare(r, truncate(copy, mode)), method.compare(r, truncate(honest, mode))
            assert c.mean() > h.mean(), (name, mode, float(c.mean()), float(h.mean()))


def test_repeated_mistakes_hand_computed():
    # one set of three images, K = 3; the victim says 1, 2, 0 where the truth is 0, 0, 2
    victim_labels, labels = torch.tensor([[1, 2, 0]]), torch.tensor([[0, 0, 2]])
    answers = torch.tensor([[[0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4]]])
    # on the victim's labels: 0.7 + 0.4 + 0.3 = 1.4; wrong mass: 0.8 + 0.5 + 0.6 = 1.9; prior 1/2 over 1
    assert float(repeated_mistakes(victim_labels, labels, answers)[0]) == pytest.approx((1.4 + 0.5) / (1.9 + 1))
    # label-only: the suspect says 1 (the victim's mistake), 0 (right), 0 (the victim's mistake again)
    one_hot = torch.nn.functional.one_hot(torch.tensor([[1, 0, 0]]), 3).float()
    assert float(repeated_mistakes(victim_labels, labels, one_hot)[0]) == pytest.approx((2 + 0.5) / (2 + 1))
    # ... or 1 (the victim's), 0 (right), 1 (a mistake of its own): one of its two mistakes is the victim's
    one_hot = torch.nn.functional.one_hot(torch.tensor([[1, 0, 1]]), 3).float()
    assert float(repeated_mistakes(victim_labels, labels, one_hot)[0]) == pytest.approx((1 + 0.5) / (2 + 1))
    # a better honest model makes fewer mistakes, and is not favoured or penalised for it
    perfect = torch.nn.functional.one_hot(labels, 3).float()
    assert float(repeated_mistakes(victim_labels, labels, perfect)[0]) == pytest.approx(0.5)  # the prior, 1/(K-1)


def test_standardise_hand_computed():
    null = torch.tensor([[0.0, 1.0, 2.0], [10.0, 20.0, 30.0]])  # two channels, three calibration models
    z, z_null = standardise(torch.tensor([3.0, 40.0]), null)
    assert float(z) == pytest.approx(2.0)  # the mean of (3 - 1) / 1 and (40 - 20) / 10
    torch.testing.assert_close(z_null, torch.tensor([-1.0, 0.0, 1.0]))


def test_the_combined_test_keeps_false_alarms_at_alpha():
    """Honest models whose two channels are correlated (rho 0.6) and of different scales:
    the combined statistic's prediction test flags about alpha of fresh honest suspects."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    scale = np.array([0.1, 3.0])
    flagged, trials = 0, 2000
    for _ in range(trials):
        draws = rng.multivariate_normal([0.0, 0.0], cov, size=31) * scale + np.array([0.2, -1.0])
        z, z_null = standardise(torch.tensor(draws[0]), torch.tensor(draws[1:].T))
        flagged += prediction_greater(np.array([float(z)]), z_null.numpy()) < 0.05
    assert 0.035 < flagged / trials < 0.07, flagged / trials


def test_combined_methods_through_verify(tiny_zoo, tiny_kit):
    pirate = next(c for c in tiny_zoo.cards if c["role"] == "piracy" and c["id"] in tiny_kit.info["models"]["heldout"])
    suspect = card_suspect(pirate)
    v = verify(tiny_kit, suspect, method="uap+errors+siblings", fingerprints=5)
    assert v.method == "uap+errors+siblings" and [c["method"] for c in v.channels] == ["uap", "errors", "siblings"]
    errors = tiny_kit.references["errors"]
    # the errors sets are sent once, though two channels read them
    classes = tiny_kit.references["classes"].queries.shape[1]  # the class-order check's, sent first
    assert suspect.queries == classes + 5 * (2 * tiny_kit.probe_images.shape[1] + errors.queries.shape[1])
    single = verify(tiny_kit, card_suspect(pirate), method="uap", fingerprints=5)
    assert single.similarity == pytest.approx(v.channels[0]["similarity"], abs=1e-6)
    assert single.verdict == PIRACY and get_method("uap+errors").name == "uap+errors"
    with pytest.raises(Exception, match="unknown method"):
        get_method("uap+nothing")
    assert str(OutputMode.parse("label")) == "label"
