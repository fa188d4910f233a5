"""MVTec AD (Bergmann et al., CVPR 2019), in the official folder layout.

Layout (as ``mvtec_anomaly_detection.tar.xz`` or the per-class archives
extract), for each of the 15 classes::

    <class>/train/good/*.png                 defect-free training images
    <class>/test/good/*.png                  defect-free test images (normal)
    <class>/test/<defect>/*.png              one folder per defect type (anomalous)
    <class>/ground_truth/<defect>/*_mask.png pixel masks (not used: image-level AUROC)

The official archive extracts the class folders directly into the target
folder, so the root is the folder that holds ``bottle/``, ``cable/``, ...;
``<root>/mvtec_ad/`` and ``<root>/mvtec_anomaly_detection/`` are accepted too
(tried in this order; ``data check`` says which one it used). A partial copy
(only some classes, e.g. from the per-class archives) works for the classes
present.

One-class protocol (paper Tables 2, 3; hook ``one_class``): train on the
class's ``train/good`` images; test on that class's own ``test/`` folder,
target 1 for ``good`` and 0 for every defect type. Only that class's files
are read. The test set keeps the defect type of each image in
``ImageSet.groups`` (group 0 = "good", then the defect folders sorted by
name), for the t-SNE figures (Figs. 3, 6, 7). Labels are the class index.

Images are decoded with PIL, converted to RGB (grid, screw and zipper are
grayscale PNGs, replicated to 3 channels) and resized while reading, with
area averaging (PIL BOX), directly to ``image_size`` (the files are 700 to
1024 px square; a whole class is never held at full size).
``image_size=None`` gives ``DEFAULT_SIZE`` = 256: the reference code
(``Willtl/firm`` ``data.py``, ``_load_mvtec(size=256)``) and NSA (Schlueter
et al. 2022, ``train_mvtec.py``: objects read at 256 then cropped to 224,
textures read at 264 then cropped to 256) both start from 256 x 256.
Normalisation: the ImageNet mean / std (0.485, 0.456, 0.406) /
(0.229, 0.224, 0.225), as the NSA / CutPaste MVTec pipelines use (15 classes
of very different colours have no meaningful common statistics).

``load_split("mvtec", split)`` without a class reads every class present
(slow: ~5,000 large PNGs); ``data check`` only counts files and reads image
headers and file ends (truncation), it decodes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from firm_bench.core.errors import DataProblem
from firm_bench.core.facts.datasets import DATASETS as FACTS
from firm_bench.datasets.base import (
    ImageSet,
    class_lines,
    fit_square,
    list_images,
    missing_root,
    mode_warnings,
    parallel_map,
    probe_image,
    read_image,
    register,
)

MVTEC = FACTS["mvtec"]  # classes, sizes, protocol (core/facts/datasets.py)
CLASSES = MVTEC.classes
GRAYSCALE = ("grid", "screw", "zipper")  # stored as 8-bit grayscale PNGs
OBJECTS, TEXTURES = MVTEC.class_groups["objects"], MVTEC.class_groups["textures"]  # Figures 6 and 7
CONTAINERS = ("", "mvtec_ad", "mvtec_anomaly_detection")  # tried in this order under the root
GOOD = "good"
DEFAULT_SIZE = MVTEC.image_size
URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"


@dataclass(frozen=True)
class ClassFiles:
    """The files of one class: train/good, and test images with their group index."""

    name: str
    train: list[Path]
    test: list[Path]
    test_groups: list[int]  # index into group_names
    group_names: tuple[str, ...]  # ("good", *defects sorted)
    masks: int  # number of ground-truth mask files
    defect_images_without_mask: int


def find_base(root: str) -> tuple[Path, str]:
    """The folder holding the class folders, and how it was found (for the report)."""
    r = Path(root)
    for sub in CONTAINERS:
        base = r / sub if sub else r
        if base.is_dir() and any((base / c).is_dir() for c in CLASSES):
            return base, (f"class folders directly in the root {base}/" if not sub else
                          f"class folders in <root>/{sub}/ = {base}/")
    if missing_root(r):
        raise DataProblem(missing_root(r))
    tried = ", ".join(str(r / s) if s else str(r) for s in CONTAINERS)
    raise DataProblem(f"no MVTec AD class folder ({', '.join(c + '/' for c in CLASSES[:3])} ...) "
                      f"in {tried}", _level_hint(r))


def _level_hint(r: Path) -> str | None:
    """Explain a root that points inside a class folder or above the layout."""
    rr = r.resolve()
    for d in (rr, *list(rr.parents)[:2]):  # root = <class>/, <class>/test/, <class>/test/good/
        if d.name in CLASSES and ((d / "train").is_dir() or (d / "test").is_dir()):
            return (f"root points inside the class folder {d.name}/; pass {d.parent} "
                    "(the folder that holds the class folders) as the root")
    for depth in ("*", "*/*"):
        for c in CLASSES:
            for hit in sorted(r.glob(f"{depth}/{c}/train")):
                return f"found {hit}: pass {hit.parent.parent} as the root"
    return None


def scan_class(base: Path, cls: str) -> ClassFiles:
    """List one class's files, checking the layout (missing split, empty folders)."""
    folder = base / cls
    present = [c for c in CLASSES if (base / c).is_dir()]
    if not folder.is_dir():
        raise DataProblem(f"class folder {folder}/ is missing (classes present in {base}: "
                          f"{', '.join(present)}); download this class")
    good = folder / "train" / GOOD
    if not good.is_dir():
        raise DataProblem(f"missing split: {good}/ (expected {cls}/train/good/*.png)")
    train = list_images(good)
    if not train:
        raise DataProblem(f"no images in {good}/ (expected {cls}/train/good/*.png)")
    test_dir = folder / "test"
    if not test_dir.is_dir():
        raise DataProblem(f"missing split: {test_dir}/ (expected {cls}/test/good/*.png and "
                          f"{cls}/test/<defect>/*.png)")
    defects = sorted(d.name for d in test_dir.iterdir() if d.is_dir() and d.name != GOOD
                     and not d.name.startswith("."))
    if not (test_dir / GOOD).is_dir():
        raise DataProblem(f"missing {test_dir / GOOD}/: the test split needs its normal images")
    if not defects:
        raise DataProblem(f"no defect folder in {test_dir}/ (expected {cls}/test/<defect>/*.png "
                          "besides test/good/)")
    names = (GOOD, *defects)
    test, groups, missing_masks, masks = [], [], 0, 0
    for g, group in enumerate(names):
        files = list_images(test_dir / group)
        if not files:
            raise DataProblem(f"no images in {test_dir / group}/")
        test += files
        groups += [g] * len(files)
        if group != GOOD:
            gt = folder / "ground_truth" / group
            have = {p.name for p in list_images(gt)} if gt.is_dir() else set()
            masks += len(have)
            missing_masks += sum(f"{p.stem}_mask.png" not in have for p in files)
    return ClassFiles(cls, train, test, groups, names, masks, missing_masks)


