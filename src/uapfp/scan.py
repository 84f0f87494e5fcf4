"""Verifying many suspects at once (``uapfp scan``): a verdict file and a query log per suspect, and a summary.

Suspects are verified concurrently, by threads of this process (the queries of remote
suspects overlap; a local model's forward passes release the GIL) or as Ray tasks, locally
or on a cluster (``ray_address``). Each suspect's verdict is what ``uapfp verify --json``
writes for it, in ``OUT/NAME.json`` beside ``OUT/NAME.queries.jsonl``; ``OUT/summary.json``
holds one row per suspect. A scan resumes: a suspect whose verdict file holds a verdict
(``piracy`` or ``not shown``) for the same suspect (spec and weights, ``scan_target`` in the record)
by the same kit and settings (method, alpha, number of sets, answer mode, sequential or not, family
null) is not queried again. A suspect whose architecture the
owner knows can be tested against a null of that architecture (``uapfp family-null``): ``--family-null DIR``
for every suspect, or ``family-null=DIR`` on its line of the suspect list (either more than once: the
folders joined, :func:`uapfp.family_null.combine_nulls`); every null is loaded and checked against the kit
before the first query.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UapfpError
from .storage import atomic_open, ensure_writable_dir, read_json, write_json
from .suspects.options import HttpOptions

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


@dataclass(frozen=True)
class Target:
    """One suspect to verify: its spec (as ``uapfp verify --suspect`` takes it), weights, file name, and the
    family null it is tested against: the ``uapfp family-null`` folders it joins (none: the kit's null)."""

    spec: str
    weights: str | None = None
    name: str = ""
    family_null: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanSettings:
    """What every suspect of a scan is verified with (None: the kit's own)."""

    method: str | None = None
    alpha: float | None = None
    fingerprints: int | None = None
    outputs: str | None = None
    max_queries: int | None = None
    http: HttpOptions | None = None
    trusted_key: str | None = None
    sequential: bool | None = None  # None: the kit's setting


@dataclass
class ScanRow:
    """One suspect's line of the summary."""

    name: str
    spec: str
    verdict: str
    p_value: float | None = None
    similarity: float | None = None
    queries: int | None = None
    seconds: float | None = None
    verdict_file: str | None = None
    family_null: list[str] = field(default_factory=list)
    error: str = ""
    resumed: bool = field(default=False, compare=False)
    p_floor: float | None = None  # what an exact copy of the victim gets by this test (verify.exact_copy_p)
    exact_copy_not_shown: bool = False  # a ``not shown`` by a test that would not show an exact copy either
    classes_reordered: bool = False  # its answers were read in the victim's class order (uapfp.classorder)
    class_order_contradicted: bool = False  # another order fit the check's images, but not its other answers


def _name_of(spec: str, weights: str | None) -> str:
    if "://" in spec:
        base = spec.rstrip("/").rsplit("/models/", 1)[-1].split("/")[0]
    elif weights:
        base = Path(weights).stem
    else:
        base = Path(spec.split(":", 1)[1] if spec.startswith(("onnx:", "torchscript:")) else spec).stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", base).strip("._") or "suspect"


NULL_PREFIX = "family-null="


def read_targets(
    specs: list[str], from_file: str | os.PathLike[str] | None = None, *, family_null: Sequence[str] = ()
) -> list[Target]:
    """The suspects named on the command line and, one per line, in ``from_file`` (``SPEC`` or
    ``SPEC WEIGHTS``, then ``family-null=DIR`` once or more; blank lines and ``#`` comments skipped),
    each with a unique file name. ``family_null`` is the null of every suspect whose line names none."""
    given = tuple(family_null)
    for s in specs:
        if s.startswith(NULL_PREFIX):
            raise ConfigError(f"{s} is not a suspect: on the command line, give --family-null DIR (family-null=DIR is "
                              "for a line of the --from file)")  # fmt: skip
    pairs: list[tuple[str, str | None, tuple[str, ...]]] = [(s, None, given) for s in specs]
    if from_file is not None:
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the suspect list {from_file} ({exc})") from None
        for n, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            own: list[str] = []
            while len(words) > 1 and words[-1].startswith(NULL_PREFIX):
                own.insert(0, words.pop()[len(NULL_PREFIX) :])
                if not own[0]:
                    raise ConfigError(f"{from_file}:{n}: {NULL_PREFIX} names no folder")
            if len(words) > 2 or words[0].startswith(NULL_PREFIX):
                raise ConfigError(
                    f"{from_file}:{n}: a line is SPEC, or SPEC WEIGHTS, then {NULL_PREFIX}DIR if it has its own null"
                )
            if len(set(own)) < len(own):
                raise ConfigError(f"{from_file}:{n}: a {NULL_PREFIX} folder is named twice")
            pairs.append((words[0], words[1] if len(words) == 2 else None, tuple(own) or given))
    if not pairs:
        raise ConfigError("no suspects: name them on the command line or give --from FILE")
    targets, seen = [], set()
    for spec, weights, null in pairs:
        base = name = _name_of(spec, weights)
        k = 1
        while name in seen or name == Path(SUMMARY).stem:
            k += 1
            name = f"{base}-{k}"
        seen.add(name)
        targets.append(Target(spec, weights, name, null))
    return targets


def verify_target(
    kit: Any, target: Target, settings: ScanSettings, query_log: Path, family_null: Any = None
) -> dict[str, Any]:
    """Verify one suspect (against ``family_null``, the loaded null its target names): the evidence record
    ``uapfp verify --json`` writes (raises on a bad suspect)."""
    from .report import evidence
    from .suspects.spec import open_suspect
    from .verify import verify

    suspect = open_suspect(
        target.spec, input_shape=kit.input_shape, num_classes=kit.num_classes, weights=target.weights,
        output=settings.outputs, max_queries=settings.max_queries, http=settings.http,
    )  # fmt: skip
    try:
        verdict = verify(
            kit, suspect, method=settings.method, fingerprints=settings.fingerprints, alpha=settings.alpha,
            query_log=query_log, sequential=settings.sequential, family_null=family_null,
        )  # fmt: skip
    finally:
        suspect.close()
    command = (
        f"uapfp verify --kit {kit.path} --suspect {target.spec}"
        + (f" --weights {target.weights}" if target.weights else "")
        + (" --all-sets" if settings.sequential is False else "")
        + "".join(f" --family-null {p}" for p in target.family_null)
    )
    return evidence(verdict, kit, query_log, command=command)


def _verify_remote(
    kit_path: str, settings: ScanSettings, trusted: list[str], target: Target, null_sha256: str | None
) -> tuple[dict, bytes]:
    """One suspect, in a Ray worker: its evidence record and query log bytes (written here by the caller).
    The family null is loaded here again, and refused unless it is the one the scan checked (``null_sha256``)."""
    from .archs import trusting
    from .family_null import load_nulls
    from .kit import Kit

    with trusting(trusted), tempfile.TemporaryDirectory() as tmp:
        kit = Kit.load(kit_path, trusted_key=settings.trusted_key)
        null = load_nulls(target.family_null, kit)
        if (null.sha256 if null is not None else None) != null_sha256:
            raise ConfigError(
                f"the family null {' + '.join(target.family_null)} on this worker is not the one the scan checked "
                "(it changed, or the worker sees other files)"
            )
        qlog = Path(tmp) / f"{target.name}.queries.jsonl"
        record = verify_target(kit, target, settings, qlog, null)
        return record, qlog.read_bytes()


def _resolved_spec(spec: str) -> str:
    """``spec`` with a local file's path made absolute (a Ray worker need not start in this folder)."""
    from .suspects.spec import scheme_of

    try:
        name = scheme_of(spec).name
    except ConfigError:  # not a spec: the worker's error row says so
        return spec
    if name in ("onnx", "torchscript", "card"):
        prefix = f"{name}:" if spec.startswith(f"{name}:") else ""
        return prefix + str(Path(spec.removeprefix(prefix)).resolve())
    return spec


def _row(target: Target, record: dict[str, Any], path: Path, *, resumed: bool = False) -> ScanRow:
    from .report import class_order_of, finite
    from .verify import NO_COPY_SHOWN, NOT_SHOWN

    floor = float(record["p_floor"]) if finite(record.get("p_floor")) else None
    cannot = record["verdict"] == NOT_SHOWN and str(record.get("message") or "").startswith(NO_COPY_SHOWN)
    order = class_order_of(record)
    return ScanRow(
        name=target.name, spec=target.spec, verdict=record["verdict"], p_value=record.get("p_value"),
        similarity=record.get("similarity"), queries=record.get("queries"), seconds=record.get("seconds"),
        verdict_file=str(path), family_null=list(target.family_null), resumed=resumed,
        p_floor=floor, exact_copy_not_shown=cannot, classes_reordered=isinstance(order.get("order"), list),
        class_order_contradicted=order.get("contradicted") is True,
    )  # fmt: skip


def _resumable(kit: Any, settings: ScanSettings, family_null: Any = None) -> dict[str, Any]:
    """The fields a verdict record must hold to be resumed by a scan with this kit, settings and family
    null: its kit, method, alpha, number of sets, answer mode (when given), whether it was sequential, and
    the family null's identity (None: the kit's own null). Refuses settings the kit cannot verify with."""
    from .suspects.base import OutputMode
    from .verify import Scoring, fingerprint_count

    scoring = Scoring.of(kit, method=settings.method, alpha=settings.alpha, family_null=family_null)
    wanted: dict[str, Any] = {
        "kit_sha256": kit.sha256,
        "method": scoring.method.name,
        "alpha": scoring.alpha,
        "fingerprints_requested": fingerprint_count(kit, settings.fingerprints, scoring.method),
        "sequential": kit.config.sequential if settings.sequential is None else settings.sequential,
        "family_null": None if family_null is None else family_null.sha256,
    }
    if settings.outputs is not None:
        wanted["output_mode"] = str(OutputMode.parse(settings.outputs))
    return wanted


def _finished(path: Path, wanted: dict[str, Any], target: Target) -> dict[str, Any] | None:
    """The verdict record at ``path`` if an earlier run of the scan settled it for this ``target`` (its spec and
    weights: a file name can pass to another suspect when the list changes) with the settings
    :func:`_resumable` gives, else None (an inconclusive one is tried again, and so is one written before
    verdicts held their test's floor, ``p_floor``)."""
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except UapfpError:
        return None
    if not isinstance(record, dict) or record.get("verdict") not in ("piracy", "not shown") or "p_floor" not in record:
        return None
    got = {k: _recorded(record, k) for k in wanted}
    return record if got == wanted and record.get("scan_target") == _identity(target) else None


def _identity(target: Target) -> dict[str, Any]:
    """What a scan's verdict record says of the suspect it is about (beside the settings)."""
    return {"spec": target.spec, "weights": target.weights}


def _recorded(record: dict[str, Any], key: str) -> Any:
    """What a verdict record holds of :func:`_resumable`'s ``key``."""
    if key == "sequential":
        return bool(record.get(key))
    if key == "family_null":
        null = record.get("family_null")
        return null.get("sha256") if isinstance(null, dict) and null else None
    return record.get(key)


def scan(
    kit_path: str | os.PathLike[str],
    targets: list[Target],
    out: str | os.PathLike[str],
    *,
    settings: ScanSettings = ScanSettings(),
    workers: int = 4,
    ray_address: str | None = None,
    progress: bool = True,
) -> list[ScanRow]:
    """Verify ``targets`` against the kit, ``workers`` at a time (or as Ray tasks), writing
    ``out/NAME.json``, ``out/NAME.queries.jsonl`` and ``out/summary.json``; return the rows.

    A suspect that fails (unreachable, wrong shape) gets an ``error`` row and the others go on.
    """
    from tqdm.auto import tqdm

    from .archs import trusted_modules
    from .family_null import load_nulls
    from .kit import Kit

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    kit = Kit.load(kit_path, trusted_key=settings.trusted_key)
    # every family null is loaded, and checked against the kit and the settings, before the first query
    nulls = {f: load_nulls(f, kit) for f in dict.fromkeys(t.family_null for t in targets)}
    wanted = {f: _resumable(kit, settings, null) for f, null in nulls.items()}
    out = ensure_writable_dir(Path(out))
    rows: dict[str, ScanRow] = {}
    todo = []
    for t in targets:
        record = _finished(out / f"{t.name}.json", wanted[t.family_null], t)
        if record is not None:
            rows[t.name] = _row(t, record, out / f"{t.name}.json", resumed=True)
        else:
            todo.append(t)
    if rows:
        log.info("%d suspects already verified by this kit in %s: not queried again", len(rows), out)
    bar = tqdm(total=len(targets), initial=len(rows), desc="scan", unit="suspect", disable=not progress)

    def finish(t: Target, record: dict[str, Any] | None, error: str = "") -> None:
        path = out / f"{t.name}.json"
        if record is None:
            rows[t.name] = ScanRow(
                name=t.name, spec=t.spec, verdict="error", family_null=list(t.family_null), error=error
            )
            log.error("%s: %s", t.name, error)
        else:
            record = {**record, "scan_target": _identity(t)}
            write_json(path, record)
            rows[t.name] = _row(t, record, path)
            p = record.get("p_value")
            log.info("%s: %s (p %s)", t.name, record["verdict"], "n/a" if p is None else f"{p:.3g}")
        bar.update(1)

    start = time.perf_counter()
    try:
        if ray_address is None:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(
                        verify_target, kit, t, settings, out / f"{t.name}.queries.jsonl", nulls[t.family_null]
                    ): t
                    for t in todo
                }
                for future in as_completed(futures):
                    t = futures[future]
                    try:
                        finish(t, future.result())
                    except UapfpError as exc:
                        finish(t, None, str(exc))
        else:
            _scan_on_ray(kit_path, todo, settings, out, ray_address, trusted_modules(), finish,
                         {f: None if n is None else n.sha256 for f, n in nulls.items()})  # fmt: skip
    finally:
        bar.close()
        ordered = [rows[t.name] for t in targets if t.name in rows]
        write_json(
            out / SUMMARY,
            {"kit": str(kit_path), "kit_sha256": kit.sha256, "seconds": round(time.perf_counter() - start, 2),
             "suspects": [asdict(r) for r in ordered]},
        )  # fmt: skip
    return ordered


