"""Writers of small datasets in the REAL on-disk formats, for the loader tests.

Each ``write_<name>(root)`` writes a tiny copy of the dataset under ``root`` in
exactly the layout and file format the official files use (CIFAR python
pickles, SVHN .mat, Fashion-MNIST IDX) and returns what a correct loader must
produce: ``{split: (images uint8 (N, 3, S, S), labels int64 (N,))}``.

Every split's image 0 carries an orientation marker, written through the
format's own convention (independently of the loaders): in image coordinates,
the top row's left half is 255 in the red channel (every channel for
grayscale) and the rest of the image is 0. :func:`assert_marker` checks it, so
a loader that swaps height/width, flips rows or mixes up channels fails.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from firm_bench.datasets.cifar import CIFAR10, CIFAR100
from firm_bench.datasets.fashion_mnist import FILES, RAW

Expected = dict[str, tuple[np.ndarray, np.ndarray]]

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
CIFAR100_COARSE = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]


def _labels(n_classes: int, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(n_classes), per_class)).astype(np.int64)


def _images(n: int, size: int, rng: np.random.Generator, gray: bool = False) -> np.ndarray:
    """Random uint8 (n, C, size, size) (C = 1 for gray) with the marker in image 0."""
    x = rng.integers(0, 256, (n, 1 if gray else 3, size, size), dtype=np.uint8)
    if n:
        x[0] = 0
        x[0, 0, 0, : size // 2] = 255
    return x


def assert_marker(images) -> None:
    """Image 0 must be the orientation marker (see the module docstring)."""
    x = np.asarray(images[0])
    gray = bool((x[0] == x[1]).all() and (x[0] == x[2]).all())
    want = np.zeros_like(x)
    want[:, 0, : x.shape[-1] // 2] = 255
    if not gray:
        want[1:] = 0
    assert (x == want).all(), "orientation marker misplaced: wrong axis order or channel order"


# ---------------------------------------------------------------- CIFAR


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # as the official files: bytes keys, protocol 2


def _cifar_entry(images: np.ndarray, labels: dict[bytes, np.ndarray], tag: bytes) -> dict:
    # data: (N, 3072) = red plane, green plane, blue plane, each 32 rows of 32
    return {b"batch_label": tag, b"data": images.reshape(len(images), 3072),
            b"filenames": [b"img_%d.png" % i for i in range(len(images))],
            **{k: v.tolist() for k, v in labels.items()}}


def write_cifar10(root: Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Expected:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    per_class = per_class or {"train": 5, "test": 3}
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10.folder
    out = {}
    for split, files in CIFAR10.files.items():
        labels = _labels(10, per_class[split], rng)
        images = _images(len(labels), 32, rng)
        for i, name in enumerate(files):  # split evenly over the batches, in order
            part = slice(i * len(labels) // len(files), (i + 1) * len(labels) // len(files))
            _pickle(folder / name, _cifar_entry(images[part], {b"labels": labels[part]},
                                                b"batch %d" % i))
        out[split] = (images, labels)
    _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES],
                                      b"num_cases_per_batch": 10000, b"num_vis": 3072})
    return out


def write_cifar100(root: Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Expected:
    """cifar-100-python/{train, test, meta} with fine and coarse labels."""
    per_class = per_class or {"train": 3, "test": 2}
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR100.folder
    out = {}
    for split in ("train", "test"):
        coarse = _labels(20, per_class[split], rng)
        fine = coarse * 5 + rng.integers(0, 5, len(coarse))  # 5 fine classes per superclass
        images = _images(len(coarse), 32, rng)
        _pickle(folder / split, _cifar_entry(
            images, {b"fine_labels": fine, b"coarse_labels": coarse}, split.encode()))
        out[split] = (images, coarse)
    _pickle(folder / "meta", {b"fine_label_names": [b"fine_%d" % i for i in range(100)],
                              b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE]})
    return out


# ---------------------------------------------------------------- SVHN


def write_svhn(root: Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Expected:
    """{train,test}_32x32.mat: X uint8 (32, 32, 3, N) = (row, col, channel, image), y (N, 1)."""
    import scipy.io

    per_class = per_class or {"train": 2, "test": 3}
    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        digits = _labels(10, per_class[split], rng)
        images = _images(len(digits), 32, rng)
        x = np.zeros((32, 32, 3, len(digits)), np.uint8)
        for n in range(len(digits)):
            for c in range(3):
                x[:, :, c, n] = images[n, c]  # x[row, col, channel, image]
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # 0 stored as 10
        scipy.io.savemat(Path(root) / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (images, digits)
    return out


# ---------------------------------------------------------------- Fashion-MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_fashion_mnist(root: Path, per_class: dict[str, int] | None = None, seed: int = 0,
                        gz: bool = True) -> Expected:
    """FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    per_class = per_class or {"train": 3, "test": 2}
    rng = np.random.default_rng(seed)
    folder = Path(root) / RAW
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, (image_file, label_file) in FILES.items():
        labels = _labels(10, per_class[split], rng)
        images = _images(len(labels), 28, rng, gray=True)
        for name, data in ((image_file, idx_bytes(images[:, 0])), (label_file, idx_bytes(labels))):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
        out[split] = (np.repeat(images, 3, axis=1), labels)
    return out


WRITERS = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "fashion_mnist": write_fashion_mnist,
    "svhn": write_svhn,
}
EMBEDDED = {"fmnist_mini"}  # datasets that need no fixture
