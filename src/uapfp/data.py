"""Datasets (IDX files, image folders, the shipped Fashion-MNIST slice) and the data splits.

Every dataset is returned as float32 images in [0, 1] of shape (N, C, H, W) and int64
labels. The splits follow METHOD.md section 6: the victim's data D_V (half the training set
by default), homologous data D_H of the same size overlapping D_V at a chosen rate, and the
attacker's unlabeled pool, disjoint from D_V by default.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DatasetNotFoundError
from .storage import atomic_open, load_tensors, read_json, save_tensors

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


@dataclass
class Dataset:
    """A labelled image dataset: images (N, C, H, W) float32 in [0, 1], labels int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        c, h, w = self.input_shape
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test images, "
            f"{c}x{h}x{w}, {self.num_classes} classes (from {self.source})"
        )


# --------------------------------------------------------------------------- IDX files


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


def _images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    else:
        images = images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


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
    return Dataset(
        name=name,
        x_train=_images_to_tensor(arrays["train-images-idx3-ubyte.gz"]),
        y_train=torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)),
        x_test=_images_to_tensor(arrays["t10k-images-idx3-ubyte.gz"]),
        y_test=torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)),
        classes=FASHION_MNIST_CLASSES,
        source=str(folder),
    )


def _has_idx_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FASHION_MNIST_FILES)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uapfp"


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
    """Folders searched for the four IDX files, in order."""
    places = []
    if data_dir is not None:
        places.append(Path(data_dir))
    if os.environ.get("UAPFP_DATA"):
        places.append(Path(os.environ["UAPFP_DATA"]))
    places.append(DEBIAN_FASHION_MNIST)
    expanded = []
    for p in places:
        expanded.extend([p, p / "fashion-mnist"])
    return expanded


