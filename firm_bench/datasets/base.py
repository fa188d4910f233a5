"""Shared machinery of the dataset loaders: the types, the registry, errors, IDX, resize.

Every loader module (``cifar.py``, ``fashion_mnist.py``, ``svhn.py``, ``mini.py``)
only knows its on-disk format. It registers itself with :func:`register`, giving
a ``read(root, split, download) -> ImageSet`` function that raises
:class:`DataProblem` ("file X is truncated") when something is wrong. The
registered ``DatasetInfo.load`` wraps ``read`` and turns each ``DataProblem``
into a :class:`DatasetError` whose message names the root, the expected
layout under it and how to get the data, so every loader reports errors the
same way.

Images travel as uint8 tensors (N, 3, S, S), RGB, channels first
(docs/DESIGN.md "Conventions"); grayscale is replicated to 3 channels.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from firm_bench.registry import Registry

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
DATA_ENV = "FIRM_BENCH_DATA"
DEFAULT_ROOT = "./data"
ROOT_PRECEDENCE = (
    f"the root is the `dataset.root` config key / --root flag if given, "
    f"else ${DATA_ENV}, else {DEFAULT_ROOT}"
)


def default_root(root: str | os.PathLike | None) -> str:
    """The data root: ``root`` if given, else $FIRM_BENCH_DATA, else ./data (absolute)."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return os.path.abspath(os.path.expanduser(str(root)))


