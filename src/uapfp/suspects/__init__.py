"""Suspects: the protocol (:mod:`.base`), the local, ONNX and HTTP backends, and the spec registry.

Names are imported on first use, so that reading the command line's options
(:class:`HttpOptions`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OutputMode": "base",
    "Suspect": "base",
    "labels_to_one_hot": "base",
    "TorchSuspect": "local",
    "OnnxSuspect": "onnx_runtime",
    "check_onnx_external_data": "onnx_runtime",
    "HttpSuspect": "http",
    "HttpOptions": "options",
    "open_suspect": "spec",
    "card_suspect": "spec",
    "scheme_of": "spec",
    "SCHEMES": "spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
