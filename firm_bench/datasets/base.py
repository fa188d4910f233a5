"""Shared machinery of the dataset loaders: types, registry, errors, IDX, image files, resize.

Every loader module (``cifar.py``, ``fashion_mnist.py``, ``svhn.py``, ``mini.py``,
``mvtec.py``, ``cats_vs_dogs.py``, ``ood_folders.py``) only knows its on-disk
format. It registers itself with :func:`register`, giving a
``read(root, split, download[, image_size]) -> ImageSet`` function that raises
:class:`DataProblem` ("file X is truncated") when something is wrong. The
registered ``DatasetInfo.load`` wraps ``read`` and turns each ``DataProblem``
into a :class:`DatasetError` whose message names the root, the expected
layout under it and how to get the data, so every loader reports errors the
same way. The optional hooks (``one_class``: a per-dataset one-class
protocol; ``check``: a per-dataset ``data check`` report) are wrapped the
same way.

Images travel as uint8 tensors (N, 3, S, S), RGB, channels first
(docs/DESIGN.md "Conventions"); grayscale is replicated to 3 channels.
Image files (PNG / JPEG folders) are decoded with PIL (:func:`read_image`),
checked for truncation (:func:`probe_image` reads only the header and the
file's end) and resized with area averaging (:func:`fit_square`).
"""

from __future__ import annotations

import gzip
import operator
import os
import re
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from firm_bench.core.errors import DataProblem, DatasetError
from firm_bench.core.facts.datasets import DATASETS as FACTS, DatasetFacts
from firm_bench.core.registry import Registry

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
DATA_ENV = "FIRM_BENCH_DATA"
DEFAULT_ROOT = "./data"
#: how to let torchvision fetch a missing dataset, with the options that exist (the datasets' ``how_to_get``)
TORCHVISION_DOWNLOAD = ("fetch it with torchvision: `--set dataset.download=true` on firm-bench run/train "
                        "(dataset.download: true in a config), or `firm-bench data check NAME --download`")
ROOT_PRECEDENCE = (
    f"the root is the `dataset.root` config key / --root flag if given, "
    f"else ${DATA_ENV}, else {DEFAULT_ROOT}"
)


def default_root(root: str | os.PathLike | None, env: str | None = None) -> str:
    """The data root: ``root`` if given, else ``$env`` (a dataset's own variable, e.g.
    $FIRM_BENCH_OE_PATH) if given and set, else $FIRM_BENCH_DATA, else ./data (absolute)."""
    if root is None or str(root) == "":
        root = (os.environ.get(env) if env else None) or os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return os.path.abspath(os.path.expanduser(str(root)))


