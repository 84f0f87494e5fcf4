"""The official CIFAR-10 python folder (``cifar-10-batches-py``), read without running its pickles.

The folder holds ``data_batch_1`` to ``data_batch_5``, ``test_batch`` and ``batches.meta``,
each a Python pickle of a dict of plain values and one uint8 array. A pickle can name any
callable to be run while it loads, so these are read by :class:`PlainUnpickler`, which admits
only what those files need to rebuild a NumPy array (``numpy``'s array reconstructors,
``ndarray`` and ``dtype``; ``_codecs.encode``, by which Python 3 writes bytes in protocol 2)
and refuses every other global before anything is called. The
arrays are then checked: uint8 images of 3 x 32 x 32, integer labels in range.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetNotFoundError, UnsafeFileError
from .dataset import Dataset, images_to_tensor

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
_MAX_BYTES = 400 * 2**20  # a batch of 10,000 images is 31 MB


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import codecs

    reconstruct = np.ndarray.__reduce__(np.zeros(1, dtype=np.uint8))[0]
    frombuffer = np.zeros(1, dtype=np.uint8).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol 2 writes bytes from Python 3: str -> bytes
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer  # protocol 5
    return allowed


class PlainUnpickler(pickle.Unpickler):
    """An unpickler of plain data: dicts, lists, tuples, numbers, strings, bytes and NumPy arrays
    of non-object dtype; any other global (a function, a class) is refused before it is called."""

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source
        self.allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"{self.source} asks to load {module}.{name}: refused (a CIFAR-10 batch holds plain data only)"
            ) from None


def load_plain_pickle(path: str | os.PathLike[str]) -> Any:
    """The plain data of the pickle at ``path`` (:class:`PlainUnpickler`), object arrays refused."""
    path = Path(path)
    if path.stat().st_size > _MAX_BYTES:
        raise UnsafeFileError(f"{path} is larger than {_MAX_BYTES} bytes; not a CIFAR-10 batch")
    with path.open("rb") as handle:
        try:
            value = PlainUnpickler(handle, source=str(path)).load()
        except UnsafeFileError:
            raise
        except Exception as exc:  # a damaged or truncated file
            raise UnsafeFileError(f"{path} is not a readable CIFAR-10 batch: {type(exc).__name__}: {exc}") from None
    _refuse_objects(value, str(path))
    return value


def _refuse_objects(value: Any, source: str) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise UnsafeFileError(f"{source} holds an array of Python objects: refused")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif not isinstance(v, str | bytes | int | float | bool | type(None)):
            raise UnsafeFileError(f"{source} holds a {type(v).__name__}: refused")


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = load_plain_pickle(path)
    if not isinstance(raw, dict):
        raise UnsafeFileError(f"{path} holds a {type(raw).__name__}, not a CIFAR-10 batch dict")
    d = {_text(k): v for k, v in raw.items()}
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UnsafeFileError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    y = np.asarray(labels if isinstance(labels, list | tuple | np.ndarray) else [], dtype=np.int64)
    if y.shape != (len(data),) or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise UnsafeFileError(f"{path}: 'labels' must hold {len(data)} integers in [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def is_cifar_batches(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` looks like the official ``cifar-10-batches-py`` folder."""
    folder = Path(folder)
    return all((folder / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH, META))


def load_cifar10_batches(folder: str | os.PathLike[str]) -> Dataset:
    """CIFAR-10 from the official python folder (50,000 + 10,000 RGB 32 x 32 images, 10 classes)."""
    folder = Path(folder)
    if not is_cifar_batches(folder):
        raise DatasetNotFoundError(
            f"{folder} is not a cifar-10-batches-py folder ({', '.join((*TRAIN_BATCHES, TEST_BATCH, META))})"
        )
    meta = load_plain_pickle(folder / META)
    names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise UnsafeFileError(f"{folder / META} holds no label_names")
    classes = tuple(_text(n) for n in names)
    parts = [_batch(folder / name, len(classes)) for name in TRAIN_BATCHES]
    x_te, y_te = _batch(folder / TEST_BATCH, len(classes))
    return Dataset(
        name=f"cifar10:{folder}",
        x_train=images_to_tensor(np.concatenate([p[0] for p in parts])),
        y_train=torch.from_numpy(np.concatenate([p[1] for p in parts])),
        x_test=images_to_tensor(x_te),
        y_test=torch.from_numpy(y_te),
        classes=classes,
        source=str(folder),
    )
