"""Several methods in one verdict whose p-value stays honest.

Each channel's similarity is first put on the calibration models' scale: for channel c,
``z_c = (m_c - mean_h m_{c,h}) / sd_h m_{c,h}``, where ``m_c`` is the suspect's mean similarity
and ``m_{c,h}`` those of the H calibration models. The combined statistic is the mean of the
``z_c``; the same statistic of every calibration model (standardised the same way) forms the
null, and the prediction t-test of :mod:`uapfp.significance` compares the suspect with it.
Because the null is made of the statistic itself, computed on honest models, the test needs
no assumption about how the channels depend on each other.
"""

from __future__ import annotations

import torch

from .base import Method


def standardise(suspect: torch.Tensor, null: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The combined statistic of a suspect and of each calibration model.

    Args:
        suspect: (C,) the suspect's mean similarity in each channel.
        null: (C, H) each calibration model's.

    Returns:
        (the suspect's statistic, a scalar tensor; the calibration models', (H,)).
    """
    mean = null.mean(dim=1, keepdim=True)
    sd = null.std(dim=1, keepdim=True).clamp_min(1e-12)
    return ((suspect[:, None] - mean) / sd).mean(), ((null - mean) / sd).mean(dim=0)


class CombinedMethod(Method):
    """The channels' queries, each channel scored as on its own, one statistic tested against honest models."""

    description = "several methods, their similarities standardised on the honest models and averaged"

    def __init__(self, parts: tuple[Method, ...]) -> None:
        if len(parts) < 2:
            raise ValueError("a combination needs two methods or more")
        self.parts = parts
        self.name = "+".join(p.name for p in parts)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"CombinedMethod({', '.join(p.name for p in self.parts)})"

    @property
    def channels(self) -> tuple[Method, ...]:
        return self.parts

    def sets(self, kit):  # type: ignore[no-untyped-def]
        raise TypeError("a combined method sends its channels' sets; ask each of .channels")

    def similarities(self, kit, answers, mode):  # type: ignore[no-untyped-def]
        raise TypeError("a combined method scores each of its .channels")

    def null(self, kit, mode, n_sets, calibration):  # type: ignore[no-untyped-def]
        raise TypeError("a combined method's null is the channels' (see standardise)")