def check_image_size(image_size: int | None) -> int | None:
    """``image_size`` as an int, or None; anything but a positive int raises ValueError."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or operator.index(image_size) <= 0:
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    return operator.index(image_size)


@dataclass(frozen=True)
class ImageSet:
    """A split of a dataset at one image size.

    images: uint8 (N, 3, S, S), RGB, channels first (grayscale replicated).
    labels: int64 (N,), class index into ``classes``.
    classes: class names in index order.
    groups: optional int64 (N,), a finer label indexing ``group_names``; MVTec AD
        sets it to the image's folder: group 0 = "good", then the defect types
        (kept for the t-SNE figures). None where a dataset has no such label.
    group_names: names of the groups in index order (empty without groups).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    groups: torch.Tensor | None = None
    group_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        im, lb, gr = self.images, self.labels, self.groups
        if im.dtype != torch.uint8 or im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, S, S); got {im.dtype} {tuple(im.shape)}")
        if lb.dtype != torch.int64 or lb.shape != (im.shape[0],):
            raise ValueError(
                f"labels must be int64 ({im.shape[0]},); got {lb.dtype} {tuple(lb.shape)}"
            )
        if gr is not None and (gr.dtype != torch.int64 or gr.shape != (im.shape[0],)):
            raise ValueError(
                f"groups must be int64 ({im.shape[0]},) or None; got {gr.dtype} {tuple(gr.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


OneClass = Callable[[str, int, bool, "int | None"], "tuple[ImageSet, ImageSet, torch.Tensor]"]
Check = Callable[[str, bool], "list[str]"]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(DatasetFacts):
    """A registered dataset: its facts (``core/facts/datasets.py``: classes, sizes, statistics, protocol) and
    how to read it.

    ``load(root, split, download=False, image_size=None)`` returns the split at
    ``native_size`` (``image_size`` None) or resized to ``image_size``.
    ``layout`` / ``how_to_get``: the files expected under the root and where to get them (every error says).
    ``one_class(root, cls, download, image_size) -> (train, test, targets)``:
    the dataset's own one-class protocol where it differs from the default
    (MVTec AD: the class's own test folder); None = the default protocol.
    ``check(root, download) -> report lines``: the dataset's own ``data check``
    body (MVTec: headers only, without decoding GBs); None = load every split.
    """

    layout: str
    how_to_get: str
    load: Callable[..., ImageSet]
    one_class: OneClass | None = None
    check: Check | None = None


DATASETS: Registry[DatasetInfo] = Registry("dataset", facts=FACTS)

Reader = Callable[..., ImageSet]  # (resolved root, split, download[, image_size])


def register(name: str, *, layout: str, how_to_get: str, read: Reader, sized: bool = False,
             one_class: OneClass | None = None, check: Check | None = None) -> DatasetInfo:
    """Register a dataset whose ``read`` (and hooks) raise :class:`DataProblem` on bad data.

    ``sized=True``: ``read(root, split, download, image_size)`` resizes while
    decoding (large image files: never held at full size); otherwise ``read``
    returns the native size and ``load`` resizes with :func:`resize_images`.
    """
    if name not in FACTS:
        raise ValueError(f"dataset {name!r} has no facts record: declare it in firm_bench/core/facts/datasets.py first")
    facts = FACTS[name]
    classes, splits, root_env = facts.classes, facts.splits, facts.root_env

    def fail(root: str, e: DataProblem) -> DatasetError:
        return DatasetError(_message(name, root, layout, how_to_get, e, root_env))

    def load(root: str | None, split: str, download: bool = False,
             image_size: int | None = None) -> ImageSet:
        """Read ``split`` at ``image_size`` (None = native); ``root=None`` as :func:`default_root`."""
        if split not in splits:
            what = "unknown split" if split not in SPLITS else f"{name} has no {split} split:"
            raise ValueError(f"{name}: {what} {split!r}; valid: {', '.join(splits)}")
        size = check_image_size(image_size)
        root = default_root(root, root_env)
        try:
            data = read(root, split, download, size) if sized else read(root, split, download)
        except DataProblem as e:
            raise fail(root, e) from e
        if data.classes != classes:
            raise fail(root, DataProblem(f"the files name the classes {data.classes}, "
                                         f"expected {classes}: is this the right dataset?"))
        if size is not None and data.images.shape[-2:] != (size, size):
            data = ImageSet(resize_images(data.images, size), data.labels, data.classes,
                            data.groups, data.group_names)
        return data

    def protocol(root: str | None, cls: int, download: bool = False,
                 image_size: int | None = None) -> tuple[ImageSet, ImageSet, torch.Tensor]:
        root = default_root(root, root_env)
        try:
            return one_class(root, cls, download, check_image_size(image_size))  # type: ignore[misc]
        except DataProblem as e:
            raise fail(root, e) from e

    def report(root: str | None, download: bool = False) -> list[str]:
        root = default_root(root, root_env)
        try:
            return check(root, download)  # type: ignore[misc]
        except DataProblem as e:
            raise fail(root, e) from e

    info = DatasetInfo(**{f.name: getattr(facts, f.name) for f in fields(DatasetFacts)}, layout=layout,
                       how_to_get=how_to_get, load=load, one_class=protocol if one_class else None,
                       check=report if check else None)
    return DATASETS.add(name, info)


def split_report(info: DatasetInfo, root: str, download: bool = False) -> list[str]:
    """The default ``data check`` body: load every split at native size and count.

    Per split: total, image shape and dtype, then one line per class
    (index, name, count); last line the total over splits. Raises
    DatasetError when a split is empty or (one-class datasets) a class has
    no training image.
    """
    lines, total = [], 0
    for split in info.splits:
        data = info.load(root, split, download)
        counts = torch.bincount(data.labels, minlength=len(info.classes)).tolist()
        empty = [c for c, n in zip(info.classes, counts) if n == 0]
        if len(data) == 0 or (split == "train" and info.role == "one_class" and empty):
            raise DatasetError(f"dataset {info.name!r} under {root}: the {split} split has "
                               f"{len(data)} images; classes without images: {empty}")
        lines.append(f"{split}: {len(data)} images, shape {tuple(data.images.shape[1:])}, "
                     f"dtype {data.images.dtype}")
        lines += class_lines(info.classes, counts)
        total += len(data)
    lines.append(f"total: {total} images")
    return lines


def class_lines(classes: Sequence[str], counts: Sequence[int | str]) -> list[str]:
    """The per-class rows of a report: index, name, count."""
    width = max(len(c) for c in classes)
    return [f"  {i:>3} {c:<{width}} {n:>6}" for i, (c, n) in enumerate(zip(classes, counts))]


def _message(name: str, root: str | None, layout: str, how_to_get: str, e: DataProblem,
             root_env: str | None = None) -> str:
    lines = [f"dataset {name!r}: {e.problem}", f"  root: {root}"]
    if e.hint:
        lines.append(f"  hint: {e.hint}")
    lines.append("  expected layout under the root:")
    lines += [f"    {line}" for line in layout.splitlines()]
    lines.append(f"  how to get it: {how_to_get}")
    precedence = ROOT_PRECEDENCE
    if root_env:
        precedence = precedence.replace(f"else ${DATA_ENV}", f"else ${root_env}, else ${DATA_ENV}")
    lines.append(f"  ({precedence})")
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
            if missing_root(base):
                problem = f"{missing_root(base)} ({problem})"
            raise DataProblem(problem, _level_hint(base, alternatives))
        found.append(path)
    return found


def missing_root(root: str | os.PathLike) -> str | None:
    """What is wrong with a dataset root that is not a folder: it does not exist, or it is a file (an archive,
    a single image); None for a folder."""
    r = Path(root)
    if r.is_dir():
        return None
    if r.exists():
        archive = r.name.lower().endswith((".zip", ".tar", ".tgz", ".gz", ".xz", ".bz2", ".7z"))
        kind = "an archive" if archive else "a file"
        return (f"root {r} is {kind}, not a folder: pass the folder holding the dataset's files"
                + (" (extract the archive into one)" if kind == "an archive" else ""))
    return f"root folder {r} does not exist"


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


# ---------------------------------------------------------------- image files

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
_TAIL = 4096  # bytes read from a file's end to find its end marker
_T = TypeVar("_T")
_R = TypeVar("_R")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically: img_2 < img_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension), in natural order.

    Hidden files are skipped, notably macOS ``._name.png`` resource forks that
    tar archives made on a Mac carry next to every image.
    """
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
                   and p.is_file()), key=lambda p: natural_key(p.name))


def _check_end(path: Path) -> None:
    """Raise DataProblem when a PNG / JPEG file lacks its end marker (truncated).

    Reads the first 8 and the last 4 KiB bytes only. PNG must end with the
    IEND chunk, JPEG with the EOI marker FF D9 (tolerating a little trailing
    padding); other formats are not checked here.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as e:
        raise DataProblem(f"cannot read image {path}: {e}") from e
    if head.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" not in tail:
        raise DataProblem(f"image {path} is truncated: no PNG end chunk (IEND) in its "
                          f"{size} bytes (re-extract or re-download it)")
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise DataProblem(f"image {path} is truncated: no JPEG end marker (FF D9) in its "
                          f"{size} bytes (re-extract or re-download it)")


