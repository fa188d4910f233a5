"""CIFAR-10 and CIFAR-100 (20 superclasses), in torchvision's on-disk format.

Both are the "python version" archives of https://www.cs.toronto.edu/~kriz/cifar.html:
pickled dicts with ``data`` uint8 (N, 3072) (1024 red, then green, then blue
values per image, each plane row-major 32 x 32) and a list of labels. CIFAR-100
one-class AD uses the 20 coarse superclasses (docs/METHOD.md "Experiments", Table 1b),
read from ``coarse_labels``; torchvision only exposes the fine labels.

The pickles are read here, not by torchvision, for two reasons: the coarse
labels, and torchvision's md5 check, which rejects anything but the official
files (the tests' small fixtures in the same format included). So the data is
validated by structure (shapes, label ranges, class names), not by checksum.
``download=True`` fetches missing files through torchvision (which verifies
the archive's md5), then reads them the same way.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.datasets.base import TORCHVISION_DOWNLOAD, ImageSet, check_labels, image_set, register, require


@dataclass(frozen=True)
class CifarFormat:
    """One CIFAR variant: folder, files per split, label and class-name keys."""

    folder: str
    files: dict[str, tuple[str, ...]]  # split -> pickle files, concatenated in order
    meta: str
    label_key: str
    names_key: str
    torchvision_class: str
    url: str


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle; bytes keys (Python 2 pickles) become str."""
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")  # the official files are trusted data
    except Exception as e:  # corrupt pickles raise almost any exception type
        raise DataProblem(f"cannot unpickle {path}: {type(e).__name__}: {e} "
                          "(truncated or corrupted? delete it and download again)") from e
    if not isinstance(obj, dict):
        raise DataProblem(f"{path} holds a {type(obj).__name__}, not a CIFAR dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _get(entry: dict[str, Any], key: str, path: Path) -> Any:
    if key not in entry:
        raise DataProblem(f"{path} has no key {key!r} (keys: {sorted(entry)}): wrong file?")
    return entry[key]


def _download(fmt: CifarFormat, root: str) -> None:
    import torchvision.datasets as tvd  # imported only when downloading

    getattr(tvd, fmt.torchvision_class)(root, train=True, download=True)


def read_cifar(fmt: CifarFormat, root: str, split: str, download: bool) -> ImageSet:
    """Read one split of a CIFAR variant from ``<root>/<fmt.folder>/``."""
    rel = [f"{fmt.folder}/{name}" for name in (*fmt.files[split], fmt.meta)]
    *paths, meta_path = require(root, rel, partial(_download, fmt, root) if download else None)
    meta = _unpickle(meta_path)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                  for n in _get(meta, fmt.names_key, meta_path))
    images, labels = [], []
    for path in paths:
        entry = _unpickle(path)
        data = np.asarray(_get(entry, "data", path))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataProblem(f"{path}: 'data' is {data.dtype} {data.shape}, "
                              "expected uint8 (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(check_labels(_get(entry, fmt.label_key, path), len(data), len(names), path))
    return image_set(np.concatenate(images), np.concatenate(labels), names)


CIFAR10 = CifarFormat(
    folder="cifar-10-batches-py",
    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    meta="batches.meta",
    label_key="labels",
    names_key="label_names",
    torchvision_class="CIFAR10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)
CIFAR100 = CifarFormat(
    folder="cifar-100-python",
    files={"train": ("train",), "test": ("test",)},
    meta="meta",
    label_key="coarse_labels",
    names_key="coarse_label_names",
    torchvision_class="CIFAR100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
)


def _layout(fmt: CifarFormat) -> str:
    files = sorted({*fmt.files["train"], *fmt.files["test"], fmt.meta})
    return f"{fmt.folder}/{{{','.join(files)}}}   (torchvision {fmt.torchvision_class} format)"


def _how_to_get(fmt: CifarFormat) -> str:
    return (f"{TORCHVISION_DOWNLOAD}, "
            f"or download {fmt.url} and extract it into the root")


for _name, _fmt in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
    register(_name, layout=_layout(_fmt), how_to_get=_how_to_get(_fmt), read=partial(read_cifar, _fmt))

