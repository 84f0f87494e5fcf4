"""The reference Open Inference Protocol (KServe v2 REST) server, and a client-side launcher.

``uapfp serve SPEC`` puts any suspect spec (a zoo card, an ONNX file, a factory with
weights...) behind the endpoints Triton, KServe and MLServer speak, so that HTTP verification
can be tested and benchmarked end to end. Answers are computed by the same
:class:`~uapfp.suspects.Suspect` as local verification, so they are bit-identical to it.

Fault injection (for tests): a seeded fraction of inference requests fails with 503, and
another fraction is answered only after a delay.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import queue
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, SuspectError, UapfpError
from .suspects.base import Suspect

log = logging.getLogger(__name__)

INPUT_NAME = "input"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_URL_RE = re.compile(r"(https?://\S+/v2/models/[A-Za-z0-9_.-]+)")


@dataclass(frozen=True)
class Faults:
    """Fault injection: ``fail_rate`` of inference requests get a 503; ``slow_rate`` of them
    are answered after ``slow_seconds``; draws come from a generator seeded by ``seed``."""

    fail_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fail_rate", "slow_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(self, name)}")
        if self.slow_seconds < 0:
            raise ConfigError(f"--slow-seconds must be >= 0, got {self.slow_seconds}")


def _json(data: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    # allow_nan: a server must be able to send what its model computed; clients validate it.
    return Response(json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Any:
    return _json({"error": message}, status)


def create_app(
    suspect: Suspect,
    *,
    model_name: str = "model",
    faults: Faults | None = None,
    int_labels: bool = False,
    max_batch: int = 1024,
    token: str | None = None,
) -> Any:
    """A Starlette app serving ``suspect`` as model ``model_name`` (Open Inference Protocol v2).

    Endpoints: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``,
    ``GET /v2/models/{name}`` (metadata; ``parameters.output_mode`` says what answers hold),
    ``GET /v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer``, each also under
    ``/v2/models/{name}/versions/1``. Requests and answers are JSON or carry the binary tensor
    data extension (:mod:`uapfp.oip`), as the client asks. Two outputs: ``probabilities``
    (FP32 (n, K) in the model's answer mode) and ``label`` (INT64 (n,)); a request may name
    the ones it wants, else it gets the first (``label`` with ``int_labels``, else
    ``probabilities``). Every request is bounded before it is read whole (body size, batch,
    nesting, values); a bad one gets a 4xx with ``{"error": ...}`` in one line, unknown models
    or versions 404. With ``token`` the model endpoints require ``Authorization: Bearer TOKEN``
    (401 otherwise); health checks stay open.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.routing import Route

    from . import oip

    if not _NAME_RE.match(model_name):
        raise ConfigError(f"model name {model_name!r} must be letters, digits, '_', '.' or '-'")
    if int_labels and suspect.output.kind != "label":
        raise ConfigError("--int-labels needs --outputs label")
    faults = faults or Faults()
    rng = random.Random(faults.seed)  # handlers run on the event loop: one thread draws
    c, h, w = suspect.input_shape
    k = suspect.num_classes
    max_values = max_batch * c * h * w
    max_body = 32 * max_values + (1 << 20)  # a float takes at most ~25 bytes in JSON, 4 in binary
    outputs = [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    if int_labels:
        outputs.reverse()
    metadata = {
        "name": model_name,
        "versions": ["1"],
        "platform": "uapfp",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, c, h, w]}],
        "outputs": outputs,
        "parameters": {"output_mode": str(suspect.output), "max_batch_size": max_batch},
    }

    def known(request: Request) -> Any:
        """None when the request may go on, else the error answer (401 or 404)."""
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error("missing or wrong bearer token", 401)
        name = request.path_params["name"]
        if name != model_name:
            return _error(f"unknown model {name[:60]!r}; this server serves {model_name!r}", 404)
        version = request.path_params.get("version")
        if version is not None and version != "1":
            return _error(f"model {model_name!r} has no version {version[:20]!r}; its one version is '1'", 404)
        return None

    async def live(request: Request) -> Any:
        return _json({"live": True})

    async def ready(request: Request) -> Any:
        return _json({"ready": True})

    async def server_metadata(request: Request) -> Any:
        from . import __version__

        return _json({"name": "uapfp", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: Request) -> Any:
        if refused := known(request):
            return refused
        return _json(metadata)

    async def model_ready(request: Request) -> Any:
        if refused := known(request):
            return refused
        return _json({"name": model_name, "ready": True})

    async def bounded_body(request: Request) -> bytes | Any:
        """The request's body, read only while it stays within ``max_body``; else the 413 answer."""
        too_large = _error(f"the request is larger than {max_body} bytes; send at most {max_batch} images", 413)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return too_large
        if request.headers.get("content-encoding", "identity") not in ("identity", ""):
            return _error("compressed requests are not accepted; send the body as it is", 415)
        chunks, total = [], 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > max_body:
                    return too_large
                chunks.append(chunk)
        except ClientDisconnect:
            return _error("the client went away before the request ended", 400)
        return b"".join(chunks)

    async def infer(request: Request) -> Any:
        if refused := known(request):
            return refused
        if faults.fail_rate and rng.random() < faults.fail_rate:
            return _error("injected failure (--fail-rate)", 503)
        if faults.slow_rate and rng.random() < faults.slow_rate:
            await asyncio.sleep(faults.slow_seconds)
        body = await bounded_body(request)
        if not isinstance(body, bytes):
            return body
        try:
            header, tensors = oip.decode(body, request.headers.get(oip.HEADER_LENGTH), kind="request", limit=max_values)
            names, binary = oip.requested_outputs(header, [o["name"] for o in outputs])
        except oip.ProtocolError as exc:
            return _error(str(exc), 400)
        x = _images(tensors, shape=(c, h, w), max_batch=max_batch)
        if isinstance(x, str):
            return _error(x, 400)
        try:
            x = suspect.check_input(x)
        except SuspectError as exc:
            return _error(str(exc), 400)
        try:
            out = await run_in_threadpool(suspect, x)
        except UapfpError as exc:
            log.error("inference failed: %s", exc)
            return _error(f"the model failed: {exc}", 500)
        produced = {
            "probabilities": oip.Tensor("probabilities", "FP32", out.numpy().astype(np.float32)),
            "label": oip.Tensor("label", "INT64", out.argmax(dim=1).numpy().astype(np.int64)),
        }
        answer: dict[str, Any] = {"model_name": model_name, "model_version": "1"}
        if isinstance(header.get("id"), str):
            answer["id"] = header["id"][:256]
        content, headers = oip.encode(answer, [produced[n] for n in names], key="outputs", binary=binary)
        from starlette.responses import Response

        return Response(content, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        return _error(f"{exc.detail}: {request.method} {request.url.path[:200]}", exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Any:
        # one line at error level; the traceback only when debugging
        log.error("internal error on %s %s: %s", request.method, request.url.path[:200], type(exc).__name__)
        log.debug("internal error", exc_info=exc)
        return _error(f"internal server error ({type(exc).__name__})", 500)

    routes = [Route("/v2", server_metadata, methods=["GET"]), Route("/v2/health/live", live, methods=["GET"]),
              Route("/v2/health/ready", ready, methods=["GET"])]  # fmt: skip
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(base, model_metadata, methods=["GET"]),
            Route(f"{base}/ready", model_ready, methods=["GET"]),
            Route(f"{base}/infer", infer, methods=["POST"]),
        ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})


def _images(tensors: list[Any], *, shape: tuple[int, int, int], max_batch: int) -> torch.Tensor | str:
    """The request's images (n, C, H, W), or the message of a 400 answer."""
    expected = f"[n, {', '.join(map(str, shape))}]"
    if len(tensors) != 1:
        return f"this model takes one input, {INPUT_NAME!r}; got {len(tensors)}"
    inp = tensors[0]
    if inp.name != INPUT_NAME:
        return f"unknown input {inp.name[:60]!r}; this model's input is {INPUT_NAME!r}"
    if inp.datatype != "FP32":
        return f"input datatype must be FP32, got {inp.datatype!r}"
    dims = inp.shape
    if len(dims) != 4 or tuple(dims[1:]) != shape:
        return f"input shape must be {expected}, got {dims}"
    if dims[0] == 0:
        return "the request holds no image (a batch of size 0)"
    if dims[0] > max_batch:
        return f"at most {max_batch} images per request, got {dims[0]}"
    return torch.from_numpy(np.array(inp.data, dtype=np.float32))  # a copy: binary data arrive read-only


# --------------------------------------------------------------------------- running a server


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free port), or a ConfigError naming the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host"
        ) from None
    return sock


