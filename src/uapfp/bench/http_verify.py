"""``uapfp bench http-verify``: verifications per minute of a suspect served by ``uapfp serve`` on loopback."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field

from ..options import option
from . import Experiment, kit_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpVerifyConfig:
    kit: str = kit_field()
    suspect: str = field(metadata=option("what to serve: a zoo card .json (or any uapfp serve spec)"))
    weights: str | None = field(default=None, metadata=option("weights for a module:factory suspect"))
    seconds: float = field(default=60.0, metadata=option("how long to keep verifying"))
    fingerprints: int = field(default=20, metadata=option("fingerprints per verification (at most the kit's)"))
    outputs: str = field(default="probs", metadata=option("the server's answers: probs, topk:K or label"))
    method: str | None = field(default=None, metadata=option("fingerprint method (default: the kit's)"))
    transport: str = field(default="auto", metadata=option("auto (binary where the server lists it), binary or json",
                                                           choices=("auto", "binary", "json")))  # fmt: skip
    concurrency: int = 4
    batch_size: int = 200


@dataclass
class HttpVerifyReport:
    experiment: str
    suspect: str
    output_mode: str
    method: str
    transport: str
    fingerprints: int
    queries_per_verification: int
    batch_size: int
    concurrency: int
    server_startup_seconds: float
    verifications: int
    wall_seconds: float
    verifications_per_minute: float
    queries_per_second: float
    median_verification_seconds: float
    max_verification_seconds: float
    verdicts: list[str]


def http_verify(config: HttpVerifyConfig) -> HttpVerifyReport:
    """Serve ``config.suspect`` with ``uapfp serve`` in a subprocess and verify it over HTTP, repeatedly.

    Client and server share this machine, so the figures include both sides' CPU time.
    """
    from ..kit import Kit
    from ..serve import ServerProcess
    from ..suspects.http import HttpSuspect
    from ..suspects.options import HttpOptions
    from ..verify import verify

    kit = Kit.load(config.kit)
    n = min(config.fingerprints, kit.n_sets)
    if n < config.fingerprints:
        log.warning("the kit has %d probe sets; using %d fingerprints", kit.n_sets, n)
    options = ["--outputs", config.outputs]
    if not config.suspect.endswith(".json"):
        c, h, w = kit.input_shape
        options += ["--input-shape", f"{c},{h},{w}", "--classes", str(kit.num_classes)]
    if config.weights:
        options += ["--weights", config.weights]
    binary = {"auto": None, "binary": True, "json": False}[config.transport]
    http = HttpOptions(concurrency=config.concurrency, batch_size=config.batch_size, binary=binary)
    used = {}
    t0 = time.perf_counter()
    with ServerProcess.serve(config.suspect, *options) as server:
        startup = time.perf_counter() - t0

        def once():  # type: ignore[no-untyped-def]
            with HttpSuspect(
                server.url, input_shape=kit.input_shape, num_classes=kit.num_classes, output=config.outputs,
                options=http,
            ) as suspect:  # fmt: skip
                v = verify(kit, suspect, method=config.method, fingerprints=n, sequential=False)  # every set
                used["binary"] = suspect.binary_
                return v

        once()  # warm-up: first requests, lazy imports
        seconds, queries, verdicts = [], 0, set()
        start = time.perf_counter()
        while not seconds or time.perf_counter() - start < config.seconds:
            t = time.perf_counter()
            v = once()
            seconds.append(time.perf_counter() - t)
            queries += v.queries
            verdicts.add(v.verdict)
        wall = time.perf_counter() - start
    return HttpVerifyReport(
        experiment="http-verify", suspect=config.suspect, output_mode=config.outputs, method=v.method,
        transport="binary" if used["binary"] else "json", fingerprints=n,
        queries_per_verification=queries // len(seconds), batch_size=config.batch_size,
        concurrency=config.concurrency, server_startup_seconds=round(startup, 2), verifications=len(seconds),
        wall_seconds=round(wall, 2), verifications_per_minute=round(60 * len(seconds) / wall, 2),
        queries_per_second=round(queries / wall, 1), median_verification_seconds=round(statistics.median(seconds), 3),
        max_verification_seconds=round(max(seconds), 3), verdicts=sorted(verdicts),
    )  # fmt: skip


EXPERIMENT = Experiment(
    "http-verify",
    "verifications per minute, queries per second and median seconds of verify over HTTP (local uapfp serve)",
    HttpVerifyConfig, http_verify,
)  # fmt: skip
