"""Atomic writes, hashes and safe tensor files.

Nothing here unpickles: tensors travel as safetensors, metadata as JSON, and a torch file is
only ever read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load_file, save_file

from .errors import ConfigError, UnsafeFileError


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_tensors(*tensors: torch.Tensor) -> str:
    """SHA-256 hex digest of tensors' values (their bytes in order, on the CPU)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> Path:
    """``path`` if a file may be written there: a regular file (not a link) or a new name in a
    folder that exists or can be made, and is writable. A device, a FIFO, a folder or a
    symbolic link at ``path`` is never replaced: a ConfigError says so, before any work."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"cannot write the {what} to {path} ({exc.strerror or exc}); choose another path") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = (
            "a symbolic link"
            if stat.S_ISLNK(st.st_mode)
            else ("a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        )
        raise ConfigError(f"{path} is {kind}; uapfp writes the {what} only to a regular file or a new one")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the {what} to {path}: {existing} is not a writable folder; choose another path"
        )
    return path


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash leaves either the old file or none, never a half-written one. Only a regular file
    is ever replaced (see :func:`check_output_path`).
    """
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".uapfp-write-test"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to {path} ({exc.strerror or exc}); choose another --out folder") from None
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a malformed one (not UTF-8, not JSON, nested too deep, numbers too
    long) is a :class:`ConfigError` naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:200]
        raise ConfigError(f"{path} is not valid JSON ({reason}); delete or repair it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None


def save_tensors(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    *,
    metadata: dict[str, str] | None = None,
) -> str:
    """Save tensors as safetensors, atomically; return the file's SHA-256."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_file(path)


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never a pickle)."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except Exception as exc:  # safetensors raises its own error types
        raise UnsafeFileError(
            f"{path} is not a valid safetensors file ({exc}); export the weights with "
            "safetensors.torch.save_file(model.state_dict(), path)"
        ) from exc


_ZIP_MAGIC = b"PK\x03\x04"


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load weights from a safetensors file or a torch file, never running a pickle.

    A torch file is read with ``torch.load(weights_only=True)``, which refuses any object
    that is not a tensor or a plain container; a raw pickle is refused before reading.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        # safetensors: an 8-byte little-endian header length, then a JSON header.
        return load_tensors(path)
    if not head.startswith(_ZIP_MAGIC):
        raise UnsafeFileError(
            f"{path} is neither safetensors nor a torch zip file (a raw pickle is never "
            "read). Save the weights with safetensors.torch.save_file(model.state_dict(), path)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeFileError(
            f"{path} was refused by torch.load(weights_only=True): it holds objects other "
            "than tensors. Save the weights as safetensors instead"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UnsafeFileError(f"{path} does not hold a state dict of tensors")
    return obj
