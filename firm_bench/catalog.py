"""Every registered name, readable without importing torch: what planning needs.

The registries (:mod:`firm_bench.registry`: losses, datasets, outlier
sources, scores, encoders, schedules, paper tables and figures) are the truth,
filled when their modules are imported, and importing them means importing
torch (about 1.5 s). Building the paper's DAG needs only their names, each
dataset's role and classes, each score's family and each loss's reference
form (and whether it takes in-distribution class labels), so
``firm_bench/schema/catalog.json`` keeps a snapshot of exactly that, and the
Snakefile and :func:`firm_bench.workflow.plan` read it.

The snapshot can never make a wrong answer, only a slower one: a name it
lacks (a registry entry added since, or a plugin registered at import) sends
the lookup to the live registries. ``tests/test_catalog.py`` fails while the
snapshot differs from the registries; regenerate it with::

    python -m firm_bench.catalog --write
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from firm_bench.registry import UnknownNameError

SNAPSHOT = Path(__file__).resolve().parent / "schema" / "catalog.json"

#: run-config keys whose values are registered names (``section.key``)
CONFIG_KEYS = ("dataset.name", "loss.name", "outliers.name", "model.encoder", "optim.schedule", "scores.names")
#: every list of names the catalog keeps: the config keys, then the paper tables and figures
KEYS = (*CONFIG_KEYS, "tables", "figures")


class DatasetEntry(NamedTuple):
    """A dataset's facts that planning and reading results need (``datasets.base.DatasetInfo``)."""

    role: str  # "one_class" (a training set), or a test-only role (OOD sets, outlier exposure)
    classes: list[str]
    class_ids: str = "index"  # how runs name a class: "index" ("3") or "name" ("bottle")
    image_size: int = 32  # the training size (``dataset.image_size: null``)
    eval_size: int | None = None  # the evaluation size (None: the training size)
    eval_zoom: float = 1.125  # the test transform's Resize(zoom * size) -> CenterCrop(size)
    batching: str = "pool"  # how a training step is built by default (``optim.batching: auto``)

    def class_index(self, cls: int | str, dataset: str = "?") -> int:
        """The index of ``cls`` (an index, a digit string or a class name; see :func:`class_index`)."""
        return class_index(self.classes, cls, dataset)

    def class_id(self, cls: int | str, dataset: str = "?") -> int | str:
        """The canonical id of ``cls``: its index (``class_ids`` index) or its name (``name``)."""
        i = self.class_index(cls, dataset)
        return self.classes[i] if self.class_ids == "name" else i


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


def build() -> dict[str, Any]:
    """The catalog from the live registries (imports torch and pandas)."""
    from firm_bench.datasets import DATASETS
    from firm_bench.figures import FIGURES
    from firm_bench.losses import FORMS, ID_CLASS_LOSSES, LOSSES, REFERENCE_FORMS
    from firm_bench.models import ENCODERS
    from firm_bench.outliers import OUTLIERS
    from firm_bench.scores import SCORE_FAMILIES, SCORES
    from firm_bench.tables import TABLES
    from firm_bench.train import SCHEDULES

    registries = (DATASETS, LOSSES, OUTLIERS, ENCODERS, SCHEDULES, SCORES, TABLES, FIGURES)
    return {
        "names": {key: reg.names() for key, reg in zip(KEYS, registries)},
        "datasets": {
            name: {"role": ds.role, "classes": [str(c) for c in ds.classes], "class_ids": ds.class_ids,
                   "image_size": ds.default_image_size, "eval_size": ds.eval_size, "eval_zoom": ds.eval_zoom,
                   "batching": ds.batching}
            for name, ds in DATASETS.items()
        },
        "score_family": {name: SCORE_FAMILIES[name] for name in SCORES.names()},
        "loss_forms": list(FORMS),
        "losses": {
            name: {"reference_form": REFERENCE_FORMS.get(name), "id_classes": name in ID_CLASS_LOSSES}
            for name in LOSSES.names()
        },
        "outlier_differences": {name: list(src.differences) for name, src in OUTLIERS.items() if src.differences},
    }


@functools.lru_cache(maxsize=1)
def live() -> dict[str, Any]:
    return build()


@functools.lru_cache(maxsize=1)
def snapshot() -> dict[str, Any]:
    """The stored catalog; the live one where the file is missing or unreadable."""
    try:
        return json.loads(SNAPSHOT.read_text())
    except (OSError, ValueError):
        return live()


