"""CIFAR-10's python batches (read without running a pickle) and Tiny ImageNet's folder layout,
on small folders made here."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from uapfp.data import is_tiny_imagenet, load_dataset
from uapfp.data.cifar import META, TEST_BATCH, TRAIN_BATCHES, load_plain_pickle
from uapfp.errors import UnsafeFileError

CLASSES = [b"airplane", b"automobile", b"bird"]


def _cifar_folder(root, rng, per_batch=4):
    """The official layout: five training batches, a test batch and the meta file (protocol 2, bytes keys)."""
    root.mkdir()
    batches = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(CLASSES), size=per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}  # fmt: skip
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = (data, labels)
    meta = {b"label_names": CLASSES, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (root / META).write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def test_cifar10_batches_load_as_the_official_layout_says(tmp_path):
    batches = _cifar_folder(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    ds = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert ds.input_shape == (3, 32, 32) and ds.classes == ("airplane", "automobile", "bird")
    assert len(ds.x_train) == 20 and len(ds.x_test) == 4
    # Row-major 3072 bytes: the red plane, then green, then blue, each 32 x 32.
    data, labels = batches["data_batch_2"]
    want = data[1].reshape(3, 32, 32).astype(np.float32) / 255
    assert np.allclose(ds.x_train[4 + 1].numpy(), want)
    assert ds.y_train[4:8].tolist() == labels
    assert ds.y_test.tolist() == batches[TEST_BATCH][1]


class _Payload:
    """A pickle that runs a command when it loads."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_batch_is_refused_and_its_payload_never_runs(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _cifar_folder(root, np.random.default_rng(1))
    marker = tmp_path / "ran"
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": []}, protocol=2))
    with pytest.raises(UnsafeFileError, match=r"posix\.system|os\.system|refused"):
        load_dataset(f"cifar10:{root}")
    assert not marker.exists()
    # Other callables, and arrays of Python objects, are refused too.
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": print}, protocol=2))
    with pytest.raises(UnsafeFileError, match=r"builtin\w*\.print: refused"):
        load_dataset(f"cifar10:{root}")
    (root / "data_batch_3").write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    with pytest.raises(UnsafeFileError, match="objects"):
        load_plain_pickle(root / "data_batch_3")
    (root / "data_batch_3").write_bytes(b"\x80\x02}q\x00(")  # truncated
    with pytest.raises(UnsafeFileError, match="not a readable"):
        load_dataset(f"cifar10:{root}")


def test_tiny_imagenet_layout_with_val_annotations(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded arrays' cache
    root = tmp_path / "tiny-imagenet-200"
    rng = np.random.default_rng(2)
    wnids = ["n01443537", "n01629819", "n01641577"]
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / f"{w}_boxes.txt").write_text("ignored\n")
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                root / "train" / w / "images" / f"{w}_{i}.JPEG"
            )
    (root / "val" / "images").mkdir(parents=True)
    val_labels = [2, 0, 1, 2]
    lines = []
    for i, k in enumerate(val_labels):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[k]}\t0\t0\t15\t15")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")

    assert is_tiny_imagenet(root)
    ds = load_dataset(f"imagefolder:{root}")
    assert ds.classes == tuple(wnids) and ds.input_shape == (3, 16, 16)
    assert len(ds.x_train) == 9 and ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.y_test.tolist() == val_labels
    again = load_dataset(f"imagefolder:{root}")  # from the cache
    assert (again.x_test == ds.x_test).all()

    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(Exception, match="line 1"):
        load_dataset(f"imagefolder:{root}")
