"""Verifying a suspect: its fingerprints, their similarities to the victim's, the test, the verdict.

The similarity of a suspect to the victim on probe set j is the cosine of the encoder's
embeddings of their fingerprints on that set (paper section 4.3); the suspect's similarity
is the mean over the sets. A statistical test (:mod:`uapfp.significance`; by default the
prediction t-test against honest models) compares it with the kit's calibration models,
scored as the calibration says (:mod:`uapfp.calibration`); the verdict is ``piracy`` when
p < alpha, else ``not shown``. A run cut short by a query budget reports what it measured
and the verdict ``inconclusive``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .calibration import Calibration, get_calibration
from .encoder import FingerprintEncoder, embed
from .errors import BudgetExhaustedError, ConfigError, SuspectError, SuspectUnavailableError
from .fingerprint import apply_output_mode, probe_batch
from .kit import Kit
from .significance import StatTest, get_test
from .suspects.base import OutputMode, Suspect

PIRACY = "piracy"
NOT_SHOWN = "not shown"
INCONCLUSIVE = "inconclusive"


def cosine_similarities(encoder: FingerprintEncoder, f_victim: torch.Tensor, f_suspect: torch.Tensor) -> torch.Tensor:
    """Per-set cosine similarity (S,) of the embeddings of two fingerprint stacks (S, D)."""
    if f_victim.shape != f_suspect.shape:
        raise ValueError(f"fingerprint shapes differ: {tuple(f_victim.shape)} vs {tuple(f_suspect.shape)}")
    return (embed(encoder, f_victim) * embed(encoder, f_suspect)).sum(dim=-1)


@dataclass
class Verdict:
    """The outcome of one verification, as printed and as written to JSON."""

    suspect: str
    verdict: str
    similarity: float
    similarity_std: float
    p_value: float
    alpha: float
    fingerprints: int
    fingerprints_requested: int
    queries: int
    output_mode: str
    null_mean: float
    null_count: int
    seconds: float
    kit_sha256: str
    per_fingerprint: list[float] = field(default_factory=list)
    message: str = ""
    test: str = "models"
    calibration: str = "kit"
    kit_signed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    def render(self) -> str:
        """A short human report."""
        lines = [
            f"suspect      {self.suspect}",
            f"verdict      {self.verdict.upper()}" + (f"  ({self.message})" if self.message else ""),
            f"similarity   {self.similarity:.4f} +- {self.similarity_std:.4f} "
            f"(honest null: {self.null_mean:.4f}, n={self.null_count}, calibration {self.calibration})",
            f"p-value      {self.p_value:.3g}  ({get_test(self.test).description}, alpha {self.alpha})",
            f"fingerprints {self.fingerprints} of {self.fingerprints_requested}, {self.queries} queries, "
            f"outputs {self.output_mode}, {self.seconds:.2f} s",
            f"kit          sha256 {self.kit_sha256}"
            + (f", signed by key {self.kit_signed_by} (checked)" if self.kit_signed_by else " (signature not checked)"),
        ]
        return "\n".join(lines)


def check_alpha(alpha: float) -> float:
    """``alpha`` if it is a significance level in (0, 1), else a ConfigError."""
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"--alpha must be a significance level between 0 and 1 (exclusive), got {alpha}")
    return float(alpha)


def fingerprint_count(kit: Kit, fingerprints: int | None) -> int:
    """The number of fingerprints to use (the kit's default when None), checked against the kit."""
    n = kit.config.fingerprints if fingerprints is None else fingerprints
    if not 2 <= n <= kit.n_sets:
        raise ConfigError(f"--fingerprints must be between 2 and {kit.n_sets} for this kit, got {n}")
    return n


@dataclass(frozen=True)
class Scoring:
    """How fingerprints are scored: the test, the calibration of its null, and alpha."""

    test: StatTest
    calibration: Calibration
    alpha: float

    @classmethod
    def of(
        cls, kit: Kit, *, test: StatTest | str | None, calibration: Calibration | str | None, alpha: float | None
    ) -> Scoring:
        """The kit's own test, calibration and alpha, where none is given."""
        return cls(
            get_test(test if test is not None else kit.config.null),
            get_calibration(calibration if calibration is not None else kit.config.calibration),
            check_alpha(alpha if alpha is not None else kit.config.alpha),
        )


def verify(
    kit: Kit,
    suspect: Suspect,
    *,
    fingerprints: int | None = None,
    alpha: float | None = None,
    test: StatTest | str | None = None,
    calibration: Calibration | str | None = None,
    query_log: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Fingerprint ``suspect`` with the kit and test it against the kit's honest null.

    The victim's stored fingerprints and the null are truncated to the suspect's output mode,
    so a label-only suspect is compared label to label. ``test`` and ``calibration`` (objects
    or names) replace the kit's own. When the suspect's query budget runs out, the
    fingerprints measured so far are reported and the verdict is ``inconclusive``.
    """
    from .querylog import QueryLog

    start = time.perf_counter()
    n_req = fingerprint_count(kit, fingerprints)
    scoring = Scoring.of(kit, test=test, calibration=calibration, alpha=alpha)
    if tuple(suspect.input_shape) != kit.input_shape:
        raise SuspectError(
            f"{suspect.name} takes inputs {suspect.input_shape}, the kit's victim takes {kit.input_shape}"
        )
    if suspect.num_classes != kit.num_classes:
        raise SuspectError(f"suspect returns {suspect.num_classes} classes, the kit expects {kit.num_classes}")
    mode = suspect.output
    q0 = suspect.queries
    logger = (
        QueryLog(query_log, kit=kit, suspect=suspect, fingerprints=n_req, alpha=scoring.alpha) if query_log else None
    )
    got: list[torch.Tensor] = []
    message = ""
    try:
        for s in range(n_req):
            batch = probe_batch(kit.probe_images[s], kit.v)
            out = suspect(batch)
            if logger:
                logger.write(s, batch, out)
            got.append(out.reshape(-1))
    except BudgetExhaustedError as exc:
        message = f"query budget exhausted after {len(got)} of {n_req} fingerprints ({exc})"
    except SuspectUnavailableError as exc:
        message = f"the suspect stopped answering after {len(got)} of {n_req} fingerprints ({exc})"
    finally:
        if logger:
            logger.close()
    return score_fingerprints(
        kit, got, mode=mode, scoring=scoring, n_req=n_req, name=suspect.name, queries=suspect.queries - q0,
        start=start, message=message,
    )  # fmt: skip


def score_fingerprints(
    kit: Kit,
    got: list[torch.Tensor],
    *,
    mode: OutputMode,
    scoring: Scoring,
    n_req: int,
    name: str,
    queries: int,
    start: float,
    message: str = "",
) -> Verdict:
    """The verdict on fingerprints ``got`` (each (2 N K,)) of the first ``len(got)`` probe sets."""
    n = len(got)
    common = {
        "suspect": name, "alpha": scoring.alpha, "fingerprints": n, "fingerprints_requested": n_req,
        "queries": queries, "output_mode": str(mode), "kit_sha256": kit.sha256, "kit_signed_by": kit.signed_by,
        "test": scoring.test.name, "calibration": scoring.calibration.name,
    }  # fmt: skip
    if n < 2:
        nan = float("nan")
        return Verdict(
            verdict=INCONCLUSIVE, similarity=nan, similarity_std=nan, p_value=nan, null_mean=nan, null_count=0,
            seconds=time.perf_counter() - start, message=message or "too few fingerprints", **common,
        )  # fmt: skip
    f_s = torch.stack(got)
    f_v = apply_output_mode(kit.victim_fingerprints[:n], mode, kit.num_classes)
    sims = cosine_similarities(kit.encoder, f_v, f_s)
    null = scoring.calibration.similarities(kit, mode, n)
    p = scoring.test.p_value(sims, np.asarray(null, dtype=np.float64))
    verdict = INCONCLUSIVE if message else (PIRACY if p < scoring.alpha else NOT_SHOWN)
    return Verdict(
        verdict=verdict, similarity=float(sims.mean()), similarity_std=float(sims.std()), p_value=p,
        null_mean=float(null.mean()), null_count=int(null.shape[0]), seconds=time.perf_counter() - start,
        per_fingerprint=[round(float(v), 6) for v in sims], message=message, **common,
    )  # fmt: skip
