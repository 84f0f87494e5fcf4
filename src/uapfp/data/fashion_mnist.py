"""Fashion-MNIST: the official IDX files (Debian's package, a folder, or a checked download) and the shipped slice."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetNotFoundError
from ..storage import atomic_open
from .dataset import Dataset, default_cache, images_to_tensor

log = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

#: The four official files and the SHA-256 of their *decompressed* bytes. Hashing the
#: content rather than the .gz file accepts Debian's recompressed copies and the official
#: download alike, while still catching any change to an image or a label.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_URLS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SLICE_NAME = "fashion-mnist-slice"

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse the bytes of an IDX file (LeCun's MNIST format) into an array.

    The header is two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError("not an IDX file: the first two bytes must be zero")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ConfigError(f"not an IDX file: unknown type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError("IDX file truncated in its header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ConfigError(f"IDX file holds {len(raw) - header} data bytes, its header announces {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzipped or not."""
    return parse_idx(_open_maybe_gzip(Path(path)))


def _load_idx_folder(folder: Path, *, verify: bool, name: str) -> Dataset:
    arrays = {}
    for fname, expected in FASHION_MNIST_FILES.items():
        raw = _open_maybe_gzip(folder / fname)
        if verify and hashlib.sha256(raw).hexdigest() != expected:
            raise DatasetNotFoundError(
                f"{folder / fname} does not match the official Fashion-MNIST content "
                "(SHA-256 mismatch); delete it and rerun, or reinstall dataset-fashion-mnist"
            )
        arrays[fname] = parse_idx(raw)
    return _dataset(arrays, name=name, source=str(folder))


def _dataset(arrays: dict[str, np.ndarray], *, name: str, source: str) -> Dataset:
    """The four IDX arrays (keyed by file name) as a :class:`Dataset`."""
    return Dataset(
        name=name,
        x_train=images_to_tensor(arrays["train-images-idx3-ubyte.gz"]),
        y_train=torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)),
        x_test=images_to_tensor(arrays["t10k-images-idx3-ubyte.gz"]),
        y_test=torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)),
        classes=FASHION_MNIST_CLASSES,
        source=source,
    )


def _has_idx_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FASHION_MNIST_FILES)


def _download_fashion_mnist(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for fname, expected in FASHION_MNIST_FILES.items():
        if (target / fname).is_file():
            continue
        last_error: Exception | None = None
        for base in FASHION_MNIST_URLS:
            try:
                log.info("downloading %s%s", base, fname)
                with urllib.request.urlopen(base + fname, timeout=60) as response:
                    raw = response.read()
                if hashlib.sha256(gzip.decompress(raw)).hexdigest() != expected:
                    raise OSError(f"SHA-256 mismatch for {base + fname}")
                with atomic_open(target / fname) as handle:
                    handle.write(raw)
                break
            except Exception as exc:  # network errors of every kind: try the next mirror
                last_error = exc
        else:
            raise OSError(str(last_error))


def fashion_mnist_locations(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for the four IDX files, in order: ``data_dir``, ``$UAPFP_DATA``, Debian's folder
    (each also with a ``fashion-mnist`` subfolder), then where :func:`load_fashion_mnist` downloads to."""
    places = []
    if data_dir is not None:
        places.append(Path(data_dir))
    if os.environ.get("UAPFP_DATA"):
        places.append(Path(os.environ["UAPFP_DATA"]))
    places.append(DEBIAN_FASHION_MNIST)
    expanded = []
    for p in places:
        expanded.extend([p, p / "fashion-mnist"])
    return [*expanded, default_cache() / "fashion-mnist"]


def find_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first folder holding all four Fashion-MNIST IDX files, or None."""
    for place in fashion_mnist_locations(data_dir):
        if _has_idx_files(place):
            return place
    return None


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Dataset:
    """Load the full Fashion-MNIST (60k train, 10k test).

    Looked up in ``data_dir``, then ``$UAPFP_DATA``, then Debian's
    ``/usr/share/datasets/fashion-mnist``, then ``~/.cache/uapfp/fashion-mnist`` (an earlier
    download); else downloaded (SHA-256 checked) into ``data_dir`` or ``$UAPFP_DATA`` or
    ``~/.cache/uapfp/fashion-mnist`` (unless ``download`` is False or ``$UAPFP_OFFLINE`` is set).
    """
    found = find_fashion_mnist(data_dir)
    if found is None and download and not os.environ.get("UAPFP_OFFLINE"):
        target = Path(data_dir or os.environ.get("UAPFP_DATA") or default_cache() / "fashion-mnist")
        try:
            _download_fashion_mnist(target)
            found = target
        except OSError as exc:
            log.debug("download failed: %s", exc)
    if found is None:
        raise DatasetNotFoundError(
            "Fashion-MNIST not found: install it (apt-get install dataset-fashion-mnist) or "
            "put the four official IDX files in --data-dir / $UAPFP_DATA "
            "(download from https://github.com/zalandoresearch/fashion-mnist)"
        )
    return _load_idx_folder(found, verify=True, name="fashion-mnist")


def load_fashion_mnist_slice() -> Dataset:
    """The slice shipped inside the package: 6,000 train and 1,000 test images (MIT licence)."""
    root = resources.files("uapfp") / "datasets" / SLICE_NAME
    with resources.as_file(root) as folder:
        arrays = {f: read_idx(folder / f) for f in FASHION_MNIST_FILES}
    return _dataset(arrays, name=SLICE_NAME, source="shipped slice (uapfp/datasets/fashion-mnist-slice)")
