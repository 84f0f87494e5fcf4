"""Models rebuilt from files: an architecture and its weights, or a TorchScript file; never a pickle.

The one place that loads a model from disk: zoo cards, a user's victim and ``module:factory``
or ``torchscript:`` suspects all come through here.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from .archs import create_model
from .errors import ConfigError
from .storage import load_state_dict

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def model_with_weights(
    arch: str, weights: str | os.PathLike[str], *, input_shape: tuple[int, int, int], num_classes: int
) -> nn.Module:
    """Build ``arch`` (registered, or ``package.module:factory``) and load ``weights`` into it, in eval mode.

    Weights are safetensors, or a torch file read with ``torch.load(weights_only=True)``.
    """
    c, h, w = input_shape
    model = create_model(arch, in_channels=c, image_size=(h, w), num_classes=num_classes)
    try:
        model.load_state_dict(load_state_dict(weights))
    except RuntimeError as exc:
        raise ConfigError(f"{weights} does not fit {arch}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """A file with a TorchScript suffix whose zip archive holds TorchScript code."""
    p = Path(path)
    if p.suffix not in TORCHSCRIPT_SUFFIXES or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torchscript(path: str | os.PathLike[str]) -> nn.Module:
    """A TorchScript module on the CPU, in eval mode (``torch.jit.load`` runs no pickle of the user's)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"TorchScript file {path} does not exist")
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch.jit.load raises RuntimeError, ValueError and others on a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path} is not a TorchScript file ({first}); export it with torch.jit.script or torch.jit.trace"
        ) from None
    return model.eval()
