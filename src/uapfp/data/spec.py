"""Dataset specs (``NAME``, ``NAME[start:stop]``, ``NAME@indices.json``) and loading by spec."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..storage import read_json
from .cifar import load_cifar10_batches
from .dataset import Dataset
from .fashion_mnist import SLICE_NAME, load_fashion_mnist, load_fashion_mnist_slice
from .imagefolder import load_image_folder

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
    """Load a dataset by spec: ``fashion-mnist``, ``fashion-mnist-slice``, ``imagefolder:PATH``
    (class folders, or Tiny ImageNet's layout) or ``cifar10:PATH`` (the official
    ``cifar-10-batches-py`` folder, read without running its pickles).

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
    if base.startswith("cifar10:"):
        return load_cifar10_batches(base.split(":", 1)[1])
    raise ConfigError(
        f"unknown dataset {base!r}; use fashion-mnist, {SLICE_NAME}, imagefolder:PATH or cifar10:PATH"
    )
