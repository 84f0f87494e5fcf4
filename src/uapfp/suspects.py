"""The Suspect protocol: anything that maps images in [0, 1] to class probabilities.

A suspect takes a float batch (N, C, H, W) in [0, 1] and returns probabilities (N, K). The
public :meth:`Suspect.__call__` validates inputs once, enforces the query budget, counts
queries, calls the backend's :meth:`Suspect._predict`, validates what came back and applies
the output mode (full probabilities, top-k, label only). The method never sees a backend.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import BudgetExhaustedError, ConfigError, SuspectError, UnsafeFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputMode:
    """What a suspect returns: ``probs``, ``topk:K`` (other classes zeroed) or ``label``."""

    kind: str = "probs"
    k: int = 0

    @classmethod
    def parse(cls, text: str | OutputMode | None) -> OutputMode:
        if isinstance(text, OutputMode):
            return text
        if text is None or text == "probs":
            return cls("probs")
        if text in ("label", "topk:1"):
            return cls("label", 1)
        if text.startswith("topk:"):
            try:
                k = int(text.split(":", 1)[1])
            except ValueError:
                k = 0
            if k >= 1:
                return cls("topk", k)
        raise ConfigError(f"unknown output mode {text!r}; use probs, topk:K or label")

    def __str__(self) -> str:
        return "probs" if self.kind == "probs" else ("label" if self.kind == "label" else f"topk:{self.k}")

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """Truncate probabilities (N, K) as an API in this mode would (idempotent)."""
        if self.kind == "probs":
            return probs
        if self.kind == "label":
            return torch.nn.functional.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
        k = min(self.k, probs.shape[1])
        top = probs.topk(k, dim=1)
        return torch.zeros_like(probs).scatter_(1, top.indices, top.values)


class Suspect(ABC):
    """A classifier reachable only through queries.

    Args:
        input_shape: (C, H, W) it accepts.
        num_classes: K, the length of each output row.
        output: the :class:`OutputMode` of its answers.
        max_queries: hard budget of images sent (None: unlimited).
        batch_size: images per backend call.
        name: a label for logs and reports.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        output: str | OutputMode = "probs",
        max_queries: int | None = None,
        batch_size: int = 500,
        name: str = "suspect",
    ) -> None:
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.output = OutputMode.parse(output)
        self.max_queries = max_queries
        self.batch_size = batch_size
        self.name = name
        self._queries = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, output='{self.output}', max_queries={self.max_queries})"
        )

    @property
    def queries(self) -> int:
        """Images sent so far (each counts once, retries included for remote backends)."""
        return self._queries

    def reset_queries(self) -> None:
        self._queries = 0

    def _reserve(self, n: int, *, count: bool = True) -> None:
        """Count ``n`` queries, refusing (before sending) any that would pass the budget.

        With ``count=False`` only check that ``n`` more would fit.
        """
        with self._lock:
            if self.max_queries is not None and self._queries + n > self.max_queries:
                raise BudgetExhaustedError(
                    f"query budget of {self.max_queries} exhausted ({self._queries} spent, "
                    f"{n} more needed); raise --max-queries or use fewer --fingerprints"
                )
            if count:
                self._queries += n

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a batch (N, C, H, W) in [0, 1] and return it as contiguous float32."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"queries must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise SuspectError(
                f"{self.name} takes inputs of shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        x = x.detach().to(torch.float32).contiguous()
        if not torch.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise SuspectError("queries must be finite and in [0, 1]")
        return x

    @property
    def backend_output(self) -> OutputMode:
        """What the backend itself returns: full probabilities for local models (the output
        mode is then simulated here), the declared mode for a remote API that truncates."""
        return OutputMode("probs")

    def check_output(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """Validate returned rows: shape (n, K), finite, non-negative, summing as the mode says."""
        if probs.dim() != 2 or probs.shape[0] != n:
            raise SuspectError(f"{self.name} returned shape {tuple(probs.shape)} for {n} queries")
        if probs.shape[1] != self.num_classes:
            raise SuspectError(f"{self.name} returned {probs.shape[1]} classes, the kit expects {self.num_classes}")
        probs = probs.to(torch.float32)
        if not torch.isfinite(probs).all():
            raise SuspectError(f"{self.name} returned NaN or infinite outputs")
        if (probs < 0).any():
            raise SuspectError(f"{self.name} returned negative outputs; if it returns logits, declare --outputs logits")
        mode = self.backend_output
        sums = probs.sum(dim=1)
        if mode.kind == "probs" and not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            worst = float((sums - 1).abs().max())
            raise SuspectError(
                f"{self.name} declared probabilities but its rows do not sum to 1 (off by up to {worst:.3g}); "
                "declare --outputs logits, or topk:K / label if it truncates"
            )
        if mode.kind != "probs":
            if (sums > 1 + 1e-3).any():
                raise SuspectError(f"{self.name} returned rows summing to more than 1")
            if ((probs > 0).sum(dim=1) > mode.k).any():
                raise SuspectError(
                    f"{self.name} returned more than {mode.k} non-zero classes per row; it is not a {mode} API"
                )
        return probs

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Query the suspect: (N, C, H, W) in [0, 1] -> outputs (N, K) in its output mode."""
        x = self.check_input(x)
        outs = []
        for i in range(0, len(x), self.batch_size):
            batch = x[i : i + self.batch_size]
            self._reserve(len(batch))
            with torch.no_grad():  # answers carry no graph: nobody backpropagates into a suspect
                answer = self._predict(batch).detach()
            outs.append(self.check_output(answer, len(batch)))
        if not outs:
            return torch.zeros(0, self.num_classes)
        return self.output.apply(torch.cat(outs))

    @abstractmethod
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """Backend: validated inputs (n, C, H, W) -> outputs (n, K)."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release resources (connections, sessions)."""

    def __enter__(self) -> Suspect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TorchSuspect(Suspect):
    """A local PyTorch model (or TorchScript module) returning logits or probabilities.

    Args:
        model: the network; called in eval mode without gradients.
        logits: True when the model returns logits (softmax applied here).
    """

    def __init__(self, model: nn.Module, *, logits: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.model = model.eval()
        self.logits = logits

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if not isinstance(out, torch.Tensor):
            raise SuspectError(f"{self.name} returned {type(out).__name__}, not a tensor")
        out = out.float()
        if out.dim() != 2:
            raise SuspectError(f"{self.name} returned shape {tuple(out.shape)}, expected (N, K)")
        if not torch.isfinite(out).all():
            raise SuspectError(f"{self.name} returned NaN or infinite outputs")
        return torch.softmax(out, dim=1) if self.logits else out


class FunctionSuspect(Suspect):
    """A suspect backed by a plain function from images to probabilities (for tests and glue)."""

    def __init__(self, fn, **kwargs: object) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._fn = fn

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)


# --------------------------------------------------------------------------- ONNX Runtime

_ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
_ONNX_INTS = ("tensor(int64)", "tensor(int32)")


def _onnx_tensors(graph):  # type: ignore[no-untyped-def]
    """Every TensorProto of a graph: initializers, sparse initializers, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes):  # type: ignore[no-untyped-def]
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _onnx_tensors(attr.g)
            for sub in attr.graphs:
                yield from _onnx_tensors(sub)


def check_onnx_external_data(model, folder: str | os.PathLike[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Refuse external-data references that leave ``folder``; return the files referenced.

    An ONNX file may name files its tensors are read from. A location that is absolute or
    resolves (links followed) outside the model's folder would let a crafted model read any
    file the verifier can, so it is refused with :class:`UnsafeFileError`.
    """
    import onnx

    root = os.path.realpath(folder)
    tensors = itertools.chain(_onnx_tensors(model.graph), *(_node_tensors(f.node) for f in model.functions))
    files = []
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if not location:
            raise UnsafeFileError(
                f"ONNX tensor {tensor.name!r} uses external data without a location; re-export the model"
            )
        if os.path.isabs(location) or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
            raise UnsafeFileError(
                f"ONNX tensor {tensor.name!r} reads external data from the absolute path {location!r}; "
                "only files inside the model's folder are read. Re-export with the data beside the model"
            )
        try:
            resolved = os.path.realpath(os.path.join(root, location))
        except ValueError:  # a NUL byte in the location
            resolved = ""
        if not resolved or os.path.commonpath([root, resolved]) != root:
            raise UnsafeFileError(
                f"ONNX tensor {tensor.name!r} reads external data from {location!r}, outside the model's "
                f"folder {root}; only files inside it are read. Re-export with the data beside the model"
            )
        files.append(resolved)
    return files


class OnnxSuspect(Suspect):
    """An ONNX model run by ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file; external data may only come from files in its folder.
        output: what the model returns and how it answers. ``logits`` (softmax applied here),
            ``probs``, or None to detect it on the first batch (rows finite, non-negative and
            summing to 1 within 1e-4 are probabilities, anything else logits); ``topk:K`` and
            ``label`` detect it likewise, then truncate as an API in that mode would.
        **kwargs: :class:`Suspect` arguments (``input_shape``, ``num_classes``, ``max_queries``...).
    """

    def __init__(self, path: str | os.PathLike[str], *, output: str | None = None, **kwargs: Any) -> None:
        if output in (None, "logits", "probs"):
            self.raw_output: str | None = output
            mode: str | OutputMode = "probs"
        else:
            self.raw_output = None
            mode = OutputMode.parse(output)
        kwargs.setdefault("name", str(path))
        super().__init__(output=mode, **kwargs)
        self.path = str(path)
        self._session, self._input, self._dtype, self._output_name, self._int_output, self._fixed_batch = self._open(
            self.path
        )

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", raw_output={self.raw_output!r})"

    def _open(self, path: str):  # type: ignore[no-untyped-def]
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError

        if not os.path.isfile(path):
            raise ConfigError(f"ONNX file {path} does not exist; export one with torch.onnx.export(model, x, {path!r})")
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            model = onnx.load_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{path} is not a valid ONNX model ({exc}); export it with torch.onnx.export") from None
        if not model.graph.node and not model.graph.output:
            raise ConfigError(f"{path} is not a valid ONNX model (empty graph); export it with torch.onnx.export")
        external = check_onnx_external_data(model, os.path.dirname(os.path.abspath(path)))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            # The checked bytes are what runs; only a model with external data is reopened by path.
            source = path if external else data
            session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"ONNX Runtime cannot load {path} ({first}); re-export the model") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(
                f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); a suspect takes one image batch"
            )
        inp = inputs[0]
        if inp.type not in _ONNX_FLOATS:
            raise ConfigError(f"{path} takes {inp.type}; a suspect takes float images (N, C, H, W)")
        dims = list(inp.shape)
        if len(dims) != 4:
            raise ConfigError(f"{path} takes inputs of rank {len(dims)}; a suspect takes (N, C, H, W)")
        static = tuple(d if isinstance(d, int) else None for d in dims[1:])
        if any(d is not None and d != e for d, e in zip(static, self.input_shape)):
            shown = ", ".join(str(d) if d is not None else "?" for d in static)
            raise ConfigError(
                f"{path} takes inputs (N, {shown}), the kit expects (N, {', '.join(map(str, self.input_shape))})"
            )
        fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        outputs = session.get_outputs()
        chosen = next((o for o in outputs if o.type in _ONNX_FLOATS and len(o.shape) == 2), None)
        int_output = False
        if chosen is None:
            chosen = next((o for o in outputs if o.type in _ONNX_INTS and len(o.shape) in (1, 2)), None)
            int_output = chosen is not None
        if chosen is None:
            raise ConfigError(
                f"{path} has no (N, K) float output nor an (N,) label output; its outputs are "
                + ", ".join(f"{o.name} {o.type} {o.shape}" for o in outputs)
            )
        k = chosen.shape[-1] if not int_output or len(chosen.shape) == 2 else None
        if not int_output and isinstance(k, int) and k != self.num_classes:
            raise ConfigError(f"{path} returns {k} classes, the kit expects {self.num_classes}")
        if int_output and self.output.kind != "label":
            raise ConfigError(f"{path} returns class labels ({chosen.name}); verify it with --outputs label")
        return session, inp.name, _ONNX_FLOATS[inp.type], chosen.name, int_output, fixed

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self._session.run([self._output_name], {self._input: x})[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SuspectError(f"ONNX Runtime failed on {self.name} for inputs {x.shape}: {first}") from None

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.numpy().astype(self._dtype, copy=False)
        if self._fixed_batch is None:
            raw = self._run(arr)
        else:
            # A fixed batch dimension: run full chunks, padding the last one.
            b = self._fixed_batch
            parts = []
            for i in range(0, len(arr), b):
                chunk = arr[i : i + b]
                pad = b - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), dtype=chunk.dtype)])
                parts.append(self._run(chunk)[: b - pad])
            raw = np.concatenate(parts)
        if self._int_output:
            return _labels_to_one_hot(raw, len(x), self.num_classes, self.name)
        out = torch.from_numpy(np.ascontiguousarray(raw)).to(torch.float32)
        if out.dim() != 2 or out.shape[0] != len(x):
            raise SuspectError(f"{self.name} returned shape {tuple(out.shape)} for {len(x)} queries")
        if not torch.isfinite(out).all():
            raise SuspectError(f"{self.name} returned NaN or infinite outputs")
        if self.raw_output is None:
            self.raw_output = "probs" if _look_like_probs(out) else "logits"
            log.info("%s: detected %s outputs", self.name, self.raw_output)
        return torch.softmax(out, dim=1) if self.raw_output == "logits" else out