def names(key: str, *wanted: str) -> list[str]:
    """The registered names of ``key`` (one of :data:`KEYS`).

    From the snapshot, unless one of ``wanted`` is missing from it: then from
    the live registries, which decide (the caller reports what is still unknown).
    """
    if key not in KEYS:
        raise KeyError(f"catalog: unknown key {key!r}; valid: {', '.join(KEYS)}")
    stored = snapshot()["names"][key]
    if all(w in stored for w in wanted):
        return list(stored)
    return list(live()["names"][key])


def dataset(name: str) -> DatasetEntry:
    """Role and class names of dataset ``name``; UnknownNameError lists the valid ones."""
    for cat in (get() for get in (snapshot, live)):  # live only when the snapshot lacks it
        if name in cat["datasets"]:
            entry = cat["datasets"][name]
            return DatasetEntry(**{**entry, "classes": list(entry["classes"])})
    raise UnknownNameError(f"unknown dataset {name!r}; valid: {', '.join(live()['datasets'])}")


def score_family(name: str) -> str:
    """The family (knn, center, kde, ocsvm, locsvm) of score ``name``; UnknownNameError lists the valid ones."""
    for cat in (get() for get in (snapshot, live)):  # live only when the snapshot lacks it
        if name in cat["score_family"]:
            return str(cat["score_family"][name])
    raise UnknownNameError(f"unknown score {name!r}; valid: {', '.join(live()['score_family'])}")


def outlier_differences(name: str) -> list[str]:
    """Where outlier source ``name`` knowingly differs from the reference code it follows (``OutlierSource.differences``)."""
    for cat in (get() for get in (snapshot, live)):  # live only when the snapshot lacks it
        if "outlier_differences" in cat:
            if name in cat["outlier_differences"] or name in cat["names"]["outliers.name"]:
                return list(cat["outlier_differences"].get(name, []))
    raise UnknownNameError(f"unknown outlier source {name!r}; valid: {', '.join(live()['names']['outliers.name'])}")


def _loss_entry(name: str) -> dict[str, Any]:
    for cat in (get() for get in (snapshot, live)):  # live only when the snapshot lacks it
        if name in cat.get("losses", {}):
            return dict(cat["losses"][name])
    raise UnknownNameError(f"unknown loss {name!r}; valid: {', '.join(live()['losses'])}")


def loss_form(name: str, setting: str = "reference") -> str:
    """The form (``pairwise`` | ``concat``) loss ``name`` trains in under ``loss.form = setting``.

    ``reference``: the form the FIRM reference code ran the loss in (the
    snapshot of ``losses.REFERENCE_FORMS``); ``pairwise`` / ``concat``: that
    form. The torch-free twin of ``losses.resolve_form``. Raises ValueError for
    an unknown setting or a loss without a reference form, UnknownNameError
    for an unknown loss.
    """
    forms = list(snapshot().get("loss_forms") or live()["loss_forms"])
    entry = _loss_entry(name)
    if setting in forms:
        return setting
    if setting != "reference":
        raise ValueError(f"unknown loss form {setting!r}; valid: {', '.join(['reference', *forms])}")
    if entry["reference_form"] is None:
        raise ValueError(f"loss {name!r} has no reference form; set loss.form to one of {', '.join(forms)}")
    return str(entry["reference_form"])


def loss_takes_id_classes(name: str) -> bool:
    """Whether loss ``name`` takes (N, 2) labels with in-distribution classes (``loss.id_labels``)."""
    return bool(_loss_entry(name)["id_classes"])


def score_families() -> list[str]:
    """Every score family of the snapshot, sorted."""
    return sorted(set(snapshot()["score_family"].values()))


def write(path: Path = SNAPSHOT) -> None:
    from firm_bench.runs import atomic_write_text

    atomic_write_text(path, json.dumps(build(), indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firm_bench.catalog", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT.name} from the live registries")
    ap.add_argument("--check", action="store_true", help="exit 1 when the snapshot differs from the registries")
    args = ap.parse_args(argv)
    if args.write:
        write()
        print(f"wrote {SNAPSHOT}")
        return 0
    stale = json.loads(SNAPSHOT.read_text()) != build() if SNAPSHOT.is_file() else True
    if args.check:
        print(f"{SNAPSHOT}: {'stale: run python -m firm_bench.catalog --write' if stale else 'up to date'}")
        return 1 if stale else 0
    print(json.dumps(build(), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