def _scan_on_ray(
    kit_path: str | os.PathLike[str], todo: list[Target], settings: ScanSettings, out: Path, address: str,
    trusted: list[str], finish: Any, null_sha256: dict[tuple[str, ...], str | None],
) -> None:  # fmt: skip
    from .raytasks import run_tasks

    def done(t: Target, result: tuple[dict[str, Any], bytes]) -> None:
        record, log_bytes = result
        qlog = out / f"{t.name}.queries.jsonl"
        with atomic_open(qlog, "wb") as handle:
            handle.write(log_bytes)
        finish(t, {**record, "query_log": str(qlog)})

    def failed(t: Target, cause: BaseException) -> None:
        finish(t, None, str(cause) if isinstance(cause, UapfpError) else f"{type(cause).__name__}: {cause}")

    # a worker opens the suspect and loads the null itself, from where this process found them
    resolved = {
        t: replace(t, spec=_resolved_spec(t.spec), weights=t.weights and str(Path(t.weights).resolve()),
                   family_null=tuple(str(Path(p).resolve()) for p in t.family_null))
        for t in todo
    }  # fmt: skip
    run_tasks(
        _verify_remote, {t: (resolved[t], null_sha256[t.family_null]) for t in todo}, address=address, done=done,
        failed=failed,
        shared=(str(Path(kit_path).resolve()), settings, trusted),
    )  # fmt: skip
