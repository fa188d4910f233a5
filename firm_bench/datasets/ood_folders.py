"""Folder-of-images OOD test sets of the unlabeled multiclass setting (paper Table 4).

Four sets, one generic loader (:func:`read_folder`), each registered with its
folder names and provenance (role "ood", test split only, 10,000 images of
32 x 32 each in the distributed archives):

- ``lsun_resize`` (``LSUN_resize/``) and ``imagenet_resize``
  (``Imagenet_resize/``): ODIN's sets (Liang et al., ICLR 2018), distributed
  as ``LSUN_resize.tar.gz`` / ``Imagenet_resize.tar.gz``: 10,000 LSUN test
  images and 10,000 Tiny-ImageNet test images, each downsampled to 32 x 32,
  JPEG. Known flaw (CSI, Tack et al. 2020, Sec. 4 / App.): the naive
  downsampling leaves artifacts that make them easy to detect.
- ``lsun_fix`` (``LSUN_fix/``) and ``imagenet_fix`` (``Imagenet_fix/``,
  also spelled ``Imagenet_FIX/``): CSI's replacements (repository
  alinlab/CSI, ``datasets/lsun_fix_preprocess.py`` and
  ``imagenet_fix_preprocess.py``): torchvision ``Resize(256)`` ->
  ``CenterCrop(256)`` -> ``Resize(32)`` (PIL bilinear with antialiasing),
  saved as PNG ``correct_resize_{i}.png``. LSUN_fix: 1,000 images from each
  of the 10 LSUN scene classes' training sets (shuffled, seed 0).
  ImageNet_fix: 10,000 images of the ImageNet-30 training set without the
  four classes close to CIFAR-10 (airliner, ambulance, parking meter,
  schooner), shuffled with seed 0.

Layout: ``<root>/<folder>/`` holding the images directly or in one level of
subfolders (the archives are read with torchvision's ``ImageFolder``, which
needs one subfolder; both forms are accepted). Every image must be 32 x 32
(anything else means a wrong folder); it is read as RGB uint8. Labels are
all 0 (one pseudo-class named after the set): these are OOD test images.
The sets have no normalisation of their own: a run normalises them with the
in-distribution dataset's statistics; ``mean`` / ``std`` here are CIFAR-10's,
for completeness only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from firm_bench.core.errors import DataProblem
from firm_bench.datasets.base import (
    DATASETS,
    ImageSet,
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

SIZE = 32
CSI_URL = "https://github.com/alinlab/CSI#datasets"


@dataclass(frozen=True)
class FolderSet:
    """One folder-of-images OOD set: accepted folder names (the first is canonical)."""

    name: str
    folders: tuple[str, ...]
    provenance: str
    url: str


SETS = (
    FolderSet("lsun_resize", ("LSUN_resize",),
              "ODIN's LSUN (resize): 10,000 LSUN test images downsampled to 32x32, JPEG",
              "https://www.dropbox.com/s/moqh2wh8696c3yl/LSUN_resize.tar.gz"),
    FolderSet("imagenet_resize", ("Imagenet_resize", "ImageNet_resize"),
              "ODIN's TinyImageNet (resize): 10,000 test images downsampled to 32x32, JPEG",
              "https://www.dropbox.com/s/kp3my3412u5k9rl/Imagenet_resize.tar.gz"),
    FolderSet("lsun_fix", ("LSUN_fix", "LSUN_FIX"),
              "CSI's LSUN (FIX): Resize(256), CenterCrop(256), Resize(32), PNG",
              "https://drive.google.com/file/d/1KVWj9xpHfVwGcErH5huVujk9snhEGOxE"),
    FolderSet("imagenet_fix", ("Imagenet_fix", "Imagenet_FIX", "ImageNet_fix", "ImageNet_FIX"),
              "CSI's ImageNet (FIX): Resize(256), CenterCrop(256), Resize(32), PNG",
              "https://drive.google.com/file/d/1sO_-noq10mmziB1ECDyNhD5T4u5otyKA"),
)


def find_images(fs: FolderSet, root: str) -> tuple[Path, list[Path]]:
    """The set's folder under ``root`` and its images (directly or one subfolder deep)."""
    r = Path(root)
    folder = next((r / f for f in fs.folders if (r / f).is_dir()), None)
    if folder is None:
        problem = (f"missing folder {r / fs.folders[0]}/"
                   + (f" (or {', '.join(fs.folders[1:])})" if len(fs.folders) > 1 else ""))
        if missing_root(r):
            problem = f"{missing_root(r)} ({problem})"
        raise DataProblem(problem, _level_hint(fs, r))
    images = list_images(folder)
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images += list_images(sub)
    if not images:
        deeper = sorted(folder.glob("*/*/*"))
        raise DataProblem(f"no images in {folder}/ or its subfolders"
                          + (f" (found {deeper[0]}: images must sit at most one subfolder deep)"
                             if deeper else ""))
    return folder, images


def _level_hint(fs: FolderSet, r: Path) -> str | None:
    if r.is_dir() and r.name in fs.folders:
        return f"root points inside {r.name}/; pass its parent {r.resolve().parent} as the root"
    if r.parent.name in fs.folders:
        return f"root points inside {r.parent.name}/; pass {r.resolve().parent.parent} as the root"
    for depth in ("*", "*/*"):
        for f in fs.folders:
            for hit in sorted(r.glob(f"{depth}/{f}")):
                return f"found {hit}: pass {hit.parent} as the root"
    return None


def _read_32(fs: FolderSet, folder: Path, path: Path) -> np.ndarray:
    img = read_image(path)
    if img.size != (SIZE, SIZE):
        raise DataProblem(f"image {path} is {img.size[0]}x{img.size[1]}; {fs.name} images are "
                          f"{SIZE}x{SIZE}: is {folder} the {fs.folders[0]} folder?")
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def read_folder(fs: FolderSet, root: str, split: str, download: bool) -> ImageSet:
    """Every image of the set, uint8 (N, 3, 32, 32), in folder then natural file order."""
    folder, paths = find_images(fs, root)
    images = np.stack(parallel_map(partial(_read_32, fs, folder), paths))
    return image_set(images, np.zeros(len(paths), np.int64), (fs.name,))


def check_folder(fs: FolderSet, root: str, download: bool) -> list[str]:
    """Which folder was found and how its images are spread, then the decoded counts."""
    folder, paths = find_images(fs, root)
    subs = sorted({p.parent.name for p in paths if p.parent != folder})
    where = (f"in {len(subs)} subfolder(s) {', '.join(subs)}" if subs else "directly") + (
        f" and {sum(p.parent == folder for p in paths)} directly" if subs and
        any(p.parent == folder for p in paths) else "")
    exts = sorted({p.suffix.lower() for p in paths})
    lines = [f"found: {folder}/ ({len(paths)} {'/'.join(exts)} images {where}; every one "
             f"decoded and checked to be {SIZE}x{SIZE})"]
    lines += mode_warnings((p, m) for p, (_, _, m) in zip(paths, parallel_map(probe_image, paths)))
    return lines + split_report(DATASETS.get(fs.name), root, download)


for _fs in SETS:
    register(
        _fs.name,
        layout=f"{_fs.folders[0]}/[<subfolder>/]*.{{jpg,png}}   ({_fs.provenance}"
               + (f"; folder also accepted as {', '.join(_fs.folders[1:])}" if _fs.folders[1:]
                  else "") + ")",
        how_to_get=f"download {_fs.url} (links in {CSI_URL}; no automatic download) "
                   "and extract it into the root",
        read=partial(read_folder, _fs), check=partial(check_folder, _fs),
    )
