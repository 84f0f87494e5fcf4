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
from typing import TYPE_CHECKING, Any

import torch

from . import sequential as sequential_rule
from .classorder import CLASSES_KEY
from .errors import ConfigError
from .kit import Kit
from .storage import check_output_path
from .suspects.base import OutputMode, Suspect
from .verify import Scoring, Verdict, query_plan, score_answers, with_floor, with_suspect_architecture

if TYPE_CHECKING:
    from .family_null import FamilyNull


class QueryLog:
    """JSON Lines evidence: a header (kit hash, suspect), then one line per query.

    Header: ``{"type": "header", "format", "kit_sha256", "kit_signed_by", "suspect", "output_mode", "uap_sha256",
    "method", "fingerprints", "alpha", "sequential", "class_order_check", "started"}`` (``class_order_check``:
    the class-order check's images were sent first, :mod:`uapfp.classorder`; ``sequential``: the run stopped once
    the sequential test settled, :mod:`uapfp.sequential`; a sequential log adds ``early_share``,
    the share of alpha its early looks spent, 0.1 where a log from before the field lacks it; a verification
    against a family null adds ``family_null_sha256``, ``family_null_arch``, and ``suspect_architecture`` and
    ``architecture_checked``: the architecture the suspect's spec named, null for a file or a server, and
    whether uapfp found it to be the null's).
    Query lines: ``{"queries", "set", "point", "uap", "input_sha256", "output"}``: which query sets
    (``classes`` for the class-order check's images, sent first where the kit holds them; ``uap`` for the
    probe points with and without the UAP; ``errors``, ``ipguard``), the set and the point in it, ``uap``
    whether the UAP was added; ``input_sha256`` is the SHA-256 of the query's float32 bytes (little-endian,
    C order) and ``output`` the answer row exactly as received (floats round-trip float32).
    The log is written to a temporary file beside ``path`` and renamed over it by
    :meth:`close`, so ``path`` only ever holds a whole log (of a run that ended, however it ended).
    """

    FORMAT = "uapfp-query-log/3"  # 3: the class-order check's queries (kind ``classes``) come first

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kit: Kit,
        suspect: Suspect,
        fingerprints: int | None = None,
        alpha: float | None = None,
        method: str = "uap",
        sequential: bool = False,
        family_null: FamilyNull | None = None,
        suspect_architecture: dict[str, Any] | None = None,
        class_order_check: bool = False,
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
                    "method": method,
                    "fingerprints": fingerprints,
                    "alpha": alpha,
                    "sequential": sequential,
                    "class_order_check": class_order_check,
                    **({"early_share": sequential_rule.EARLY_SHARE} if sequential else {}),
                    **({"family_null_sha256": family_null.sha256, "family_null_arch": family_null.arch,
                        "family_null_paths": family_null.folders,  # where it was: the SHA-256 is what counts
                        **(suspect_architecture or {})} if family_null is not None else {}),
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                }
            )
            + "\n"
        )

    def write(self, queries: str, fingerprint_set: int, inputs: torch.Tensor, outputs: torch.Tensor) -> None:
        """Log one query set's inputs (by hash) and answers; ``queries`` names the kind of set."""
        for i in range(len(inputs)):
            paired = queries == "uap"  # probe points come in pairs, clean then with the UAP
            row = {
                "queries": queries,
                "set": fingerprint_set,
                "point": i // 2 if paired else i,
                "uap": bool(i % 2) if paired else False,
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


def _logged_folders(header: dict[str, Any]) -> str:
    """The folders a log's header says its family null came from, as text (a log may be crafted)."""
    paths = header.get("family_null_paths")
    if isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths):
        return " + ".join(paths)
    return "folders not recorded"


