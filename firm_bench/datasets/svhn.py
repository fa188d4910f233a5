"""SVHN (Netzer et al., 2011), cropped digits, in torchvision's on-disk format.

Files: ``<root>/{train,test}_32x32.mat`` (MATLAB; ``X`` uint8 (32, 32, 3, N) as
height, width, channel, image; ``y`` (N, 1) with digit 0 stored as 10, mapped
to 0 as torchvision does). Only an out-of-distribution test set here (docs/METHOD.md
"Experiments", Table 4): role "ood". The .mat files are read with scipy, not
through torchvision, whose md5 check would reject anything but the official
files; ``download=True`` fetches missing files through torchvision.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.core.facts.datasets import DATASETS as FACTS
from firm_bench.datasets.base import TORCHVISION_DOWNLOAD, ImageSet, check_labels, image_set, register, require

URL = "http://ufldl.stanford.edu/housenumbers/"
CLASSES = FACTS["svhn"].classes


def _download(root: str, split: str) -> None:
    import torchvision.datasets as tvd  # imported only when downloading

    tvd.SVHN(root, split=split, download=True)


def read_svhn(root: str, split: str, download: bool) -> ImageSet:
    fetch = partial(_download, root, split) if download else None
    (path,) = require(root, [f"{split}_32x32.mat"], fetch)
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, MatReadError, OSError, ... on bad files
        raise DataProblem(f"cannot read {path}: {type(e).__name__}: {e} "
                          "(truncated or corrupted? delete it and download again)") from e
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        shape = None if x is None else (x.dtype, x.shape)
        raise DataProblem(f"{path}: expected 'X' uint8 (32, 32, 3, N) and 'y', got X {shape}")
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    y = check_labels(np.where(y == 10, 0, y), x.shape[3], len(CLASSES), path)
    return image_set(np.transpose(x, (3, 2, 0, 1)), y, CLASSES)


register(
    "svhn",
    layout="{train,test}_32x32.mat   (torchvision SVHN format, directly in the root)",
    how_to_get=f"{TORCHVISION_DOWNLOAD}, "
               f"or download train_32x32.mat / test_32x32.mat from {URL} into the root",
    read=read_svhn,
)
