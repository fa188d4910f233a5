"""Writers of small datasets in the REAL on-disk formats, for the loader tests.

Each ``write_<name>(root)`` writes a tiny copy of the dataset under ``root`` in
exactly the layout and file format the official files use (CIFAR python
pickles, SVHN .mat, Fashion-MNIST IDX, MVTec AD's PNG folders, Kaggle's
``cat.N.jpg``, the ODIN / CSI OOD folders, the OE ``.npy``) and returns what a
correct loader must produce: ``{split: (images uint8 (N, 3, S, S), labels
int64 (N,))}`` (only the splits the dataset has). Sets stored as JPEG are
lossy: their writers draw solid-colour images and :data:`APPROXIMATE` lists
them (compare with a tolerance, no marker).

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
from PIL import Image

from firm_bench.datasets.cifar import CIFAR10, CIFAR100
from firm_bench.datasets.fashion_mnist import FILES, RAW
from firm_bench.datasets.mvtec import CLASSES as MVTEC_CLASSES

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


# ---------------------------------------------------------------- image files


def _save(path: Path, chw: np.ndarray, **kw) -> None:
    """Save uint8 (3, H, W) as RGB, or (1, H, W) as an 8-bit grayscale ("L") image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    img = Image.fromarray(hwc[:, :, 0], "L") if hwc.shape[2] == 1 else Image.fromarray(hwc, "RGB")
    img.save(path, **kw)


def write_png16(path: Path, grey: np.ndarray) -> None:
    """Write uint16 (H, W) as a real 16-bit greyscale PNG (PIL mode "I;16"; PNG bit depth 16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint16))
    assert img.mode == "I;16", img.mode
    img.save(path)
    with Image.open(path) as back:  # what a reader of the file sees
        assert back.mode == "I;16" and np.array_equal(np.asarray(back), grey)


def _solid(colour: tuple[int, int, int], h: int, w: int) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8)[:, None, None], (3, h, w)).copy()


# ---------------------------------------------------------------- MVTec AD

MVTEC_DEFECTS = {"bottle": ("broken_large", "contamination"), "grid": ("bent", "glue"),
                 "zipper": ("broken_teeth", "rough")}  # real defect folder names
MVTEC_GRAY = {"grid", "screw", "zipper"}


def write_mvtec(root: Path, classes=("bottle", "grid"), n_train: int = 3, n_good: int = 2,
                n_defect: int = 2, size: int = 256, seed: int = 0) -> Expected:
    """<class>/{train/good, test/good, test/<defect>}/NNN.png + ground_truth/<defect>/NNN_mask.png.

    Grayscale classes are written as mode "L" PNGs (as the official grid,
    screw, zipper). Expected order: classes in MVTec order; train/good files;
    test: good, then the defect folders by name; files by name.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    out = {"train": ([], []), "test": ([], [])}
    for cls in sorted(classes, key=MVTEC_CLASSES.index):
        gray, label = cls in MVTEC_GRAY, MVTEC_CLASSES.index(cls)
        groups = [("train", "good", n_train), ("test", "good", n_good)]
        groups += [("test", d, n_defect) for d in sorted(MVTEC_DEFECTS[cls])]
        for split, group, n in groups:
            images = _images(n, size, rng, gray=gray)
            if out[split][0] and images.shape[0]:
                images[0] = rng.integers(0, 256, images[0].shape, dtype=np.uint8)  # marker once
            for i, im in enumerate(images):
                _save(root / cls / split / group / f"{i:03d}.png", im, compress_level=1)
                if group != "good":
                    mask = np.zeros((1, size, size), np.uint8)
                    _save(root / cls / "ground_truth" / group / f"{i:03d}_mask.png", mask)
            out[split][0].append(np.repeat(images, 3, axis=1) if gray else images)
            out[split][1].append(np.full(n, label, np.int64))
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


# ---------------------------------------------------------------- Cats-vs-Dogs


def cat_dog_colour(c: int, n: int) -> tuple[int, int, int]:
    """The solid colour of image N of class c (0 cat, 1 dog): unique per file."""
    return (30 + 7 * n % 200, 60 + 120 * c, 250 - 9 * n % 200)


