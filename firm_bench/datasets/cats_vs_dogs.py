"""Cats-vs-Dogs (paper Table 1d): Kaggle's "Dogs vs. Cats" training images at 64 x 64.

Accepted layouts under the root (tried in this order):

- Kaggle, as users download it: ``train.zip`` of
  https://www.kaggle.com/c/dogs-vs-cats/data extracted to
  ``<root>/dogs-vs-cats/train/{cat,dog}.N.jpg`` (also ``<root>/train/`` or the
  root being that ``train/`` folder itself); 12,500 images per class. The
  Kaggle ``test1/`` folder is unlabeled and not used.
- already split: ``<root>[/dogs-vs-cats]/{train,test}/{cat,dog}/*.jpg`` (any
  image format); used as it is split.

Conversion (once; then cached): each image is decoded with PIL as RGB, its
shorter side resized to 64 with area interpolation (PIL BOX = OpenCV
INTER_AREA; BILINEAR for the few images with a side under 64) and the centre
64 x 64 cropped (:func:`base.fit_square`).

Split of the Kaggle layout, per class (0 = cat, 1 = dog): the class's files
sorted by N, ``numpy.random.default_rng(0).permutation(n)`` (the same seed
for each class), the first ``n - n_test`` positions train and the rest test,
with ``n_test = round(n * TEST_FRACTION)`` = 2,500 of 12,500 (so 10,000
train), as the prior work (GEOM / CSI / the reference code) did: a seed-0
permutation per class, first 10,000 train, remaining 2,500 test. The same
proportional rule applies to a partial copy (a 10-image fixture: 8 / 2).
Deviation: the reference code permuted an unpublished ``train_64x64.npz``
with ``np.random.seed(0)``; its order and resizing are unknown, so its exact
split cannot be reproduced; this one is documented and deterministic.
Within a split the images come cats first, then dogs, each class in
permutation order (the split layout: natural file-name order).

Cache: ``cats_vs_dogs_64.npz`` (uncompressed; ``{train,test}_{images,labels,
files}`` and ``key``) in the root if the root is writable, else
``$FIRM_BENCH_CACHE`` (or ``~/.cache/firm_bench/``) as
``cats_vs_dogs_64-<hash of the root path>.npz``. ``key`` hashes the layout,
the conversion constants and every source file's relative path and size, so
a changed source rebuilds it. It is written atomically (temporary file +
rename) only after every image decoded: a broken source raises and leaves an
existing cache untouched. Normalisation: the reference code's constants
mean (0.4899, 0.4546, 0.4161), std (0.2204, 0.2158, 0.2156).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.core.facts.datasets import DATASETS as FACTS
from firm_bench.datasets.base import (
    DATASETS,
    SPLITS,
    ImageSet,
    atomic_save_npz,
    fit_square,
    image_set,
    list_images,
    missing_root,
    mode_warnings,
    parallel_map,
    probe_image,
    read_image,
    register,
    split_report,
)

CLASSES = FACTS["cats_vs_dogs"].classes
SIZE = FACTS["cats_vs_dogs"].native_size
SEED = 0
TEST_FRACTION = 0.2  # 2,500 of the 12,500 images per class
KAGGLE_DIR = "dogs-vs-cats"
KAGGLE_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpe?g$", re.IGNORECASE)
CACHE_FILE = "cats_vs_dogs_64.npz"
CACHE_ENV = "FIRM_BENCH_CACHE"
CACHE_VERSION = 1  # bump when the conversion or the split rule changes
KAGGLE_URL = "https://www.kaggle.com/c/dogs-vs-cats/data"


@dataclass(frozen=True)
class Source:
    """Where the images are: ``kind`` "kaggle" (one folder, split by us) or "split".

    ``files[split][c]`` lists class c's files in order; the Kaggle layout has the
    single pseudo-split "all" (sorted by N).
    """

    kind: Literal["kaggle", "split"]
    folder: Path
    files: Mapping[str, tuple[tuple[Path, ...], tuple[Path, ...]]]

    def describe(self) -> str:
        counts = {s: "/".join(str(len(f)) for f in fs) for s, fs in self.files.items()}
        if self.kind == "kaggle":
            return (f"Kaggle training folder {self.folder}/ ({counts['all']} cat.N.jpg/dog.N.jpg; "
                    f"split here, seed {SEED})")
        return (f"already split {self.folder}/{{train,test}}/{{cat,dog}}/ (train {counts['train']}, "
                f"test {counts['test']} cat/dog)")


def n_test_of(n: int) -> int:
    """Test images of a class of n: round(n * TEST_FRACTION), halves up (12,500 -> 2,500)."""
    return int(math.floor(n * TEST_FRACTION + 0.5))


def kaggle_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions into a class's N-sorted file list: default_rng(0).permutation."""
    perm = np.random.default_rng(SEED).permutation(n)
    n_train = n - n_test_of(n)
    return perm[:n_train], perm[n_train:]


