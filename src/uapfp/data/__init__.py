"""Datasets (IDX files, image folders, CIFAR-10's python batches, the shipped Fashion-MNIST slice) and the data splits.

Every dataset is returned as float32 images in [0, 1] of shape (N, C, H, W) and int64
labels (:class:`Dataset`). Datasets are named by specs (:mod:`.spec`); the splits D_V, D_H
and the attacker's pool are in :mod:`.splits`.
"""

from __future__ import annotations

from .cifar import load_cifar10_batches
from .dataset import Dataset, default_cache, images_to_tensor
from .fashion_mnist import (
    DEBIAN_FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    SLICE_NAME,
    fashion_mnist_locations,
    find_fashion_mnist,
    load_fashion_mnist,
    load_fashion_mnist_slice,
    parse_idx,
    read_idx,
)
from .imagefolder import is_tiny_imagenet, load_image_folder
from .spec import DatasetSpec, load_dataset
from .splits import SplitConfig, attacker_pool, homologous_indices, overlap_rate, victim_indices

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "SLICE_NAME",
    "Dataset",
    "DatasetSpec",
    "SplitConfig",
    "attacker_pool",
    "default_cache",
    "fashion_mnist_locations",
    "find_fashion_mnist",
    "homologous_indices",
    "images_to_tensor",
    "is_tiny_imagenet",
    "load_cifar10_batches",
    "load_dataset",
    "load_fashion_mnist",
    "load_fashion_mnist_slice",
    "load_image_folder",
    "overlap_rate",
    "parse_idx",
    "read_idx",
    "victim_indices",
]
