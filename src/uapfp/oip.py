"""The Open Inference Protocol's messages (KServe v2 REST), with the binary tensor data extension.

One codec for both sides (the client in :mod:`uapfp.suspects.http`, the server in
:mod:`uapfp.serve`). A message is a JSON header, optionally followed by the raw bytes of its
tensors (little-endian, row-major), as Triton's clients send and read by default: the header's
length is then given by the HTTP header ``Inference-Header-Content-Length``, and each tensor
sent in binary says its byte count in ``parameters.binary_data_size`` instead of a ``data``
list. A request asks for binary answers with ``parameters.binary_data_output`` (every output)
or an output's ``parameters.binary_data``. Everything read is bounded and checked: a malformed
message is a :class:`ProtocolError` with a one-line reason, never a crash. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPES: dict[str, np.dtype] = {
    "FP64": np.dtype("<f8"), "FP32": np.dtype("<f4"), "FP16": np.dtype("<f2"),
    "INT64": np.dtype("<i8"), "INT32": np.dtype("<i4"), "INT16": np.dtype("<i2"), "INT8": np.dtype("i1"),
    "UINT64": np.dtype("<u8"), "UINT32": np.dtype("<u4"), "UINT16": np.dtype("<u2"), "UINT8": np.dtype("u1"),
}  # fmt: skip
FLOATS = ("FP32", "FP64", "FP16")
INTEGERS = tuple(k for k in DATATYPES if k not in FLOATS)
MAX_INT_DIGITS = 20


class ProtocolError(ValueError):
    """A message that is not a well-formed Open Inference Protocol message (the reason in one line)."""


@dataclass
class Tensor:
    """A named tensor of an inference request or response."""

    name: str
    datatype: str
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


def parse_json(body: bytes, what: str) -> Any:
    """JSON from the other side: a :class:`ProtocolError` for bad encodings, nesting bombs and absurd numbers."""
    try:
        return json.loads(body, parse_int=_bounded_int)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, our own
        raise ProtocolError(f"{what} is not valid JSON ({str(exc)[:120]})") from None


def _shape(value: Any, what: str, limit: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise ProtocolError(f"{what} has shape {str(value)[:80]}; a shape is a list of sizes")
    size = 1
    for d in value:
        size *= d
        if size > limit:
            raise ProtocolError(f"{what} of shape {value} holds more than {limit} values")
    return value


def _tensor(entry: Any, what: str, binary: memoryview, offset: int, limit: int) -> tuple[Tensor, int]:
    """One tensor of a message, its data from JSON or from the binary part at ``offset``; (tensor, new offset)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProtocolError(f"{what} is not a tensor (it needs a name, a datatype, a shape and data)")
    datatype = entry.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"{what} {entry['name']!r} has datatype {str(datatype)[:20]!r}; this server takes "
                            f"{', '.join(DATATYPES)}")  # fmt: skip
    shape = _shape(entry.get("shape"), f"{what} {entry['name']!r}", limit)
    dtype = DATATYPES[datatype]
    n = int(np.prod(shape)) if shape else 1
    params = entry.get("parameters") if isinstance(entry.get("parameters"), dict) else {}
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != n * dtype.itemsize or offset + size > len(binary):
            raise ProtocolError(f"{what} {entry['name']!r} announces {size} binary bytes; its shape needs "
                                f"{n * dtype.itemsize} and the message holds {len(binary) - offset}")  # fmt: skip
        data = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return Tensor(entry["name"], datatype, data.astype(dtype.newbyteorder("="), copy=False), params), offset + size
    raw = entry.get("data")
    if not isinstance(raw, list):
        raise ProtocolError(f"{what} {entry['name']!r} has no data (a list, or binary_data_size)")
    try:
        flat = np.asarray(raw, dtype=dtype.newbyteorder("=")).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(
            f"{what} {entry['name']!r} holds data that are not {datatype} numbers ({str(exc)[:80]})"
        ) from None
    if flat.size != n:
        raise ProtocolError(f"{what} {entry['name']!r} holds {flat.size} values, its shape {shape} needs {n}")
    return Tensor(entry["name"], datatype, flat.reshape(shape), params), offset


def decode(
    body: bytes, header_length: str | int | None, *, kind: str, limit: int
) -> tuple[dict[str, Any], list[Tensor]]:
    """(the JSON header, its tensors: ``inputs`` of a request or ``outputs`` of a response) of a message.

    ``limit`` bounds the values a tensor may hold.
    """
    if header_length is not None and header_length != "":
        try:
            length = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} is {str(header_length)[:20]!r}, not a byte count") from None
        if not 0 < length <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} is {length}, the message holds {len(body)} bytes")
        header, binary = parse_json(body[:length], "the message's header"), memoryview(body)[length:]
    else:
        header, binary = parse_json(body, "the message"), memoryview(b"")
    key = "inputs" if kind == "request" else "outputs"
    if not isinstance(header, dict) or not isinstance(header.get(key), list) or not header[key]:
        raise ProtocolError(f'the {kind} needs "{key}": a list of tensors')
    offset, tensors = 0, []
    for i, entry in enumerate(header[key]):
        tensor, offset = _tensor(entry, f"{key}[{i}]", binary, offset, limit)
        tensors.append(tensor)
    if offset != len(binary):
        raise ProtocolError(f"the {kind} holds {len(binary) - offset} binary bytes no tensor claims")
    return header, tensors


def encode(
    header: dict[str, Any], tensors: list[Tensor], *, key: str, binary: set[str] | bool
) -> tuple[bytes, dict[str, str]]:
    """(body, HTTP headers) of a message whose ``key`` (``inputs`` or ``outputs``) are ``tensors``,
    those named in ``binary`` (or all, if True) as raw bytes after the JSON header."""
    entries, blobs = [], []
    for t in tensors:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        params = dict(t.parameters)
        if binary is True or (binary and t.name in binary):
            blob = np.ascontiguousarray(t.data, dtype=DATATYPES[t.datatype]).tobytes()
            params["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            # tolist() turns each float32 into the double of the same value; its JSON repr is exact
            entry["data"] = t.data.reshape(-1).tolist()
        if params:
            entry["parameters"] = params
        entries.append(entry)
    head = json.dumps({**header, key: entries}, separators=(",", ":")).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def requested_outputs(header: dict[str, Any], known: list[str]) -> tuple[list[str], set[str]]:
    """(the output names a request asks for, in order; those it wants in binary), checked against ``known``."""
    params = header.get("parameters") if isinstance(header.get("parameters"), dict) else {}
    all_binary = params.get("binary_data_output") is True
    asked = header.get("outputs")
    if asked is None:
        return list(known), set(known) if all_binary else set()
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise ProtocolError('"outputs" must be a list of {"name": ...}')
    names = [o["name"] for o in asked]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ProtocolError(f"unknown output {unknown[0][:60]!r}; this model's outputs are {', '.join(known)}")
    binary = {
        o["name"]
        for o in asked
        if all_binary or (isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data") is True)
    }
    return names, binary