def _kaggle_files(folder: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]] | None:
    """The cat.N.jpg and dog.N.jpg files of ``folder``, each sorted by N; None if none."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    found: tuple[list, list] = ([], [])
    for name in names:
        m = KAGGLE_NAME.match(name)
        if m:
            found[CLASSES.index(m.group(1).lower())].append((int(m.group(2)), folder / name))
    if not (found[0] or found[1]):
        return None
    cats, dogs = (tuple(p for _, p in sorted(f)) for f in found)
    return cats, dogs


def _is_split_layout(base: Path) -> bool:
    return any((base / s / c).is_dir() for s in SPLITS for c in CLASSES)


def _split_source(base: Path) -> Source:
    files = {}
    for split in SPLITS:
        per_class = []
        for c in CLASSES:
            d = base / split / c
            if not d.is_dir():
                raise DataProblem(f"missing split folder {d}/ (the already-split layout needs "
                                  "train/cat, train/dog, test/cat and test/dog)")
            images = list_images(d)
            if not images:
                raise DataProblem(f"no images in {d}/")
            per_class.append(tuple(images))
        files[split] = tuple(per_class)
    return Source("split", base, files)


def _kaggle_source(folder: Path, files: tuple[tuple[Path, ...], tuple[Path, ...]]) -> Source:
    for c, other in ((0, 1), (1, 0)):
        if not files[c]:
            raise DataProblem(f"{folder} has {len(files[other])} {CLASSES[other]}.N.jpg files but no "
                              f"{CLASSES[c]}.N.jpg: incomplete extraction of train.zip?")
    return Source("kaggle", folder, {"all": files})


def find_source(root: str) -> Source:
    """Detect the layout under ``root`` (see the module docstring)."""
    r = Path(root)
    if missing_root(r):
        raise DataProblem(missing_root(r))
    for base in (r / KAGGLE_DIR, r):
        if _is_split_layout(base):
            return _split_source(base)
        files = _kaggle_files(base / "train")
        if files:
            return _kaggle_source(base / "train", files)
    files = _kaggle_files(r)
    if files:  # the root is Kaggle's train/ folder itself
        return _kaggle_source(r, files)
    raise DataProblem(f"no Cats-vs-Dogs images under {r}: neither cat.N.jpg / dog.N.jpg files "
                      f"(in {r / KAGGLE_DIR / 'train'}, {r / 'train'} or {r}) nor "
                      "train/{cat,dog}/ + test/{cat,dog}/ folders", _level_hint(r))


def _level_hint(r: Path) -> str | None:
    rr = r.resolve()
    if rr.name in CLASSES and rr.parent.name in SPLITS:
        return f"root points inside {rr.parent.name}/{rr.name}/; pass {rr.parent.parent} as the root"
    dirs = sorted(d for d in (*r.glob("*"), *r.glob("*/*")) if d.is_dir())
    for d in dirs:
        if _is_split_layout(d):
            return f"found the split layout in {d}: pass {d} as the root"
        if _kaggle_files(d):
            return f"found Kaggle images in {d}: pass {d} as the root"
    return None


def source_key(src: Source) -> str:
    """sha256 of the layout, the conversion constants and each file's relative path and size."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, SIZE, SEED, TEST_FRACTION, src.kind]).encode())
    for split, per_class in src.files.items():
        for c, paths in enumerate(per_class):
            for p in paths:
                h.update(f"{split}\t{c}\t{p.relative_to(src.folder)}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def cache_path(root: str) -> Path:
    """``<root>/cats_vs_dogs_64.npz`` if the root is writable, else in $FIRM_BENCH_CACHE."""
    r = Path(root)
    if r.is_dir() and os.access(r, os.W_OK):
        return r / CACHE_FILE
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "firm_bench").expanduser()
    tag = hashlib.sha1(str(r.resolve()).encode()).hexdigest()[:12]
    return folder / f"{Path(CACHE_FILE).stem}-{tag}.npz"


