"""Datasets and splits: IDX parsing, the shipped slice, image folders, split determinism."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from uapfp.data import (
    FASHION_MNIST_FILES,
    DatasetSpec,
    attacker_pool,
    homologous_indices,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    overlap_rate,
    parse_idx,
    read_idx,
    victim_indices,
)
from uapfp.errors import ConfigError, DatasetNotFoundError


def test_idx_hand_made_uint8(tmp_path):
    # magic 0x00000803 (uint8, 3 dims), dims 2 x 2 x 3, then 12 bytes row-major.
    raw = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    raw += bytes(range(12))
    arr = parse_idx(raw)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8
    assert arr[1, 0, 2] == 8 and arr[0, 1, 0] == 3
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(path), arr)


def test_idx_big_endian_int32_and_errors():
    raw = (
        bytes([0, 0, 0x0C, 1])
        + (2).to_bytes(4, "big")
        + (258).to_bytes(4, "big")
        + (-1).to_bytes(4, "big", signed=True)
    )
    np.testing.assert_array_equal(parse_idx(raw), [258, -1])
    with pytest.raises(ConfigError, match="announces"):
        parse_idx(raw[:-1])
    with pytest.raises(ConfigError, match="first two bytes"):
        parse_idx(b"\x01\x00\x08\x01")


def test_shipped_slice():
    ds = load_dataset("fashion-mnist-slice")
    assert ds.x_train.shape == (6000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and 0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1
    assert torch.bincount(ds.y_train).tolist() == [600] * 10
    assert ds.num_classes == 10


def test_a_downloaded_fashion_mnist_is_found_again_offline(tmp_path, monkeypatch):
    # where load_fashion_mnist downloads to when no folder is given is one of the places it looks
    debian = Path("/usr/share/datasets/fashion-mnist")
    if not all((debian / f).is_file() for f in FASHION_MNIST_FILES):
        pytest.skip("needs the Debian package dataset-fashion-mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UAPFP_DATA", raising=False)
    monkeypatch.setenv("UAPFP_OFFLINE", "1")
    monkeypatch.setattr("uapfp.data.fashion_mnist.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError):
        load_fashion_mnist()
    downloaded = tmp_path / "cache" / "uapfp" / "fashion-mnist"  # as a download leaves it
    downloaded.mkdir(parents=True)
    for f in FASHION_MNIST_FILES:
        (downloaded / f).symlink_to(debian / f)
    ds = load_fashion_mnist()
    assert len(ds.x_train) == 60_000 and len(ds.x_test) == 10_000 and str(downloaded) in ds.source


def test_missing_fashion_mnist_names_both_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("UAPFP_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("uapfp.data.fashion_mnist.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist(tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg and "\n" not in msg


def test_image_folder_any_size_grey_and_cache(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for i in range(n):
                size = (12, 10) if i else (9, 7)  # one odd size: resized to the common one
                Image.fromarray(rng.integers(0, 255, size[::-1], dtype=np.uint8), "L").save(
                    tmp_path / "data" / split / cls / f"{i}.png"
                )
    ds = load_image_folder(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (8, 1, 10, 12) and ds.classes == ("cat", "dog")
    assert ds.y_train.tolist() == [0] * 4 + [1] * 4
    assert len(list((tmp_path / "cache").iterdir())) == 1
    again = load_image_folder(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert torch.equal(again.x_train, ds.x_train)


def test_splits_deterministic_and_overlap():
    n = 1000
    v1, v2 = victim_indices(n, seed=3), victim_indices(n, seed=3)
    assert np.array_equal(v1, v2) and len(v1) == 500 and len(np.unique(v1)) == 500
    assert not np.array_equal(v1, victim_indices(n, seed=4))
    for overlap in (0.0, 0.3, 1.0):
        h = homologous_indices(n, v1, seed=7, overlap=overlap)
        assert len(h) == len(v1) and len(np.unique(h)) == len(h)
        assert overlap_rate(h, v1) == pytest.approx(overlap, abs=1e-9)
        assert np.array_equal(h, homologous_indices(n, v1, seed=7, overlap=overlap))
    pool = attacker_pool(n, v1)
    assert len(np.intersect1d(pool, v1)) == 0 and len(pool) + len(v1) == n
    with pytest.raises(ConfigError):
        homologous_indices(n, victim_indices(n, seed=0, fraction=0.9), seed=0, overlap=0.0)


def test_dataset_spec_ranges(tmp_path):
    spec = DatasetSpec.parse("fashion-mnist[10:20]")
    assert spec.base == "fashion-mnist" and spec.indices(100).tolist() == list(range(10, 20))
    (tmp_path / "idx.json").write_text("[5, 1, 3]")
    assert DatasetSpec.parse(f"fashion-mnist-slice@{tmp_path / 'idx.json'}").indices(10).tolist() == [5, 1, 3]
    with pytest.raises(ConfigError):
        DatasetSpec.parse("fashion-mnist[0:200]").indices(100)