def recheck_query_log(
    kit: Kit, path: str | os.PathLike[str], *, alpha: float | None = None, family_null: FamilyNull | None = None
) -> Verdict:
    """Recompute a verdict from a query log: check that every logged query is the kit's probe
    (by its SHA-256), rebuild the fingerprints from the logged answers and score them again
    (against ``family_null``, which must be the one the log names where it names one).

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
    logged_null = header.get("family_null_sha256")
    if logged_null != (family_null.sha256 if family_null is not None else None):
        raise ConfigError(
            f"{path} was scored against the family null {logged_null} ({header.get('family_null_arch')}, from "
            f"{_logged_folders(header)}); give that null with --family-null (once per folder, where it joined several)"
            if logged_null else
            f"{path} was scored against the kit's calibration models, not a family null; leave out --family-null"
        )  # fmt: skip
    mode = OutputMode.parse(str(header.get("output_mode")))
    try:
        scoring = Scoring.of(
            kit, method=str(header.get("method", "uap")), alpha=alpha if alpha is not None else header.get("alpha"),
            family_null=family_null,
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    plan = query_plan(scoring.method)
    sets_of = {key: channel.sets(kit) for key, channel in plan.items()}
    classes = kit.references.get(CLASSES_KEY)
    if classes is not None and header.get("format") != QueryLog.FORMAT:
        raise ConfigError(
            f"{path} is a {header.get('format')} log, written before this kit's class-order check took its present "
            f"form; verify the suspect again to get a {QueryLog.FORMAT} log"
        )
    asked = classes is not None and header.get("class_order_check") is not False
    if asked:  # verify sends them first
        sets_of = {CLASSES_KEY: classes.queries, **sets_of}
        first = rows[0].get("queries", "uap") if rows and isinstance(rows[0], dict) else None
        if rows and first != CLASSES_KEY:
            raise ConfigError(
                f"{path} line 2: queries of kind {first!r}, where this kit's verification sends its {CLASSES_KEY!r} "
                "queries first; the log was edited, or written with another kit"
            )
    got: dict[str, list[torch.Tensor]] = {key: [] for key in sets_of}
    i = 0
    while i < len(rows):
        row0 = rows[i]
        key = row0.get("queries", "uap") if isinstance(row0, dict) else None
        if key not in sets_of:
            raise ConfigError(
                f"{path} line {i + 2}: queries of kind {key!r}, which the method {scoring.method.name!r} does not send"
            )
        s = len(got[key])
        sets = sets_of[key]
        if s >= len(sets):
            raise ConfigError(f"{path} holds more {key} sets than the kit ({len(sets)})")
        batch = sets[s]
        chunk = rows[i : i + len(batch)]
        if len(chunk) < len(batch):
            raise ConfigError(
                f"{path} ends inside {key} set {s} ({len(chunk)} of {len(batch)} queries); it is truncated"
            )
        outs = []
        for j, row in enumerate(chunk):
            if (
                not isinstance(row, dict)
                or row.get("queries", "uap") != key
                or row.get("set") != s
                or row.get("input_sha256") != _input_digest(batch[j])
            ):
                raise ConfigError(
                    f"{path} line {i + j + 2}: the query is not point {j} of {key} set {s} of this kit; the log was edited"
                )
            out = row.get("output")
            if not isinstance(out, list) or len(out) != kit.num_classes or not all(_finite_number(v) for v in out):
                raise ConfigError(f"{path} line {i + j + 2}: the answer does not hold {kit.num_classes} finite numbers")
            outs.append(out)
        got[key].append(torch.tensor(outs, dtype=torch.float32))
        i += len(batch)
    said = None
    if classes is not None:  # its answers as logged (none: verify got none), read by score_answers as verify's were
        logged = got.pop(CLASSES_KEY, [])
        said = logged[0] if logged else torch.zeros(0, kit.num_classes)
    requested = header.get("fingerprints")
    n_req = requested if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0 else 0
    sequential = header.get("sequential") is True  # then a log that stops early is a settled verdict
    if sequential and not n_req:
        raise ConfigError(f"{path}: a sequential log must say how many sets were requested (its looks follow)")
    share = header.get("early_share", sequential_rule.LEGACY_EARLY_SHARE)  # the rule its verification ran
    if sequential and not (isinstance(share, float) and 0 < share < 0.5):
        raise ConfigError(f"{path}: the header's early_share {share!r} is not a share of alpha below 0.5")
    n_req = n_req or max((len(a) for a in got.values()), default=0)
    short = [key for key, a in got.items() if len(a) < n_req]
    message = (
        f"the log holds fewer than {n_req} sets of {', '.join(short)} (budget exhausted)"
        if short and not sequential else ""
    )  # fmt: skip
    verdict = score_answers(
        kit, {key: torch.stack(a) if a else torch.zeros(0) for key, a in got.items()}, mode=mode, scoring=scoring,
        n_req=n_req, name=str(header.get("suspect")), queries=len(rows), start=start, message=message,
        sequential=sequential, early_share=share if sequential else None, classes=said,
    )  # fmt: skip
    verdict = with_floor(verdict, kit, scoring, mode)
    return with_suspect_architecture(verdict, _logged_architecture(path, header, family_null, kit))


def _logged_architecture(path: str | os.PathLike[str], header: dict[str, Any], family_null: FamilyNull | None,
                         kit: Kit) -> dict[str, Any]:  # fmt: skip
    """What the log's header says of the suspect's architecture, where it says it (a log of before it did
    says nothing); refused where it names an architecture that is not the null's."""
    if family_null is None or "architecture_checked" not in header:
        return {}
    named, checked = header.get("suspect_architecture"), header.get("architecture_checked")
    if not (named is None or isinstance(named, str)) or not isinstance(checked, bool) or (checked and named is None):
        raise ConfigError(f"{path}: the header's suspect_architecture {named!r} or architecture_checked {checked!r} is malformed")
    from .family_null import same_architecture

    if named is not None and same_architecture(
        named, family_null.arch, input_shape=kit.input_shape, num_classes=kit.num_classes
    ) is False:  # fmt: skip
        raise ConfigError(f"{path} says the suspect is of architecture {named}, which is not the null's ({family_null.arch})")
    return {"suspect_architecture": named, "architecture_checked": checked}
