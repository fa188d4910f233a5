"""Datasets: loaders for the paper's image sets and the one-class protocol.

Registered in ``DATASETS`` (in this order): ``cifar10``, ``cifar100`` (20
superclasses), ``fashion_mnist``, ``svhn`` (role "ood": an out-of-distribution
test set only) and ``fmnist_mini`` (a real Fashion-MNIST subset embedded in
the package, for the mini/smoke presets and tests). One module per format:
``cifar.py``, ``fashion_mnist.py``, ``svhn.py``, ``mini.py``; shared code in
``base.py``.

Where the data lives (:func:`resolve_root`): the explicit ``root`` argument
(config key ``dataset.root``, CLI ``--root``), else the environment variable
``$FIRM_BENCH_DATA`` (one root for all datasets), else ``./data``. Under the
root each dataset uses torchvision's layout (``DatasetInfo.layout``), so a
root shared with torchvision works. ``download=True`` fetches missing files
with torchvision; the files are then read by our own readers, which check
their structure (not torchvision's md5s; see ``cifar.py``).

Images are uint8 (N, 3, S, S) RGB tensors (docs/DESIGN.md "Conventions");
the one-class protocol (METHOD.md "Metrics") trains on one class's training
images and tests on the whole test set with targets 1 = normal, 0 = anomalous.
"""

from __future__ import annotations

import importlib
import operator
import os

import torch

from firm_bench.datasets.base import (
    DATA_ENV, DATASETS, DEFAULT_ROOT, SPLITS, DatasetError, DatasetInfo, ImageSet, default_root,
    resize_images,
)

# Importing a loader module registers its datasets; this order is DATASETS.names().
for _module in ("cifar", "fashion_mnist", "svhn", "mini"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "DATASETS", "DATA_ENV", "DEFAULT_ROOT", "DatasetError", "DatasetInfo", "ImageSet",
    "check_dataset", "get_dataset", "load_split", "one_class_split", "resize_images",
    "resolve_root",
]


def get_dataset(name: str) -> DatasetInfo:
    """The registered dataset ``name``; unknown names raise UnknownNameError listing valid ones."""
    return DATASETS.get(name)


def resolve_root(name: str, root: str | os.PathLike | None) -> str:
    """The absolute data root for ``name``.

    Precedence: ``root`` (config key ``dataset.root`` / ``--root``) if given,
    else ``$FIRM_BENCH_DATA`` if set and non-empty, else ``./data``. The same
    root serves every dataset; each finds its own sub-layout under it.
    ``fmnist_mini`` ignores the root.
    """
    get_dataset(name)  # validate the name
    return default_root(root)


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> ImageSet:
    """Load ``split`` ("train" | "test") of dataset ``name``.

    Returns uint8 (N, 3, S, S) images with S = ``image_size`` (bilinear,
    antialiased resize, see :func:`resize_images`) or the native size when
    ``image_size`` is None. Raises DatasetError when the data is missing or
    unreadable.
    """
    info = get_dataset(name)
    if image_size is not None and (isinstance(image_size, bool) or operator.index(image_size) <= 0):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    data = info.load(resolve_root(name, root), split, download)
    if image_size is None or image_size == info.native_size:
        return data
    return ImageSet(resize_images(data.images, image_size), data.labels, data.classes)


def one_class_split(
    name: str,
    cls: int,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> tuple[ImageSet, ImageSet, torch.Tensor]:
    """The one-class AD protocol (METHOD.md "Metrics"; paper Sec. 4.1).

    Returns ``(train, test, targets)``: ``train`` = the training images of
    class ``cls`` only; ``test`` = the whole test set; ``targets`` int64 (N_test,)
    with 1 = normal (test label == cls), 0 = anomalous (every other class).
    """
    info = get_dataset(name)
    if info.role != "one_class":
        valid = [n for n, i in DATASETS.items() if i.role == "one_class"]
        raise ValueError(f"dataset {name!r} has role {info.role!r} (a test set for OOD only); "
                         f"one-class datasets: {', '.join(valid)}")
    k = len(info.classes)
    if isinstance(cls, bool) or not 0 <= operator.index(cls) < k:
        names = ", ".join(f"{i}={c}" for i, c in enumerate(info.classes))
        raise ValueError(f"class {cls!r} is out of range for {name!r}: valid 0..{k - 1} ({names})")
    cls = operator.index(cls)
    train = load_split(name, "train", root, image_size, download)
    test = load_split(name, "test", root, image_size, download)
    keep = train.labels == cls
    train = ImageSet(train.images[keep], train.labels[keep], train.classes)
    return train, test, (test.labels == cls).to(torch.int64)


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Load every split of ``name`` at native size and report what is there.

    The report names the root used, and per split the per-class counts (with
    class names), the image shape and dtype and the total. Raises DatasetError
    when the data is missing or unreadable, a split is empty, or (one-class
    datasets) a class has no training image.
    """
    info = get_dataset(name)
    root_used = resolve_root(name, root)
    lines = [f"dataset: {name} (role {info.role}, native size {info.native_size})",
             "root: " + ("not used (embedded in the package)" if name == "fmnist_mini"
                         else root_used)]
    total = 0
    for split in SPLITS:
        data = info.load(root_used, split, download)
        counts = torch.bincount(data.labels, minlength=len(info.classes)).tolist()
        empty = [c for c, n in zip(info.classes, counts) if n == 0]
        if len(data) == 0 or (split == "train" and info.role == "one_class" and empty):
            raise DatasetError(f"dataset {name!r} under {root_used}: the {split} split has "
                               f"{len(data)} images; classes without images: {empty}")
        lines.append(f"{split}: {len(data)} images, shape {tuple(data.images.shape[1:])}, "
                     f"dtype {data.images.dtype}")
        width = max(len(c) for c in info.classes)
        lines += [f"  {i:>3} {c:<{width}} {n:>6}"
                  for i, (c, n) in enumerate(zip(info.classes, counts))]
        total += len(data)
    lines.append(f"total: {total} images")
    return "\n".join(lines)