def run_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 8000, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve ``app`` with uvicorn until interrupted; ``on_ready(base_url)`` once it accepts requests."""
    import uvicorn

    sock = bind_socket(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{actual}"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_ready is not None:
                on_ready(base)

    config = uvicorn.Config(app, log_config=None, access_log=log.isEnabledFor(logging.INFO), lifespan="off")
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()


def serve(
    spec: str,
    *,
    port: int = 8000,
    host: str = "127.0.0.1",
    output: str | None = None,
    model_name: str | None = None,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    faults: Faults | None = None,
    int_labels: bool = False,
    token_env: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the suspect ``spec`` (see :func:`~uapfp.suspects.spec.open_suspect`) over HTTP until interrupted.

    A zoo card carries its input shape and class count; other specs need ``input_shape``
    and ``num_classes``. ``token_env`` names an environment variable holding the bearer token
    clients must send. ``on_ready`` receives the model's URL, ``http://HOST:PORT/v2/models/NAME``.
    """
    from .suspects.http import read_token
    from .suspects.spec import open_suspect, scheme_of

    scheme = scheme_of(spec)
    if scheme.remote:
        raise ConfigError(f"{spec} is a server already; serve a zoo card, an ONNX, TorchScript or factory model")
    if output == "logits":
        raise ConfigError(
            "--outputs logits describes an ONNX model, not what a server answers; use probs, topk:K or label"
        )
    token = read_token(token_env) if token_env else None
    suspect = open_suspect(spec, input_shape=input_shape, num_classes=num_classes, weights=weights, output=output)
    if model_name is None:
        stem = suspect.name if scheme.name == "card" else re.split(r"[/:\\]", spec.rstrip("/"))[-1].rsplit(".", 1)[0]
        model_name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-.") or "model"
    app = create_app(suspect, model_name=model_name, faults=faults, int_labels=int_labels, token=token)
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without authentication: anyone who reaches it can query the model", host)

    def ready(base: str) -> None:
        url = f"{base}/v2/models/{model_name}"
        log.info("serving %s (outputs %s)", suspect.name, suspect.output)
        if on_ready is not None:
            on_ready(url)

    try:
        run_app(app, host=host, port=port, on_ready=ready)
    finally:
        suspect.close()


