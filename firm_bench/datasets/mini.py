"""fmnist_mini: a small real subset of Fashion-MNIST, embedded in the package.

``data/fmnist_mini.npz`` holds, per class, the first 200 training and the
first 100 test images of the official Fashion-MNIST files in file order (no
random selection), uint8 28 x 28, with their labels and their indices in the
official files (``{split}_indices``), so that the subset can be checked against
the originals. It needs no download and ignores ``root``: it serves the
``mini`` / ``smoke`` presets and tests. Rebuild it with
``python scripts/build_fmnist_mini.py --source /usr/share/datasets/fashion-mnist``.
Licence: MIT, Zalando SE 2017, see ``data/LICENSE-fashion-mnist.txt``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.datasets.base import ImageSet, check_labels, image_set, register

FILE = "fmnist_mini.npz"
BUILD = "python scripts/build_fmnist_mini.py --source <folder with the Fashion-MNIST IDX files>"


def data_file():
    """The embedded npz file (an importlib.resources Traversable)."""
    return resources.files("firm_bench.datasets").joinpath("data").joinpath(FILE)


def read_mini(root: str, split: str, download: bool) -> ImageSet:
    """Read a split of the embedded subset; ``root`` and ``download`` are ignored."""
    ref = data_file()
    if not ref.is_file():
        raise DataProblem(f"the embedded file firm_bench/datasets/data/{FILE} is missing "
                          "from the installed package (package data not installed?)")
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
        classes = tuple(str(c) for c in z["classes"])
    return image_set(images, check_labels(labels, len(images), len(classes), FILE), classes)


register(
    "fmnist_mini",
    layout=f"nothing: embedded in the package as firm_bench/datasets/data/{FILE} (root ignored)",
    how_to_get=f"ships with firm-bench; rebuild with: {BUILD}",
    read=read_mini,
)
