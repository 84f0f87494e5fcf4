"""Fingerprints f(M, v, X) = [M(x_1), M(x_1 + v), ..., M(x_N), M(x_N + v)] (paper eq. 6).

One fingerprint of a K-class model on N probe points is a vector of 2 N K numbers and costs
2 N queries. Layout: point i's clean output occupies ``[2 i K, (2 i + 1) K)`` and its output
under the UAP ``[(2 i + 1) K, (2 i + 2) K)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .suspects.base import OutputMode, Suspect


def probe_batch(images: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Interleave clean and perturbed probes: (N, C, H, W) -> (2N, C, H, W), clipped to [0, 1]."""
    perturbed = (images + v).clamp(0.0, 1.0)
    return torch.stack([images, perturbed], dim=1).reshape(-1, *images.shape[1:])


def fingerprint_sets(suspect: Suspect, v: torch.Tensor, images: torch.Tensor) -> Iterator[torch.Tensor]:
    """Yield one fingerprint (2 N K,) per probe set of ``images`` (S, N, C, H, W), querying set by set.

    Querying set by set lets a caller keep the finished fingerprints when a budget runs out.
    """
    for s in range(images.shape[0]):
        yield suspect(probe_batch(images[s], v)).reshape(-1)


def fingerprint(suspect: Suspect, v: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Fingerprints (S, 2 N K) of ``suspect`` on the probe sets ``images`` (S, N, C, H, W)."""
    return torch.stack(list(fingerprint_sets(suspect, v, images)))


def apply_output_mode(fingerprints: torch.Tensor, mode: OutputMode | str, num_classes: int) -> torch.Tensor:
    """Truncate stored fingerprints (..., 2 N K) as a suspect in ``mode`` would have answered."""
    mode = OutputMode.parse(mode)
    if mode.kind == "probs":
        return fingerprints
    shape = fingerprints.shape
    return mode.apply(fingerprints.reshape(-1, num_classes)).reshape(shape)