def _decode(paths: list[Path], size: int) -> np.ndarray:
    """uint8 (N, 3, size, size): each file decoded as RGB and area-resized while reading."""
    out = np.empty((len(paths), 3, size, size), np.uint8)
    for i, arr in enumerate(parallel_map(lambda p: fit_square(read_image(p), size), paths)):
        out[i] = arr
    return out


def _image_set(files: ClassFiles, split: str, size: int) -> ImageSet:
    paths = files.train if split == "train" else files.test
    groups = [0] * len(paths) if split == "train" else files.test_groups
    label = CLASSES.index(files.name)
    return ImageSet(torch.from_numpy(_decode(paths, size)),
                    torch.full((len(paths),), label, dtype=torch.int64),
                    CLASSES, torch.tensor(groups, dtype=torch.int64), files.group_names)


def read_mvtec(root: str, split: str, download: bool, image_size: int | None) -> ImageSet:
    """Every present class's ``split``, resized to ``image_size`` (None: DEFAULT_SIZE).

    Groups are renumbered over the union of group names ("good" first, then
    every defect name sorted), so a group name means the same across classes.
    """
    size = image_size or DEFAULT_SIZE
    base, _ = find_base(root)
    parts = [_image_set(scan_class(base, c), split, size) for c in CLASSES if (base / c).is_dir()]
    names = (GOOD, *sorted({n for p in parts for n in p.group_names} - {GOOD}))
    groups = [torch.tensor([names.index(p.group_names[g]) for g in p.groups.tolist()],
                           dtype=torch.int64) for p in parts]
    return ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                    CLASSES, torch.cat(groups), names)