def _convert_one(path: Path) -> np.ndarray:
    return fit_square(read_image(path), SIZE, crop=True)


def convert(src: Source, key: str) -> dict[str, np.ndarray]:
    """Decode, resize and split every image (raises DataProblem naming a bad file)."""
    chosen: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    for c in range(len(CLASSES)):
        if src.kind == "kaggle":
            paths = src.files["all"][c]
            for split, idx in zip(SPLITS, kaggle_split(len(paths))):
                chosen[split] += [(paths[i], c) for i in idx]
        else:
            for split in SPLITS:
                chosen[split] += [(p, c) for p in src.files[split][c]]
    out: dict[str, np.ndarray] = {"key": np.array(key)}
    for split in SPLITS:
        paths = [p for p, _ in chosen[split]]
        images = np.empty((len(paths), 3, SIZE, SIZE), np.uint8)
        for i, arr in enumerate(parallel_map(_convert_one, paths)):
            images[i] = arr
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = np.array([c for _, c in chosen[split]], np.int64)
        out[f"{split}_files"] = np.array([str(p.relative_to(src.folder)) for p in paths])
    return out


def _cached(path: Path, key: str, names: list[str]) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` of the cache if it exists, is readable and has ``key``; else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: z[k] for k in names}
    except Exception:  # missing, truncated, not an npz, old format: rebuild
        return None


def load_arrays(root: str, split: str | None = None
                ) -> tuple[Source, dict[str, np.ndarray], Path, str]:
    """(source, arrays, cache path, cache status) with the cache reused or (re)built.

    ``split`` given: only that split's images and labels are read from a
    valid cache (the cache holds ~300 MB per full split).
    """
    src = find_source(root)
    key = source_key(src)
    path = cache_path(root)
    splits = [split] if split else list(SPLITS)
    arrays = _cached(path, key, [f"{s}_{k}" for s in splits for k in ("images", "labels")])
    if arrays is not None:
        return src, arrays, path, "reused"
    arrays = convert(src, key)
    try:
        atomic_save_npz(path, **arrays)
        status = "written now"
    except OSError as e:  # read-only everywhere: work without a cache
        warnings.warn(f"cats_vs_dogs: cannot write the cache {path}: {e}; converting on every load")
        status = f"not written: {e}"
    return src, arrays, path, status


def read_cats_vs_dogs(root: str, split: str, download: bool) -> ImageSet:
    _, arrays, _, _ = load_arrays(root, split)
    return image_set(arrays[f"{split}_images"], arrays[f"{split}_labels"], CLASSES)


def check_cats_vs_dogs(root: str, download: bool) -> list[str]:
    """Layout, source image sizes (headers), cache file and status, per-split counts."""
    src = find_source(root)
    paths = [p for per_class in src.files.values() for files in per_class for p in files]
    shapes = parallel_map(probe_image, paths)
    ws, hs = [s[0] for s in shapes], [s[1] for s in shapes]
    lines = [f"found: {src.describe()}",
             f"source images: {len(paths)}, widths {min(ws)}-{max(ws)} px, heights "
             f"{min(hs)}-{max(hs)} px (headers and file ends checked); converted to "
             f"{SIZE}x{SIZE} (shorter side {SIZE}, area interpolation, centre crop)"]
    lines += mode_warnings((p, s[2]) for p, s in zip(paths, shapes))
    _, _, path, status = load_arrays(root, "test")
    lines.append(f"cache: {path} ({status})")
    return lines + split_report(DATASETS.get("cats_vs_dogs"), root, download)


register(
    "cats_vs_dogs",
    layout=f"{KAGGLE_DIR}/train/{{cat,dog}}.N.jpg   (Kaggle's train.zip extracted; also "
           "<root>/train/ or the root = that train/ folder)\n"
           f"or [{KAGGLE_DIR}/]{{train,test}}/{{cat,dog}}/*.jpg   (already split)\n"
           f"converted once to {CACHE_FILE} (in the root if writable, else ${CACHE_ENV})",
    how_to_get=f"download train.zip from {KAGGLE_URL} (Kaggle account; no automatic download) "
               f"and extract it into <root>/{KAGGLE_DIR}/",
    read=read_cats_vs_dogs, check=check_cats_vs_dogs,
)