@dataclass(frozen=True)
class ImageSet:
    """A split of a dataset at one image size.

    images: uint8 (N, 3, S, S), RGB, channels first (grayscale replicated).
    labels: int64 (N,), class index into ``classes``.
    classes: class names in index order.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        im, lb = self.images, self.labels
        if im.dtype != torch.uint8 or im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, S, S); got {im.dtype} {tuple(im.shape)}")
        if lb.dtype != torch.int64 or lb.shape != (im.shape[0],):
            raise ValueError(
                f"labels must be int64 ({im.shape[0]},); got {lb.dtype} {tuple(lb.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class DatasetError(RuntimeError):
    """The data of a dataset is missing or unreadable.

    The message names the root, the expected layout under it and how to get
    the data (download flag or URL).
    """


class DataProblem(Exception):
    """Raised by a loader's ``read`` for one concrete problem ("missing X").

    Internal: ``DatasetInfo.load`` turns it into a :class:`DatasetError`.
    ``hint`` is an optional extra line (e.g. "root points one level too deep").
    """

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


@dataclass(frozen=True)
class DatasetInfo:
    """What a registered dataset provides.

    ``load(root, split, download)`` returns the split at ``native_size``;
    ``mean`` / ``std`` are the per-channel normalisation constants of the
    training set in [0, 1] units (METHOD.md "Augmentations": per-dataset
    normalisation). ``role`` is "one_class" (a one-class AD benchmark) or
    "ood" (only used as an out-of-distribution test set).
    """

    name: str
    classes: tuple[str, ...]
    native_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str
    how_to_get: str
    load: Callable[[str | None, str, bool], ImageSet]
    role: str = "one_class"


DATASETS: Registry[DatasetInfo] = Registry("dataset")

Reader = Callable[[str, str, bool], ImageSet]  # (resolved root, split, download)


def register(
    name: str,
    *,
    classes: Sequence[str],
    native_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    layout: str,
    how_to_get: str,
    read: Reader,
    role: str = "one_class",
) -> DatasetInfo:
    """Register a dataset whose ``read`` raises :class:`DataProblem` on bad data."""
    classes = tuple(classes)

    def load(root: str | None, split: str, download: bool = False) -> ImageSet:
        """Read ``split`` at native size; ``root=None`` resolves as :func:`default_root`."""
        if split not in SPLITS:
            raise ValueError(f"{name}: unknown split {split!r}; valid: {', '.join(SPLITS)}")
        root = default_root(root)
        try:
            data = read(root, split, download)
        except DataProblem as e:
            raise DatasetError(_message(name, root, layout, how_to_get, e)) from e
        if data.classes != classes:
            raise DatasetError(
                _message(name, root, layout, how_to_get,
                         DataProblem(f"the files name the classes {data.classes}, "
                                     f"expected {classes}: is this the right dataset?")))
        return data

    info = DatasetInfo(name, classes, native_size, mean, std, layout, how_to_get, load, role)
    return DATASETS.add(name, info)


def _message(name: str, root: str | None, layout: str, how_to_get: str, e: DataProblem) -> str:
    lines = [f"dataset {name!r}: {e.problem}", f"  root: {root}"]
    if e.hint:
        lines.append(f"  hint: {e.hint}")
    lines.append("  expected layout under the root:")
    lines += [f"    {line}" for line in layout.splitlines()]
    lines.append(f"  how to get it: {how_to_get}")
    lines.append(f"  ({ROOT_PRECEDENCE})")
    return "\n".join(lines)


# ---------------------------------------------------------------- files


def require(
    root: str,
    relpaths: Sequence[str | tuple[str, ...]],
    fetch: Callable[[], object] | None = None,
) -> list[Path]:
    """Paths of the required files under ``root``; a tuple lists alternatives.

    The first alternative present wins (``("x-ubyte", "x-ubyte.gz")`` prefers
    the plain file). When a file is missing and ``fetch`` is given (a
    torchvision download), ``fetch()`` runs once first. A file still missing
    raises :class:`DataProblem`, with a hint when the files sit one folder
    level off (root inside or above the layout).
    """
    base = Path(root)
    options = [(rel,) if isinstance(rel, str) else tuple(rel) for rel in relpaths]

    def find(alternatives: tuple[str, ...]) -> Path | None:
        return next((base / a for a in alternatives if (base / a).is_file()), None)

    if fetch is not None and any(find(a) is None for a in options):
        try:
            fetch()
        except Exception as e:  # network, disk, checksum: torchvision raises many kinds
            raise DataProblem(f"download into {base} failed: {type(e).__name__}: {e}") from e
    found = []
    for alternatives in options:
        path = find(alternatives)
        if path is None:
            problem = f"missing file {base / alternatives[0]}"
            if len(alternatives) > 1:
                problem += " (or " + ", ".join(Path(a).name for a in alternatives[1:]) + ")"
            if not base.is_dir():
                problem = f"root folder {base} does not exist ({problem})"
            raise DataProblem(problem, _level_hint(base, alternatives))
        found.append(path)
    return found


def _level_hint(base: Path, alternatives: Sequence[str]) -> str | None:
    """Explain a file found one or two folder levels away from where it must be."""
    for rel in alternatives:
        parts = Path(rel).parts
        for k in range(1, len(parts)):  # root points inside the layout
            if (base / Path(*parts[k:])).is_file():
                inner = Path(*parts[:k])
                if base.resolve().parts[-k:] == parts[:k]:
                    return (f"root points inside {inner}/; pass its parent "
                            f"{base.resolve().parents[k - 1]} as the root")
                return (f"{base / Path(*parts[k:])} exists, but the files must sit in "
                        f"<root>/{inner}/ (move or link them there)")
        for depth in ("*", "*/*"):  # root points above the layout
            for hit in sorted(base.glob(f"{depth}/{rel}")):
                outer = Path(str(hit)[: -len(rel)])
                return f"found {hit}: pass {outer} as the root"
    return None


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataProblem(f"cannot read {path}: {e} (truncated or corrupted?)") from e


IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers of uint8 3-D / 1-D IDX files


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a uint8 IDX file (the MNIST / Fashion-MNIST format), plain or .gz.

    Layout: big-endian int32 magic (0x0000, type 0x08 = uint8, ndim), ndim
    big-endian int32 dims, then prod(dims) bytes in C order. ``magic`` is
    2051 for images (N, rows, cols) and 2049 for labels (N,).
    """
    raw = read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is not None and found != magic:
        raise DataProblem(f"{path} is not an IDX file of this kind: magic number {found}, "
                          f"expected {magic}")
    if len(raw) < header:
        raise DataProblem(f"{path} is truncated: {len(raw)} bytes, shorter than its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataProblem(f"{path} is truncated or corrupted: header says {dims} "
                          f"({size} bytes of data), file has {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def check_labels(labels: np.ndarray, n: int, n_classes: int, where: Path | str) -> np.ndarray:
    """Validate that labels is (n,) with values in [0, n_classes); return as int64."""
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != n:
        raise DataProblem(f"{where}: {labels.shape[0]} labels for {n} images")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataProblem(f"{where}: labels span [{labels.min()}, {labels.max()}], "
                          f"expected [0, {n_classes - 1}]")
    return labels.astype(np.int64)


def image_set(images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> ImageSet:
    """Wrap (N, 3, S, S) or grayscale (N, S, S) uint8 arrays as an :class:`ImageSet`."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    if x.ndim == 3:
        x = x.unsqueeze(1).repeat(1, 3, 1, 1)  # grayscale -> RGB, a real copy
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return ImageSet(x, y, tuple(classes))


# ---------------------------------------------------------------- resize


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) to (N, C, size, size): bilinear with antialias.

    Computed in float32 on ``images.device`` in chunks of ``chunk`` images,
    rounded to nearest and clamped to [0, 255]. Returns ``images`` itself
    when it already has the size.
    """
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8, device=images.device)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
        out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out