def mvtec_one_class(root: str, cls: int, download: bool, image_size: int | None
                    ) -> tuple[ImageSet, ImageSet, torch.Tensor]:
    """MVTec's protocol: (class's train/good, class's test/, targets 1 = good, 0 = defect)."""
    size = image_size or DEFAULT_SIZE
    base, _ = find_base(root)
    files = scan_class(base, CLASSES[cls])
    test = _image_set(files, "test", size)
    return _image_set(files, "train", size), test, (test.groups == 0).to(torch.int64)


def check_mvtec(root: str, download: bool) -> list[str]:
    """Counts per class, split and defect type, image sizes and modes, from headers only.

    Every image's header and end are read (truncated / unreadable files are
    named); nothing is decoded. Absent classes are listed, not an error (the
    per-class archives give partial copies); a class folder with a missing
    split or empty folder is an error.
    """
    base, where = find_base(root)
    lines = [f"found: {where}"]
    present = [c for c in CLASSES if (base / c).is_dir()]
    totals = {"train": 0, "test": 0}
    train_counts, test_counts = [], []
    for cls in CLASSES:
        if cls not in present:
            train_counts.append("absent")
            test_counts.append("absent")
            continue
        files = scan_class(base, cls)
        paths = files.train + files.test
        probes = [probe_image(p) for p in paths]
        shapes = set(probes)
        sizes = sorted({f"{w}x{h}" for w, h, _ in shapes})
        modes = sorted({m for _, _, m in shapes})
        per_group = [files.test_groups.count(g) for g in range(len(files.group_names))]
        lines.append(
            f"{cls}: train/good {len(files.train)}; test {len(files.test)} = "
            + ", ".join(f"{c} {n}" for n, c in zip(files.group_names, per_group))
            + f"; images {'/'.join(sizes)} {'/'.join(modes)}; masks {files.masks}"
            + (f" (WARNING: {files.defect_images_without_mask} defect images without "
               "a ground_truth mask; not needed for image-level AUROC)"
               if files.defect_images_without_mask else ""))
        lines += [f"  {line}" for line in mode_warnings((p, m) for p, (_, _, m) in zip(paths, probes))]
        totals["train"] += len(files.train)
        totals["test"] += len(files.test)
        train_counts.append(len(files.train))
        test_counts.append(len(files.test))
    for split, counts in (("train", train_counts), ("test", test_counts)):
        lines.append(f"{split}: {totals[split]} images in {len(present)} of {len(CLASSES)} "
                     f"classes (read at image_size, default {DEFAULT_SIZE}; uint8 RGB)")
        lines += class_lines(CLASSES, counts)
    absent = [c for c in CLASSES if c not in present]
    if absent:
        lines.append(f"absent classes (download them to run them): {', '.join(absent)}")
    lines.append(f"total: {totals['train'] + totals['test']} images "
                 "(headers and file ends checked; nothing decoded)")
    return lines


register(
    "mvtec",
    layout="<class>/{train/good,test/good,test/<defect>}/*.png, <class>/ground_truth/<defect>/"
           "*_mask.png\n  for the 15 classes bottle, cable, ..., zipper, directly in the root "
           "or in <root>/mvtec_ad/ or <root>/mvtec_anomaly_detection/",
    how_to_get=f"download mvtec_anomaly_detection.tar.xz (or single classes) from {URL} "
               "(licence CC BY-NC-SA 4.0; no automatic download) and extract it into the root",
    read=read_mvtec, sized=True, one_class=mvtec_one_class, check=check_mvtec,
)