# --------------------------------------------------------------------------- a server in a subprocess


class ServerProcess:
    """A server started as a subprocess that prints its model URL when ready (tests, benchmarks).

    ``ServerProcess.serve(spec, "--outputs", "label")`` runs ``python -m uapfp -q serve spec
    --port 0 ...``; use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, argv: Sequence[str], *, ready_timeout: float = 120.0, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, env=env, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            self.url = self._wait_ready(ready_timeout)
        except BaseException:
            self.close()
            raise

    @classmethod
    def serve(
        cls, spec: str, *options: str, ready_timeout: float = 120.0, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Start ``uapfp serve spec --port 0 [options]`` on 127.0.0.1."""
        argv = [sys.executable, "-m", "uapfp", "-q", "serve", spec, "--port", "0", *options]
        return cls(argv, ready_timeout=ready_timeout, env=env)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._lines.put(line)
        except (OSError, ValueError):  # closed by close()
            pass
        self._lines.put(None)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _wait_ready(self, timeout: float) -> str:
        import httpx

        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or self.proc.poll() is not None:
                tail = self.stderr().strip().splitlines()[-3:]
                raise ConfigError(f"the server exited with code {self.proc.wait()}: {' | '.join(tail)}")
            if m := _URL_RE.search(line or ""):
                url = m.group(1)
            elif time.monotonic() > deadline:
                raise ConfigError(f"the server printed no URL within {timeout:.0f} s")
        base = url.split("/v2/models/")[0]
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=2.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"{base} was not ready within {timeout:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