def _look_like_probs(out: torch.Tensor) -> bool:
    """Rows finite, non-negative and summing to 1 within 1e-4."""
    sums = out.double().sum(dim=1)
    return bool(torch.isfinite(out).all() and (out >= 0).all() and ((sums - 1).abs() <= 1e-4).all())


def _labels_to_one_hot(labels: np.ndarray, n: int, num_classes: int, name: str) -> torch.Tensor:
    """Class indices of shape (n,) or (n, 1) -> one-hot rows (n, K)."""
    labels = np.asarray(labels)
    if labels.shape not in ((n,), (n, 1)):
        raise SuspectError(f"{name} returned labels of shape {labels.shape} for {n} queries")
    idx = torch.from_numpy(labels.reshape(n).astype(np.int64))
    if n and (idx.min() < 0 or idx.max() >= num_classes):
        raise SuspectError(
            f"{name} returned a class label outside 0..{num_classes - 1}; the kit expects {num_classes} classes"
        )
    return torch.nn.functional.one_hot(idx, num_classes).to(torch.float32)


# --------------------------------------------------------------------------- HTTP (Open Inference Protocol)

_HTTP_FLOATS = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}
_HTTP_INTS = ("INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")


def _richer(served: OutputMode, declared: OutputMode) -> bool:
    """Whether answers in mode ``served`` hold everything an answer in ``declared`` holds."""

    def level(m: OutputMode) -> int:
        return 1 << 30 if m.kind == "probs" else m.k  # label is top-1

    return level(served) >= level(declared)