def probe_image(path: Path) -> tuple[int, int, str]:
    """(width, height, PIL mode) from the header, plus the end-marker check; no decoding."""
    from PIL import Image

    _check_end(path)
    try:
        with Image.open(path) as im:
            return im.size[0], im.size[1], im.mode
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, DecompressionBombError, ...
        raise _unreadable(path, e, "not an image, or corrupted: replace it") from e


#: PIL modes of 8-bit RGB or grey pixels: read as they are (grey replicated to RGB)
PLAIN_MODES = ("RGB", "L")
#: what :func:`read_image` does with the other PIL modes (``firm-bench data check`` warns with it)
MODE_NOTES = {
    "I;16": "16-bit grey: scaled to 8 bits (round(x / 257), 65535 -> 255); an image whose values all lie in "
            "0..255 (8-bit values stored in a 16-bit file) is read as those 8-bit values, not scaled to black, "
            "with a warning naming it",
    "1": "1-bit black and white: read as 0 / 255",
    "P": "palette colours: expanded to RGB",
    "PA": "palette colours with alpha: expanded to RGB, alpha dropped",
    "LA": "grey with alpha: alpha dropped",
    "RGBA": "alpha dropped (transparent pixels keep their stored colour)",
    "CMYK": "CMYK: converted to RGB by PIL's naive formula",
    "I": "32-bit integer pixels: refused (convert the files to 8-bit)",
    "F": "32-bit float pixels: refused (convert the files to 8-bit)",
}
REFUSED_MODES = ("I", "F")


