"""The paper's tables, ours beside the paper's (``TABLES``).

One spec per paper table (Tables 1a-d, 2-16), registered under its target
name (``table5``) with a docstring naming the paper item. A table is built
in two steps:

1. :func:`compare` turns our summary rows (``results/summary/<experiment>.csv``
   of the experiments that feed the table) and the paper's numbers
   (``firm_bench.paper.reported``) into one row per table cell (:data:`CELL_COLUMNS`):
   our mean and sample std over seeds, the number of seeds, a status when
   there is no number, the paper's value and std, and ours - paper. All values
   are in percent (AUROC / AULC points; relative improvements in %).
2. :func:`render` lays the cells out as Markdown (tabulate ``github``),
   LaTeX (booktabs) or HTML (the report), each row as three lines: ours,
   paper, difference. The CSV is the cell frame itself.

Cell states (never a 0, never a blank that reads as a number):
``failed`` the run failed (reason in the CSV), ``missing`` an expected result
is absent, ``pending`` not finished yet (``--partial``), ``not run`` the
paper reports it but this config has no such run, ``not rerun`` a literature
method (reported row), ``not reported`` the paper has no number there.

Matching: a cell of ours matches the paper cell with the same loss, dataset,
class (or OOD set) and metric, and the same outliers and score where the
paper states them (an empty paper label matches any; ``reported.matches``).
Datasets the paper does not report (the ``mini`` preset's ``fmnist_mini``) are
compared with the dataset they stand in for (``reported.paper_dataset``);
such cells are marked and never counted as agreement. A class mean
(``mean``) is the mean over classes per seed, then mean +/- std over seeds; it
is counted when it covers every class of the dataset. A mean over only some
classes (OOD sets) is compared with the paper's mean over the same ones, from
the paper's per-class numbers of the same runs (the table itself, or the
spec's ``per_class_from`` tables for a mean-only table), and counted; where
the paper has none, its full mean is shown without a difference and not
counted (:func:`_subset_means`; ``paper_basis`` says which). Relative-improvement
rows (Tables 5, 10a, 10b: ours = ratio of our means - 1) are shown beside the
printed ones but not counted either.

k-NN scores are shown at one k (default ``eval.k`` of the run schema, 5:
the learning-curve k and the reference code's choice; the paper's k was lost).
"""

from __future__ import annotations

import html
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from firm_bench.core.registry import Registry
from firm_bench.paper import reported as rep

__all__ = [
    "CELL_COLUMNS",
    "CHECKPOINT_LABELS",
    "DEFAULT_TOLERANCE",
    "TABLES",
    "Agreement",
    "TableSpec",
    "agreement",
    "caption",
    "combined_status",
    "compare",
    "default_k",
    "notes",
    "read_cells",
    "read_summaries",
    "loss_form_label",
    "recipe_label",
    "render",
    "write_table",
]

#: agreement tolerance with the paper, in AUROC points (percent)
DEFAULT_TOLERANCE = 1.0

#: how each checkpoint choice is labelled in every output (README "recipe options")
CHECKPOINT_LABELS = {
    "last": "last epoch (the paper's reference code selected the best test-set epoch)",
    "best_test": "best TEST-set epoch, as the reference code (selection on the test set)",
}

Axis = Literal["cls", "dataset", "score", "ood"]
Format = Literal["md", "tex", "html"]

CELL_COLUMNS = [
    "table", "row", "column", "row_order", "column_order", "kind", "method", "loss", "outliers", "score",
    "recipe", "dataset", "paper_dataset", "stand_in", "ood", "cls", "metric", "k", "ours_mean", "ours_std",
    "n_ok", "n_runs", "n_classes", "mean_of", "ours_status", "ours_reason", "paper_value", "paper_std",
    "paper_note", "paper_basis", "reported_only", "diff", "comparable", "schedule", "checkpoint", "select_score",
    "bn_momentum", "head_init", "loss_form", "id_labels", "tau", "normalization", "precision", "image_size",
    "eval_size", "eval_zoom", "batching",
    "batch_size", "epochs",
]
_RECIPE_FIELDS = ["schedule", "checkpoint", "select_score", "bn_momentum", "head_init", "loss_form", "id_labels", "tau",
                  "batch_size", "epochs", "normalization", "precision", "image_size", "eval_size", "eval_zoom", "batching"]
#: recipe labels a cell CSV written before they existed lacks: read as unknown
_LATER_FIELDS = ["loss_form", "id_labels", "select_score", "head_init", "normalization", "precision", "image_size",
                 "eval_size", "eval_zoom", "batching"]
#: how each loss form is named in captions (``loss_form_label``)
FORM_LABELS = {"pairwise": "pairwise (N×N)", "concat": "concat (2N×2N)"}
_ROW_FIELDS = ["kind", "method", "loss", "outliers", "score", "recipe", "dataset"]
_MEAN = "mean"
#: the loss key and display name of the untrained-encoder baseline rows
UNTRAINED = "untrained"
UNTRAINED_DISPLAY = "untrained encoder"
_IMPROVEMENT = "improvement"
_METRIC_NAMES = {"auroc": "AUROC", "aulc": "AULC"}


# --------------------------------------------------------------------------- #
# specs
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class TableSpec:
    """The layout of one paper table.

    name:        target name (``table5`` -> results/tables/table5.{md,tex,csv}).
    paper:       the table's id in reported_results.csv (``"5"``).
    doc:         the docstring of the spec (first line: the paper item).
    columns:     the column axis: ``cls`` (classes, then their mean),
                 ``dataset``, ``score`` or ``ood`` (Table 4's OOD sets).
    metrics:     ``auroc`` and/or ``aulc`` (from our learning curves).
    per_class:   show every class (else only the class mean, as Tables 1b-d, 5, 7).
    transpose:   classes as rows and methods as columns (Tables 2, 3, 13-16, as printed).
    improvement: (loss, baseline): add the relative improvement row, ours and printed.
    mean_over:   what the ``mean`` column averages: classes, or OOD sets (Table 4).
    note:        what a reader must know about the paper's numbers (from NOTES.md),
                 printed in the caption of every format.
    per_class_from: paper tables (ids) holding per-class numbers of the same runs as
                 this mean-only table, searched in order; they give the paper's
                 mean over the classes of a class subset of ours
                 (:func:`_subset_means`). Only tables that NOTES.md ties to this
                 table's run set are listed; a configuration there must also
                 print the same mean as here to be used.
    """

    name: str
    paper: str
    doc: str
    columns: Axis = "cls"
    metrics: tuple[str, ...] = ("auroc",)
    per_class: bool = True
    transpose: bool = False
    improvement: tuple[str, str] | None = None
    mean_over: Literal["cls", "ood"] = "cls"
    note: str = ""
    per_class_from: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.doc.splitlines()[0]


TABLES: Registry[TableSpec] = Registry("paper table", catalog="tables", facts=lambda name, spec: {"title": spec.title})


def _table(name: str, paper: str, **layout) -> Callable[[Callable[[], None]], TableSpec]:
    """Register the decorated docstring-only function as the spec ``name`` (layout as keywords)."""

    def deco(fn: Callable[[], None]) -> TableSpec:
        doc = inspect.getdoc(fn)
        if not doc:
            raise ValueError(f"table spec {name!r} needs a docstring naming the paper item")
        return TABLES.add(name, TableSpec(name=name, paper=paper, doc=doc, **layout))

    return deco