class _Aborted(Exception):
    """Another batch of the same call failed; stop retrying this one."""


class HttpSuspect(Suspect):
    """A model behind an Open Inference Protocol (KServe v2 REST) endpoint.

    Speaks to Triton, KServe, MLServer and ``uapfp serve``: ``POST {url}/infer`` with FP32
    images (n, C, H, W), answered by probabilities (n, K), truncated rows, or INT labels (n,).
    Every row sent counts against ``max_queries``, retries included, and is reserved before
    it is sent, so the budget is never exceeded.

    Args:
        url: the model's URL, ``http(s)://host:port/v2/models/NAME``.
        output: the declared answer mode (``probs``, ``topk:K``, ``label``); None takes the
            mode the server advertises in its metadata, else ``probs``.
        timeout: seconds per request.
        retries: further attempts after a 5xx, a 429, a timeout or a connection error.
        backoff: first retry delay in seconds, doubled at each retry.
        concurrency: requests in flight at once (threads).
        rate_limit: requests per second, shared by the threads (None: unlimited).
        token_env: environment variable holding a bearer token.
        batch_size: images per request.
        metadata: read the model's metadata (``GET {url}``) for its input name, shapes and mode.
        **kwargs: :class:`Suspect` arguments (``input_shape``, ``num_classes``, ``max_queries``...).
    """

    def __init__(
        self,
        url: str,
        *,
        output: str | OutputMode | None = "probs",
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        concurrency: int = 4,
        rate_limit: float | None = None,
        token_env: str | None = None,
        batch_size: int = 200,
        metadata: bool = True,
        **kwargs: Any,
    ) -> None:
        import httpx

        url = url.rstrip("/")
        parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
        if parsed is None or not parsed.host or "/v2/models/" not in parsed.path:
            raise ConfigError(f"{url!r} is not a model URL; give http(s)://host:port/v2/models/NAME")
        for label, value, low in (("--timeout", timeout, 0), ("--backoff", backoff, -1e-12)):
            if not value > low:
                raise ConfigError(f"{label} must be positive, got {value}")
        if retries < 0 or concurrency < 1 or batch_size < 1:
            raise ConfigError("--retries must be >= 0, --concurrency and --batch-size >= 1")
        if rate_limit is not None and not rate_limit > 0:
            raise ConfigError(f"--rate-limit must be positive (requests per second), got {rate_limit}")
        kwargs.setdefault("name", url)
        super().__init__(output=output or "probs", batch_size=batch_size, **kwargs)
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.token_env = token_env
        headers = {"Accept": "application/json"}
        if token_env:
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(
                    f"environment variable {token_env} is not set; export {token_env}=TOKEN or drop --token-env"
                )
            headers["Authorization"] = f"Bearer {token}"
        self.input_name = "input"
        self.input_datatype = "FP32"
        self.served_output_: OutputMode | None = None
        self._rate_lock = threading.Lock()
        self._next_slot = 0.0
        self._pool_: Any = None
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        try:
            if metadata:
                self._read_metadata(declared=output)
        except BaseException:
            self._client.close()
            raise

    def __repr__(self) -> str:
        return (
            f"HttpSuspect({self.url!r}, output='{self.output}', timeout={self.timeout}, retries={self.retries}, "
            f"concurrency={self.concurrency}, rate_limit={self.rate_limit}, batch_size={self.batch_size}, "
            f"max_queries={self.max_queries})"
        )

    @property
    def infer_url(self) -> str:
        return f"{self.url}/infer"

    @property
    def backend_output(self) -> OutputMode:
        """The mode the server answers in: the one it advertises, else the declared one."""
        return self.served_output_ or self.output

    # ---------------------------------------------------------------- metadata

    def _read_metadata(self, *, declared: str | OutputMode | None) -> None:
        import httpx

        try:
            r = self._client.get(self.url)
        except httpx.HTTPError as exc:
            log.debug("no metadata from %s (%s); using input name %r", self.url, exc, self.input_name)
            return
        if r.status_code in (401, 403):
            raise SuspectError(
                f"{self.url} refused the request (HTTP {r.status_code}: {_server_message(r)}); check --token-env"
            )
        try:
            meta = r.json() if r.status_code == 200 else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            log.debug("no metadata from %s (HTTP %s); using input name %r", self.url, r.status_code, self.input_name)
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
        outputs = meta.get("outputs")
        served = None
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            out = outputs[0]
            shape = out.get("shape")
            if out.get("datatype") in _HTTP_INTS:
                served = OutputMode("label", 1)
            elif isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
                if shape[1] != self.num_classes:
                    raise SuspectError(f"{self.url} returns {shape[1]} classes, the kit expects {self.num_classes}")
        params = meta.get("parameters")
        if isinstance(params, dict) and isinstance(params.get("output_mode"), str):
            try:
                served = OutputMode.parse(params["output_mode"])
            except ConfigError:
                log.warning("%s advertises an unknown output mode %r", self.url, params["output_mode"])
        if served is None:
            return
        if declared is None:
            self.output = served
        elif not _richer(served, self.output):
            raise ConfigError(
                f"{self.url} answers {served} but {self.output} was declared; verify it with --outputs {served}"
            )
        self.served_output_ = served

    # ---------------------------------------------------------------- queries

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Query in batches of ``batch_size``, up to ``concurrency`` requests in flight."""
        from concurrent.futures import ThreadPoolExecutor, wait

        x = self.check_input(x)
        if len(x) == 0:
            return torch.zeros(0, self.num_classes)
        self._reserve(len(x), count=False)  # a call the budget cannot cover sends nothing
        batches = [x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        stop = threading.Event()
        if len(batches) == 1 or self.concurrency == 1:
            answers = [self._request(b, stop) for b in batches]
        else:
            if self._pool_ is None:
                self._pool_ = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="uapfp-http")
            futures = [self._pool_.submit(self._request, b, stop) for b in batches]
            try:
                answers = [f.result() for f in futures]
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                raise
        outs = [self.check_output(a, len(b)) for a, b in zip(answers, batches)]
        return self.output.apply(torch.cat(outs))

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._request(x, threading.Event())

    def _wait_for_rate(self) -> None:
        if self.rate_limit is None:
            return
        with self._rate_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate_limit
        if slot > now:
            time.sleep(slot - now)

    def _request(self, x: torch.Tensor, stop: threading.Event) -> torch.Tensor:
        """One batch: encode, POST with retries (each attempt reserved first), decode."""
        import httpx

        n = len(x)
        body = {
            "inputs": [
                {
                    "name": self.input_name,
                    "shape": [n, *self.input_shape],
                    "datatype": self.input_datatype,
                    # float() of a float32 is exact, and so is its JSON repr: answers stay bit-identical
                    "data": x.reshape(-1).tolist(),
                }
            ]
        }
        content = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        last = ""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            if stop.is_set():
                raise _Aborted
            if attempt:
                log.warning("%s: %s; retry %d of %d in %.2f s", self.infer_url, last, attempt, self.retries, delay)
                time.sleep(delay)
                delay *= 2
                if stop.is_set():
                    raise _Aborted
            self._reserve(n)  # raises BudgetExhaustedError before anything is sent
            self._wait_for_rate()
            try:
                r = self._client.post(self.infer_url, content=content, headers=headers)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout} s"
                continue
            except httpx.TransportError as exc:
                last = f"connection error ({exc or type(exc).__name__})"
                continue
            if r.status_code >= 500 or r.status_code == 429:
                last = f"HTTP {r.status_code} ({_server_message(r)})"
                retry_after = r.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 60.0))
                continue
            if r.status_code != 200:
                hint = "; check --token-env" if r.status_code in (401, 403) else ""
                raise SuspectError(f"{self.infer_url} answered HTTP {r.status_code}: {_server_message(r)}{hint}")
            try:
                payload = r.json()
            except ValueError:
                raise SuspectError(f"{self.infer_url} answered HTTP 200 with a body that is not JSON") from None
            return self._decode(payload, n)
        raise SuspectError(
            f"{self.infer_url} failed {self.retries + 1} times (last: {last}); check the server, "
            "or raise --retries / --timeout"
        )

    def _decode(self, payload: Any, n: int) -> torch.Tensor:
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
            raise SuspectError(
                f"{self.infer_url} answered without 'outputs'; is it an Open Inference Protocol (KServe v2) endpoint?"
            )
        chosen = next((o for o in outputs if o.get("datatype") in _HTTP_FLOATS), None)
        is_label = chosen is None
        if chosen is None:
            chosen = next((o for o in outputs if o.get("datatype") in _HTTP_INTS), None)
        if chosen is None:
            kinds = ", ".join(str(o.get("datatype")) for o in outputs)
            raise SuspectError(f"{self.infer_url} answered datatypes {kinds}; expected FP32 scores or INT64 labels")
        shape = chosen.get("shape")
        try:
            dtype = np.int64 if is_label else _HTTP_FLOATS[chosen["datatype"]]
            data = np.asarray(chosen.get("data"), dtype=dtype).reshape(-1)
            if not isinstance(shape, list) or int(np.prod(shape)) != data.size:
                raise ValueError(f"{data.size} values for shape {shape}")
            data = data.reshape(shape)
        except (TypeError, ValueError) as exc:
            raise SuspectError(f"{self.infer_url} answered a malformed output tensor ({exc})") from None
        if is_label:
            if self.backend_output.kind != "label":
                raise SuspectError(f"{self.infer_url} answers class labels; verify it with --outputs label")
            return _labels_to_one_hot(data, n, self.num_classes, self.name)
        if data.ndim != 2:
            raise SuspectError(f"{self.name} returned shape {tuple(data.shape)} for {n} queries, expected ({n}, K)")
        return torch.from_numpy(data.astype(np.float32, copy=False))

    def close(self) -> None:
        if self._pool_ is not None:
            self._pool_.shutdown(wait=True, cancel_futures=True)
            self._pool_ = None
        self._client.close()


def _server_message(response: Any) -> str:
    """The error a server put in its answer: JSON ``error``/``detail``, else the text's start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    text = " ".join(response.text.split())
    return text[:300] or response.reason_phrase or "no message"
