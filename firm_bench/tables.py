"""The paper's tables, ours beside the paper's (``TABLES``).

One spec per paper table (Tables 1a-d, 2-16), registered under its target
name (``table5``) with a docstring naming the paper item. A table is built
in two steps:

1. :func:`compare` turns our summary rows (``results/summary/<experiment>.csv``
   of the experiments that feed the table) and the paper's numbers
   (``firm_bench.reported``) into one row per table cell (:data:`CELL_COLUMNS`):
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
is only counted when it covers every class of the dataset. Relative-improvement
rows (Tables 5, 10a, 10b: ours = ratio of our means - 1) are shown beside the
printed ones but not counted either.

k-NN scores are shown at one k (default ``eval.k`` of the run schema, 5:
the learning-curve k and the reference code's choice; the paper's k was lost).
"""

from __future__ import annotations

import argparse
import html
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from firm_bench import reported as rep
from firm_bench.registry import Registry

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
    "read_cells",
    "read_summaries",
    "loss_form_label",
    "recipe_label",
    "register_cli",
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
    "n_ok", "n_runs", "n_classes", "ours_status", "ours_reason", "paper_value", "paper_std", "paper_note",
    "reported_only", "diff", "comparable", "schedule", "checkpoint", "bn_momentum", "loss_form", "id_labels", "tau",
    "batch_size", "epochs",
]
_RECIPE_FIELDS = ["schedule", "checkpoint", "bn_momentum", "loss_form", "id_labels", "tau", "batch_size", "epochs"]
#: recipe labels a cell CSV written before they existed lacks: read as unknown
_LATER_FIELDS = ["loss_form", "id_labels"]
#: how each loss form is named in captions (``loss_form_label``)
FORM_LABELS = {"pairwise": "pairwise (N×N)", "concat": "concat (2N×2N)"}
_ROW_FIELDS = ["kind", "method", "loss", "outliers", "score", "recipe", "dataset"]
_MEAN = "mean"
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

    @property
    def title(self) -> str:
        return self.doc.splitlines()[0]


TABLES: Registry[TableSpec] = Registry("paper table")


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


@_table("table1a", "1a")
def _table1a() -> None:
    """Table 1a: one-class anomaly detection on CIFAR-10 (FIRM cos / rot / ens, FIRM w/ OE) vs the literature.

    Per-class AUROC. NOTES.md: the paper's rot and ens rows equal Table 11's
    rot_norm and ens_norm rows; our rot_norm / ens_norm rows are shown too.
    """


@_table("table1b", "1b", **_MEANS)
def _table1b() -> None:
    """Table 1b: one-class anomaly detection on CIFAR-100 (20 superclasses), class means."""


@_table("table1c", "1c", **_MEANS)
def _table1c() -> None:
    """Table 1c: one-class anomaly detection on Fashion-MNIST, class means."""


@_table("table1d", "1d", **_MEANS)
def _table1d() -> None:
    """Table 1d: one-class anomaly detection on Cats-vs-Dogs, class means (no OE row: resolution mismatch)."""


@_table("table2", "2", transpose=True)
def _table2() -> None:
    """Table 2: MVTec AD, NT-Xent vs SupCon vs FIRM, per class.

    The paper's score and per-class outlier generator (CutPaste or NSA) were not
    stated; its numbers are compared with every score and generator of ours.
    """


@_table("table3", "3", transpose=True)
def _table3() -> None:
    """Table 3: MVTec AD, FIRM vs the literature (DOCC, CutPaste, P-SVDD, U-Student, NSA, RotNet, DROC).

    NOTES.md: the literature CutPaste mean (90.9) does not equal the mean of
    its printed per-class values (93.5).
    """


@_table("table4", "4", columns="ood", mean_over="ood")
def _table4() -> None:
    """Table 4: unlabeled multiclass OOD detection, CIFAR-10 (all classes, no labels) vs six OOD sets.

    The paper ran these with another temperature (value lost) and printed a
    truncated Mean column (NOTES.md). Our rows need the summary's ``ood`` column.
    """


