"""Every dataset's facts, declared once as data (no torch): what planning, configs and the loaders share.

The loader modules (``firm_bench/datasets/<family>.py``) read the files and
register a reader for each name here (``datasets.base.register``, which
refuses a name without facts); planning, config validation and the tables
read these records directly. The fields are :class:`DatasetFacts`'s.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Literal, Sequence

from firm_bench.core.errors import UnknownNameError

Role = Literal["one_class", "ood", "oe"]
Stats = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std)


@dataclass(frozen=True)
class DatasetFacts:
    """What a dataset is, independent of its files.

    ``module``: its loader, ``firm_bench/datasets/<module>.py`` (imported by
    ``firm_bench.datasets``, which registers the reader under ``name``).
    ``native_size``: the side of its stored images; ``mean`` / ``std``: the
    per-channel normalisation constants of the training set in [0, 1] units
    (docs/METHOD.md "Augmentations"). ``role``: "one_class" (a one-class AD
    benchmark; its test split can also serve as an OOD set), "ood" (only an
    out-of-distribution test set) or "oe" (outlier-exposure data, checked but
    never a benchmark). ``splits``: the splits it has. ``image_size``: the
    paper's training size (docs/METHOD.md "Image sizes"; ``dataset.image_size:
    null``). ``root_env``: an environment variable consulted before
    $FIRM_BENCH_DATA.

    The evaluation protocol, as the reference code's evaluators ran it
    (``Willtl/firm`` ``evaluate_oneclass.py``; a run's ``features.zoom: null`` /
    ``features.image_size: null`` / ``optim.batching: auto`` /
    ``dataset.normalization`` resolve to these): ``class_ids``: how runs, run
    directories, summaries and tables name a class, ``index`` (the paper
    numbers them) or ``name`` (MVTec AD, "bottle"). ``eval_zoom``: the test
    transform's Resize(int(zoom * size)) -> CenterCrop(size) factor (MVTec 1.0:
    the reference resized it without the zoom-and-crop, which would cut ~5.5%
    of each border, where many defects sit). ``eval_size``: the side the bank
    and test images are evaluated at; None = the training size (MVTec: 32, the
    reference's evaluator, while training ran at 256). ``batching``: how a
    training step is built by default, ``pool`` (the ID + outlier set shuffled
    into batches) or ``paired`` (B ID images with all their own outliers; the
    reference's MVTec loader). ``reference_stats``: (mean, std) the reference
    code normalised with where they differ from ``mean`` / ``std``
    (``dataset.normalization: reference``). ``sizes``: images per split of the
    official files, for planning without reading data: ``train`` (every
    class), ``train_per_class`` (the one-class training set; a dict by class
    where classes differ) and ``test`` (the whole test set, or a dict by class
    for a per-class protocol). ``class_groups``: named groups of classes the
    paper draws apart (MVTec's objects and textures, Figures 6 and 7).
    """

    name: str
    module: str
    classes: tuple[str, ...]
    native_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    role: Role = "one_class"
    splits: tuple[str, ...] = ("train", "test")
    image_size: int = 32
    root_env: str | None = None
    class_ids: Literal["index", "name"] = "index"
    eval_zoom: float = 1.125
    eval_size: int | None = None
    batching: Literal["pool", "paired"] = "pool"
    reference_stats: Stats | None = None
    sizes: dict | None = None
    class_groups: dict | None = None

    def class_index(self, cls: int | str) -> int:
        """The index of ``cls`` (an index, a digit string or a class name; see :func:`class_index`)."""
        return class_index(self.classes, cls, self.name)

    def class_id(self, cls: int | str) -> int | str:
        """The canonical id of ``cls``: its index (``class_ids`` index) or its name (``name``)."""
        i = self.class_index(cls)
        return self.classes[i] if self.class_ids == "name" else i

    def size(self, split: str, cls: str | None = None) -> int:
        """Images of ``split`` (``train``, ``train_per_class``, ``test``), of class ``cls`` where they depend on it."""
        sizes = self.sizes or {}
        value = sizes.get(split)
        if value is None and split == "train" and isinstance(sizes.get("train_per_class"), dict):
            value = sizes["train_per_class"]  # a per-class protocol: the training set is every class's images
        if value is None:
            raise ValueError(f"dataset {self.name!r} has no {split} size in its facts "
                             "(sizes= in firm_bench/core/facts/datasets.py)")
        if isinstance(value, dict):
            return int(sum(value.values())) if cls is None else int(value[self.classes[self.class_index(cls)]])
        return int(value)

    def stats(self, normalization: str = "measured") -> Stats:
        """(mean, std) of ``dataset.normalization``: ``measured`` or ``reference`` (the reference code's)."""
        if normalization not in ("measured", "reference"):
            raise ValueError(f"dataset.normalization={normalization!r}; valid: measured, reference")
        if normalization == "reference" and self.reference_stats is not None:
            return self.reference_stats
        return self.mean, self.std


def _slug(text: str) -> str:
    """Lower case, runs of non-alphanumerics as "_": "T-shirt/top" -> "t_shirt_top"."""
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def class_index(classes: Sequence[str], cls: int | str, dataset: str = "?") -> int:
    """The index of class ``cls`` among ``classes``: an index, a digit string, or a class name.

    Names match exactly, else after lower-casing with every run of
    non-alphanumerics as "_" (so "ankle_boot" and "t_shirt_top" name
    Fashion-MNIST's "Ankle boot" and "T-shirt/top": usable as wildcards and
    directory names). Raises ValueError listing the valid names and indices.
    """
    k = len(classes)
    names = ", ".join(f"{i}={c}" for i, c in enumerate(classes))
    if isinstance(cls, str):
        if cls in classes:
            return list(classes).index(cls)
        slugs = [_slug(c) for c in classes]
        if _slug(cls) and slugs.count(_slug(cls)) == 1:
            return slugs.index(_slug(cls))
        if not cls.strip().isdigit():
            extra = (" ('all' is the unlabeled multiclass OOD protocol: use ood_split / "
                     "dataset.ood)" if cls == "all" else "")
            raise ValueError(f"unknown class {cls!r} for {dataset!r}{extra}; valid names "
                             f"(or their indices 0..{k - 1}): {names}")
        cls = int(cls)
    try:
        index = -1 if isinstance(cls, bool) else operator.index(cls)
    except TypeError:
        index = -1
    if not 0 <= index < k:
        raise ValueError(f"class {cls!r} is out of range for {dataset!r}: valid 0..{k - 1} ({names})")
    return index


CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FMNIST_STATS = ((0.2860,) * 3, (0.3530,) * 3)  # of the 60000 training images, gray replicated
FMNIST_REFERENCE = ((0.2860,) * 3, (0.3204,) * 3)  # Willtl/firm transforms.py get_transform
MINI_PER_CLASS = {"train": 200, "test": 100}  # the embedded Fashion-MNIST subset (datasets/mini.py)
MVTEC_CLASSES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
                 "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
# Files of the official MVTec AD release per class: train/good, and the whole test/ folder (good + defects)
MVTEC_TRAIN = {"bottle": 209, "cable": 224, "capsule": 219, "carpet": 280, "grid": 264, "hazelnut": 391,
               "leather": 245, "metal_nut": 220, "pill": 267, "screw": 320, "tile": 230, "toothbrush": 60,
               "transistor": 213, "wood": 247, "zipper": 240}
MVTEC_TEST = {"bottle": 83, "cable": 150, "capsule": 132, "carpet": 117, "grid": 78, "hazelnut": 110,
              "leather": 124, "metal_nut": 115, "pill": 167, "screw": 160, "tile": 117, "toothbrush": 42,
              "transistor": 100, "wood": 79, "zipper": 151}
MVTEC_GROUPS = {"objects": ("bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush",
                            "transistor", "zipper"),  # the paper's 10 object classes (Figure 6)
                "textures": ("carpet", "grid", "leather", "tile", "wood")}  # its 5 texture classes (Figure 7)


def _cifar(name: str, classes: tuple[str, ...], stats: Stats, reference: Stats) -> DatasetFacts:
    # 50,000 training and 10,000 test images, the training images evenly over the classes
    sizes = {"train": 50000, "train_per_class": 50000 // len(classes), "test": 10000}
    return DatasetFacts(name, "cifar", classes, 32, *stats, reference_stats=reference, sizes=sizes)


#: every dataset by name, in the paper's order (``firm-bench list datasets``)
DATASETS: dict[str, DatasetFacts] = {f.name: f for f in (
    _cifar("cifar10", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
           CIFAR10_STATS,
           # Willtl/firm transforms.py get_transform: the widely copied CIFAR-10 std (not the pixel std)
           ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))),
    _cifar("cifar100", ("aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
                        "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
                        "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
                        "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
                        "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"),
           ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
           ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))),  # Willtl/firm transforms.py
    DatasetFacts("fashion_mnist", "fashion_mnist", FMNIST_CLASSES, 28, *FMNIST_STATS, reference_stats=FMNIST_REFERENCE,
                 sizes={"train": 60000, "train_per_class": 6000, "test": 10000}),
    DatasetFacts("svhn", "svhn", tuple(str(d) for d in range(10)), 32,
                 (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), role="ood", sizes={"train": 73257, "test": 26032}),
    DatasetFacts("fmnist_mini", "mini", FMNIST_CLASSES, 28, *FMNIST_STATS, reference_stats=FMNIST_REFERENCE,
                 sizes={"train": 10 * MINI_PER_CLASS["train"], "train_per_class": MINI_PER_CLASS["train"],
                        "test": 10 * MINI_PER_CLASS["test"]}),  # a subset of Fashion-MNIST: its statistics
    # The reference's protocol (Willtl/firm): classes named as the paper names them; its evaluator
    # (evaluate_oneclass.py get_loader: size = 32, "# size = 256" commented out) resized MVTec to 32 px with
    # zoom 1 while training ran at 256; its loader built each step from B images with their own outliers
    # (data.py SyntheticOutlierDataset). Statistics: ImageNet's.
    DatasetFacts("mvtec", "mvtec", MVTEC_CLASSES, 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), image_size=256,
                 class_ids="name", eval_zoom=1.0, eval_size=32, batching="paired",
                 sizes={"train_per_class": MVTEC_TRAIN, "test": MVTEC_TEST}, class_groups=MVTEC_GROUPS),
    DatasetFacts("cats_vs_dogs", "cats_vs_dogs", ("cat", "dog"), 64,
                 (0.4899, 0.4546, 0.4161), (0.2204, 0.2158, 0.2156),  # the reference code's (Willtl/firm)
                 image_size=64,
                 sizes={"train": 20000, "train_per_class": 10000, "test": 5000}),  # 12,500 a class, 2,500 held out
    *(DatasetFacts(name, "ood_folders", (name,), 32, *CIFAR10_STATS, role="ood", splits=("test",),
                   sizes={"test": 10000})  # each set: 10,000 images (CSI's copies)
      for name in ("lsun_resize", "imagenet_resize", "lsun_fix", "imagenet_fix")),
    DatasetFacts("oe", "oe", ("random",), 32, *CIFAR10_STATS, role="oe", splits=("train",),  # statistics unused
                 root_env="FIRM_BENCH_OE_PATH"),
)}


def dataset(name: str) -> DatasetFacts:
    """The facts of dataset ``name``; UnknownNameError lists the valid names."""
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]