def find_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first folder holding all four Fashion-MNIST IDX files, or None."""
    for place in fashion_mnist_locations(data_dir):
        if _has_idx_files(place):
            return place
    return None


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Dataset:
    """Load the full Fashion-MNIST (60k train, 10k test).

    Looked up in ``data_dir``, then ``$UAPFP_DATA``, then Debian's
    ``/usr/share/datasets/fashion-mnist``; else downloaded (SHA-256 checked) into
    ``data_dir`` or ``$UAPFP_DATA`` or ``~/.cache/uapfp/fashion-mnist`` (unless
    ``download`` is False or ``$UAPFP_OFFLINE`` is set).
    """
    found = find_fashion_mnist(data_dir)
    if found is None and download and not os.environ.get("UAPFP_OFFLINE"):
        target = Path(data_dir or os.environ.get("UAPFP_DATA") or _default_cache() / "fashion-mnist")
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
    return Dataset(
        name=SLICE_NAME,
        x_train=_images_to_tensor(arrays["train-images-idx3-ubyte.gz"]),
        y_train=torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)),
        x_test=_images_to_tensor(arrays["t10k-images-idx3-ubyte.gz"]),
        y_test=torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)),
        classes=FASHION_MNIST_CLASSES,
        source="shipped slice (uapfp/datasets/fashion-mnist-slice)",
    )


# --------------------------------------------------------------------------- image folders

_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    items = []
    for label, cls in enumerate(classes):
        for path in sorted((folder / cls).iterdir()):
            if path.suffix.lower() in _IMAGE_EXTENSIONS and path.is_file():
                items.append((path, label))
    return items


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: tuple[int, int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*`` (any size, grey or colour).

    Images are resized to ``image_size`` (H, W), by default the most common size in the
    training set; the dataset is grey (C = 1) when every image is, else RGB (C = 3). The
    decoded arrays are cached in one safetensors file keyed by the file list, sizes and
    modification times, so the folder is decoded once.
    """
    from PIL import Image  # imported here: only image folders need Pillow

    root = Path(root)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DatasetNotFoundError(f"{root} must hold train/ and test/ folders with one sub-folder per class")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{root}/train has no class folders")
    missing = [c for c in classes if not (root / "test" / c).is_dir()]
    if missing:
        raise DatasetNotFoundError(f"{root}/test lacks the class folders {missing}")
    train_items = _list_images(root / "train", classes)
    test_items = _list_images(root / "test", classes)
    if not train_items or not test_items:
        raise DatasetNotFoundError(f"{root} holds no images in train/ or test/")

    key = hashlib.sha256()
    for path, label in train_items + test_items:
        st = path.stat()
        key.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update(repr(image_size).encode())
    cache = Path(cache_dir or _default_cache() / "imagefolder") / f"{key.hexdigest()[:24]}.safetensors"
    if cache.is_file():
        tensors = load_tensors(cache)
        log.info("image folder %s read from cache %s", root, cache)
    else:
        modes = Counter()
        sizes = Counter()
        for path, _ in train_items[:: max(1, len(train_items) // 2000)]:
            with Image.open(path) as im:
                modes[im.mode in ("L", "1", "I;16", "I")] += 1
                sizes[(im.height, im.width)] += 1
        grey = not modes[False]
        h, w = image_size or sizes.most_common(1)[0][0]

        def decode(items: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
            out = np.empty((len(items), h, w, 1 if grey else 3), dtype=np.uint8)
            for i, (path, _) in enumerate(items):
                with Image.open(path) as im:
                    im = im.convert("L" if grey else "RGB")
                    if im.size != (w, h):
                        im = im.resize((w, h), Image.BILINEAR)
                    arr = np.asarray(im)
                out[i] = arr[..., None] if grey else arr
            labels = torch.tensor([label for _, label in items], dtype=torch.int64)
            return torch.from_numpy(out), labels

        log.info("decoding %d images from %s (cached afterwards)", len(train_items) + len(test_items), root)
        x_tr, y_tr = decode(train_items)
        x_te, y_te = decode(test_items)
        tensors = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
        save_tensors(cache, tensors, metadata={"classes": "\n".join(classes)})
    return Dataset(
        name=f"imagefolder:{root}",
        x_train=_images_to_tensor(tensors["x_train"].numpy()),
        y_train=tensors["y_train"],
        x_test=_images_to_tensor(tensors["x_test"].numpy()),
        y_test=tensors["y_test"],
        classes=tuple(classes),
        source=str(root),
    )


# --------------------------------------------------------------------------- dataset specs

_RANGE = re.compile(r"^(?P<base>.+)\[(?P<start>\d*):(?P<stop>\d*)\]$")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec: ``NAME``, ``NAME[start:stop]`` or ``NAME@indices.json``.

    The optional range or index file selects training images (for example a victim's D_V).
    """

    base: str
    start: int | None = None
    stop: int | None = None
    index_file: str | None = None

    @classmethod
    def parse(cls, spec: str) -> DatasetSpec:
        m = _RANGE.match(spec)
        if m:
            start = int(m["start"]) if m["start"] else None
            stop = int(m["stop"]) if m["stop"] else None
            return cls(m["base"], start, stop)
        if "@" in spec and not spec.startswith("http"):
            base, _, index_file = spec.rpartition("@")
            return cls(base, index_file=index_file)
        return cls(spec)

    def indices(self, n_train: int) -> np.ndarray | None:
        """The selected training indices, or None when the spec selects all."""
        if self.index_file is not None:
            data = read_json(self.index_file)
            if isinstance(data, dict):
                data = data.get("indices")
            idx = np.asarray(data, dtype=np.int64)
            if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= n_train:
                raise ConfigError(f"{self.index_file} must hold a JSON list of training indices in [0, {n_train})")
            return idx
        if self.start is None and self.stop is None:
            return None
        start, stop = self.start or 0, self.stop if self.stop is not None else n_train
        if not 0 <= start < stop <= n_train:
            raise ConfigError(f"index range [{start}:{stop}] outside the {n_train} training images")
        return np.arange(start, stop, dtype=np.int64)


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Dataset:
    """Load a dataset by spec: ``fashion-mnist``, ``fashion-mnist-slice`` or ``imagefolder:PATH``.

    A range or index-file suffix (see :class:`DatasetSpec`) is ignored here; use
    :meth:`DatasetSpec.indices` to select training images.
    """
    base = DatasetSpec.parse(spec).base
    if base == "fashion-mnist":
        return load_fashion_mnist(data_dir, download=download)
    if base == SLICE_NAME:
        return load_fashion_mnist_slice()
    if base.startswith("imagefolder:"):
        return load_image_folder(base.split(":", 1)[1])
    raise ConfigError(f"unknown dataset {base!r}; use fashion-mnist, {SLICE_NAME} or imagefolder:PATH")


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitConfig:
    """How the training set is divided (METHOD.md section 6)."""

    victim_fraction: float = 0.5
    homologous_overlap: float = 0.5
    pool_disjoint: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.victim_fraction <= 1.0:
            raise ConfigError("victim_fraction must be in (0, 1]")
        if not 0.0 <= self.homologous_overlap <= 1.0:
            raise ConfigError("homologous_overlap must be in [0, 1]")


def victim_indices(n_train: int, *, seed: int, fraction: float = 0.5) -> np.ndarray:
    """D_V: a seeded random ``fraction`` of the training set (sorted indices)."""
    rng = np.random.default_rng([seed, 0xD5])
    size = max(1, round(fraction * n_train))
    return np.sort(rng.permutation(n_train)[:size])


def homologous_indices(n_train: int, victim: np.ndarray, *, seed: int, overlap: float) -> np.ndarray:
    """D_H: as many images as D_V, of which a fraction ``overlap`` is drawn from D_V.

    The rest comes from outside D_V; when outside is too small, the error says so.
    """
    rng = np.random.default_rng([seed, 0xD4])
    size = len(victim)
    n_in = round(overlap * size)
    outside = np.setdiff1d(np.arange(n_train), victim, assume_unique=True)
    n_out = size - n_in
    if n_out > len(outside):
        raise ConfigError(
            f"overlap {overlap} needs {n_out} images outside D_V but only {len(outside)} "
            "exist; raise the overlap or shrink the victim's share"
        )
    chosen = np.concatenate([rng.choice(victim, n_in, replace=False), rng.choice(outside, n_out, replace=False)])
    return np.sort(chosen)


def attacker_pool(n_train: int, victim: np.ndarray, *, disjoint: bool = True) -> np.ndarray:
    """The attacker's unlabeled pool: the training images outside D_V (or all of them)."""
    if not disjoint:
        return np.arange(n_train, dtype=np.int64)
    pool = np.setdiff1d(np.arange(n_train), victim, assume_unique=True)
    if len(pool) == 0:
        raise ConfigError("D_V covers the whole training set: no images are left for the attacker's pool")
    return pool


def overlap_rate(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a|."""
    return len(np.intersect1d(a, b)) / max(1, len(a))


@dataclass
class Splits:
    """D_V and the attacker's pool of one zoo (D_H is drawn per homologous model)."""

    victim: np.ndarray
    pool: np.ndarray
    config: SplitConfig = field(default_factory=SplitConfig)
