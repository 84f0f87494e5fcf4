"""The statistical tests against the formulas, and the false-alarm rate of the default one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uapfp.significance import TESTS, get_test, prediction_greater, welch_greater
from uapfp.verify import PIRACY


def decide(sims, null, *, alpha, rule):
    p = get_test(rule).p_value(sims, null)
    return p, (PIRACY if p < alpha else "not shown")


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


def test_prediction_test_against_the_formula():
    means = np.array([0.1, -0.2, 0.05, 0.0, -0.1])
    sims = np.array([0.5, 0.7, 0.6])
    t = (0.6 - means.mean()) / (means.std(ddof=1) * math.sqrt(1 + 1 / 5))
    from scipy.special import stdtr

    assert prediction_greater(sims, means) == pytest.approx(1 - stdtr(4, t), rel=1e-9)
    assert prediction_greater([-0.5, -0.4], means) > 0.9
    null = np.stack([np.full(4, m) + np.array([0.01, -0.01, 0.02, -0.02]) for m in means])
    p, verdict = decide(sims, null, alpha=0.05, rule="models")
    assert p == pytest.approx(prediction_greater(sims, null.mean(axis=1))) and verdict == PIRACY
    with pytest.raises(ValueError, match="at least 3"):
        prediction_greater(sims, means[:2])


def test_model_level_test_keeps_false_alarms_at_alpha():
    """Honest models: a per-model offset (between-model spread) plus per-fingerprint noise.

    The model-level test flags about alpha of fresh honest models; the paper's Welch test on
    pooled fingerprints flags far more, since it only asks whether a model beats the average.
    """
    rng = np.random.default_rng(0)

    def honest(n):
        return rng.normal(0.0, 0.15, size=(n, 1)) + rng.normal(0.0, 0.05, size=(n, 20))

    flags = {"models": 0, "global": 0}
    trials = 400
    for _ in range(trials):
        null, suspect = honest(15), honest(1)[0]
        for rule in flags:
            flags[rule] += decide(suspect, null, alpha=0.05, rule=rule)[1] == PIRACY
    assert 0.02 < flags["models"] / trials < 0.09
    assert flags["global"] / trials > 0.3


def test_registries_match_the_config_names():
    """The config validates names without importing torch; its lists must match the registries."""
    from uapfp.calibration import CALIBRATIONS
    from uapfp.config import CALIBRATION_NAMES, NORMS, TEST_NAMES, UAP_METHOD_NAMES
    from uapfp.uap import NORMS as UAP_NORMS
    from uapfp.uap import UAP_METHODS

    assert tuple(TESTS) == TEST_NAMES and tuple(CALIBRATIONS) == CALIBRATION_NAMES
    assert tuple(UAP_METHODS) == UAP_METHOD_NAMES and UAP_NORMS == NORMS
