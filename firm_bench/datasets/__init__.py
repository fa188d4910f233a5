"""Datasets: loaders for the paper's image sets, the one-class and the OOD protocols.

Registered in ``DATASETS`` (in this order): ``cifar10``, ``cifar100`` (20
superclasses), ``fashion_mnist``, ``svhn`` (role "ood": an out-of-distribution
test set only), ``fmnist_mini`` (a real Fashion-MNIST subset embedded in the
package, for the mini/smoke presets and tests), ``mvtec`` (MVTec AD, its own
one-class protocol), ``cats_vs_dogs`` (Kaggle's images at 64 x 64, cached),
the OOD folder sets ``lsun_resize``, ``imagenet_resize``, ``lsun_fix``,
``imagenet_fix`` (role "ood") and ``oe`` (role "oe": the 300K random images
of outlier exposure, only for ``data check``). One module per format:
``cifar.py``, ``fashion_mnist.py``, ``svhn.py``, ``mini.py``, ``mvtec.py``,
``cats_vs_dogs.py``, ``ood_folders.py``; shared code in ``base.py``; ``oe``
below (its reader is ``firm_bench.outliers.load_oe_array``).

Where the data lives (:func:`resolve_root`): the explicit ``root`` argument
(config key ``dataset.root``, CLI ``--root``), else the dataset's own
environment variable if it has one (``oe``: $FIRM_BENCH_OE_PATH), else
``$FIRM_BENCH_DATA`` (one root for all datasets), else ``./data``. Under the
root each dataset has its documented layout (``DatasetInfo.layout``;
torchvision's for the torchvision datasets, so a root shared with
torchvision works). ``download=True`` fetches missing torchvision files; the
files are then read by our own readers, which check their structure (not
torchvision's md5s; see ``cifar.py``). Derived files (the Cats-vs-Dogs
cache) are written atomically and only from a source that read cleanly.

Images are uint8 (N, 3, S, S) RGB tensors (docs/DESIGN.md "Conventions").
Protocols (targets 1 = normal / in-distribution, 0 = anomalous / OOD):

- :func:`one_class_split` (METHOD.md "Metrics"): train on one class's
  training images, test on the whole test set; a dataset may bring its own
  protocol (``DatasetInfo.one_class``; MVTec: the class's own test folder).
  The class is an index or a class name.
- :func:`ood_split` (Table 4): train on every training image of the
  in-distribution dataset (no labels used), test on its test set plus the
  OOD set's test images.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import torch

from firm_bench.datasets.base import (
    DATA_ENV, DATASETS, DEFAULT_ROOT, SPLITS, DataProblem, DatasetError, DatasetInfo, ImageSet,
    class_lines, default_root, image_set, register, resize_images, split_report,
)

# Importing a loader module registers its datasets; this order is DATASETS.names().
for _module in ("cifar", "fashion_mnist", "svhn", "mini", "mvtec", "cats_vs_dogs", "ood_folders"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "DATASETS", "DATA_ENV", "DEFAULT_ROOT", "DatasetError", "DatasetInfo", "ImageSet",
    "check_dataset", "class_index", "get_dataset", "load_split", "one_class_split", "ood_split",
    "resize_images", "resolve_root",
]


# ---------------------------------------------------------------- oe: outlier-exposure data

OE_FILE = "300K_random_images.npy"


def _oe_path(root: str) -> Path:
    """The OE file: the root itself when it is a file (or names a .npy), else <root>/OE_FILE."""
    r = Path(root)
    return r if r.is_file() or r.suffix == ".npy" else r / OE_FILE


def _open_oe(root: str) -> np.ndarray:
    """The memory-mapped OE array, through ``outliers.load_oe_array`` (its checks, its messages)."""
    from firm_bench.outliers import load_oe_array

    path = _oe_path(root)
    try:
        return load_oe_array(path)
    except FileNotFoundError as e:
        hint = None
        if path.parent.is_dir():
            hits = sorted(path.parent.glob(f"*/{OE_FILE}")) or sorted(path.parent.glob("*.npy"))
            if hits:
                hint = f"found {hits[0]}: pass it as the root (--root FILE)"
        raise DataProblem(str(e), hint) from e
    except ValueError as e:  # wrong shape / dtype / not an .npy / truncated
        raise DataProblem(str(e)) from e


def _read_oe(root: str, split: str, download: bool) -> ImageSet:
    arr = _open_oe(root)  # (N, H, W, 3) -> (N, 3, H, W): this copies the whole set into memory
    return image_set(np.transpose(arr, (0, 3, 1, 2)), np.zeros(len(arr), np.int64), ("random",))


def _check_oe(root: str, download: bool) -> list[str]:
    """Shape and dtype from the memory map: the 300K images are never read."""
    arr = _open_oe(root)
    path = _oe_path(root)
    return [f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, memory-mapped; not loaded)",
            f"train: {arr.shape[0]} images, shape {tuple(arr.shape[1:])} (H, W, C; channels last), "
            f"dtype {arr.dtype}",
            *class_lines(("random",), [arr.shape[0]]),
            f"total: {arr.shape[0]} images"]


def _register_oe() -> None:
    from firm_bench.outliers import OE_ENV, OE_URL

    register(
        "oe", classes=("random",), native_size=32,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),  # unused: ID statistics apply
        layout=f"{OE_FILE}   (uint8 (N, 32, 32, 3), channels last; or pass the .npy file itself "
               f"as the root; the training runs read outliers.oe_path / ${OE_ENV})",
        how_to_get=f"download {OE_URL} (about 920 MB; Hendrycks et al., Outlier Exposure)",
        read=_read_oe, role="oe", splits=("train",), check=_check_oe, root_env=OE_ENV,
    )


_register_oe()


def get_dataset(name: str) -> DatasetInfo:
    """The registered dataset ``name``; unknown names raise UnknownNameError listing valid ones."""
    return DATASETS.get(name)


def resolve_root(name: str, root: str | os.PathLike | None) -> str:
    """The absolute data root for ``name``.

    Precedence: ``root`` (config key ``dataset.root`` / ``--root``) if given,
    else the dataset's own variable (``DatasetInfo.root_env``; ``oe``:
    $FIRM_BENCH_OE_PATH) if set, else ``$FIRM_BENCH_DATA`` if set and
    non-empty, else ``./data``. The same root serves every dataset; each
    finds its own sub-layout under it. ``fmnist_mini`` ignores the root.
    """
    return default_root(root, get_dataset(name).root_env)


def class_index(name: str, cls: int | str) -> int:
    """The index of class ``cls`` of dataset ``name``: an index, or a class name.

    The matching rules are ``catalog.class_index``'s (exact name, else the
    name with every run of non-alphanumerics as "_", so "ankle_boot" names
    Fashion-MNIST's "Ankle boot"; a string of digits is an index). Raises
    ValueError listing the valid names and indices.
    """
    from firm_bench.catalog import class_index as match  # torch-free: config validation uses it too

    return match(get_dataset(name).classes, cls, name)


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> ImageSet:
    """Load ``split`` ("train" | "test"; ``DatasetInfo.splits``) of dataset ``name``.

    Returns uint8 (N, 3, S, S) images with S = ``image_size`` or the native
    size when ``image_size`` is None. Array datasets are resized after
    reading (bilinear, antialiased: :func:`resize_images`); image-file
    datasets while decoding (area interpolation: ``base.fit_square``).
    Raises DatasetError when the data is missing or unreadable, ValueError
    for a split the dataset does not have.
    """
    return get_dataset(name).load(resolve_root(name, root), split, download, image_size)


def one_class_split(
    name: str,
    cls: int | str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> tuple[ImageSet, ImageSet, torch.Tensor]:
    """The one-class AD protocol (METHOD.md "Metrics"; paper Sec. 4.1).

    ``cls``: a class index or name (:func:`class_index`). Returns
    ``(train, test, targets)``: ``train`` = the training images of class
    ``cls`` only; ``test`` = the whole test set; ``targets`` int64 (N_test,)
    with 1 = normal (test label == cls), 0 = anomalous (every other class).
    A dataset with its own protocol (``DatasetInfo.one_class``) returns that
    instead (MVTec AD: the class's train/good; its own test folder, 1 = good,
    0 = any defect; only that class's files are read).
    """
    info = get_dataset(name)
    if info.role != "one_class":
        valid = [n for n, i in DATASETS.items() if i.role == "one_class"]
        raise ValueError(f"dataset {name!r} has role {info.role!r} (a test set for OOD only); "
                         f"one-class datasets: {', '.join(valid)}")
    index = class_index(name, cls)
    if info.one_class is not None:
        return info.one_class(resolve_root(name, root), index, download, image_size)
    train = load_split(name, "train", root, image_size, download)
    test = load_split(name, "test", root, image_size, download)
    keep = train.labels == index
    train = ImageSet(train.images[keep], train.labels[keep], train.classes)
    return train, test, (test.labels == index).to(torch.int64)


def ood_split(
    id_name: str,
    ood_name: str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> tuple[ImageSet, ImageSet, torch.Tensor]:
    """The unlabeled multiclass OOD protocol (paper Table 4; METHOD.md "Experiments").

    Returns ``(train, test, targets)``: ``train`` = every training image of
    ``id_name`` (its labels are returned; a run uses them only with ``loss.id_labels``);
    ``test`` = ``id_name``'s test set followed by ``ood_name``'s test set;
    ``targets`` int64 (N_test,) = 1 for the in-distribution test images, 0
    for the OOD ones. ``test.classes`` = the ID classes plus one class
    ``"ood:<ood_name>"`` that labels every OOD image. Both come at
    ``image_size`` (None: the ID dataset's native size). The OOD set can be
    any dataset with a test split except the ID set itself: role "ood"
    (svhn, lsun_resize, imagenet_resize, lsun_fix, imagenet_fix) or a
    one-class dataset's test split (cifar100).
    """
    info, ood = get_dataset(id_name), get_dataset(ood_name)
    if info.role != "one_class" or "train" not in info.splits:
        valid = [n for n, i in DATASETS.items() if i.role == "one_class"]
        raise ValueError(f"in-distribution dataset {id_name!r} has role {info.role!r}; "
                         f"valid: {', '.join(valid)}")
    if ood_name == id_name or ood.role == "oe" or "test" not in ood.splits:
        valid = [n for n, i in DATASETS.items()
                 if n != id_name and i.role != "oe" and "test" in i.splits]
        raise ValueError(f"{ood_name!r} cannot be the OOD test set of {id_name!r}; "
                         f"valid: {', '.join(valid)}")
    size = image_size if image_size is not None else info.native_size
    train = load_split(id_name, "train", root, size, download)
    id_test = load_split(id_name, "test", root, size, download)
    ood_test = load_split(ood_name, "test", root, size, download)
    n_id, n_ood = len(id_test), len(ood_test)
    labels = torch.cat([id_test.labels, torch.full((n_ood,), len(info.classes), dtype=torch.int64)])
    test = ImageSet(torch.cat([id_test.images, ood_test.images]), labels,
                    (*info.classes, f"ood:{ood_name}"))
    targets = torch.cat([torch.ones(n_id, dtype=torch.int64), torch.zeros(n_ood, dtype=torch.int64)])
    return train, test, targets


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Check ``name`` on disk and report what is there (``firm-bench data check``).

    The report names the root used and, per split, the image count, shape
    and dtype and the per-class counts (with class names), then the total.
    Datasets with their own check (``DatasetInfo.check``) report more or
    decode less: ``mvtec`` reads only image headers and file ends (counts per
    class, split and defect type, image sizes, which folder level it found);
    ``cats_vs_dogs`` adds the layout found, the source image sizes and the
    cache file; ``oe`` reads the .npy header through a memory map. Raises
    DatasetError, naming the problem and what was expected, when the data is
    missing or unreadable (a truncated image: its file), a split is missing
    or empty, or (one-class datasets) a class has no training image.
    """
    info = get_dataset(name)
    root_used = resolve_root(name, root)
    lines = [f"dataset: {name} (role {info.role}, native size {info.native_size}, "
             f"training size {info.default_image_size}, splits {', '.join(info.splits)})",
             "root: " + ("not used (embedded in the package)" if name == "fmnist_mini"
                         else root_used)]
    if info.check is not None:
        lines += info.check(root_used, download)
    else:
        lines += split_report(info, root_used, download)
    return "\n".join(lines)
