"""The paper's method and its fingerprint without the encoder (Peng et al., CVPR 2022).

Queries: the probe points and their views, each with and without the victim's UAP (paper
section 4.2). ``uap`` represents a suspect's answers on a probe set by the contrastive
encoder's embedding of its fingerprint and compares it with the victim's by cosine (section
4.3); its null is scored as the kit's calibration says (:mod:`uapfp.calibration`). ``uap-raw``
compares the fingerprints themselves, by cosine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..fingerprint import probe_batch
from ..suspects.base import OutputMode
from .base import Method, truncate

if TYPE_CHECKING:
    from ..calibration import Calibration
    from ..kit import Kit


def probe_sets(kit: Kit) -> torch.Tensor:
    """Every probe set, clean and perturbed points interleaved: (S, 2N, C, H, W)."""
    return torch.stack([probe_batch(images, kit.v) for images in kit.probe_images])


class UapMethod(Method):
    """The paper's: encoder embeddings of UAP fingerprints, cosine similarity."""

    name = "uap"
    query_key = "uap"
    description = "UAP fingerprints embedded by the contrastive encoder, cosine (Peng et al., CVPR 2022)"
    learned = True

    def sets(self, kit: Kit) -> torch.Tensor:
        return probe_sets(kit)

    def similarities(self, kit: Kit, answers: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
        f = truncate(answers, mode).flatten(-2)
        return kit.similarities(f, mode)

    def null(self, kit: Kit, mode: OutputMode | str, n_sets: int, calibration: Calibration) -> torch.Tensor:
        return calibration.similarities(kit, mode, n_sets)


class UapRawMethod(Method):
    """The same fingerprints without the encoder: cosine of the raw answer vectors."""

    name = "uap-raw"
    query_key = "uap"
    description = "UAP fingerprints without the encoder, cosine (the paper's fingerprint, raw)"

    def sets(self, kit: Kit) -> torch.Tensor:
        return probe_sets(kit)

    def similarities(self, kit: Kit, answers: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
        f = truncate(answers, mode).flatten(-2)
        ref = truncate(kit.victim_fingerprints[: f.shape[-2]].reshape(*f.shape[-2:-1], -1, kit.num_classes), mode)
        return torch.nn.functional.cosine_similarity(f, ref.flatten(-2), dim=-1)

    def null(self, kit: Kit, mode: OutputMode | str, n_sets: int, calibration: Calibration) -> torch.Tensor:
        f = kit.null_fingerprints[:, :n_sets]
        return self.similarities(kit, f.reshape(*f.shape[:2], -1, kit.num_classes), mode)
