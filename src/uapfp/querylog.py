"""Query logs: JSON Lines evidence of every query a verification sent, and rechecking a verdict from one."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from .errors import ConfigError
from .fingerprint import probe_batch
from .kit import Kit
from .storage import check_output_path
from .suspects.base import OutputMode, Suspect
from .verify import Scoring, Verdict, score_fingerprints


class QueryLog:
    """JSON Lines evidence: a header (kit hash, suspect), then one line per query.

    Header: ``{"type": "header", "format", "kit_sha256", "kit_signed_by", "suspect", "output_mode", "uap_sha256",
    "fingerprints", "alpha", "started"}``. Query lines: ``{"set", "point", "uap", "input_sha256",
    "output"}``; ``input_sha256`` is the SHA-256 of the query's float32 bytes (little-endian,
    C order) and ``output`` the answer row exactly as received (floats round-trip float32).
    The log is written to a temporary file beside ``path`` and renamed over it by
    :meth:`close`, so ``path`` only ever holds a whole log (of a run that ended, however it ended).
    """

    FORMAT = "uapfp-query-log/1"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kit: Kit,
        suspect: Suspect,
        fingerprints: int | None = None,
        alpha: float | None = None,
    ) -> None:
        self.path = check_output_path(path, "query log")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._handle = os.fdopen(fd, "w", encoding="utf-8")
        self._handle.write(
            json.dumps(
                {
                    "type": "header",
                    "format": self.FORMAT,
                    "kit_sha256": kit.sha256,
                    "kit_signed_by": kit.signed_by,
                    "suspect": suspect.name,
                    "output_mode": str(suspect.output),
                    "uap_sha256": hashlib.sha256(kit.v.numpy().tobytes()).hexdigest(),
                    "fingerprints": fingerprints,
                    "alpha": alpha,
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                }
            )
            + "\n"
        )

    def write(self, fingerprint_set: int, inputs: torch.Tensor, outputs: torch.Tensor) -> None:
        for i in range(len(inputs)):
            row = {
                "set": fingerprint_set,
                "point": i // 2,
                "uap": bool(i % 2),
                "input_sha256": _input_digest(inputs[i]),
                "output": [float(v) for v in outputs[i]],
            }
            self._handle.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, check_output_path(self.path, "query log"))


def _finite_number(v: object) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return math.isfinite(v) if isinstance(v, float) else abs(v) <= 1  # probabilities; a huge int is no answer


def _input_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().astype("<f4").tobytes()).hexdigest()


def recheck_query_log(kit: Kit, path: str | os.PathLike[str], *, alpha: float | None = None) -> Verdict:
    """Recompute a verdict from a query log: check that every logged query is the kit's probe
    (by its SHA-256), rebuild the fingerprints from the logged answers and score them again.

    The result equals the original verdict (bit for bit in its similarities) when the log is
    intact; a log from another kit, a reordered or edited query is refused with a ConfigError.
    """
    start = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"query log {path} does not exist; write one with uapfp verify --query-log")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
        header = json.loads(lines[0]) if lines else None
        rows = [json.loads(line) for line in lines[1:]]
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
        raise ConfigError(f"{path} is not a JSON Lines query log ({str(exc)[:200]})") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ConfigError(f"{path} does not start with a query log header")
    if header.get("kit_sha256") != kit.sha256:
        raise ConfigError(f"{path} was written with another kit (kit SHA-256 {header.get('kit_sha256')}); use that kit")
    mode = OutputMode.parse(str(header.get("output_mode")))
    scoring = Scoring.of(kit, test=None, calibration=None, alpha=alpha if alpha is not None else header.get("alpha"))
    got: list[torch.Tensor] = []
    i = 0
    while i < len(rows):
        s = len(got)
        if s >= kit.n_sets:
            raise ConfigError(f"{path} holds more probe sets than the kit ({kit.n_sets})")
        batch = probe_batch(kit.probe_images[s], kit.v)
        chunk = rows[i : i + len(batch)]
        if len(chunk) < len(batch):
            raise ConfigError(
                f"{path} ends inside probe set {s} ({len(chunk)} of {len(batch)} queries); it is truncated"
            )
        outs = []
        for j, row in enumerate(chunk):
            if not isinstance(row, dict) or row.get("set") != s or row.get("input_sha256") != _input_digest(batch[j]):
                raise ConfigError(
                    f"{path} line {i + j + 2}: the query is not probe {j} of set {s} of this kit; the log was edited"
                )
            out = row.get("output")
            if not isinstance(out, list) or len(out) != kit.num_classes or not all(_finite_number(v) for v in out):
                raise ConfigError(f"{path} line {i + j + 2}: the answer does not hold {kit.num_classes} finite numbers")
            outs.append(out)
        got.append(torch.tensor(outs, dtype=torch.float32).reshape(-1))
        i += len(batch)
    requested = header.get("fingerprints")
    n_req = requested if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0 else len(got)
    message = "" if len(got) >= n_req else f"the log holds {len(got)} of {n_req} fingerprints (budget exhausted)"
    return score_fingerprints(
        kit, got, mode=mode, scoring=scoring, n_req=n_req, name=str(header.get("suspect")),
        queries=len(rows), start=start, message=message,
    )  # fmt: skip
