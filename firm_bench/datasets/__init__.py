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
``cats_vs_dogs.py``, ``ood_folders.py``, ``oe.py`` (its reader is
``firm_bench.method.outliers.load_oe_array``); the registry, its accessors
and shared reading code in ``base.py``; what a run trains and tests on in
``protocols.py``.

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

- :func:`one_class_split` (docs/METHOD.md "Metrics"): train on one class's
  training images, test on the whole test set; a dataset may bring its own
  protocol (``DatasetInfo.one_class``; MVTec: the class's own test folder).
  The class is an index or a class name.
- :func:`ood_split` (Table 4): train on every training image of the
  in-distribution dataset (no labels used), test on its test set plus the
  OOD set's test images.
- :func:`load_run_data` / :class:`RunData`: a run config's split at its
  training size, with its normalisation and evaluation view.
"""

from __future__ import annotations

import importlib

from firm_bench.core.errors import DatasetError
from firm_bench.core.facts.datasets import DATASETS as FACTS
from firm_bench.datasets.base import (
    DATA_ENV,
    DATASETS,
    DEFAULT_ROOT,
    DatasetInfo,
    ImageSet,
    check_dataset,
    class_index,
    get_dataset,
    load_split,
    resize_images,
    resolve_root,
)
from firm_bench.datasets.protocols import RunData, evalset_data, load_run_data, one_class_split, ood_split

# Importing a loader module registers its datasets: each dataset's facts name its module (core/facts/datasets.py),
# imported here in the facts' order, which is the registry's.
for _module in dict.fromkeys(f.module for f in FACTS.values()):
    importlib.import_module(f"firm_bench.datasets.{_module}")

__all__ = [
    "DATASETS", "DATA_ENV", "DEFAULT_ROOT", "DatasetError", "DatasetInfo", "ImageSet", "RunData",
    "check_dataset", "class_index", "evalset_data", "get_dataset", "load_run_data", "load_split",
    "one_class_split", "ood_split", "resize_images", "resolve_root",
]


