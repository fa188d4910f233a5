"""Every registered name and its facts, readable without importing torch: what planning needs.

The registries (:class:`firm_bench.core.registry.Registry`: losses, datasets,
outlier sources, scores, encoders, schedules, paper tables and figures) are
the truth, filled when their modules are imported, and importing them means
importing torch (about 1.5 s). Planning the paper's DAG and reading results
need only their names and a few facts per entry (each registry's ``facts``:
a dataset's classes, sizes and evaluation protocol, a score's family, a
loss's reference form, an outlier source's copies and known differences, a
paper item's title), so ``firm_bench/schema/catalog.json`` keeps a snapshot
of exactly that, and planning, config validation and the tables read it.

This module only reads. :mod:`firm_bench.build_catalog` imports every
registry and writes the snapshot (``firm-bench catalog --write``); a test
fails while the snapshot differs from the registries. A name the snapshot
lacks (a plugin registered in this process, an entry added since) is looked
up in the registries already loaded in this process (``Registry.index()``):
nothing is imported here, so a stale snapshot can make a lookup fail, never
answer wrongly.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

from firm_bench.core.errors import UnknownNameError
from firm_bench.core.registry import Registry

SNAPSHOT = Path(__file__).resolve().parent.parent / "schema" / "catalog.json"

#: run-config keys whose values are registered names (``section.key``) -> the registry's kind
CONFIG_KINDS = {"dataset.name": "dataset", "loss.name": "loss", "outliers.name": "outliers",
                "model.encoder": "encoder", "optim.schedule": "schedule", "scores.names": "score"}
CONFIG_KEYS = tuple(CONFIG_KINDS)
#: every list of names the catalog keeps -> the registry's kind: the config keys, then the paper items
KINDS = {**CONFIG_KINDS, "tables": "paper table", "figures": "paper figure"}
KEYS = tuple(KINDS)


class DatasetEntry(NamedTuple):
    """A dataset's facts that planning and reading results need (``datasets.base.DatasetInfo.facts``)."""

    role: str  # "one_class" (a training set), or a test-only role (OOD sets, outlier exposure)
    classes: list[str]
    class_ids: str = "index"  # how runs name a class: "index" ("3") or "name" ("bottle")
    image_size: int = 32  # the training size (``dataset.image_size: null``)
    eval_size: int | None = None  # the evaluation size (None: the training size)
    eval_zoom: float = 1.125  # the test transform's Resize(zoom * size) -> CenterCrop(size)
    batching: str = "pool"  # how a training step is built by default (``optim.batching: auto``)
    sizes: dict | None = None  # images per split: train (all classes), train_per_class, test (int or per class)
    class_groups: dict | None = None  # named groups of classes (MVTec: objects, textures)

    def class_index(self, cls: int | str, dataset: str = "?") -> int:
        """The index of ``cls`` (an index, a digit string or a class name; see :func:`class_index`)."""
        return class_index(self.classes, cls, dataset)

    def class_id(self, cls: int | str, dataset: str = "?") -> int | str:
        """The canonical id of ``cls``: its index (``class_ids`` index) or its name (``name``)."""
        i = self.class_index(cls, dataset)
        return self.classes[i] if self.class_ids == "name" else i

    def size(self, split: str, cls: str | None = None) -> int:
        """Images of ``split`` (``train``, ``train_per_class``, ``test``), of class ``cls`` where they depend on it."""
        sizes = self.sizes or {}
        value = sizes.get(split)
        if value is None and split == "train" and isinstance(sizes.get("train_per_class"), dict):
            value = sizes["train_per_class"]  # a per-class protocol: the training set is every class's images
        if value is None:
            raise ValueError(f"the dataset has no {split} size in its registration (sizes=...)")
        if isinstance(value, dict):
            if cls is None:
                return int(sum(value.values()))
            return int(value[self.classes[self.class_index(cls)]])
        return int(value)


class OutlierEntry(NamedTuple):
    """An outlier source's facts (``method.outliers.OutlierSource``)."""

    copies: int | str  # outliers per ID image; "oe_ratio": the config's outliers.oe_ratio
    paired: bool  # outlier t N + j is made from ID image j (paired batches possible)
    differences: list[str]  # where it knowingly differs from the reference code it follows

    def multiplicity(self, outliers_cfg: dict) -> int:
        """Training images per ID image (the ID image plus its outliers) under the config's ``outliers`` section."""
        copies = outliers_cfg["oe_ratio"] if self.copies == "oe_ratio" else self.copies
        return 1 + int(copies)


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


def from_registries(index: dict[str, Registry[Any]] | None = None) -> dict[str, Any]:
    """The catalog of registries (default: those loaded in this process, ``Registry.index()``)."""
    index = Registry.index() if index is None else index
    out: dict[str, Any] = {"registries": {}, "meta": {}}
    for key in KEYS:
        reg = index.get(key)
        if reg is not None:
            out["registries"][key] = [{"name": n, **reg.facts(n)} for n in reg.names()]
            if reg.meta:
                out["meta"][key] = dict(reg.meta)
    return out


def live() -> dict[str, Any]:
    """The catalog of the registries loaded in this process (imports nothing)."""
    return from_registries()


