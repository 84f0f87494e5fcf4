"""Image folders, decoded once into a cache: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*``,
or Tiny ImageNet's own layout (``train/<wnid>/images/*``, ``val/images/*`` labelled by
``val/val_annotations.txt``, the validation images serving as the test set)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetNotFoundError
from ..storage import load_tensors, save_tensors
from .dataset import Dataset, default_cache, images_to_tensor

log = logging.getLogger(__name__)

_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    items = []
    for label, cls in enumerate(classes):
        for path in sorted((folder / cls).iterdir()):
            if path.suffix.lower() in _IMAGE_EXTENSIONS and path.is_file():
                items.append((path, label))
    return items


def _items(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DatasetNotFoundError(
            f"{root} must hold train/ and test/ folders with one sub-folder per class "
            "(or Tiny ImageNet's train/<wnid>/images and val/val_annotations.txt)"
        )
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{root}/train has no class folders")
    missing = [c for c in classes if not (root / "test" / c).is_dir()]
    if missing:
        raise DatasetNotFoundError(f"{root}/test lacks the class folders {missing}")
    return classes, _list_images(root / "train", classes), _list_images(root / "test", classes)


def is_tiny_imagenet(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` has Tiny ImageNet's layout (``val/val_annotations.txt`` beside ``train/``)."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "val" / "val_annotations.txt").is_file()


def _tiny_imagenet_items(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in (root / "train").iterdir() if (p / "images").is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{root}/train has no <wnid>/images folders")
    label = {c: i for i, c in enumerate(classes)}
    train = _list_images(root / "train", [f"{c}/images" for c in classes])  # labelled by the class's index
    test = []
    notes = root / "val" / "val_annotations.txt"
    for n, line in enumerate(notes.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label or "/" in fields[0] or "\\" in fields[0]:
            raise DatasetNotFoundError(f"{notes} line {n}: expected 'FILE<TAB>WNID...' with a wnid of train/")
        path = root / "val" / "images" / fields[0]
        if not path.is_file():
            raise DatasetNotFoundError(f"{notes} line {n}: {path} is missing")
        test.append((path, label[fields[1]]))
    return classes, train, test


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: tuple[int, int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*``, or Tiny ImageNet's layout
    (any size, grey or colour).

    Images are resized to ``image_size`` (H, W), by default the most common size in the
    training set; the dataset is grey (C = 1) when every image is, else RGB (C = 3). The
    decoded arrays are cached in one safetensors file keyed by the file list, sizes and
    modification times, so the folder is decoded once.
    """
    from PIL import Image  # imported here: only image folders need Pillow

    root = Path(root)
    classes, train_items, test_items = _tiny_imagenet_items(root) if is_tiny_imagenet(root) else _items(root)
    if not train_items or not test_items:
        raise DatasetNotFoundError(f"{root} holds no images in its training or test folders")

    key = hashlib.sha256()
    for path, label in train_items + test_items:
        st = path.stat()
        key.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update(repr(image_size).encode())
    cache = Path(cache_dir or default_cache() / "imagefolder") / f"{key.hexdigest()[:24]}.safetensors"
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
        x_train=images_to_tensor(tensors["x_train"].numpy()),
        y_train=tensors["y_train"],
        x_test=images_to_tensor(tensors["x_test"].numpy()),
        y_test=tensors["y_test"],
        classes=tuple(classes),
        source=str(root),
    )