def _mode_key(mode: str) -> str:
    return "I;16" if mode.startswith("I;16") else mode  # I;16, I;16B, I;16L, I;16N: one 16-bit grey


def mode_warnings(probes: Iterable[tuple[Path, str]]) -> list[str]:
    """``WARNING`` lines for the unusual PIL modes among ``(path, mode)`` pairs (what reading does with each), for
    ``data check``; a mode reading refuses (:data:`REFUSED_MODES`) raises :class:`DataProblem` naming its first
    file and how many there are, so the check fails as training would."""
    first: dict[str, Path] = {}
    count: dict[str, int] = {}
    for path, mode in probes:
        key = _mode_key(mode)
        first.setdefault(key, path)
        count[key] = count.get(key, 0) + 1
    refused = [m for m in REFUSED_MODES if m in first]
    if refused:
        m = refused[0]
        others = f" and {count[m] - 1} more" if count[m] > 1 else ""
        raise DataProblem(f"image {first[m]}{others} in mode {m} ({MODE_NOTES[m].split(':')[0]}): firm-bench refuses "
                          "them when reading; convert them to 8-bit PNGs (RGB or grey)")
    unusual = sorted(set(first) - set(PLAIN_MODES))
    return [f"WARNING: images in mode {m}: {MODE_NOTES.get(m, 'converted to RGB by PIL')}" for m in unusual]


_WARNED: set[str] = set()


def _warn_once(key: str, text: str) -> None:
    """Print ``text`` on stderr the first time ``key`` is warned about in this process."""
    if key not in _WARNED:
        _WARNED.add(key)
        print(text, file=sys.stderr, flush=True)


def _unreadable(path: Path, e: Exception, what: str) -> DataProblem:
    """The :class:`DataProblem` of an image PIL cannot open or decode: too large (PIL's decompression-bomb
    guard) said as such, anything else as ``what`` (truncated or corrupted?)."""
    from PIL import Image

    if isinstance(e, Image.DecompressionBombError):
        return DataProblem(f"image {path} is too large to read: {e} (PIL's limit against decompression bombs, "
                           f"{2 * Image.MAX_IMAGE_PIXELS} pixels); the datasets firm-bench reads have images of a few "
                           "megapixels at most: downscale it, or remove it from the dataset's folder")
    return DataProblem(f"cannot read image {path}: {type(e).__name__}: {e} ({what})")


