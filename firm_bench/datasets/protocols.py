"""What a run trains and tests on: the one-class and the unlabeled multiclass OOD protocols.

Targets are 1 = normal / in-distribution (the positive class of AUROC), 0 =
anomalous / OOD (docs/METHOD.md "Metrics").

- :func:`one_class_split` (Tables 1-3, 5-16): train on one class's training
  images, test on the whole test set; a dataset may bring its own protocol
  (``DatasetInfo.one_class``; MVTec: the class's own test folder).
- :func:`ood_split` (Table 4): train on every training image of the
  in-distribution dataset (no labels used unless ``loss.id_labels``), test on
  its test set plus the OOD set's test images.
- :func:`load_run_data` / :class:`RunData`: a run config's split, at its
  training size, with its normalisation and its evaluation view (size and
  zoom of the test transform: ``core.config.protocol``).
- :func:`evalset_data`: the data of an evaluation set (``test``, or
  ``ood-<name>`` for Table 4's OOD sets; ``core.rundir.TEST_EVALSET`` /
  ``OOD_PREFIX``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from firm_bench.core import config as config_mod
from firm_bench.core.rundir import OOD_PREFIX, TEST_EVALSET
from firm_bench.datasets.base import DATASETS, ImageSet, class_index, get_dataset, load_split, resolve_root
from firm_bench.method.augment import TEST_ZOOM

__all__ = ["RunData", "evalset_data", "load_run_data", "one_class_split", "ood_split"]


def one_class_split(
    name: str,
    cls: int | str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> tuple[ImageSet, ImageSet, torch.Tensor]:
    """The one-class AD protocol (docs/METHOD.md "Metrics"; paper Sec. 4.1).

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
    """The unlabeled multiclass OOD protocol (paper Table 4; docs/METHOD.md "Experiments").

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



@dataclass
class RunData:
    """Everything a run trains and evaluates on, loaded once."""

    train_ids: torch.Tensor  # uint8 (N, 3, S, S) normal-class training images
    train_labels: torch.Tensor  # int64 (N,) their classes (the dataset's class index; loss.id_labels)
    test_images: torch.Tensor  # uint8 (Nt, 3, S, S)
    test_targets: torch.Tensor  # int64 (Nt,), 1 = normal
    image_size: int  # side of the training images
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eval_size: int = 0  # side the bank and test images are evaluated at (0: image_size)
    eval_zoom: float = TEST_ZOOM  # the test transform's Resize(zoom * eval_size) -> CenterCrop(eval_size)

    def __post_init__(self) -> None:
        if not self.eval_size:
            self.eval_size = self.image_size

    @property
    def eval_view(self) -> tuple[int, tuple[float, ...], tuple[float, ...], float]:
        """(size, mean, std, zoom) of the test transform: what ``features.encode`` takes."""
        return self.eval_size, self.mean, self.std, self.eval_zoom


def load_run_data(cfg: dict) -> RunData:
    """The configured split, resized to the run's size.

    One-class protocol: the normal class's training images; the whole test set, normal = 1.
    OOD protocol (``dataset.ood``): every training image; this dataset's test set (normal = 1)
    plus the OOD set's test images (0). ``cls: all`` without ``dataset.ood``: every training
    image and no test set (no learning curve; evaluate with ``firm-bench features --evalset ood-<name>``).
    """
    ds = cfg["dataset"]
    proto = config_mod.protocol(cfg)
    size = proto.image_size
    info = get_dataset(ds["name"])
    if ds["ood"] is not None:
        train, test, targets = ood_split(ds["name"], ds["ood"], root=ds["root"], image_size=size, download=ds["download"])
    elif ds["cls"] == "all":  # unlabeled multiclass training, no test set: no learning curve
        train = load_split(ds["name"], "train", ds["root"], size, ds["download"])
        test = ImageSet(train.images[:0], train.labels[:0], train.classes)
        targets = torch.zeros(0, dtype=torch.int64)
    else:
        train, test, targets = one_class_split(
            ds["name"], ds["cls"], root=ds["root"], image_size=size, download=ds["download"]
        )
    mean, std = info.stats(ds["normalization"])
    return RunData(train_ids=train.images, train_labels=train.labels, test_images=test.images, test_targets=targets,
                   image_size=size, mean=tuple(mean), std=tuple(std), eval_size=proto.eval_size,
                   eval_zoom=proto.eval_zoom)


def evalset_data(cfg: dict, evalset: str):
    """The RunData (bank = training images, test images + targets) of an evaluation set."""
    if evalset == TEST_EVALSET:
        return load_run_data(cfg)
    if evalset.startswith(OOD_PREFIX):
        ood = evalset[len(OOD_PREFIX):]
        return load_run_data({**cfg, "dataset": {**cfg["dataset"], "ood": ood, "cls": "all"}})
    raise ValueError(f"unknown evaluation set {evalset!r}; valid: {TEST_EVALSET}, {OOD_PREFIX}<dataset>")