@_table("table5", "5", metrics=("auroc", "aulc"), improvement=_VS_NTXENT, **_MEANS)
def _table5() -> None:
    """Table 5: AUROC and AULC of the four losses (S_cos) on four datasets, class means.

    AULC from our learning curves (the summaries' ``aulc`` column). The paper's
    relative-improvement row is FIRM / NT-Xent - 1 in %; NOTES.md: its CIFAR-10
    AUROC cell (+1.4) copies Table 10a's mean of ratios (the ratio of means is +1.3).
    """


@_table("table6", "6")
def _table6() -> None:
    """Table 6: SupCon vs SupCon* on CIFAR-10 with the cos, center and KDE scores, per class."""


@_table("table7", "7", columns="score", per_class=False)
def _table7() -> None:
    """Table 7: score functions (cos, cos_norm, rot, rot_norm, ens, ens_norm, center) of each loss on CIFAR-10, class means.

    Includes FIRM w/ OE and w/ OE (rot.). NOTES.md: these are the paper's run
    set A (Tables 5, 7, 10a); Table 11's set B differs slightly.
    """


@_table("table8", "8")
def _table8() -> None:
    """Table 8: KDE scores (kde, kde_rot, kde_ens) of the four losses on CIFAR-10, per class."""


@_table("table9", "9")
def _table9() -> None:
    """Table 9: LOC-SVM scores (locsvm, locsvm_rot, locsvm_ens) of NT-Xent and FIRM on CIFAR-10, per class."""


@_table("table10a", "10a", improvement=_VS_NTXENT)
def _table10a() -> None:
    """Table 10a: synthetic outliers from rotations, CIFAR-10 per class (S_cos), with FIRM's relative improvement.

    NOTES.md: the paper's mean cell is the mean of per-class improvements; ours
    is the ratio of the class means.
    """


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
    from firm_bench.config import schema_defaults

    return int(schema_defaults()["eval"]["k"])