_MEANS = {"columns": "dataset", "per_class": False}
_VS_NTXENT = ("firm", "ntxent")


@_table("table1a", "1a", note=(
    "NOTES.md: the paper's printed rot and ens rows of Table 1a equal Table 11's rot_norm and ens_norm rows "
    "(10 of 11 and 11 of 11 numbers), not Table 11's rot and ens rows. reported_results.csv keeps the printed "
    "labels rot and ens, so our rot and ens rows are compared with them; our rot_norm and ens_norm rows have no "
    "paper number in this table (Table 11 has them)."))
def _table1a() -> None:
    """Table 1a: one-class anomaly detection on CIFAR-10 (FIRM cos / rot / ens, FIRM w/ OE) vs the literature.

    Per-class AUROC. The caveat on the rot / ens rows is the spec's ``note``.
    """


@_table("table1b", "1b", per_class_from=("14",), **_MEANS)
def _table1b() -> None:
    """Table 1b: one-class anomaly detection on CIFAR-100 (20 superclasses), class means."""


@_table("table1c", "1c", per_class_from=("15",), **_MEANS)
def _table1c() -> None:
    """Table 1c: one-class anomaly detection on Fashion-MNIST, class means."""


@_table("table1d", "1d", per_class_from=("16",), note=(
    "NOTES.md: the rot and ens means differ from Table 16's (90.0 vs 89.9, 89.7 vs 90.2)."), **_MEANS)
def _table1d() -> None:
    """Table 1d: one-class anomaly detection on Cats-vs-Dogs, class means (no OE row: resolution mismatch)."""


@_table("table2", "2", transpose=True)
def _table2() -> None:
    """Table 2: MVTec AD, NT-Xent vs SupCon vs FIRM, per class.

    The paper's score and per-class outlier generator (CutPaste or NSA) were not
    stated; its numbers are compared with every score and generator of ours.
    """


@_table("table3", "3", transpose=True, note=(
    "NOTES.md: the literature CutPaste mean (90.9) does not equal the mean of its printed per-class values (93.5)."))
def _table3() -> None:
    """Table 3: MVTec AD, FIRM vs the literature (DOCC, CutPaste, P-SVDD, U-Student, NSA, RotNet, DROC)."""


@_table("table4", "4", columns="ood", mean_over="ood", note=(
    "The paper does not state Table 4's score (reported_results.csv leaves it blank), so every score of ours is "
    "a row of its own, each compared with the same printed FIRM (FIRM w/ OE) row. NOTES.md: the paper ran these "
    "with another temperature (value lost), and its Mean column looks truncated (FIRM 95.27 printed 95.2, "
    "w/ OE 95.58 printed 95.5)."))
def _table4() -> None:
    """Table 4: unlabeled multiclass OOD detection, CIFAR-10 (all classes, no labels) vs six OOD sets.

    Our rows need the summary's ``ood`` column. The reference's multiclass
    evaluator (evaluate_multiclass.py, ``eval_embed``) reports cos_5 and
    cos_5_norm, each plain and over the rotations (``_angled``) or with crops
    (``_ensemble``); the paper's choice among them is unstated (``note``).
    """


@_table("table5", "5", metrics=("auroc", "aulc"), improvement=_VS_NTXENT, per_class_from=("10a", "14", "15", "16"),
        note=("NOTES.md: the CIFAR-10 AUROCs are the paper's run set A (Tables 5, 7, 10a); the relative-improvement "
              "row is FIRM / NT-Xent - 1 in %, and its CIFAR-10 AUROC cell (+1.4) copies Table 10a's mean of "
              "per-class ratios (the ratio of the means is +1.3). Some means differ from Tables 14-16 "
              "(e.g. CIFAR-100 NT-Xent 86.3 vs 87.7)."), **_MEANS)
def _table5() -> None:
    """Table 5: AUROC and AULC of the four losses (S_cos) on four datasets, class means.

    AULC from our learning curves (the summaries' ``aulc`` column).
    """


@_table("table6", "6")
def _table6() -> None:
    """Table 6: SupCon vs SupCon* on CIFAR-10 with the cos, center and KDE scores, per class."""


@_table("table7", "7", columns="score", per_class=False, per_class_from=("10a", "10b"), note=(
    "NOTES.md: these are the paper's run sets A (rotations; Tables 5, 7, 10a) and D (OE; Tables 7, 10b); "
    "Tables 11 and 12 (sets B and C) differ slightly."))
def _table7() -> None:
    """Table 7: score functions (cos, cos_norm, rot, rot_norm, ens, ens_norm, center) of each loss on CIFAR-10, class means.

    Includes FIRM w/ OE and w/ OE (rot.). Per-class numbers of the same runs
    exist only for cos (Tables 10a, 10b); Tables 11 and 12 are other runs.
    """


@_table("table8", "8")
def _table8() -> None:
    """Table 8: KDE scores (kde, kde_rot, kde_ens) of the four losses on CIFAR-10, per class."""


@_table("table9", "9")
def _table9() -> None:
    """Table 9: LOC-SVM scores (locsvm, locsvm_rot, locsvm_ens) of NT-Xent and FIRM on CIFAR-10, per class."""


@_table("table10a", "10a", improvement=_VS_NTXENT, note=(
    "NOTES.md: the paper's relative-improvement mean is the mean of the per-class improvements; ours is the "
    "ratio of the class means."))
def _table10a() -> None:
    """Table 10a: synthetic outliers from rotations, CIFAR-10 per class (S_cos), with FIRM's relative improvement."""


@_table("table10b", "10b", improvement=_VS_NTXENT)
def _table10b() -> None:
    """Table 10b: outliers from outlier exposure (OE), CIFAR-10 per class (S_cos), with FIRM's relative improvement."""


@_table("table11", "11")
def _table11() -> None:
    """Table 11: every score function of the four losses per class, CIFAR-10, rotations."""


@_table("table12", "12")
def _table12() -> None:
    """Table 12: every score function of NT-Xent, SupCon and FIRM w/ OE per class, CIFAR-10."""


@_table("table13", "13", transpose=True)
def _table13() -> None:
    """Table 13: per-class AUROC on CIFAR-10 (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens)."""


@_table("table14", "14", transpose=True)
def _table14() -> None:
    """Table 14: per-class AUROC on CIFAR-100, 20 superclasses (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens)."""


@_table("table15", "15", transpose=True)
def _table15() -> None:
    """Table 15: per-class AUROC on Fashion-MNIST (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens)."""


@_table("table16", "16", transpose=True)
def _table16() -> None:
    """Table 16: per-class AUROC on Cats-vs-Dogs (NT-Xent, SupCon, SupCon* cos; FIRM cos, rot, ens)."""


# --------------------------------------------------------------------------- #
# inputs
# --------------------------------------------------------------------------- #
def default_k() -> int:
    """The k of the k-NN scores shown in tables: the run schema's ``eval.k`` (the learning-curve k)."""
    from firm_bench.core.config import schema_defaults

    return int(schema_defaults()["eval"]["k"])


