"""The outlier-exposure set: Hendrycks et al.'s 300K random images, as one ``.npy`` (``data check`` only).

Training reads it through ``firm_bench.method.outliers.load_oe_array``
(``outliers.oe_path``); registered here as dataset ``oe`` (role "oe") so
that ``firm-bench data check oe`` verifies a copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.datasets.base import ImageSet, class_lines, image_set, register
from firm_bench.method.outliers import OE_ENV, OE_URL, load_oe_array

OE_FILE = "300K_random_images.npy"


def _oe_path(root: str) -> Path:
    """The OE file: the root itself when it is a file (or names a .npy), else <root>/OE_FILE."""
    r = Path(root)
    return r if r.is_file() or r.suffix == ".npy" else r / OE_FILE


def _open_oe(root: str) -> np.ndarray:
    """The memory-mapped OE array, through ``outliers.load_oe_array`` (its checks, its messages)."""
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


register(
    "oe",
    layout=f"{OE_FILE}   (uint8 (N, 32, 32, 3), channels last; or pass the .npy file itself "
           f"as the root; the training runs read outliers.oe_path / ${OE_ENV})",
    how_to_get=f"download {OE_URL} (about 920 MB; Hendrycks et al., Outlier Exposure)",
    read=_read_oe, check=_check_oe,
)


