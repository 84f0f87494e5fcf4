"""The statistical tests of a suspect against honest models, H0: the suspect is no closer to
the victim than honest models are.

- ``models`` (:class:`PredictionTTest`, the default): the suspect's mean similarity is one
  more draw from the population of the calibration models' mean similarities (a prediction
  t-test; docs/method.md, "The statistical test");
- ``global`` (:class:`WelchTTest`): the paper's one-sided Welch t-test of the suspect's
  per-fingerprint similarities against every calibration fingerprint's (paper section 4.3).

``verify(kit, suspect, test=...)`` takes one of these objects; by default the kit's own.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from scipy import stats

from .errors import ConfigError


def welch_greater(sample: np.ndarray | torch.Tensor, null: np.ndarray | torch.Tensor) -> float:
    """One-sided Welch t-test p-value of H0: mean(sample) <= mean(null).

    Degenerate cases (both samples constant) give 0 or 1 by comparing the means.
    """
    a = np.asarray(sample, dtype=np.float64).ravel()
    b = np.asarray(null, dtype=np.float64).ravel()
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the t-test needs at least 2 similarities on each side")
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return 0.0 if a.mean() > b.mean() else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def prediction_greater(sample: np.ndarray | torch.Tensor, model_means: np.ndarray | torch.Tensor) -> float:
    """One-sided p-value that a suspect's mean similarity comes from the honest-model population.

    H0: the suspect is one more honest model, its mean similarity ``m`` a draw from the same
    distribution as the calibration models' mean similarities ``m_1..m_C``. Under normality
    ``(m - mean(m_c)) / (sd(m_c) * sqrt(1 + 1/C))`` follows Student's t with C - 1 degrees of
    freedom (the prediction-interval test). Unlike a two-sample test on fingerprints, it does
    not flag an honest model for being slightly above the average honest model.
    """
    m = float(np.asarray(sample, dtype=np.float64).mean())
    b = np.asarray(model_means, dtype=np.float64).ravel()
    if len(b) < 3:
        raise ValueError("the model-level test needs at least 3 calibration models")
    sd = b.std(ddof=1)
    if sd == 0:
        return 0.0 if m > b.mean() else 1.0
    t = (m - b.mean()) / (sd * math.sqrt(1 + 1 / len(b)))
    return float(stats.t.sf(t, len(b) - 1))


class StatTest(ABC):
    """A one-sided test of per-fingerprint similarities (S,) against null similarities (H, S)."""

    name: ClassVar[str]
    #: The fewest calibration models the test can speak with.
    min_null_models: ClassVar[int]
    description: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @abstractmethod
    def p_value(self, sims: np.ndarray | torch.Tensor, null: np.ndarray | torch.Tensor) -> float:
        """The p-value of H0 for a suspect's similarities ``sims`` (S,) and the null (H, S)."""


class PredictionTTest(StatTest):
    """:func:`prediction_greater` of the suspect against the calibration models' mean similarities."""

    name = "models"
    min_null_models = 3
    description = "one-sided prediction t-test against honest models"

    def p_value(self, sims: np.ndarray | torch.Tensor, null: np.ndarray | torch.Tensor) -> float:
        return prediction_greater(sims, np.asarray(null, dtype=np.float64).mean(axis=1))


class WelchTTest(StatTest):
    """:func:`welch_greater` of the suspect's similarities against every null similarity (the paper's)."""

    name = "global"
    min_null_models = 2
    description = "one-sided Welch t-test, null global"

    def p_value(self, sims: np.ndarray | torch.Tensor, null: np.ndarray | torch.Tensor) -> float:
        return welch_greater(sims, null)


#: The tests by name, in the order of :data:`uapfp.config.TEST_NAMES`.
TESTS: dict[str, StatTest] = {t.name: t for t in (PredictionTTest(), WelchTTest())}


def get_test(name: str | StatTest) -> StatTest:
    """The test named ``name`` (``models`` or ``global``)."""
    if isinstance(name, StatTest):
        return name
    try:
        return TESTS[name]
    except KeyError:
        raise ConfigError(f"unknown test {name!r}; choose one of {', '.join(TESTS)}") from None