def read_summaries(paths: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """Experiment summaries (``results/summary/<experiment>.csv``) as one frame, each result once.

    Runs shared by experiments (Table 5 and Table 10a) appear once. ``ood`` is
    the OOD set of the unlabeled multiclass protocol (Table 4): the summary's
    ``evalset`` where it is not ``test``, else empty.
    """
    from firm_bench import summary

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
    from firm_bench.metrics import mean_std

    ok = [v for v, s in zip(values, statuses) if s == "ok" and v is not None and not math.isnan(v)]
    cell = {"n_ok": len(ok), "n_runs": len(statuses), "ours_mean": math.nan, "ours_std": math.nan,
            "ours_status": "ok" if ok else combined_status([s for s in statuses if s != "ok"]),
            "ours_reason": next((r for r, s in zip(reasons, statuses) if s != "ok" and r), None)}
    if ok:
        cell["ours_mean"], cell["ours_std"] = mean_std(ok)
    return cell


def _our_seed_values(spec: TableSpec, summary: pd.DataFrame, k: int, partial: bool) -> pd.DataFrame:
    """One row per run x score x metric of ours: value in %, status (missing -> pending when partial)."""
    rows = summary[summary["k"].isna() | (summary["k"] == k)]
    frames = []
    for metric in spec.metrics:
        f = rows.assign(metric=metric, value=pd.to_numeric(rows[metric], errors="coerce") * rep.PERCENT)
        no_value = (f["status"] == "ok") & f["value"].isna()
        f.loc[no_value, "status"] = "missing"
        f.loc[no_value, "reason"] = f"no {metric} in the summary"
        frames.append(f)
    long = pd.concat(frames, ignore_index=True)
    if partial:
        long["status"] = long["status"].replace("missing", "pending")
    long["kind"] = "value"
    long["method"] = long["loss"].map(rep.LOSS_DISPLAY).fillna(long["loss"])
    if spec.mean_over == "ood":
        long = long[long["ood"].notna()]  # one-class rows have no OOD set
    return long


def _n_items(spec: TableSpec, dataset: str, n_ood: int) -> int | None:
    """How many classes (or OOD sets) a complete mean covers."""
    from firm_bench import catalog

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
        ours = _match_paper(spec, ours, paper)
    cells = _assemble(spec, ours, paper)
    cells["table"] = spec.name
    cells["k"] = k
    cells["diff"] = cells["ours_mean"] - cells["paper_value"]
    covered = cells["n_classes"].map(lambda n: not isinstance(n, str) or n.split("/")[0] == n.split("/")[1])
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
    from firm_bench import catalog

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
    return _num(c["paper_value"]) + (f" ± {_num(c['paper_std'])}" if pd.notna(c["paper_std"]) else "")


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

    Reads the ``loss_form`` label (``evaluate.recipe_labels``) per loss and
    compares it with the form the FIRM reference code ran that loss in
    (``catalog.loss_form``). E.g. ``loss forms: NT-Xent pairwise (N×N), SupCon
    concat (2N×2N) — as the reference ran them``, or ``loss forms: all pairwise
    (N×N) — override; the reference ran SupCon in concat (2N×2N)``. A loss
    without the label (a summary written before it existed) is named unknown.
    ``compact``: shorter, for figure footers.
    """
    from firm_bench import catalog

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

    if compact:
        rec = _recipe_of(rows)
        return (f"recipe {'/'.join(sorted(rows['recipe'].unique()))}; schedule {rec['schedule']}; "
                f"checkpoint {checkpoint(rec['checkpoint'])}; BN momentum {rec['bn_momentum']}; "
                f"{loss_form_label(rows, compact=True)}{id_labels(rows)}")
    return " | ".join(
        f"{recipe}: schedule {rec['schedule']}, checkpoint {checkpoint(rec['checkpoint'])}, BN momentum "
        f"{rec['bn_momentum']}, tau {rec['tau']}, batch size {rec['batch_size']}, {rec['epochs']} epochs"
        f"{id_labels(g)}; {loss_form_label(g)}"
        for recipe, g, rec in ((r, g, _recipe_of(g)) for r, g in rows.groupby("recipe", sort=True)))


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


def render(spec: TableSpec, cells: pd.DataFrame, fmt: Format, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The table as Markdown (``md``), LaTeX booktabs (``tex``) or an HTML fragment (``html``)."""
    from tabulate import tabulate

    if fmt not in _STYLES:
        raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(_STYLES)}")
    style = _STYLES[fmt]
    headers, lines = _grid(spec, cells, style, tolerance)
    body = tabulate(lines, headers=headers, tablefmt=style.tablefmt, disable_numparse=True)
    cap = caption(spec, cells, tolerance, fmt)
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
    df = pd.read_csv(path, dtype={"cls": str, "ood": str, "row": str, "column": str, "n_classes": str})
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
    from firm_bench import runs
    from firm_bench.summary import write_csv

    spec = TABLES.get(name)
    summary = read_summaries(summaries)
    cells = compare(spec, summary, k=k, partial=partial)
    out_dir = Path(out_dir)
    paths = [runs.atomic_write_text(out_dir / f"{name}.{fmt}", render(spec, cells, fmt, tolerance))
             for fmt in ("md", "tex")]
    paths.append(write_csv(cells, out_dir / f"{name}.csv"))
    return paths


def cmd_paper_table(args: argparse.Namespace) -> int:
    for path in write_table(args.name, args.summaries, args.out_dir, k=args.k, tolerance=args.tolerance,
                            partial=args.partial):
        print(path)
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``firm-bench paper-table NAME [SUMMARY.csv ...] --out-dir DIR``."""
    p = subparsers.add_parser("paper-table", help="render a paper table: ours beside the paper's (md, tex, csv)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=TABLES.names(), metavar="NAME", help=f"one of: {', '.join(TABLES.names())}")
    p.add_argument("summaries", nargs="*", help="summaries of the experiments feeding it (results/summary/<e>.csv)")
    p.add_argument("--out-dir", default="results/tables", help="where NAME.md, NAME.tex and NAME.csv go")
    p.add_argument("--k", type=int, default=None, help="k of the k-NN scores shown (default: eval.k of the schema)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="agreement tolerance in AUROC points (default %(default)s)")
    p.add_argument("--partial", action="store_true", help="label absent results 'pending' (runs still going)")
    p.set_defaults(func=cmd_paper_table)
