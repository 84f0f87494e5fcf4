"""A model behind an Open Inference Protocol (KServe v2 REST) endpoint: Triton, KServe, MLServer, ``uapfp serve``."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import oip
from ..errors import ConfigError, SuspectError, SuspectUnavailableError
from .base import OutputMode, Suspect, labels_to_one_hot
from .options import HttpOptions

log = logging.getLogger(__name__)

# Bounds on what a server may send: a JSON float takes at most ~25 characters, so an answer of
# n rows of K values needs far less than this; metadata is a few hundred bytes.
ANSWER_BYTES_PER_VALUE = 64
ANSWER_SLACK_BYTES = 1 << 16
METADATA_BYTES = 1 << 20
MAX_RETRY_WAIT = 60.0
#: Answers worth a retry: too many requests, and server errors but 501 (not implemented: it never will be).
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Aborted(Exception):
    """Another batch of the same call failed; stop retrying this one."""


class HttpSuspect(Suspect):
    """A model behind an Open Inference Protocol (KServe v2 REST) endpoint.

    Speaks to Triton, KServe, MLServer and ``uapfp serve``: ``POST {url}/infer`` with FP32
    images (n, C, H, W), answered by probabilities (n, K), truncated rows, or INT labels (n,).
    Every image asked about counts against ``max_queries``, charged before it is first sent (a
    resend of a failed request is not charged again), so the budget is never exceeded.

    Args:
        url: the model's URL, ``http(s)://host:port/v2/models/NAME``.
        output: the declared answer mode (``probs``, ``topk:K``, ``label``, or ``logits`` for a
            server answering raw scores: the softmax is applied here); None takes the
            mode the server advertises in its metadata, else ``probs``.
        options: timeouts, retries, concurrency, rate limit, token, batch size, and whether
            to read the model's metadata (``GET {url}``) for its input name, shapes and mode.
        input_shape, num_classes, max_queries, name: as for :class:`Suspect`.
    """

    negative_hint = "if the server answers logits, declare --outputs logits (the softmax is then applied here)"

    def __init__(
        self,
        url: str,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        output: str | OutputMode | None = "probs",
        max_queries: int | None = None,
        name: str | None = None,
        options: HttpOptions | None = None,
    ) -> None:
        import httpx

        url = url.rstrip("/")
        parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
        if parsed is None or not parsed.host or "/v2/models/" not in parsed.path:
            raise ConfigError(f"{url!r} is not a model URL; give http(s)://host:port/v2/models/NAME")
        self.logits = output == "logits"  # a server answering scores: the softmax is applied here
        super().__init__(
            input_shape=input_shape, num_classes=num_classes, output="probs" if self.logits else (output or "probs"),
            max_queries=max_queries, name=name or url,
        )  # fmt: skip
        if self.logits:
            output = "probs"
        self.url = url
        self.options = options = options or HttpOptions()
        self.binary_ = bool(options.binary)
        headers = {"Accept": "application/json"}
        if options.token_env:
            headers["Authorization"] = f"Bearer {read_token(options.token_env)}"
        self.input_name = "input"
        self.input_datatype = "FP32"
        self.served_output_: OutputMode | None = None
        self._rate_lock = threading.Lock()
        self._next_slot = 0.0
        self._pool_: Any = None
        self._client = httpx.Client(
            timeout=httpx.Timeout(options.timeout),
            headers=headers,
            limits=httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency),
        )
        try:
            if options.metadata:
                self._read_metadata(declared=output)
                if options.binary is None:
                    self.binary_ = self._speaks_binary()
        except BaseException:
            self._client.close()
            raise

    def __repr__(self) -> str:
        return (
            f"HttpSuspect({self.url!r}, output='{self.output}', max_queries={self.max_queries}, options={self.options})"
        )

    @property
    def infer_url(self) -> str:
        return f"{self.url}/infer"

    @property
    def backend_output(self) -> OutputMode:
        """The mode the server answers in: the one it advertises, else the declared one."""
        return self.served_output_ or self.output

    # ---------------------------------------------------------------- metadata

    def _speaks_binary(self) -> bool:
        """Whether the server lists the binary tensor data extension (``GET /v2``)."""
        import httpx

        base = self.url.split("/v2/models/")[0] + "/v2"
        try:
            r = self._exchange("GET", base, limit=METADATA_BYTES)
            meta = oip.parse_json(r.body, f"{base}'s metadata") if r.status == 200 else None
        except (httpx.HTTPError, SuspectError, oip.ProtocolError):
            return False
        extensions = meta.get("extensions") if isinstance(meta, dict) else None
        return isinstance(extensions, list) and "binary_tensor_data" in extensions

    def _read_metadata(self, *, declared: str | OutputMode | None) -> None:
        import httpx

        try:
            r = self._exchange("GET", self.url, limit=METADATA_BYTES)
        except httpx.HTTPError as exc:
            log.debug("no metadata from %s (%s); using input name %r", self.url, exc, self.input_name)
            return
        if r.status in (401, 403):
            raise SuspectError(f"{self.url} refused the request (HTTP {r.status}: {r.message()}); check --token-env")
        try:
            meta = oip.parse_json(r.body, f"{self.url}'s metadata") if r.status == 200 else None
        except oip.ProtocolError as exc:  # metadata is optional: without it the defaults apply
            log.warning("ignoring the metadata of %s: %s", self.url, exc)
            meta = None
        if not isinstance(meta, dict):
            log.debug("no metadata from %s (HTTP %s); using input name %r", self.url, r.status, self.input_name)
            return
        inputs = meta.get("inputs")
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
            inp = inputs[0]
            if isinstance(inp.get("name"), str):
                self.input_name = inp["name"]
            if inp.get("datatype") in ("FP32", "FP64"):
                self.input_datatype = inp["datatype"]
            shape = inp.get("shape")
            if isinstance(shape, list) and len(shape) == 4:
                dims = shape[1:]
                if any(isinstance(d, int) and d > 0 and d != e for d, e in zip(dims, self.input_shape)):
                    shown = ", ".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in dims)
                    raise SuspectError(
                        f"{self.url} takes inputs (N, {shown}), the kit expects "
                        f"(N, {', '.join(map(str, self.input_shape))}); serve the model the kit was built for"
                    )
        outputs = (
            [o for o in meta.get("outputs") or [] if isinstance(o, dict)]
            if isinstance(meta.get("outputs"), list)
            else []
        )
        if self.options.output_name:
            outputs = [o for o in outputs if o.get("name") == self.options.output_name]
        served = None
        if outputs:
            out = outputs[0]
            shape = out.get("shape")
            if out.get("datatype") in oip.INTEGERS:
                served = OutputMode("label", 1)
            elif isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
                if shape[1] != self.num_classes:
                    raise SuspectError(f"{self.url} returns {shape[1]} classes, the kit expects {self.num_classes}")
        params = meta.get("parameters")
        if self.logits:
            served = None  # what a server of scores answers is known: scores; the declared mode truncates
        elif isinstance(params, dict) and isinstance(params.get("output_mode"), str):
            try:
                served = OutputMode.parse(params["output_mode"])
            except ConfigError:
                log.warning("%s advertises an unknown output mode %r", self.url, params["output_mode"])
        if served is None:
            return
        if declared is None:
            self.output = served
        elif not served.richer_than(self.output):
            raise ConfigError(
                f"{self.url} answers {served} but {self.output} was declared; verify it with --outputs {served}"
            )
        self.served_output_ = served

    # ---------------------------------------------------------------- queries

    def _answer(self, x: torch.Tensor) -> torch.Tensor:
        """Send ``x`` in requests of ``batch_size`` images, up to ``concurrency`` in flight."""
        from concurrent.futures import ThreadPoolExecutor, wait

        size = self.options.batch_size
        batches = [x[i : i + size] for i in range(0, len(x), size)]
        stop = threading.Event()
        if len(batches) == 1 or self.options.concurrency == 1:
            return torch.cat([self._request(b, stop) for b in batches])
        if self._pool_ is None:
            self._pool_ = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="uapfp-http")
        futures = [self._pool_.submit(self._request, b, stop) for b in batches]
        try:
            return torch.cat([f.result() for f in futures])
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise

    def _wait_for_rate(self) -> None:
        rate = self.options.rate_limit
        if rate is None:
            return
        with self._rate_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)

    def _exchange(
        self, method: str, url: str, *, limit: int, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """One request whose whole answer must arrive within ``timeout`` seconds and hold at
        most ``limit`` bytes, before and after decompression.

        Raises httpx's timeout and transport errors (a slow answer is a timeout), or
        :class:`SuspectError` for an answer over the limit.
        """
        import httpx

        deadline = time.monotonic() + self.options.timeout
        with self._client.stream(method, url, content=content, headers=headers) as r:
            length = r.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise SuspectError(f"{url} sent an answer of {length} bytes, more than the {limit} a model's can need")
            body = bytearray()
            for chunk in r.iter_bytes():  # decompressed as it arrives
                body += chunk
                if len(body) > limit or r.num_bytes_downloaded > limit:
                    raise SuspectError(f"{url} sent an answer of more than {limit} bytes; it is not a model's answer")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the answer took more than {self.options.timeout} s")
        return Answer(
            r.status_code, r.headers.get("Retry-After", ""), bytes(body), r.reason_phrase,
            r.headers.get(oip.HEADER_LENGTH),
        )  # fmt: skip

    def _request(self, x: torch.Tensor, stop: threading.Event) -> torch.Tensor:
        """One batch: encode, POST with retries (each resend charged first), decode."""
        import httpx

        n = len(x)
        dtype = oip.DATATYPES[self.input_datatype]
        image = oip.Tensor(self.input_name, self.input_datatype, x.numpy().astype(dtype.newbyteorder("="), copy=False))
        header: dict[str, Any] = {}
        if self.options.output_name:
            header["outputs"] = [{"name": self.options.output_name, "parameters": {"binary_data": self.binary_}}]
        elif self.binary_:
            header["parameters"] = {"binary_data_output": True}
        content, headers = oip.encode(header, [image], key="inputs", binary=self.binary_)
        limit = ANSWER_BYTES_PER_VALUE * n * self.num_classes + ANSWER_SLACK_BYTES
        last = ""
        retries = self.options.retries
        wait = 0.0
        for attempt in range(retries + 1):
            if stop.is_set():
                raise _Aborted
            if attempt:
                log.warning("%s: %s; retry %d of %d in %.2f s", self.infer_url, last, attempt, retries, wait)
                time.sleep(wait)
                if stop.is_set():
                    raise _Aborted
            # a resend of the same images is not charged again: the budget counts the images asked about
            self._wait_for_rate()
            # the next wait: the backoff doubles from try to try; a Retry-After may lengthen one wait,
            # never beyond MAX_RETRY_WAIT, and does not compound into the next
            wait = self.options.backoff * 2**attempt
            try:
                answer = self._exchange("POST", self.infer_url, limit=limit, content=content, headers=headers)
            except httpx.TimeoutException:
                last = f"no whole answer within {self.options.timeout} s"
                continue
            except httpx.TransportError as exc:
                last = f"connection error ({exc or type(exc).__name__})"
                continue
            if answer.status in RETRIED_STATUSES:
                last = f"HTTP {answer.status} ({answer.message()})"
                if answer.retry_after.isdigit():
                    wait = max(wait, float(answer.retry_after))
                wait = min(wait, MAX_RETRY_WAIT)
                continue
            if answer.status != 200:
                hint = "; check --token-env" if answer.status in (401, 403) else ""
                raise SuspectError(f"{self.infer_url} answered HTTP {answer.status}: {answer.message()}{hint}")
            try:
                _, tensors = oip.decode(
                    answer.body, answer.header_length, kind="response", limit=n * self.num_classes * 4
                )
            except oip.ProtocolError as exc:
                raise SuspectError(f"{self.infer_url} answered a malformed message: {exc}") from None
            return self._decode(tensors, n)
        raise SuspectUnavailableError(
            f"{self.infer_url} failed {retries + 1} times (last: {last}); check the server, "
            "or raise --retries / --timeout"
        )

    def _decode(self, tensors: list[oip.Tensor], n: int) -> torch.Tensor:
        """The answer's rows (n, K): the output named ``output_name``, else the first (n, K) float
        output, else an (n,) integer label output; logits through a softmax, labels one-hot."""
        if self.options.output_name:
            chosen = next((t for t in tensors if t.name == self.options.output_name), None)
            if chosen is None:
                names = ", ".join(t.name for t in tensors)
                raise SuspectError(
                    f"{self.infer_url} answered no output {self.options.output_name!r} (it sent {names})"
                )
        else:
            chosen = next((t for t in tensors if t.datatype in oip.FLOATS and t.data.ndim == 2), None)
            chosen = chosen or next((t for t in tensors if t.datatype in oip.INTEGERS and t.data.ndim in (1, 2)), None)
            if chosen is None:
                kinds = ", ".join(f"{t.name} {t.datatype} {t.shape}" for t in tensors)
                raise SuspectError(f"{self.infer_url} answered {kinds}; expected (n, K) scores or (n,) labels")
        if chosen.datatype in oip.INTEGERS:
            if self.backend_output.kind != "label":
                raise SuspectError(f"{self.infer_url} answers class labels; verify it with --outputs label")
            return labels_to_one_hot(chosen.data, n, self.num_classes, self.name)
        if chosen.datatype not in oip.FLOATS or chosen.data.ndim != 2:
            raise SuspectError(
                f"{self.name} returned {chosen.datatype} of shape {chosen.shape} for {n} queries, expected ({n}, K)"
            )
        out = torch.from_numpy(np.array(chosen.data, dtype=np.float32))  # a copy: the message may be read-only
        if self.logits:
            if out.shape[0] == n and torch.isfinite(out).all():
                return torch.softmax(out, dim=1)
            return out  # the base's checks name what is wrong
        if self.served_output_ is None and self.output.kind != "probs":
            # a server that does not say what it answers: full probabilities are truncated here
            if ((out > 0).sum(dim=1) > self.output.k).any():
                log.info("%s answers full probabilities: truncated to %s here", self.infer_url, self.output)
                self.served_output_ = OutputMode("probs")
        return out

    def close(self) -> None:
        if self._pool_ is not None:
            self._pool_.shutdown(wait=True, cancel_futures=True)
            self._pool_ = None
        self._client.close()


@dataclass(frozen=True)
class Answer:
    """What a server sent back: status, Retry-After, the (bounded, decompressed) body."""

    status: int
    retry_after: str
    body: bytes
    reason: str
    header_length: str | None = None

    def message(self) -> str:
        """The error the server put in its answer: JSON ``error``/``detail``, else the text's start."""
        try:
            parsed = oip.parse_json(self.body, "the answer")
        except oip.ProtocolError:
            parsed = None
        if isinstance(parsed, dict):
            for key in ("error", "detail", "message"):
                if isinstance(parsed.get(key), str):
                    return " ".join(parsed[key].split())[:300]
        text = " ".join(self.body[:2000].decode("utf-8", "replace").split())
        return text[:300] or self.reason or "no message"


def read_token(env: str) -> str:
    """The bearer token held by environment variable ``env`` (client and server read it alike)."""
    token = os.environ.get(env)
    if not token:
        raise ConfigError(f"environment variable {env} is not set; export {env}=TOKEN or drop --token-env")
    return token