def write_cats_vs_dogs(root: Path, n_per_class: int = 10, layout: str = "kaggle",
                       prefix: str = "dogs-vs-cats", n_test: int = 2, seed: int = 0) -> Expected:
    """Kaggle: <prefix>/train/{cat,dog}.N.jpg of varied sizes (some under 64 px).

    layout "split": <prefix>/{train,test}/{cat,dog}/N.jpg with n_test per class
    in test. Images are solid colours (:func:`cat_dog_colour`), so the 64 x 64
    result is that colour up to JPEG rounding. Expected (the documented rule,
    re-implemented here): per class default_rng(0).permutation of the
    N-sorted files, first n - round(n / 5) train; cats first, then dogs.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / prefix if prefix else Path(root)
    out = {"train": ([], []), "test": ([], [])}
    for c, name in enumerate(("cat", "dog")):
        for n in range(n_per_class):
            h, w = (int(v) for v in rng.integers(40, 130, 2))
            if layout == "kaggle":
                path = base / "train" / f"{name}.{n}.jpg"
            else:
                split = "train" if n < n_per_class - n_test else "test"
                path = base / split / name / f"{n}.jpg"
            _save(path, _solid(cat_dog_colour(c, n), h, w), quality=95)
        if layout == "kaggle":
            perm = np.random.default_rng(0).permutation(n_per_class)
            k = n_per_class - int(np.floor(n_per_class * 0.2 + 0.5))
            order = {"train": perm[:k], "test": perm[k:]}
        else:
            order = {"train": np.arange(n_per_class - n_test),
                     "test": np.arange(n_per_class - n_test, n_per_class)}
        for split, ns in order.items():
            out[split][0].append(np.stack([_solid(cat_dog_colour(c, n), 64, 64) for n in ns]))
            out[split][1].append(np.full(len(ns), c, np.int64))
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


# ---------------------------------------------------------------- OOD folders and OE

OOD_FOLDERS = {"lsun_resize": "LSUN_resize", "imagenet_resize": "Imagenet_resize",
               "lsun_fix": "LSUN_fix", "imagenet_fix": "Imagenet_FIX"}


def write_ood_folder(name: str, root: Path, n: int = 6, subfolder: bool | None = None,
                     seed: int = 0) -> Expected:
    """ODIN's *_resize (JPEG, in a subfolder as its tarballs) or CSI's *_fix (PNG, flat)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / OOD_FOLDERS[name]
    jpeg = name.endswith("_resize")
    if subfolder is None:
        subfolder = jpeg
    if subfolder:
        folder = folder / OOD_FOLDERS[name]
    if jpeg:
        images = np.stack([_solid(tuple(int(v) for v in rng.integers(0, 256, 3)), 32, 32)
                           for _ in range(n)])
    else:
        images = _images(n, 32, rng)
    for i, im in enumerate(images):
        if jpeg:
            _save(folder / f"{i}.jpg", im, quality=95)
        else:
            _save(folder / f"correct_resize_{i}.png", im)
    return {"test": (images, np.zeros(n, np.int64))}


def write_oe(root: Path, n: int = 20, seed: int = 0) -> Expected:
    """300K_random_images.npy: uint8 (N, 32, 32, 3), channels last, as Hendrycks's file."""
    images = _images(n, 32, np.random.default_rng(seed))
    Path(root).mkdir(parents=True, exist_ok=True)
    np.save(Path(root) / "300K_random_images.npy", np.ascontiguousarray(images.transpose(0, 2, 3, 1)))
    return {"train": (images, np.zeros(n, np.int64))}


WRITERS = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "fashion_mnist": write_fashion_mnist,
    "svhn": write_svhn,
    "mvtec": write_mvtec,
    "cats_vs_dogs": write_cats_vs_dogs,
    **{name: (lambda root, _n=name: write_ood_folder(_n, root)) for name in OOD_FOLDERS},
    "oe": write_oe,
}
EMBEDDED = {"fmnist_mini"}  # datasets that need no fixture
APPROXIMATE = {"cats_vs_dogs", "lsun_resize", "imagenet_resize"}  # JPEG: compare within 4
