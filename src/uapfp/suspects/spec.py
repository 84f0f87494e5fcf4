"""Suspect specs: the one registry of the strings a user names a suspect with.

``uapfp verify --suspect SPEC``, ``uapfp serve SPEC``, the zoo and the benchmarks all open
suspects through :func:`open_suspect`. The schemes, tried in this order:

- ``http(s)://host:port/v2/models/NAME``: an Open Inference Protocol server;
- ``onnx:PATH`` or ``*.onnx``: ONNX Runtime;
- ``torchscript:PATH`` or a TorchScript file ``*.pt``, ``*.pth``, ``*.ts``;
- a zoo model card ``*.json`` (it carries its input shape and class count);
- ``package.module:factory`` with weights (safetensors, or a torch file read with
  ``weights_only=True``).

No spec is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archs import module_of, trusting
from ..cards import load_model_from_card, read_card
from ..errors import ConfigError
from ..modelfiles import TORCHSCRIPT_SUFFIXES, load_torchscript, model_with_weights
from ..training import INFERENCE_BATCH
from .base import Suspect
from .local import TorchSuspect
from .options import HttpOptions


@dataclass(frozen=True)
class Request:
    """What :func:`open_suspect` was asked for, handed to a scheme's opener."""

    spec: str
    input_shape: tuple[int, int, int] | None
    num_classes: int | None
    weights: str | None
    output: str | None
    max_queries: int | None
    http: HttpOptions

    def shape(self) -> tuple[tuple[int, int, int], int]:
        if self.input_shape is None or self.num_classes is None:
            raise ConfigError(
                f"{self.spec} does not say its input shape and class count: give --input-shape C,H,W and "
                "--classes K (a zoo card carries them)"
            )
        return tuple(self.input_shape), int(self.num_classes)  # type: ignore[return-value]

    def local_output(self) -> str:
        if self.output == "logits":
            raise ConfigError(
                "--outputs logits applies to ONNX models only; local PyTorch models are read as logits already"
            )
        return self.output or "probs"


@dataclass(frozen=True)
class Scheme:
    """One kind of spec: how to recognise it, how to open it, and whether it is remote."""

    name: str
    matches: Callable[[str], bool]
    open: Callable[[Request], Suspect]
    remote: bool = False


def _open_http(r: Request) -> Suspect:
    from .http import HttpSuspect

    input_shape, num_classes = r.shape()
    return HttpSuspect(
        r.spec, input_shape=input_shape, num_classes=num_classes, output=r.output, max_queries=r.max_queries,
        options=r.http,
    )  # fmt: skip


def _open_onnx(r: Request) -> Suspect:
    from .onnx_runtime import OnnxSuspect

    input_shape, num_classes = r.shape()
    path = r.spec.removeprefix("onnx:")
    return OnnxSuspect(
        path, input_shape=input_shape, num_classes=num_classes, output=r.output, max_queries=r.max_queries
    )


def _open_torchscript(r: Request) -> Suspect:
    input_shape, num_classes = r.shape()
    path = Path(r.spec.removeprefix("torchscript:"))
    return TorchSuspect(
        load_torchscript(path), input_shape=input_shape, num_classes=num_classes, output=r.local_output(),
        max_queries=r.max_queries, name=str(path),
    )  # fmt: skip


def _open_card(r: Request) -> Suspect:
    if not Path(r.spec).is_file():
        raise ConfigError(f"model card {r.spec} does not exist")
    return card_suspect(read_card(r.spec), output=r.local_output(), max_queries=r.max_queries)


def _open_factory(r: Request) -> Suspect:
    output = r.local_output()
    if r.weights is None:
        raise ConfigError(f"{r.spec} needs --weights FILE (safetensors)")
    input_shape, num_classes = r.shape()
    with trusting([module_of(r.spec)]):  # the user named this factory: its code is theirs to run
        model = model_with_weights(r.spec, r.weights, input_shape=input_shape, num_classes=num_classes)
    return TorchSuspect(
        model, input_shape=input_shape, num_classes=num_classes, output=output, max_queries=r.max_queries,
        name=r.spec, architecture=r.spec,
    )  # fmt: skip


SCHEMES: tuple[Scheme, ...] = (
    Scheme("http", lambda s: s.startswith(("http://", "https://")), _open_http, remote=True),
    Scheme("onnx", lambda s: s.startswith("onnx:") or s.endswith(".onnx"), _open_onnx),
    Scheme(
        "torchscript",
        lambda s: s.startswith("torchscript:") or (s.endswith(TORCHSCRIPT_SUFFIXES) and ":" not in s),
        _open_torchscript,
    ),
    Scheme("card", lambda s: s.endswith(".json"), _open_card),
    Scheme("factory", lambda s: ":" in s, _open_factory),
)


def scheme_of(spec: str) -> Scheme:
    """The scheme of ``spec``, or a ConfigError listing them."""
    for scheme in SCHEMES:
        if scheme.matches(spec):
            return scheme
    raise ConfigError(
        f"cannot tell what suspect {spec!r} is; give a zoo card (.json), onnx:PATH, torchscript:PATH, "
        "package.module:factory with --weights, or http(s)://host:port/v2/models/NAME"
    )


def open_suspect(
    spec: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    weights: str | None = None,
    output: str | None = None,
    max_queries: int | None = None,
    http: HttpOptions | None = None,
) -> Suspect:
    """Open the suspect named by ``spec`` (see the module's list of schemes).

    ``output`` is the answer mode (``probs``, ``topk:K``, ``label``); for ONNX and HTTP it may
    also be ``logits`` (the softmax is then applied here); None means the backend's default
    (probabilities; ONNX detects logits; HTTP takes the mode the server advertises). ``http``
    configures a remote suspect and is refused for the others, as ``weights`` is for all but
    ``package.module:factory``. A zoo card carries its input shape and class count; every
    other spec needs ``input_shape`` and ``num_classes``.
    """
    scheme = scheme_of(spec)
    if http is not None and not scheme.remote:
        raise ConfigError("HTTP options (--timeout, --retries, ...) apply to http(s):// suspects only")
    if weights is not None and scheme.name != "factory":
        raise ConfigError("--weights applies to package.module:factory suspects only")
    request = Request(spec, input_shape, num_classes, weights, output, max_queries, http or HttpOptions())
    return scheme.open(request)


def card_suspect(
    card: dict[str, Any], *, output: str = "probs", max_queries: int | None = None, batch_size: int = INFERENCE_BATCH
) -> TorchSuspect:
    """A :class:`TorchSuspect` of a zoo model, answering in mode ``output``."""
    return TorchSuspect(
        load_model_from_card(card), input_shape=tuple(card["input_shape"]), num_classes=card["num_classes"],
        output=output, max_queries=max_queries, name=card["id"], batch_size=batch_size,
        architecture=None if card.get("arch") == "torchscript" else card.get("arch"),
    )  # fmt: skip