def read_summaries(paths: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """Experiment summaries (``results/summary/<experiment>.csv``) as one frame, each result once.

    Runs shared by experiments (Table 5 and Table 10a) appear once. ``ood`` is
    the OOD set of the unlabeled multiclass protocol (Table 4): the summary's
    ``evalset`` where it is not ``test``, else empty.
    """
    from firm_bench.records import summary

    if isinstance(paths, pd.DataFrame):
        df = paths.copy()
    else:
        paths = [Path(p) for p in paths]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"summary {p} does not exist; build it with `snakemake {p}`")
        df = summary.combine(paths)
    for col in summary.COLUMNS:
        if col not in df.columns:
            df[col] = "test" if col == "evalset" else None
    text = ["experiment", "dataset", "loss", "outliers", "recipe", "score", "status", "reason", "run_dir", "schedule",
            "checkpoint", *_LATER_FIELDS]
    df = df.astype({c: object for c in text})
    df["evalset"] = df["evalset"].fillna("test").astype(str)
    df["ood"] = df["evalset"].where(df["evalset"] != "test", None)
    df["cls"] = df["cls"].astype(str)
    df["k"] = pd.to_numeric(df["k"], errors="coerce")
    return df.drop_duplicates(["run_dir", "evalset", "score", "k"], keep="first").reset_index(drop=True)


def _paper_cells(spec: TableSpec, reported: pd.DataFrame) -> pd.DataFrame:
    """The paper's cells of ``spec`` with our cell fields (kind, base metric, paper order)."""
    rows = rep.paper_rows(reported, spec.paper).copy()
    is_gain = rows["metric"].str.startswith("relative_improvement_")
    rows["kind"] = np.where(is_gain, _IMPROVEMENT, "value")
    rows["metric"] = rows["metric"].str.removeprefix("relative_improvement_")
    rows = rows[rows["metric"].isin(spec.metrics)]
    rows["paper_order"] = np.arange(len(rows))
    rows["paper_dataset"] = rows["dataset"]
    return rows.rename(columns={"value_pct": "paper_value", "std_pct": "paper_std", "note": "paper_note"})


_STATUS_PRIORITY = ("failed", "pending", "missing")


def combined_status(statuses: Sequence[str]) -> str:
    """``ok`` when every status is ok, else the worst present: failed, then pending, then missing."""
    if statuses and all(s == "ok" for s in statuses):
        return "ok"
    return next((s for s in _STATUS_PRIORITY if s in statuses), "missing")


def _seed_cell(values: Sequence[float], statuses: Sequence[str], reasons: Sequence[str | None]) -> dict:
    """Mean and sample std over seeds (``metrics.mean_std``) of the ok values; a status when none is ok."""
    from firm_bench.method.metrics import mean_std

    ok = [v for v, s in zip(values, statuses) if s == "ok" and v is not None and not math.isnan(v)]
    cell = {"n_ok": len(ok), "n_runs": len(statuses), "ours_mean": math.nan, "ours_std": math.nan,
            "ours_status": "ok" if ok else combined_status([s for s in statuses if s != "ok"]),
            "ours_reason": next((r for r, s in zip(reasons, statuses) if s != "ok" and r), None)}
    if ok:
        cell["ours_mean"], cell["ours_std"] = mean_std(ok)
    return cell


