"""Fashion-MNIST (Xiao et al., 2017), in torchvision's on-disk format.

Files: ``<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
plain or gzipped (``.gz``; the plain file wins when both exist). The IDX files
are read here with numpy (``base.read_idx``), never written, so a read-only
root holding only the ``.gz`` files (as distributed) works. Images are 28 x 28
grayscale, replicated to 3 channels; the paper resizes them to 32 (docs/METHOD.md
"Image sizes"), which the caller asks for through ``image_size``.
``download=True`` fetches missing files through torchvision.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.core.facts.datasets import DATASETS as FACTS
from firm_bench.datasets.base import (
    IDX_IMAGES,
    IDX_LABELS,
    TORCHVISION_DOWNLOAD,
    ImageSet,
    check_labels,
    image_set,
    read_idx,
    register,
    require,
)

CLASSES = FACTS["fashion_mnist"].classes
RAW = "FashionMNIST/raw"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def read_arrays(folder: str, split: str, prefix: str = RAW, download: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of ``<folder>/<prefix>/``.

    ``prefix=""`` reads IDX files lying directly in ``folder`` (as in Debian's
    /usr/share/datasets/fashion-mnist); used by scripts/build_fmnist_mini.py.
    """
    rel = [(f"{prefix}/{f}".lstrip("/"), f"{prefix}/{f}.gz".lstrip("/")) for f in FILES[split]]
    fetch = partial(_download, folder) if download else None
    image_path, label_path = require(folder, rel, fetch)
    images = read_idx(image_path, IDX_IMAGES)
    if images.shape[1:] != (28, 28):
        raise DataProblem(f"{image_path}: images are {images.shape[1:]}, expected (28, 28)")
    labels = check_labels(read_idx(label_path, IDX_LABELS), len(images), len(CLASSES), label_path)
    return images, labels


def _download(root: str) -> None:
    import torchvision.datasets as tvd  # imported only when downloading

    tvd.FashionMNIST(root, train=True, download=True)


def read_fashion_mnist(root: str, split: str, download: bool) -> ImageSet:
    return image_set(*read_arrays(root, split, download=download), CLASSES)


register(
    "fashion_mnist",
    layout=f"{RAW}/{{{','.join(FILES['train'] + FILES['test'])}}}[.gz]"
           "   (torchvision FashionMNIST format)",
    how_to_get=f"{TORCHVISION_DOWNLOAD}, "
               f"or download the four *-ubyte.gz files from {URL} "
               f"(or Debian's dataset-fashion-mnist package) into <root>/{RAW}/",
    read=read_fashion_mnist,
)