def to_rgb8(im: "Image.Image", path: Path | str = "?") -> "Image.Image":  # noqa: F821
    """An 8-bit RGB copy of a decoded PIL image, scaled (never clipped) from 16 bits.

    ``convert("RGB")`` clips a 16-bit grey image (mode ``I;16``, 0..65535) at
    255, turning most pixels white; here it is scaled: x8 = round(x16 / 257)
    (65535 / 255 = 257 exactly, so 0 -> 0 and 65535 -> 255). 32-bit integer
    and float images (modes ``I``, ``F``) have no known range: refused with
    :class:`DataProblem`. Other modes (palette, alpha, 1-bit, CMYK) are PIL's
    conversions (:data:`MODE_NOTES`).
    """
    from PIL import Image

    mode = _mode_key(im.mode)
    if mode == "I;16":
        x = np.asarray(im).astype(np.uint32)  # native-endian values whatever the file's byte order
        if x.size and int(x.max()) <= 255:  # 8-bit values in a 16-bit file: scaling would make it black
            _warn_once("16-bit-as-8", f"firm-bench: WARNING: 16-bit image {path} holds only values "
                       f"{int(x.min())}..{int(x.max())} (8-bit values stored in 16 bits): read as those 8-bit "
                       "values, not scaled by 1/257 (which would make it black); further such images are read "
                       "the same way without a warning. Save them as 8-bit PNGs to silence this")
            return Image.fromarray(x.astype(np.uint8), "L").convert("RGB")
        grey = ((2 * x + 257) // 514).astype(np.uint8)  # round(x / 257), never a tie
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in REFUSED_MODES:
        raise DataProblem(f"image {path} has mode {im.mode} ({MODE_NOTES[mode].split(':')[0]}); firm-bench reads 8- "
                          "and 16-bit images: convert it to an 8-bit PNG (RGB or grey)")
    return im.convert("RGB")


def read_image(path: Path) -> "Image.Image":  # noqa: F821 (PIL imported lazily)
    """Decode ``path`` fully as an 8-bit RGB PIL image (grayscale replicated, 16-bit scaled: :func:`to_rgb8`).

    Truncated or unreadable files raise :class:`DataProblem` naming the file,
    also when PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` was switched on
    by another library (the end-marker check does not depend on it).
    """
    from PIL import Image

    _check_end(path)
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb8(im, path)
    except DataProblem:
        raise
    except Exception as e:  # PIL raises OSError ("image file is truncated"), ValueError, DecompressionBombError, ...
        raise _unreadable(path, e, "truncated or corrupted? replace it") from e


def fit_square(img: "Image.Image", size: int, crop: bool = False) -> np.ndarray:  # noqa: F821
    """Resize a PIL image to uint8 (3, size, size), area interpolation when shrinking.

    ``crop=False``: the whole image is resized to size x size (MVTec AD's
    images are square). ``crop=True``: the shorter side is resized to
    ``size`` (aspect kept, longer side rounded) and the centre size x size
    cropped (left/top offset = floor of half the excess). Shrinking uses
    PIL's BOX filter, i.e. exact area averaging (OpenCV's INTER_AREA
    semantics); enlarging (rare: a side below ``size``) uses BILINEAR.
    """
    from PIL import Image

    w, h = img.size
    if crop:
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
    else:
        new = (size, size)
    if new != (w, h):
        shrink = new[0] <= w and new[1] <= h
        img = img.resize(new, Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    if crop:
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def parallel_map(fn: Callable[[_T], _R], items: Iterable[_T], workers: int | None = None) -> list[_R]:
    """``[fn(x) for x in items]`` on a thread pool (PIL decodes without the GIL), in order.

    The first exception in item order propagates (so a bad file is named
    deterministically).
    """
    items = list(items)
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(items) < 64:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz to ``path`` atomically (temporary file + rename).

    A failure (disk full, interrupt) leaves any previous ``path`` untouched
    and removes the temporary file.
    """
    from firm_bench.core.rundir import atomic_write

    atomic_write(path, lambda f: np.savez(f, **arrays))


# ---------------------------------------------------------------- the registry's accessors

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

    The matching rules are ``core.facts.datasets.class_index``'s (exact name, else the
    name with every run of non-alphanumerics as "_", so "ankle_boot" names
    Fashion-MNIST's "Ankle boot"; a string of digits is an index). Raises
    ValueError listing the valid names and indices.
    """
    return get_dataset(name).class_index(cls)


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
             f"training size {info.image_size}, splits {', '.join(info.splits)})",
             "root: " + ("not used (embedded in the package)" if name == "fmnist_mini"
                         else root_used)]
    if info.check is not None:
        lines += info.check(root_used, download)
    else:
        lines += split_report(info, root_used, download)
    return "\n".join(lines)