def _untrained_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The untrained-encoder baseline as rows of their own (AUROC only), one per dataset x class x seed x score.

    Every run scores its encoder at initialisation too (``untrained_auroc``;
    ``features.untrained``). Those weights depend on the seed and the model,
    not on the loss or the outlier source, so the runs of one seed that differ
    only there give one baseline (the first kept). A missing baseline of an ok
    run is ``missing``; of a failed run, ``failed`` as the run. Summaries with
    no baseline at all (``features.untrained: false``, results from before it)
    get no such rows.
    """
    if "untrained_auroc" not in rows or pd.to_numeric(rows["untrained_auroc"], errors="coerce").isna().all():
        return rows.iloc[0:0]
    base = rows.assign(loss=UNTRAINED, outliers=None, metric="auroc",
                       value=pd.to_numeric(rows["untrained_auroc"], errors="coerce") * rep.PERCENT)
    no_value = (base["status"] == "ok") & base["value"].isna()
    base.loc[no_value, "status"] = "missing"
    base.loc[no_value, "reason"] = "no untrained-encoder score (features.untrained: false, or features from before it)"
    base = base.sort_values("status", key=lambda s: s != "ok", kind="stable")  # an ok baseline wins over a failed run's
    key = ["dataset", "cls", "evalset", "recipe", "seed", "score", "k"]
    return base.drop_duplicates([c for c in key if c in base], keep="first")


def _our_seed_values(spec: TableSpec, summary: pd.DataFrame, k: int, partial: bool) -> pd.DataFrame:
    """One row per run x score x metric of ours: value in %, status (missing -> pending when partial).

    Plus the untrained-encoder rows (:func:`_untrained_rows`), shown in every table with an AUROC metric.
    """
    rows = summary[summary["k"].isna() | (summary["k"] == k)]
    frames = []
    for metric in spec.metrics:
        f = rows.assign(metric=metric, value=pd.to_numeric(rows[metric], errors="coerce") * rep.PERCENT)
        no_value = (f["status"] == "ok") & f["value"].isna()
        f.loc[no_value, "status"] = "missing"
        f.loc[no_value, "reason"] = f"no {metric} in the summary"
        frames.append(f)
    if "auroc" in spec.metrics:
        frames.append(_untrained_rows(rows))
    long = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    if partial:
        long["status"] = long["status"].replace("missing", "pending")
    long["kind"] = "value"
    long["method"] = long["loss"].map({**rep.LOSS_DISPLAY, UNTRAINED: UNTRAINED_DISPLAY}).fillna(long["loss"])
    if spec.mean_over == "ood":
        long = long[long["ood"].notna()]  # one-class rows have no OOD set
    return long


def _natural(v: str) -> tuple:
    """Sort key: class indices numerically, then names."""
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def _n_items(spec: TableSpec, dataset: str, n_ood: int) -> int | None:
    """How many classes (or OOD sets) a complete mean covers."""
    from firm_bench.core import catalog

    if spec.mean_over == "ood":
        return n_ood
    return len(catalog.dataset(dataset).classes) if dataset in catalog.names("dataset.name", dataset) else None


def _recipe_of(rows: pd.DataFrame) -> dict:
    """The recipe labels of some summary rows ('/'-joined when they differ)."""
    out = {}
    for col in _RECIPE_FIELDS:
        vals = sorted({str(v) for v in rows[col].dropna()}) if col in rows else []
        out[col] = "/".join(vals) if vals else None
    return out


def _our_cells(spec: TableSpec, long: pd.DataFrame, n_ood: int) -> pd.DataFrame:
    """Per-class (or per OOD set) cells and the mean cell, each mean +/- std over seeds.

    The mean of a seed averages every class (OOD set) of the row; a seed with
    any of them not ok has no mean (its status is the worst of theirs).
    ``n_classes`` = "covered/complete" tells whether the mean covers the dataset.
    """
    ident = ["kind", "method", "loss", "outliers", "score", "recipe", "dataset", "metric"]
    ident += [c for c in ("ood", "cls") if c != spec.mean_over]
    item_of = spec.mean_over
    recipes = {r: _recipe_of(g) for r, g in long.groupby("recipe", dropna=False)}
    # the form is the loss's own (one recipe trains NT-Xent pairwise and SupCon concat)
    forms = {key: _recipe_of(g)["loss_form"] for key, g in long.groupby(["loss", "recipe"], dropna=False)}
    records = long[[*ident, item_of, "seed", "value", "status", "reason"]].astype(object)
    groups: dict[tuple, list[dict]] = {}
    for r in records.where(records.notna(), None).to_dict("records"):
        groups.setdefault(tuple(r[c] for c in ident), []).append(r)
    cells = []
    for key, rs in groups.items():
        loss, recipe = key[ident.index("loss")], key[ident.index("recipe")]
        base = {**dict(zip(ident, key)), **recipes[recipe], "loss_form": forms.get((loss, recipe))}
        by_item: dict[object, list[dict]] = {}
        by_seed: dict[object, list[dict]] = {}
        for r in rs:
            by_item.setdefault(r[item_of], []).append(r)
            by_seed.setdefault(r["seed"], []).append(r)
        if spec.per_class:
            for item, g in by_item.items():
                cells.append({**base, item_of: item, **_seed_cell([r["value"] for r in g], [r["status"] for r in g],
                                                                  [r["reason"] for r in g])})
        means, statuses = [], []
        for g in by_seed.values():
            status = combined_status([r["status"] for r in g])
            complete = len({r[item_of] for r in g}) == len(by_item) and status == "ok"
            means.append(sum(r["value"] for r in g) / len(g) if complete else math.nan)
            statuses.append("ok" if complete else (status if status != "ok" else "missing"))
        full = _n_items(spec, str(base["dataset"]), n_ood)
        cells.append({**base, item_of: _MEAN, "n_classes": f"{len(by_item)}/{full if full else '?'}",
                      "mean_of": ", ".join(sorted(map(str, by_item), key=_natural)),
                      **_seed_cell(means, statuses, [None] * len(means))})
    return pd.DataFrame(cells)


def _improvement_cells(spec: TableSpec, cells: pd.DataFrame) -> pd.DataFrame:
    """Ours: relative improvement of ``spec.improvement[0]`` over its baseline, in %, per column."""
    if spec.improvement is None:
        return cells.iloc[0:0]
    loss, baseline = spec.improvement
    key = ["outliers", "score", "recipe", "dataset", "ood", "cls", "metric"]
    m = cells[cells["loss"] == loss].merge(cells.loc[cells["loss"] == baseline, key + ["ours_mean", "ours_status"]],
                                           on=key, suffixes=("", "_base"))
    both = (m["ours_status"] == "ok") & (m["ours_status_base"] == "ok")
    m["ours_mean"] = np.where(both, (m["ours_mean"] / m["ours_mean_base"] - 1) * 100, math.nan)
    m["ours_std"] = math.nan
    m["ours_status"] = np.where(both, "ok", np.where(m["ours_status"] != "ok", m["ours_status"], m["ours_status_base"]))
    m["ours_reason"] = (f"relative improvement of {rep.LOSS_DISPLAY.get(loss, loss)} over "
                        f"{rep.LOSS_DISPLAY.get(baseline, baseline)}, ratio of the means")
    m["kind"] = _IMPROVEMENT
    return m.drop(columns=["ours_mean_base", "ours_status_base"])


# --------------------------------------------------------------------------- #
# comparison
# --------------------------------------------------------------------------- #
def _axis_value(spec: TableSpec, cell: dict) -> str:
    return str(cell["paper_dataset" if spec.columns == "dataset" else spec.columns])


_PAPER_FIELDS = ["paper_value", "paper_std", "paper_note", "paper_order"]


def _match_paper(spec: TableSpec, ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Each of our cells with the paper cell it is compared with (stated labels preferred over unstated ones)."""
    exact = ["kind", "loss", "paper_dataset", "ood", "cls", "metric"]
    left = ours.assign(_i=np.arange(len(ours)))

    def no_nan_ood(df: pd.DataFrame) -> pd.DataFrame:  # NaN never equals NaN in a merge key
        return df.assign(ood=df["ood"].astype(object).where(df["ood"].notna(), ""))

    cand = no_nan_ood(left[["_i", "outliers", "score", *exact]]).merge(
        no_nan_ood(paper[paper["loss"].notna()])[exact + ["outliers", "score"] + _PAPER_FIELDS]
        .rename(columns={"outliers": "p_outliers", "score": "p_score"}), on=exact)
    keep = [rep.matches(po, o) and rep.matches(ps, s)
            for po, o, ps, s in zip(cand["p_outliers"], cand["outliers"], cand["p_score"], cand["score"])]
    cand = cand[np.array(keep, dtype=bool)]
    cand = cand.assign(_unstated=cand["p_outliers"].isna().astype(int) + cand["p_score"].isna().astype(int))
    best = cand.sort_values(["_i", "_unstated"]).drop_duplicates("_i")
    ties = cand.merge(best[["_i", "_unstated"]], on=["_i", "_unstated"]).groupby("_i").size()
    if (ties > 1).any():
        cell = left.loc[left["_i"] == ties[ties > 1].index[0]].iloc[0]
        raise ValueError(f"{spec.name}: our cell {cell[exact + ['outliers', 'score']].to_dict()} matches "
                         f"several cells of paper Table {spec.paper}")
    return left.merge(best[["_i", *_PAPER_FIELDS]], on="_i", how="left").drop(columns="_i")


def _partial_mean(n_classes: object) -> bool:
    """Whether ``n_classes`` ("covered/complete") says a mean covers only some items."""
    return isinstance(n_classes, str) and n_classes.split("/")[0] != n_classes.split("/")[1]


def _spec_of(paper_table: str) -> TableSpec:
    """The spec of paper table ``paper_table`` (``"14"`` -> ``table14``); KeyError naming the valid ones."""
    for _, spec in TABLES.items():
        if spec.paper == paper_table:
            return spec
    raise KeyError(f"paper table {paper_table!r} has no spec; valid: {', '.join(s.paper for _, s in TABLES.items())}")


