"""Matching our cells with the paper's: :func:`compare` and the agreement.

:func:`compare` turns our summary rows (``results/summary/<experiment>.csv``
of the experiments that feed the table, ``records.summary.read_summaries``)
and the paper's numbers (``firm_bench.paper.reported``) into one row per table
cell (:data:`CELL_COLUMNS`): our mean and sample std over seeds, the number of
seeds, a status when there is no number, the paper's value and std, and
ours - paper. All values are in percent (AUROC / AULC points; relative
improvements in %).

Cell states (never a 0, never a blank that reads as a number):
``failed`` the run failed (reason in the CSV), ``damaged`` a file of the run is damaged (the
file and what to do in the CSV), ``missing`` an expected result
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
the learning-curve k and the reference code's choice; the paper's k was lost;
``labels.default_k``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from firm_bench.paper import reported as rep
from firm_bench.paper.labels import default_k, recipe_of
from firm_bench.paper.tables.specs import TableSpec, spec_of
from firm_bench.records.summary import read_summaries

__all__ = [
    "CELL_COLUMNS",
    "DEFAULT_TOLERANCE",
    "METRIC_NAMES",
    "UNTRAINED",
    "UNTRAINED_DISPLAY",
    "Agreement",
    "agreement",
    "agrees",
    "combined_status",
    "compare",
]

#: agreement tolerance with the paper, in AUROC points (percent)
DEFAULT_TOLERANCE = 1.0

CELL_COLUMNS = [
    "table", "row", "column", "row_order", "column_order", "kind", "method", "loss", "outliers", "score",
    "recipe", "dataset", "paper_dataset", "stand_in", "ood", "cls", "metric", "k", "ours_mean", "ours_std",
    "n_ok", "n_runs", "n_classes", "mean_of", "ours_status", "ours_reason", "paper_value", "paper_std",
    "paper_note", "paper_basis", "reported_only", "diff", "comparable", "schedule", "checkpoint", "select_score",
    "bn_momentum", "head_init", "loss_form", "id_labels", "tau", "normalization", "precision", "image_size",
    "eval_size", "eval_zoom", "batching",
    "batch_size", "epochs",
]
_ROW_FIELDS = ["kind", "method", "loss", "outliers", "score", "recipe", "dataset"]
_MEAN = "mean"
#: the loss key and display name of the untrained-encoder baseline rows
UNTRAINED = "untrained"
UNTRAINED_DISPLAY = "untrained encoder"
_IMPROVEMENT = "improvement"
METRIC_NAMES = {"auroc": "AUROC", "aulc": "AULC"}


# --------------------------------------------------------------------------- #
# our cells
# --------------------------------------------------------------------------- #
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


_STATUS_PRIORITY = ("failed", "damaged", "pending", "missing")


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
    from firm_bench.core.facts.datasets import DATASETS

    if spec.mean_over == "ood":
        return n_ood
    return len(DATASETS[dataset].classes) if dataset in DATASETS else None


def _our_cells(spec: TableSpec, long: pd.DataFrame, n_ood: int) -> pd.DataFrame:
    """Per-class (or per OOD set) cells and the mean cell, each mean +/- std over seeds.

    The mean of a seed averages every class (OOD set) of the row; a seed with
    any of them not ok has no mean (its status is the worst of theirs).
    ``n_classes`` = "covered/complete" tells whether the mean covers the dataset.
    """
    ident = ["kind", "method", "loss", "outliers", "score", "recipe", "dataset", "metric"]
    ident += [c for c in ("ood", "cls") if c != spec.mean_over]
    item_of = spec.mean_over
    recipes = {r: recipe_of(g) for r, g in long.groupby("recipe", dropna=False)}
    # the form is the loss's own (one recipe trains NT-Xent pairwise and SupCon concat)
    forms = {key: recipe_of(g)["loss_form"] for key, g in long.groupby(["loss", "recipe"], dropna=False)}
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
    sources = ([spec] if spec.per_class else []) + [spec_of(t) for t in spec.per_class_from]
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
    stand_in = cells["stand_in"].fillna(False).astype(bool)  # never a difference between two datasets
    cells["diff"] = (cells["ours_mean"] - cells["paper_value"]).where(~(subset & ~sound) & ~stand_in)
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
    from firm_bench.core.facts import CONFIG_NAMES

    cells = cells.reset_index(drop=True)
    recs = cells.to_dict("records")
    run = cells["ours_status"].isin(["ok", "failed", "missing", "pending"])
    show_recipe = cells.loc[run, "recipe"].dropna().nunique() > 1
    show_dataset = cells.loc[run, "dataset"].dropna().nunique() > 1
    cells["row"] = [_row_label(spec, c, show_recipe, show_dataset) for c in recs]
    axis_vals = [_axis_value(spec, c) for c in recs]
    col_pos = _positions(axis_vals, _paper_column_order(spec, cells))
    cells["column"] = [f"{v} {METRIC_NAMES.get(m, m)}" if len(spec.metrics) > 1 else v
                       for v, m in zip(axis_vals, cells["metric"])]
    cells["column_order"] = [col_pos[v] * len(spec.metrics) + spec.metrics.index(m)
                             for v, m in zip(axis_vals, cells["metric"])]
    clash = cells[cells.duplicated(["row", "column"], keep=False)]
    if not clash.empty:
        raise ValueError(f"{spec.name}: several cells share row {clash['row'].iloc[0]!r} and column "
                         f"{clash['column'].iloc[0]!r}; give the table's experiments distinct labels")
    rank = {f: {n: i for i, n in enumerate(CONFIG_NAMES[key])}
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
# agreement
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