@functools.lru_cache(maxsize=1)
def snapshot() -> dict[str, Any]:
    """The stored catalog; the loaded registries' where the file is missing, unreadable or of another format."""
    try:
        data = json.loads(SNAPSHOT.read_text())
    except (OSError, ValueError):
        return live()
    return data if isinstance(data, dict) and "registries" in data else live()


def _catalogs() -> Iterator[dict[str, Any]]:
    yield snapshot()
    yield live()  # only reached on a miss


def _check_key(key: str) -> None:
    if key not in KINDS:
        raise KeyError(f"catalog: unknown key {key!r}; valid: {', '.join(KEYS)}")


def names(key: str, *wanted: str) -> list[str]:
    """The registered names of ``key`` (one of :data:`KEYS`), in registration order.

    From the snapshot, unless one of ``wanted`` is missing from it: then the
    snapshot's names plus those of the registries loaded in this process (the
    caller reports what is still unknown).
    """
    _check_key(key)
    stored = [e["name"] for e in snapshot()["registries"].get(key, [])]
    if all(w in stored for w in wanted):
        return stored
    loaded = [e["name"] for e in live()["registries"].get(key, [])]
    return list(dict.fromkeys([*stored, *loaded]))


def config_names() -> dict[str, list[str]]:
    """Run-config key (``loss.name``, ...) -> the registered names it accepts (what ``firm-bench list`` prints)."""
    return {key: names(key) for key in CONFIG_KEYS}


def entry(key: str, name: str) -> dict[str, Any]:
    """The facts of ``name`` in registry ``key``; UnknownNameError lists the valid names."""
    _check_key(key)
    for cat in _catalogs():
        for e in cat["registries"].get(key, []):
            if e["name"] == name:
                return {k: v for k, v in e.items() if k != "name"}
    kind = KINDS[key]
    raise UnknownNameError(f"unknown {'outlier source' if kind == 'outliers' else kind} {name!r}; "
                           f"valid: {', '.join(names(key))}")


def meta(key: str) -> dict[str, Any]:
    """Registry-wide facts of ``key`` (e.g. the loss forms)."""
    for cat in _catalogs():
        if key in cat.get("meta", {}):
            return dict(cat["meta"][key])
    return {}


def dataset(name: str) -> DatasetEntry:
    """The facts of dataset ``name`` (:class:`DatasetEntry`); UnknownNameError lists the valid ones."""
    facts = entry("dataset.name", name)
    return DatasetEntry(**{**facts, "classes": list(facts["classes"])})


def score_family(name: str) -> str:
    """The family (knn, center, kde, ocsvm, locsvm) of score ``name``; UnknownNameError lists the valid ones."""
    return str(entry("scores.names", name)["family"])


def score_families() -> list[str]:
    """Every score family of the snapshot, sorted."""
    return sorted({e["family"] for e in snapshot()["registries"]["scores.names"]})


def uses_k(score: str) -> bool:
    """Whether score ``score`` takes a k (the k-NN family): the one rule for which scores get ``_k<k>``."""
    return score_family(score) == "knn"


def outlier(name: str) -> OutlierEntry:
    """The facts of outlier source ``name`` (:class:`OutlierEntry`)."""
    facts = entry("outliers.name", name)
    return OutlierEntry(facts["copies"], bool(facts["paired"]), list(facts.get("differences", [])))


def outlier_differences(name: str) -> list[str]:
    """Where outlier source ``name`` knowingly differs from the reference code it follows."""
    return outlier(name).differences


def loss_form(name: str, setting: str = "reference") -> str:
    """The form (``pairwise`` | ``concat``) loss ``name`` trains in under ``loss.form = setting``.

    ``reference``: the form the FIRM reference code ran the loss in (the
    losses' ``REFERENCE_FORMS``, as the registry's facts); ``pairwise`` /
    ``concat``: that form. The torch-free twin of ``losses.resolve_form``.
    Raises ValueError for an unknown setting or a loss without a reference
    form, UnknownNameError for an unknown loss.
    """
    facts = entry("loss.name", name)
    forms = list(meta("loss.name").get("forms", ["pairwise", "concat"]))
    if setting in forms:
        return setting
    if setting != "reference":
        raise ValueError(f"unknown loss form {setting!r}; valid: {', '.join(['reference', *forms])}")
    if facts.get("reference_form") is None:
        raise ValueError(f"loss {name!r} has no reference form; set loss.form to one of {', '.join(forms)}")
    return str(facts["reference_form"])


def schedule_momentum(name: str) -> str:
    """What learning-rate schedule ``name`` does with the SGD momentum: ``cycle`` (it sets every step's
    momentum from ``optim.momentum_cycle``) or ``constant`` (``optim.momentum`` is held); ``method.schedules``."""
    return str(entry("optim.schedule", name).get("momentum", "constant"))


def loss_takes_id_classes(name: str) -> bool:
    """Whether loss ``name`` takes (N, 2) labels with in-distribution classes (``loss.id_labels``)."""
    return bool(entry("loss.name", name).get("id_classes", False))


def title(item: str) -> str:
    """The title of paper item ``item`` (a table or a figure): its spec's."""
    for key in ("tables", "figures"):
        if item in names(key, item):
            return str(entry(key, item)["title"])
    raise UnknownNameError(f"unknown paper item {item!r}; valid: {', '.join(names('tables') + names('figures'))}")