def _subset_means(spec: TableSpec, ours: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """Our means over a subset of the classes (OOD sets) beside the paper's mean over the same ones.

    A mean cell of ours over only some items (``n_classes`` "2/10": a config
    that ran classes 0 and 3) is not the quantity the paper's printed mean
    is. Where the paper prints per-item numbers of the same configuration and
    runs, the paper's side becomes their mean over our items,
    (1/|S|) sum_{i in S} paper_i, from the first source that has every item of
    S: the table itself when it is per class (or per OOD set), then
    ``spec.per_class_from`` (mean-only tables, e.g. 1b -> Table 14). A source
    other than the table itself is used only if it prints the same mean (to
    one decimal) for the configuration as this table: otherwise its runs differ
    (NOTES.md, e.g. Table 1d vs Table 16) and it is named but not used. Cells
    found so are ``subset_sound``: compared and counted like a full mean (the
    same quantity of the same runs; the paper's per-item rounding moves the mean
    by at most 0.05). A subset mean without such a source keeps the paper's
    printed full mean, without Δ and never counted; so does a relative
    improvement over a subset. ``paper_basis`` says which, in every output.
    """
    item = spec.mean_over
    ours = ours.assign(paper_basis=None, subset=False, subset_sound=False)
    subset = (ours[item] == _MEAN) & ours["n_classes"].map(_partial_mean) & ours["paper_value"].notna()
    if not subset.any():
        return ours
    sources = ([spec] if spec.per_class else []) + [_spec_of(t) for t in spec.per_class_from]
    source_cells = {s.name: _paper_cells(s, reported) for s in sources}
    noun, per = ("OOD sets", "per-OOD-set") if item == "ood" else ("classes", "per-class")
    probe_fields = [f for f in ours.columns if f not in _PAPER_FIELDS]
    for i in ours.index[subset]:
        c = ours.loc[i]
        items = str(c["mean_of"]).split(", ")
        full = f"printed mean of all {str(c['n_classes']).split('/')[1]} {noun}"
        value, sound = c["paper_value"], False
        basis = f"{full}; the paper has no {per} numbers of this configuration: no Δ"
        if c["kind"] != "value":
            basis = f"{full}; ours is a relative improvement over a subset: no Δ"
        for src in sources if c["kind"] == "value" else []:
            probe = pd.DataFrame([{**c.to_dict(), item: v} for v in [*items, _MEAN]])[probe_fields]
            found = _match_paper(src, probe, source_cells[src.name])["paper_value"]
            if found.isna().any():
                continue  # the source lacks the configuration or one of our items
            if src is not spec and round(float(found.iloc[-1]), 1) != round(float(c["paper_value"]), 1):
                basis = (f"{full}; Table {src.paper}'s {per} numbers of this configuration have another mean "
                         f"({float(found.iloc[-1]):.1f}): other runs, no Δ")
                continue
            value, sound = float(found.iloc[:-1].mean()), True
            what = noun if len(items) > 1 else {"classes": "class", "OOD sets": "OOD set"}[noun]
            basis = f"mean of {what} {', '.join(items)} of Table {src.paper}"
            break
        ours.loc[i, ["paper_value", "paper_basis", "subset", "subset_sound"]] = [value, basis, True, sound]
        if sound:
            ours.loc[i, "paper_std"] = math.nan
    return ours


def compare(
    spec: TableSpec,
    summary: pd.DataFrame,
    reported: pd.DataFrame | None = None,
    *,
    k: int | None = None,
    partial: bool = False,
) -> pd.DataFrame:
    """The cells of paper table ``spec``: ours (from ``summary``) beside the paper's, in %.

    summary: rows of :func:`read_summaries` of the experiments that feed the
    table. Returns one row per (table row, column, metric), :data:`CELL_COLUMNS`.
    """
    reported = rep.load_reported() if reported is None else reported
    k = default_k() if k is None else k
    paper = _paper_cells(spec, reported)
    paper_datasets = list(dict.fromkeys(paper["dataset"]))
    n_ood = int(paper.loc[paper["ood"] != _MEAN, "ood"].dropna().nunique())

    long = _our_seed_values(spec, read_summaries(summary), k, partial)
    ours = _our_cells(spec, long, n_ood) if not long.empty else pd.DataFrame()
    if not ours.empty:
        ours = pd.concat([ours, _improvement_cells(spec, ours)], ignore_index=True)
        mapped = [rep.paper_dataset(d, paper_datasets) for d in ours["dataset"]]
        ours["paper_dataset"] = [m[0] for m in mapped]
        ours["stand_in"] = [m[1] for m in mapped]
        ours = _subset_means(spec, _match_paper(spec, ours, paper), reported)
    cells = _assemble(spec, ours, paper)
    cells["table"] = spec.name
    cells["k"] = k
    subset, sound = (cells.get(c, pd.Series(False, index=cells.index)).fillna(False).astype(bool)
                     for c in ("subset", "subset_sound"))
    cells["diff"] = (cells["ours_mean"] - cells["paper_value"]).where(~(subset & ~sound))
    covered = ~cells["n_classes"].map(_partial_mean) | sound
    cells["comparable"] = ((cells["kind"] == "value") & (cells["ours_status"] == "ok") & cells["paper_value"].notna()
                           & ~cells["stand_in"] & covered)
    return _label(spec, cells)[CELL_COLUMNS]


def _assemble(spec: TableSpec, ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our cells, plus the paper's: cells of a paper row we cover join our row, the rest form rows of their own."""
    axis = "dataset" if spec.columns == "dataset" else spec.columns
    paper_row_fields = [f for f in ["kind", "method", "loss", "outliers", "score", "dataset"] if f != axis]
    paper = paper.assign(_prow=paper.groupby(paper_row_fields, dropna=False, sort=False).ngroup())
    row_fields = [f for f in _ROW_FIELDS if f != axis]

    def column_key(df: pd.DataFrame) -> pd.Series:
        return df["paper_dataset" if axis == "dataset" else axis].astype(str) + "|" + df["metric"].astype(str)

    paper = paper.assign(_col=column_key(paper))
    parts, covered = [], set()
    if not ours.empty:
        ours = ours.assign(_prow=ours["paper_order"].map(paper.set_index("paper_order")["_prow"]), _col=column_key(ours))
        parts.append(ours)
        for _, row in ours.groupby(row_fields, dropna=False, sort=False):
            prows = set(row["_prow"].dropna().astype(int))
            covered |= prows
            extra = paper[paper["_prow"].isin(prows) & ~paper["_col"].isin(set(row["_col"]))]
            if not extra.empty:
                first = row.iloc[0]
                parts.append(extra.assign(**{f: first[f] for f in row_fields}, ours_status="not run",
                                          stand_in=bool(first["stand_in"]) and axis != "dataset"))
    rest = paper[~paper["_prow"].isin(covered)]
    parts.append(rest.assign(stand_in=False, ours_status=np.where(rest["reported_only"], "not rerun", "not run")))
    cells = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    for col in CELL_COLUMNS:
        if col not in cells.columns:
            cells[col] = None
    cells["reported_only"] = cells["reported_only"].fillna(False).astype(bool)
    cells["stand_in"] = cells["stand_in"].fillna(False).astype(bool)
    return cells


def _row_label(spec: TableSpec, cell: dict, show_recipe: bool, show_dataset: bool) -> str:
    if cell["reported_only"]:
        return f"{cell['method']} (reported)"
    parts = [str(cell["method"])]
    if isinstance(cell["outliers"], str):
        parts.append(rep.OUTLIERS_DISPLAY.get(cell["outliers"], f"w/ {cell['outliers']}"))
    if spec.columns != "score" and isinstance(cell["score"], str):
        parts.append(cell["score"])
    if show_recipe and isinstance(cell["recipe"], str):
        parts.append(f"[{cell['recipe']}]")
    if spec.columns != "dataset" and (show_dataset or cell["stand_in"]):
        parts.append(f"on {cell['dataset']}")
    label = " ".join(p for p in parts if p)
    if cell["kind"] == _IMPROVEMENT and spec.improvement:
        label += f": relative improvement over {rep.LOSS_DISPLAY.get(spec.improvement[1], spec.improvement[1])} (%)"
    return label


def _positions(values: Iterable[str], first: Sequence[str]) -> dict[str, int]:
    """Positions: ``first`` (the paper's order) first, then the rest naturally; ``mean`` last."""
    values = set(values)

    def natural(v: str) -> tuple:
        return (0, int(v), "") if v.isdigit() else (1, 0, v)

    ordered = [v for v in dict.fromkeys(first) if v in values and v != _MEAN]
    ordered += sorted(values - set(ordered) - {_MEAN}, key=natural)
    ordered += [_MEAN] if _MEAN in values else []
    return {v: i for i, v in enumerate(ordered)}


def _paper_column_order(spec: TableSpec, cells: pd.DataFrame) -> list[str]:
    """The paper's column order: that of its fullest row first (Table 4's first rows omit columns), then the rest."""
    printed = cells[cells["paper_order"].notna()].sort_values("paper_order")
    if printed.empty:
        return []
    values = pd.Series([_axis_value(spec, c) for c in printed.to_dict("records")], index=printed.index)
    fullest = values.groupby(printed["row"], sort=False).agg(list).map(lambda v: list(dict.fromkeys(v)))
    return [*max(fullest, key=len), *values]


def _label(spec: TableSpec, cells: pd.DataFrame) -> pd.DataFrame:
    """Row and column labels and their order (the paper's order first, then ours by registry order)."""
    from firm_bench.core import catalog

    cells = cells.reset_index(drop=True)
    recs = cells.to_dict("records")
    run = cells["ours_status"].isin(["ok", "failed", "missing", "pending"])
    show_recipe = cells.loc[run, "recipe"].dropna().nunique() > 1
    show_dataset = cells.loc[run, "dataset"].dropna().nunique() > 1
    cells["row"] = [_row_label(spec, c, show_recipe, show_dataset) for c in recs]
    axis_vals = [_axis_value(spec, c) for c in recs]
    col_pos = _positions(axis_vals, _paper_column_order(spec, cells))
    cells["column"] = [f"{v} {_METRIC_NAMES.get(m, m)}" if len(spec.metrics) > 1 else v
                       for v, m in zip(axis_vals, cells["metric"])]
    cells["column_order"] = [col_pos[v] * len(spec.metrics) + spec.metrics.index(m)
                             for v, m in zip(axis_vals, cells["metric"])]
    clash = cells[cells.duplicated(["row", "column"], keep=False)]
    if not clash.empty:
        raise ValueError(f"{spec.name}: several cells share row {clash['row'].iloc[0]!r} and column "
                         f"{clash['column'].iloc[0]!r}; give the table's experiments distinct labels")
    rank = {f: {n: i for i, n in enumerate(catalog.names(key))}
            for f, key in (("loss", "loss.name"), ("outliers", "outliers.name"), ("score", "scores.names"))}
    rank["loss"][UNTRAINED] = len(rank["loss"])  # the baseline after every loss
    paper_pos = cells.groupby("row", sort=False)["paper_order"].min()

    def key(c: dict) -> tuple:
        pos = paper_pos[c["row"]]
        return (c["kind"] == _IMPROVEMENT, pd.isna(pos), 0 if pd.isna(pos) else pos,
                *(rank[f].get(c[f], -1) for f in rank), str(c["recipe"]), c["row"])

    row_keys: dict[str, tuple] = {}
    for c in cells.to_dict("records"):
        row_keys[c["row"]] = min(row_keys.get(c["row"], key(c)), key(c))
    order = {label: i for i, label in enumerate(sorted(row_keys, key=row_keys.__getitem__))}
    cells["row_order"] = cells["row"].map(order)
    return cells.sort_values(["row_order", "column_order"]).reset_index(drop=True)


# --------------------------------------------------------------------------- #
# agreement and rendering
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Agreement:
    """Cells of ours within ``tolerance`` points of the paper, out of the comparable cells."""

    within: int
    compared: int
    tolerance: float

    def __str__(self) -> str:
        return f"{self.within}/{self.compared} compared cells within {self.tolerance:.1f} point(s) of the paper"


def agrees(cells: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> pd.Series:
    """Per cell: comparable (ours ok, paper reported, not a stand-in, full mean) and |ours - paper| <= tolerance."""
    return cells["comparable"].astype(bool) & (cells["diff"].abs() <= tolerance + 1e-9)


def agreement(cells: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> Agreement:
    """How many comparable cells lie within ``tolerance`` AUROC points of the paper."""
    return Agreement(int(agrees(cells, tolerance).sum()), int(cells["comparable"].astype(bool).sum()), tolerance)


def _latex_escape(text: str) -> str:
    """Text as LaTeX (booktabs tables, captions)."""
    text = "".join({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}.get(ch, ch) for ch in text)
    for a, b in [("*", r"$^*$"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("−", "-"), ("†", r"\textsuperscript{\dag}"),
                 ("×", r"$\times$"), ("—", "---"), ("✓", ""), ("✗", "")]:
        text = text.replace(a, b)
    return text


@dataclass(frozen=True)
class _Style:
    """How one output format writes text, marks a difference and explains the marks."""

    escape: Callable[[str], str]
    marks: dict[str, str]  # state -> template with {t}; states: agree, disagree, stand_in (else plain)
    legend: str
    tablefmt: str

    def mark(self, text: str, state: str) -> str:
        return self.marks.get(state, "{t}").format(t=text)


_STYLES: dict[str, _Style] = {
    "md": _Style(lambda s: s.replace("|", "\\|"), {"agree": "{t} ✓", "disagree": "{t} ✗", "stand_in": "{t} †"},
                 "✓ within {tol:.1f} point(s) of the paper, ✗ outside", "github"),
    "tex": _Style(_latex_escape, {"disagree": r"\textbf{{{t}}}", "stand_in": r"{t}\textsuperscript{{\dag}}"},
                  "bold: more than {tol:.1f} point(s) from the paper", "latex_raw"),
    "html": _Style(html.escape, {"agree": '<span class="agree">{t}</span>', "disagree": '<span class="disagree">{t}</span>',
                                 "stand_in": '<span class="stand_in">{t} †</span>'},
                   "green: within {tol:.1f} point(s) of the paper, red: outside", "unsafehtml"),
}


def _num(value: float, signed: bool = False) -> str:
    value = round(float(value), 1) + 0.0  # no "-0.0"
    return (f"{value:+.1f}" if signed else f"{value:.1f}").replace("-", "−")


def _ours_text(c: dict) -> str:
    if c["reported_only"]:
        return "not rerun"
    if c["ours_status"] != "ok":
        return str(c["ours_status"])
    text = _num(c["ours_mean"]) + (f" ± {_num(c['ours_std'])}" if pd.notna(c["ours_std"]) else "")
    if c["kind"] == "value" and c["n_ok"] < c["n_runs"]:
        text += f" ({int(c['n_ok'])}/{int(c['n_runs'])} seeds)"
    n = c["n_classes"]
    if isinstance(n, str) and n.split("/")[0] != n.split("/")[1]:
        text += f" (mean of {n} {'OOD sets' if pd.notna(c['ood']) else 'classes'})"
    return text


def _paper_text(c: dict) -> str:
    if pd.isna(c["paper_value"]):
        return "not reported"
    text = _num(c["paper_value"]) + (f" ± {_num(c['paper_std'])}" if pd.notna(c["paper_std"]) else "")
    return text + (f" ({c['paper_basis']})" if isinstance(c.get("paper_basis"), str) and c["paper_basis"] else "")


def _diff_text(c: dict, style: _Style, tolerance: float) -> str:
    if pd.isna(c["diff"]):
        return "–"
    if c["comparable"]:
        state = "agree" if abs(c["diff"]) <= tolerance + 1e-9 else "disagree"
    else:
        state = "stand_in" if c["stand_in"] else "plain"
    return style.mark(style.escape(_num(c["diff"], signed=True)), state)


def _grid(spec: TableSpec, cells: pd.DataFrame, style: _Style, tolerance: float) -> tuple[list[str], list[list[str]]]:
    """Headers and body: each row group as the lines ours / paper / Δ (a reported row: paper only)."""
    recs = cells.to_dict("records")
    group_of, col_of = ("column", "row") if spec.transpose else ("row", "column")
    cols = sorted({(c[f"{col_of}_order"], c[col_of]) for c in recs})
    groups = sorted({(c[f"{group_of}_order"], c[group_of]) for c in recs})
    by = {(c[group_of], c[col_of]): c for c in recs}
    reported_rows = {c["row"] for c in recs if c["reported_only"]}
    lines = []
    for _, group in groups:
        kinds = ["paper"] if not spec.transpose and group in reported_rows else ["ours", "paper", "Δ"]
        for i, kind in enumerate(kinds):
            line = [style.escape(group) if i == 0 else "", style.escape(kind)]
            for _, col in cols:
                c = by.get((group, col))
                if c is None:
                    line.append("–")
                elif kind == "Δ":
                    line.append(_diff_text(c, style, tolerance))
                else:
                    line.append(style.escape(_ours_text(c) if kind == "ours" else _paper_text(c)))
            lines.append(line)
    corner = {"cls": "class", "ood": "OOD set", "dataset": "dataset", "score": "score"}[spec.columns] if spec.transpose else ""
    return [style.escape(corner), "", *(style.escape(c) for _, c in cols)], lines


def _truthy(value: object) -> bool:
    """A bool label as written by pandas (True, "True", 1) or read back from a CSV."""
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def loss_form_label(rows: pd.DataFrame, compact: bool = False) -> str:
    """The form each loss of some summary (or cell) rows trained in, against the reference's.

    Reads the ``loss_form`` label (``records.metrics.recipe_labels``) per loss and
    compares it with the form the FIRM reference code ran that loss in
    (``catalog.loss_form``). E.g. ``loss forms: NT-Xent pairwise (N×N), SupCon
    concat (2N×2N) — as the reference ran them``, or ``loss forms: all pairwise
    (N×N) — override; the reference ran SupCon in concat (2N×2N)``. A loss
    without the label (a summary written before it existed) is named unknown.
    ``compact``: shorter, for figure footers.
    """
    from firm_bench.core import catalog

    if "loss" not in rows or rows["loss"].dropna().empty:
        return "loss forms: unknown"
    rank = {n: i for i, n in enumerate(catalog.names("loss.name"))}
    losses = sorted({str(v) for v in rows["loss"].dropna()}, key=lambda n: (rank.get(n, len(rank)), n))
    name = lambda n: rep.LOSS_DISPLAY.get(n, n)  # noqa: E731
    text = (lambda f: f) if compact else (lambda f: FORM_LABELS.get(f, f))

    def reference(loss: str) -> str | None:
        try:
            return catalog.loss_form(loss)
        except (KeyError, ValueError):
            return None

    forms = {}
    for loss in losses:
        vals = rows.loc[rows["loss"] == loss, "loss_form"].dropna() if "loss_form" in rows else []
        forms[loss] = sorted({f for v in vals for f in str(v).split("/")})
    unknown = [n for n in losses if not forms[n]]
    if len(unknown) == len(losses):
        return "loss forms: not recorded (results from before the label)"
    deviating = [n for n in losses if forms[n] and any(f != reference(n) for f in forms[n])]
    parts = ", ".join(f"{name(n)} {'/'.join(text(f) for f in forms[n]) or 'unknown'}" for n in losses)
    one = {f for n in losses for f in forms[n]}
    if deviating and not unknown and len(losses) > 1 and len(one) == 1:
        parts = f"all {text(one.pop())}"
    notes = []
    if deviating:
        refs = sorted({str(reference(n)) for n in deviating})
        notes.append(f"override; the reference ran {'/'.join(map(name, deviating))} in {'/'.join(map(text, refs))}")
    if unknown:
        notes.append(f"{'/'.join(map(name, unknown))}: form not recorded (older results)")
    if not notes:
        notes.append("as the reference" if compact else "as the reference ran them")
    return f"loss forms: {parts} — {'; '.join(notes)}"


def recipe_label(rows: pd.DataFrame, compact: bool = False) -> str:
    """The recipe options of some summary (or cell) rows, as every table and figure states them.

    Per recipe: schedule, checkpoint choice (with how it differs from the
    paper's), BN momentum, the form of each loss (``loss_form_label``), ID
    class labels where used, tau, batch size, epochs. ``compact``: one line
    over all rows (the recipes, schedule, checkpoint, BN momentum, loss forms),
    for figures.
    """
    rows = rows.dropna(subset=["recipe"]) if "recipe" in rows else rows.iloc[0:0]
    if rows.empty:
        return "no runs yet"

    def checkpoint(values: str | None) -> str:
        return "; ".join(CHECKPOINT_LABELS.get(c, c) for c in (values or "unknown").split("/"))

    def id_labels(g: pd.DataFrame) -> str:
        used = "id_labels" in g and any(_truthy(v) for v in g["id_labels"].dropna())
        return ", in-distribution class labels used (multi-class FIRM; our addition)" if used else ""

    def selection(rec: dict) -> str:
        score = rec.get("select_score")
        return f" by {score} (k = eval.k)" if score and "best_test" in str(rec["checkpoint"]) else ""

    if compact:
        rec = _recipe_of(rows)
        return (f"recipe {'/'.join(sorted(rows['recipe'].unique()))}; schedule {rec['schedule']}; "
                f"checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}; BN momentum {rec['bn_momentum']}; "
                f"{loss_form_label(rows, compact=True)}{id_labels(rows)}; {protocol_label(rec, compact=True)}")
    return " | ".join(
        f"{recipe}: schedule {rec['schedule']}, checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}, BN momentum "
        f"{rec['bn_momentum']}, tau {rec['tau']}, batch size {rec['batch_size']}, {rec['epochs']} epochs"
        f"{id_labels(g)}; {loss_form_label(g)}; {protocol_label(rec)}"
        for recipe, g, rec in ((r, g, _recipe_of(g)) for r, g in rows.groupby("recipe", sort=True)))


#: how the reference code ran each protocol label (docs/FAITHFULNESS.md); a value of ours that differs is marked
REFERENCE_PROTOCOL = {"precision": "fp32", "normalization": "reference", "head_init": "kaiming"}


def protocol_label(rec: dict, compact: bool = False) -> str:
    """Precision, normalisation, head init, evaluation size / zoom and batching of a recipe ('/'-joined values).

    A value that differs from the reference code's (:data:`REFERENCE_PROTOCOL`) says so; the
    evaluation size and zoom and the batching are the dataset's protocol unless a run set them.
    """
    def field(key: str, text: str) -> str:
        value = rec.get(key)
        if value is None:
            return f"{text} not recorded"
        ref = REFERENCE_PROTOCOL.get(key)
        differs = ref is not None and any(v != ref for v in str(value).split("/"))
        return f"{text} {value}" + (f" (the reference: {ref})" if differs and not compact else "")

    parts = [field("precision", "precision"), field("normalization", "normalisation")]
    if not compact:
        parts.append(field("head_init", "head init"))
    size, zoom, batching = rec.get("eval_size"), rec.get("eval_zoom"), rec.get("batching")
    if size is not None or zoom is not None:
        parts.append(f"evaluated at {size} px, zoom {zoom}" + ("" if compact else f" (training at {rec.get('image_size')} px)"))
    if batching is not None and not compact:
        parts.append(f"{batching} batches")
    return ", ".join(parts)


def caption(spec: TableSpec, cells: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE, fmt: Format = "md") -> str:
    """What the numbers are, the recipe, the marks and the agreement, in plain text."""
    ks = cells["k"].dropna()
    ran = cells[~cells["ours_status"].isin(["not run", "not rerun"])]
    stand_ins = sorted({f"{d} for {p}" for d, p in ran.loc[ran["stand_in"], ["dataset", "paper_dataset"]]
                        .itertuples(index=False)})
    text = (f"{'/'.join(_METRIC_NAMES[m] for m in spec.metrics)} in %"
            f"{' (relative improvements: % of the baseline)' if spec.improvement else ''}. "
            f"Ours: mean ± std over seeds, k = {int(ks.iloc[0]) if len(ks) else '?'} for k-NN scores. "
            f"Paper: Table {spec.paper} of reported_results.csv. Δ = ours − paper; "
            f"{_STYLES[fmt].legend.format(tol=tolerance)}. Agreement: {agreement(cells, tolerance)}. "
            f"Recipe: {recipe_label(cells[cells['ours_status'] != 'not run'])}.")
    if stand_ins:
        text += f" † ours on a stand-in dataset ({', '.join(stand_ins)}): shown, never counted."
    return text


def _outlier_notes(cells: pd.DataFrame) -> list[str]:
    """Where each outlier source of our rows knowingly differs from the reference code it follows."""
    from firm_bench.core import catalog

    ran = cells.loc[cells["ours_status"].isin(["ok", "failed", "missing", "pending"]), "outliers"].dropna()
    out = []
    for name in dict.fromkeys(ran):
        try:
            diffs = catalog.outlier_differences(str(name))
        except KeyError:
            continue
        if diffs:
            out.append(f"Outliers {name} differ from the reference code in: {'; '.join(diffs)}.")
    return out


def notes(spec: TableSpec, cells: pd.DataFrame) -> list[str]:
    """The caption's notes: the spec's ``note`` (NOTES.md caveats) and how class-subset means were compared."""
    out = [f"Note: {spec.note}"] if spec.note else []
    out += _outlier_notes(cells)
    if (cells["loss"] == UNTRAINED).any():
        out.append(f"{UNTRAINED_DISPLAY}: the same scores of each run's encoder at initialisation (its seed's "
                   "weights, the same for every loss), a baseline of ours, not a paper row: an easy class scores "
                   "high even with random weights, so what training added is the difference to it.")
    basis = cells["paper_basis"] if "paper_basis" in cells else pd.Series(dtype=object)
    if basis.map(lambda b: isinstance(b, str) and bool(b)).any():
        sources = ", ".join(f"Table {t}" for t in ([spec.paper] if spec.per_class else []) + list(spec.per_class_from))
        noun, per = ("OOD sets", "per-OOD-set") if spec.mean_over == "ood" else ("classes", "per-class")
        out.append(f"Subsets: where our mean covers only some {noun}, the paper's side is its mean over the same "
                   f"{noun}, from its {per} numbers of the same runs ({sources or 'none for this table'}), "
                   f"compared and counted like a full mean; without "
                   f"them, the paper's printed mean of all {noun} is shown without Δ and not counted.")
    return out


def render(spec: TableSpec, cells: pd.DataFrame, fmt: Format, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The table as Markdown (``md``), LaTeX booktabs (``tex``) or an HTML fragment (``html``)."""
    from tabulate import tabulate

    if fmt not in _STYLES:
        raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(_STYLES)}")
    style = _STYLES[fmt]
    headers, lines = _grid(spec, cells, style, tolerance)
    body = tabulate(lines, headers=headers, tablefmt=style.tablefmt, disable_numparse=True)
    cap = " ".join([caption(spec, cells, tolerance, fmt), *notes(spec, cells)])
    if fmt == "md":
        return f"# {spec.title}\n\n{cap}\n\n{body}\n"
    if fmt == "html":
        return f'<p class="caption">{html.escape(cap)}</p>\n{body}\n'
    rules = iter(["\\toprule", "\\midrule", "\\bottomrule"])
    body = "\n".join(next(rules, ln) if ln.strip() == "\\hline" else ln for ln in body.splitlines())
    return ("% firm-bench paper-table; needs \\usepackage{booktabs} and \\usepackage{graphicx}\n"
            "\\begin{table}[t]\n\\centering\n"
            f"\\caption{{{_latex_escape(spec.title + ' ' + cap)}}}\n\\label{{tab:{spec.name}}}\n"
            f"\\resizebox{{\\linewidth}}{{!}}{{%\n{body}\n}}\n\\end{{table}}\n")


# --------------------------------------------------------------------------- #
# files and CLI
# --------------------------------------------------------------------------- #
def read_cells(path: str | Path) -> pd.DataFrame:
    """A table's cell CSV (as :func:`write_table` writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table cells {path} do not exist; build them with `snakemake {path}`")
    df = pd.read_csv(path, dtype={"cls": str, "ood": str, "row": str, "column": str, "n_classes": str, "mean_of": str,
                                  "paper_basis": str})
    for col in _LATER_FIELDS:  # cells written before these labels existed: unknown
        if col not in df.columns:
            df[col] = None
    missing = [c for c in CELL_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; rebuild it with `firm-bench paper-table`")
    for col in ("stand_in", "comparable", "reported_only"):
        df[col] = df[col].map(lambda v: v is True or str(v) == "True")
    return df


def write_table(
    name: str,
    summaries: Sequence[str | Path] | pd.DataFrame,
    out_dir: str | Path = "results/tables",
    *,
    k: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    partial: bool = False,
) -> list[Path]:
    """Render paper table ``name`` from the summaries of the experiments feeding it: .md, .tex, .csv."""
    from firm_bench.core import rundir as runs
    from firm_bench.records.summary import write_csv

    spec = TABLES.get(name)
    summary = read_summaries(summaries)
    cells = compare(spec, summary, k=k, partial=partial)
    out_dir = Path(out_dir)
    paths = [runs.atomic_write_text(out_dir / f"{name}.{fmt}", render(spec, cells, fmt, tolerance))
             for fmt in ("md", "tex")]
    paths.append(write_csv(cells, out_dir / f"{name}.csv"))
    return paths
