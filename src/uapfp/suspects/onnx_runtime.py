"""ONNX models run by ONNX Runtime on the CPU; external data only from the model's own folder."""

from __future__ import annotations

import itertools
import logging
import os

import numpy as np
import torch

from ..errors import ConfigError, SuspectError, UnsafeFileError
from .base import OutputMode, Suspect, labels_to_one_hot

log = logging.getLogger(__name__)

_ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
_ONNX_INTS = ("tensor(int64)", "tensor(int32)")


def _sparse(sparse):  # type: ignore[no-untyped-def]
    yield sparse.values
    yield sparse.indices


def _graph_tensors(graph):  # type: ignore[no-untyped-def]
    """Every TensorProto of a graph: initializers, sparse initializers, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from _sparse(sparse)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes):  # type: ignore[no-untyped-def]
    """Every TensorProto in the attributes of ``nodes``: dense and sparse, single and repeated, in subgraphs."""
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from _sparse(attr.sparse_tensor)
            for sparse in attr.sparse_tensors:
                yield from _sparse(sparse)
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def model_tensors(model):  # type: ignore[no-untyped-def]
    """Every TensorProto of an ONNX model: its graph's and its local functions'."""
    return itertools.chain(_graph_tensors(model.graph), *(_node_tensors(f.node) for f in model.functions))


def check_onnx_external_data(model, folder: str | os.PathLike[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Refuse external-data references that leave ``folder``; return the files referenced.

    An ONNX file may name files its tensors are read from. A location that is absolute or
    resolves (links followed) outside the model's folder would let a crafted model read any
    file the verifier can, so it is refused with :class:`UnsafeFileError`.
    """
    import onnx

    root = os.path.realpath(folder)
    files = []
    for tensor in model_tensors(model):
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


def inline_external_data(model, folder: str | os.PathLike[str]) -> None:  # type: ignore[no-untyped-def]
    """Read every external tensor's data from ``folder`` into the model itself (checked first).

    ONNX Runtime given a model's bytes resolves external files against the working folder, not
    the model's; once every tensor holds its data, the model refers to no file at all, and the
    checked model is exactly what runs.
    """
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor

    check_onnx_external_data(model, folder)
    for tensor in model_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            try:
                load_external_data_for_tensor(tensor, str(folder))
            except Exception as exc:  # onnx raises OSError, ValueError and its own ValidationError
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise ConfigError(f"cannot read the external data of ONNX tensor {tensor.name!r} ({first})") from None
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


class OnnxSuspect(Suspect):
    """An ONNX model run by ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file; external data may only come from files in its folder.
        output: what the model returns and how it answers. ``logits`` (softmax applied here),
            ``probs``, or None to detect it on the first batch (rows finite, non-negative and
            summing to 1 within 1e-4 are probabilities, anything else logits); ``topk:K`` and
            ``label`` detect it likewise, then truncate as an API in that mode would.
        batch_size: images per run (a model with a fixed batch dimension runs that many).
        input_shape, num_classes, max_queries, name: as for :class:`Suspect`.
    """

    negative_hint = "if it returns logits, declare --outputs logits (or leave --outputs out: it is detected)"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        output: str | None = None,
        max_queries: int | None = None,
        name: str | None = None,
        batch_size: int = 500,
    ) -> None:
        if output in (None, "logits", "probs"):
            self.raw_output: str | None = output
            mode: str | OutputMode = "probs"
        else:
            self.raw_output = None
            mode = OutputMode.parse(output)
        super().__init__(
            input_shape=input_shape, num_classes=num_classes, output=mode, max_queries=max_queries,
            name=name or str(path),
        )  # fmt: skip
        self.path = str(path)
        self.batch_size = batch_size
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
        inline_external_data(model, os.path.dirname(os.path.abspath(path)))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            # the checked model, its external data inlined, is what runs: it names no file any more
            session = ort.InferenceSession(
                model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
            )
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

    def _answer(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._run_batch(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def _run_batch(self, x: torch.Tensor) -> torch.Tensor:
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
            return labels_to_one_hot(raw, len(x), self.num_classes, self.name)
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
