"""Calibrations: which encoder scores the kit's calibration models, i.e. what the null describes.

A suspect is always scored by the kit's encoder. Its null, the similarities of the kit's
calibration homologous models (which the kit's encoder never trained on), is scored

- ``kit``: by the kit's own encoder;
- ``leave-arch-out``: each calibration model by an encoder trained like the kit's but without
  any model of its architecture, so that the null describes honest models of a kind the
  encoder never saw (docs/method.md, "Calibration"). A leave-arch-out kit holds the kit's
  encoder too, so both calibrations can be computed from it.

``verify(kit, suspect, calibration=...)`` takes one of these objects; by default the kit's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch

from .errors import ConfigError, KitIntegrityError
from .suspects.base import OutputMode

if TYPE_CHECKING:  # the kit calls its calibration: no import at run time
    from .kit import Kit


class Calibration(ABC):
    """How a kit's null similarities (H, S) are computed."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @abstractmethod
    def similarities(self, kit: Kit, mode: OutputMode | str, n_sets: int) -> torch.Tensor:
        """Similarities (H, n_sets) of the H calibration models to the victim, in answer mode ``mode``."""


class KitCalibration(Calibration):
    """The kit's own encoder scores every calibration model."""

    name = "kit"

    def similarities(self, kit: Kit, mode: OutputMode | str, n_sets: int) -> torch.Tensor:
        return kit.similarities(kit.null_fingerprints[:, :n_sets], mode)


class LeaveArchOutCalibration(Calibration):
    """Each calibration model is scored by the kit's encoder trained without its architecture."""

    name = "leave-arch-out"

    def similarities(self, kit: Kit, mode: OutputMode | str, n_sets: int) -> torch.Tensor:
        f = kit.null_fingerprints[:, :n_sets]
        archs = kit.null_archs
        missing = sorted(set(archs) - set(kit.null_encoders))
        if len(archs) != f.shape[0] or missing:
            raise KitIntegrityError(
                f"this kit lacks the leave-arch-out encoders its calibration needs "
                f"({', '.join(missing) or 'architectures unknown'}); rebuild it with uapfp protect"
            )
        out = torch.empty(f.shape[0], n_sets)
        for arch in sorted(set(archs)):
            rows = torch.tensor([i for i, a in enumerate(archs) if a == arch])
            out[rows] = kit.similarities(f[rows], mode, kit.null_encoders[arch])
        return out


#: The calibrations by name, in the order of :data:`uapfp.config.CALIBRATION_NAMES`.
CALIBRATIONS: dict[str, Calibration] = {c.name: c for c in (KitCalibration(), LeaveArchOutCalibration())}


def get_calibration(name: str | Calibration) -> Calibration:
    """The calibration named ``name`` (``kit`` or ``leave-arch-out``)."""
    if isinstance(name, Calibration):
        return name
    try:
        return CALIBRATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown calibration {name!r}; choose one of {', '.join(CALIBRATIONS)}") from None
