"""Testing the claims on our summaries and learning curves: selection, pairing, the paper's numbers, verdicts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from firm_bench.core.config import recipe_variant
from firm_bench.core.facts.datasets import dataset as dataset_facts
from firm_bench.paper import reported as rep
from firm_bench.paper.claims.spec import (CLAIMS_PATH, STATISTICS, UNTRAINED, Claim, Side, _matched, _thaw, load_claims,
                                          problems_error)
from firm_bench.paper.claims.inputs import check_curves, check_summary
from firm_bench.paper.claims.stats import (ALPHA, BOOTSTRAP_SEED, N_RESAMPLES, EffectStats, effect_stats, holm,
                                           one_sided_t_p, t_test, within_seed_correlation)
from firm_bench.records.summary import read_curves, read_summaries

#: no verdict from fewer seeds than this (n of the test: the seeds; two seeds give a t test on one degree of freedom)
MIN_PAIRS = 2
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "not significant", "withheld", "too few", "not run",
                             "pending")


# --------------------------------------------------------------------------- #
# our cells
# --------------------------------------------------------------------------- #
_IDENT = ["dataset", "cls", "loss", "outliers", "recipe", "seed", "evalset", "score", "k"]


@dataclass
class _SideData:
    frame: pd.DataFrame  # _IDENT + value, ok, status, reason, run_dir (+ curve)
    dataset: str | None
    stand_in: bool
    n_rows: int


def _recipes(variant: str, recipes: Iterable[str]) -> set[str]:
    """The recipes of a workflow variant: base = the preset's own; else '<preset>-<variant>[+...]'
    (``config.recipe_variant``)."""
    return {r for r in map(str, recipes) if recipe_variant(r) == variant}


def _resolve_dataset(name: str, available: Iterable[str]) -> tuple[str, bool]:
    """Our dataset for a paper dataset: itself when run, else its stand-in (``reported.STAND_INS``)."""
    available = set(available)
    if name in available:
        return name, False
    ins = sorted(d for d, paper in rep.STAND_INS.items() if paper == name and d in available)
    return (ins[0], True) if ins else (name, False)


def _status(row_status: pd.Series, value: pd.Series, partial: bool) -> tuple[pd.Series, pd.Series]:
    ok = (row_status == "ok") & value.notna() & np.isfinite(value.astype(float))
    status = row_status.astype(object).where(~((row_status == "ok") & ~ok), "missing")
    if partial:
        status = status.replace("missing", "pending")
    return ok, status.where(~ok, "ok")


def _side_selects(side: Side, dataset: str, cls: str, loss: str, outliers: str, recipe: str) -> bool:
    """Whether a run (its identity) is one of the runs a selector side picks (``dataset`` already resolved)."""
    if loss != side.loss or outliers not in side.outliers or not _recipes(side.variant, [recipe]):
        return False
    if side.evalset != ("test",):
        return cls == "all"
    return cls != "all" and (side.cls == "all" or cls in side.cls)


@dataclass
class _PlanIndex:
    """The runs a workflow config plans, by (dataset, loss): which experiment would give a side its runs."""

    runs: dict[tuple[str, str], list[tuple[str, Any]]]
    datasets: set[str]

    @classmethod
    def build(cls, plan: Any) -> "_PlanIndex":
        runs: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for exp, members in plan.experiments.items():
            for run in dict.fromkeys(members):
                runs.setdefault((run.dataset, run.loss), []).append((exp, run))
        return cls(runs, {d for d, _ in runs})

    def hint(self, side: Side) -> str:
        """Where the config would produce the side's runs: its experiments (summaries), or that none does."""
        dataset, _ = _resolve_dataset(str(side.dataset), self.datasets)
        exps = sorted({exp for exp, r in self.runs.get((dataset, str(side.loss)), [])
                       if _side_selects(side, r.dataset, r.cls, r.loss, r.outliers, r.recipe)})
        if not exps:
            return "this config plans no such run"
        if len(exps) == 1:
            return f"planned in experiment {exps[0]} (results/summary/{exps[0]}.csv)"
        return f"planned in experiments {', '.join(exps)} (results/summary/<experiment>.csv)"


@dataclass
class _Index:
    """Summary rows and learning curves split by (dataset, loss), built once per evaluation."""

    summary: dict[tuple[str, str], pd.DataFrame]
    curves: dict[tuple[str, str], pd.DataFrame]
    summary_datasets: set[str]
    curve_datasets: set[str]
    reported: dict[str, pd.DataFrame]
    plan: _PlanIndex | None = None
    sides: dict[tuple, "_SideData"] = field(default_factory=dict)  # memo: claims share sides

    @classmethod
    def build(cls, summary: pd.DataFrame, curves: pd.DataFrame, reported: pd.DataFrame,
              plan: Any = None) -> "_Index":
        def split(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
            if df.empty:
                return {}
            return {(str(d), str(lo)): g for (d, lo), g in df.groupby(["dataset", "loss"], sort=False)}

        return cls(split(summary), split(curves), set(summary["dataset"].dropna().astype(str)),
                   set(curves["dataset"].dropna().astype(str)),
                   dict(_by_table(reported)), _PlanIndex.build(plan) if plan is not None else None)

    def rows(self, which: str, side: Side, dataset: str) -> pd.DataFrame | None:
        """The runs' rows (``summary`` or ``curves``) a selector side picks, before the statistic's filters."""
        df = getattr(self, which).get((dataset, str(side.loss)))
        if df is None:
            return None
        rows = df[df["outliers"].isin(side.outliers)]
        rows = rows[rows["recipe"].isin(_recipes(side.variant, rows["recipe"].dropna().unique()))]
        if side.evalset != ("test",):
            return rows[rows["cls"] == "all"]  # the unlabeled multiclass runs (Table 4)
        rows = rows[rows["cls"] != "all"]
        return rows if side.cls == "all" else rows[rows["cls"].isin(side.cls)]


def _curve_stat(claim: Claim, epochs: np.ndarray, auroc: np.ndarray) -> float:
    """One run's learning-curve statistic (points), epoch 0 (the untrained encoder) left out."""
    keep = epochs > 0
    e, y = epochs[keep], auroc[keep] * rep.PERCENT
    if e.size < 2:
        return math.nan
    order = np.argsort(e)
    e, y = e[order], y[order]
    if claim.statistic == "peak_drop":
        return float(y.max() - y[-1])
    if claim.statistic == "gain_after":
        at = float(claim.param("at")) * e[-1]
        return float(y[-1] - y[int(np.argmin(np.abs(e - at)))])
    if claim.statistic == "wiggle":
        return float((np.abs(np.diff(y)).sum() - abs(y[-1] - y[0])) / (y.size - 1))
    raise ValueError(f"{claim.id}: {claim.statistic!r} is not a per-run curve statistic")


def _side_data(claim: Claim, side: Side, index: _Index, partial: bool) -> _SideData:
    """The rows of one selector side: identity columns, value (points or a curve), ok, status (memoised)."""
    key = (claim.statistic, claim.params, side, partial)
    if key not in index.sides:
        index.sides[key] = _side_rows(claim, side, index, partial)
    return index.sides[key]


def _side_rows(claim: Claim, side: Side, index: _Index, partial: bool) -> _SideData:
    spec = STATISTICS[claim.statistic]
    datasets = index.summary_datasets | (index.curve_datasets if spec.source != "summary" else set())
    dataset, stand_in = _resolve_dataset(str(side.dataset), datasets)
    columns = [*_IDENT, "value", "ok", "status", "reason", "run_dir", "curve"]
    empty = pd.DataFrame(columns=columns)
    runs = index.rows("summary", side, dataset)
    if spec.source == "summary" and runs is None:
        return _SideData(empty, dataset, stand_in, 0)
    runs = runs if runs is not None else pd.DataFrame(columns=[*_IDENT, "auroc", "aulc", "status", "run_dir"])
    if spec.source == "summary":
        rows = runs[runs["evalset"].isin(side.evalset)]
        if claim.statistic == "auroc":
            rows = rows[rows["score"] == side.score]
            rows = rows[rows["k"].isna()] if side.k is None else rows[rows["k"] == side.k]
            col = "untrained_auroc" if side.baseline == UNTRAINED else "auroc"
            value = pd.to_numeric(rows[col], errors="coerce") * rep.PERCENT
            frame = rows.assign(value=value)
            frame["ok"], frame["status"] = _status(rows["status"], value, partial)
        else:  # aulc: one value per run
            rows = rows.sort_values("status", key=lambda s: s != "ok", kind="stable").drop_duplicates("run_dir")
            value = pd.to_numeric(rows["aulc"], errors="coerce") * rep.PERCENT
            frame = rows.assign(value=value, score=None, k=np.nan)
            frame["ok"], frame["status"] = _status(rows["status"].where(rows["status"] == "failed", "ok"), value,
                                                   partial)
        frame = frame.assign(curve=None)
        if frame.empty:
            return _SideData(empty, dataset, stand_in, 0)
        return _SideData(frame[columns].reset_index(drop=True), dataset, stand_in, len(frame))
    # learning curves: every run of the side in the summary, or in the curves when the summary lacks it
    finished: dict[str, str] = {}
    if not runs.empty:
        for run_dir, g in runs.groupby("run_dir"):
            aulc = pd.to_numeric(g["aulc"], errors="coerce")
            finished[str(run_dir)] = ("ok" if aulc.notna().any() or (g["status"] == "ok").any()
                                      else ("failed" if (g["status"] == "failed").all()
                                            else ("pending" if partial else "missing")))
    crv = index.rows("curves", side, dataset)
    crv = crv if crv is not None else pd.DataFrame()
    records = []
    run_info = {}
    if not runs.empty:
        for r in runs.drop_duplicates("run_dir").to_dict("records"):
            run_info[str(r["run_dir"])] = r
    curve_of = {str(k): g for k, g in crv.groupby("run_dir")} if not crv.empty else {}
    for run_dir in dict.fromkeys([*run_info, *curve_of]):
        info = run_info.get(run_dir) or curve_of[run_dir].iloc[0].to_dict()
        g = curve_of.get(run_dir)
        state = finished.get(run_dir, "ok")
        rec = {c: info.get(c) for c in ["dataset", "cls", "loss", "outliers", "recipe", "seed"]}
        rec.update(evalset="test", score=None, k=np.nan, run_dir=run_dir, reason=None, value=math.nan, curve=None)
        if g is None or g["epoch"].astype(int).gt(0).sum() < 2:
            rec.update(ok=False, status=state if state != "ok" else ("pending" if partial else "missing"),
                       reason="no learning curve (curve.csv) with two evaluations after epoch 0")
        elif state != "ok":
            rec.update(ok=False, status=state, reason=f"run {state}")
        else:
            e = g["epoch"].to_numpy(dtype=int)
            y = pd.to_numeric(g["auroc"], errors="coerce").to_numpy(dtype=float)
            good = np.isfinite(y)
            e, y = e[good], y[good]
            if spec.source == "pair":
                rec.update(ok=True, status="ok", curve=(e, y))
            else:
                v = _curve_stat(claim, e, y)
                rec.update(ok=math.isfinite(v), status="ok" if math.isfinite(v) else "missing", value=v)
        records.append(rec)
    if not records:
        return _SideData(empty, dataset, stand_in, 0)
    frame = pd.DataFrame(records)
    frame["seed"] = frame["seed"].astype(int)
    return _SideData(frame[columns], dataset, stand_in, len(frame))


def _epochs_to(target: float, curve: tuple[np.ndarray, np.ndarray]) -> tuple[float, bool]:
    """First evaluated epoch (after 0) whose AUROC (points) reaches ``target``; censored: last + one interval."""
    e, y = curve
    keep = e > 0
    e, y = e[keep], y[keep] * rep.PERCENT
    order = np.argsort(e)
    e, y = e[order], y[order]
    hit = np.flatnonzero(y >= target - 1e-9)
    if hit.size:
        return float(e[hit[0]]), False
    step = float(e[-1] - e[-2]) if e.size > 1 else float(e[-1])
    return float(e[-1] + step), True


def _last(curve: tuple[np.ndarray, np.ndarray]) -> float:
    e, y = curve
    return float(y[np.argmax(e)] * rep.PERCENT)


# --------------------------------------------------------------------------- #
# the paper's numbers
# --------------------------------------------------------------------------- #
def _paper_rows(reported: pd.DataFrame | Mapping[str, pd.DataFrame], cell: Mapping[str, Any]) -> list[pd.Series]:
    """The reported_results.csv row of each class of ``cell`` (see :func:`paper_cell`); KeyError names the cell."""
    table, metric = str(cell["table"]), str(cell["metric"])
    rows = reported.get(table) if isinstance(reported, Mapping) else reported[reported["paper_table"] == table]
    if rows is None:
        raise KeyError(f"reported_results.csv has no table {table!r}")
    rows = rows[rows["metric"] == metric]
    if cell.get("dataset") is not None:
        rows = rows[rows["dataset"] == cell["dataset"]]
    if cell.get("method") is not None:
        rows = rows[rows["method"] == cell["method"]]
    else:
        rows = rows[rows["loss"] == cell.get("loss")]
    ood = cell.get("ood")
    rows = rows[rows["ood"].isna()] if ood is None else rows[rows["ood"] == ood]
    classes = cell.get("cls", "mean")
    classes = [str(c) for c in classes] if isinstance(classes, (list, tuple)) else [str(classes)]
    outliers = cell.get("outliers")
    outliers = list(outliers) if isinstance(outliers, (list, tuple)) else [outliers]
    score = cell.get("score")
    out = []
    for c in classes:
        r = rows[rows["cls"] == c]
        keep = [(outliers == [None] or any(rep.matches(po, o) for o in outliers))
                and (score is None or rep.matches(ps, score)) for po, ps in zip(r["outliers"], r["score"])]
        r = r[np.array(keep, dtype=bool)] if len(r) else r
        if r.empty:
            raise KeyError(f"reported_results.csv has no cell {dict(cell)} (class {c!r})")
        unstated = r["outliers"].isna().astype(int) + r["score"].isna().astype(int)
        r = r[unstated == unstated.min()]
        if len(r) > 1:
            raise KeyError(f"reported_results.csv has {len(r)} cells for {dict(cell)} (class {c!r}): "
                           f"methods {sorted(set(r['method']))}, notes {sorted(set(r['note']))[:2]}")
        out.append(r.iloc[0])
    return out


def paper_cell(reported: pd.DataFrame | Mapping[str, pd.DataFrame], cell: Mapping[str, Any]) -> float:
    """The paper's number of one cell of reported_results.csv (our vocabulary), in %.

    ``reported``: ``reported.load_reported()`` (or its rows split by table).
    ``cell``: table, metric, dataset, and loss (our runs' rows) or method (a
    literature row), optional cls (``mean``, one class, or a list: the mean of
    those classes' numbers), ood (Table 4's OOD set or ``mean``), outliers (any
    of a list) and score. An unstated paper label matches any of ours
    (``reported.matches``); stated labels are preferred. Raises KeyError naming
    the cell when it is absent or ambiguous.
    """
    return float(np.mean([float(r["value_pct"]) for r in _paper_rows(reported, cell)]))


def paper_cell_std(reported: pd.DataFrame | Mapping[str, pd.DataFrame], cell: Mapping[str, Any]) -> float:
    """The spread the paper prints beside one cell (std over its five runs, in %); NaN where it prints none.

    A mean over a list of classes has no printed spread (NaN): the paper prints
    the std of its all-class mean only.
    """
    rows = _paper_rows(reported, cell)
    if len(rows) != 1:
        return math.nan
    v = pd.to_numeric(rows[0].get("std_pct"), errors="coerce")
    return float(v) if pd.notna(v) else math.nan


def _paper_side_cell(claim: Claim, role: str, side: Side, a: Side, classes: Sequence[str] | None = None) -> dict:
    """The reported_results.csv cell of one side (``paper`` table and overrides; constants: their own).

    ``classes``: our runs cover only these classes of an all-class side: the
    paper's mean over the same classes (a list cell), not its printed mean.
    """
    paper = _thaw(claim.paper) or {}
    over = dict(paper.get(role) or {})
    metric = claim.statistic if claim.statistic in ("auroc", "aulc") else "auroc"
    ref = a if side.reported is not None else side
    if ref.evalset != ("test",):
        ood, cls = ("mean" if ref.mean_over == "evalset" else ref.evalset[0]), "all"
    else:
        ood, cls = None, ("mean" if ref.cls == "all" else list(ref.cls))
        if classes is not None and ref.cls == "all":
            cls = sorted(classes, key=_class_order)
    if side.reported is not None:
        r = dict(side.reported)
        return {"table": r["table"], "method": r["method"], "dataset": a.dataset, "metric": metric,
                "ood": r.get("ood", ood), "cls": r.get("cls", cls)}
    cell = {"table": paper["table"], "dataset": side.dataset, "loss": side.loss, "metric": metric, "ood": ood,
            "cls": cls, "outliers": list(side.outliers), "score": side.score}
    cell.update(over)
    return cell


def _class_order(c: str) -> tuple:
    return (0, int(c), "") if str(c).isdigit() else (1, 0, str(c))


def _roles(claim: Claim) -> dict[str, Side]:
    return {"a": claim.a, "b": claim.b, **({"vs_a": claim.vs[0], "vs_b": claim.vs[1]} if claim.vs else {})}


def paper_effect(claim: Claim, reported: pd.DataFrame | Mapping[str, pd.DataFrame],
                 classes: Sequence[str] | None = None) -> tuple[float, dict[str, float]]:
    """The paper's own effect of ``claim`` (from the tables it prints), and the numbers it comes from.

    NaN when the paper prints no number for a side (figures, learning curves).
    ``classes``: the paper's effect over these classes only (where its table
    prints them). Raises KeyError when a cited cell is not in reported_results.csv.
    """
    if claim.paper is None and claim.b.reported is None:
        return math.nan, {}
    if claim.b.value is not None and claim.paper is None:
        return math.nan, {}
    reported = _by_table(reported)
    nums: dict[str, float] = {}
    if claim.paper is None:  # a literature constant without our side in the paper (not used by the file)
        return math.nan, {"b": paper_cell(reported, _paper_side_cell(claim, "b", claim.b, claim.a, classes))}
    for role, side in _roles(claim).items():
        if side.value is not None:
            nums[role] = side.value
        else:
            nums[role] = paper_cell(reported, _paper_side_cell(claim, role, side, claim.a, classes))
    if claim.effect == "relative":
        return (nums["a"] / nums["b"] - 1) * 100, nums
    eff = nums["a"] - nums["b"]
    if claim.vs:
        eff -= nums["vs_a"] - nums["vs_b"]
    return eff, nums


def paper_spread(claim: Claim, reported: pd.DataFrame | Mapping[str, pd.DataFrame]) -> float:
    """The paper's sd over runs of its effect, from the stds it prints beside each side (NaN where one is missing).

    The paper prints each side's std over its five runs, not the std of the
    paired difference, so the sides are taken as independent: sd = sqrt(sum
    of the sides' variances) (a constant of the text counts 0; a literature
    row its own std). For a relative effect r = A/B - 1, the delta method:
    100 sqrt(sd_A^2 + (A/B)^2 sd_B^2) / B.
    """
    if claim.paper is None:
        return math.nan
    reported = _by_table(reported)
    sds, nums = {}, {}
    for role, side in _roles(claim).items():
        if side.value is not None:
            sds[role], nums[role] = 0.0, side.value
            continue
        cell = _paper_side_cell(claim, role, side, claim.a)
        # a literature row is a constant of our test: its own spread does not enter
        sds[role] = 0.0 if side.reported is not None else paper_cell_std(reported, cell)
        nums[role] = paper_cell(reported, cell)
    if not all(math.isfinite(v) for v in sds.values()):
        return math.nan
    if claim.effect == "relative":
        ratio = nums["a"] / nums["b"]
        return 100 * math.sqrt(sds["a"] ** 2 + ratio ** 2 * sds["b"] ** 2) / nums["b"]
    return math.sqrt(sum(v ** 2 for v in sds.values()))


def stated_size(claim: Claim, reported: pd.DataFrame | Mapping[str, pd.DataFrame]) -> float:
    """The size the paper states for ``claim`` (text value or printed row), NaN when it states none."""
    if claim.stated is None:
        return math.nan
    st = _thaw(claim.stated)
    if "value" in st:
        return float(st["value"])
    cell = dict(st["reported"])
    cell.setdefault("dataset", claim.a.dataset)
    return paper_cell(_by_table(reported), cell)


def _variants() -> set[str]:
    """The workflow variants the paper config defines (a side's ``variant`` other than base is one of them)."""
    from firm_bench.planning import grid

    config = grid.load_workflow_config("paper")
    return {str(v) for e in config["experiments"].values() for v in (e.get("variants") or {})}


def check_claims(claims: Sequence[Claim], reported: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
                 where: str = "claims.yaml", variants: set[str] | None = None) -> list[tuple[str, str]]:
    """What the parser cannot see: every cited cell of reported_results.csv (``paper:``, ``stated:``, a
    reported side) and every variant name. Returns the problems as (claim id, message naming it and the key)."""
    reported = _by_table(reported if reported is not None else rep.load_reported())
    variants = variants if variants is not None else _variants()
    out = []

    def fail(cid: str, key: str, msg: str) -> None:
        out.append((cid, f"{where}: claim {cid!r}: key {key!r}: {msg}"))

    for c in claims:
        if c.paper is not None:
            table = str(dict(_thaw(c.paper))["table"])
            if table not in reported:
                fail(c.id, "paper.table", f"reported_results.csv has no table {table!r}; valid: "
                                          f"{', '.join(sorted(reported))}")
            else:
                try:
                    paper_effect(c, reported)
                except KeyError as exc:
                    fail(c.id, "paper", str(exc.args[0]))
        elif c.b.reported is not None:
            try:
                paper_cell(reported, _paper_side_cell(c, "b", c.b, c.a))
            except KeyError as exc:
                fail(c.id, "b.reported", str(exc.args[0]))
        if c.stated is not None:
            try:
                stated_size(c, reported)
            except KeyError as exc:
                fail(c.id, "stated.reported", str(exc.args[0]))
        for role, side in c.sides().items():
            if side.variant != "base" and side.variant not in variants:
                fail(c.id, f"{role}.variant", f"no experiment of the paper config defines variant "
                                              f"{side.variant!r}; valid: base, {', '.join(sorted(variants))}")
    return out


def read_claims(path: str | Path | None = None, *, partial: bool = False,
                reported: pd.DataFrame | None = None) -> tuple[list[Claim], list[str]]:
    """The claims file validated whole (its entries, then their cells and variants), every problem at once.

    Raises one :class:`ClaimsError` listing them all; with ``partial`` the bad
    claims are left out instead and their problems returned beside the
    others (the outputs name them), so a bad claim never blocks the rest.
    """
    where = str(path if path is not None else CLAIMS_PATH)
    problems: list[str] = []
    claims = load_claims(path, problems=problems)
    cells = check_claims(claims, reported, where)
    problems += [msg for _, msg in cells]
    if problems and not partial:
        raise problems_error(where, problems)
    bad = {cid for cid, _ in cells}
    return [c for c in claims if c.id not in bad], problems


def _by_table(reported: pd.DataFrame | Mapping[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    """The reported numbers split by paper table (what :func:`paper_cell` looks cells up in)."""
    if isinstance(reported, Mapping):
        return reported
    return {str(t): g for t, g in reported.groupby("paper_table", sort=False)}


# --------------------------------------------------------------------------- #
# evaluation
# --------------------------------------------------------------------------- #
#: the paper's runs per cell: "mean +/- std over five runs" (recipe.md); the coverage's seeds are out of these
PAPER_SEEDS = 5


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, with our effect, its uncertainty, its coverage, its power and the paper's effect.

    ``n_pairs`` is n of the test: the seeds (each the mean over the claim's
    cells, ``n_cells`` class x seed cells in all); ``n_units`` the seeds found.
    ``p_pooled`` is the secondary pooled analysis (the cells as if
    independent), never the verdict; ``within_seed_corr`` the measured
    correlation of two cells' differences of the same seed. ``power``: whether
    the paper's own numbers, reproduced exactly, could be supported at our n
    and Holm position (docs/CLAIMS.md).
    """

    claim: Claim
    verdict: str
    detail: str
    n_pairs: int
    n_units: int
    coverage: str
    stand_in: bool
    stand_in_of: str
    stats: EffectStats | None
    paper_effect: float
    paper_numbers: Mapping[str, float]
    stated: float
    n_cells: int = 0
    n_classes: int = 0
    n_classes_paper: int = 0
    seeds: tuple[int, ...] = ()
    paper_scope: str = ""
    p_pooled: float = math.nan
    within_seed_corr: float = math.nan
    paper_sd: float = math.nan
    paper_p: float = math.nan
    power_n: int = 0
    power: str = ""
    p_holm: float = math.nan
    p_holm_against: float = math.nan
    family: str = ""
    family_size: int = 0

    @property
    def tested(self) -> bool:
        return self.stats is not None and self.verdict not in ("too few", "not run", "pending", "withheld")

    @property
    def paper_in_ci(self) -> bool | None:
        """Whether the paper's effect (its table's numbers, else its stated size) lies in our interval."""
        ref = self.paper_effect if math.isfinite(self.paper_effect) else self.stated
        if self.stats is None or not math.isfinite(ref):
            return None
        lo, hi = self.stats.ci
        return bool(lo <= ref <= hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _units(claim: Claim, data: Mapping[str, _SideData]) -> tuple[pd.DataFrame, list[str], str | None, set | None]:
    """The merged unit table (one row per unit, value_<role> / ok_<role> per side), its key, a problem, and the
    classes (OOD sets) a ``mean_over`` side averages per seed."""
    matched = _matched(claim.sides(), claim.statistic)
    key = ["seed"] + [f for f in ("dataset", "loss", "outliers", "recipe", "cls", "evalset", "score", "k")
                      if matched[f] and f != claim.a.mean_over]
    # a key field no side has a value for (k of a non-k-NN score) is no key
    key = [c for c in key if c == "seed" or any(d.frame[c].notna().any() for d in data.values())]
    frames = {}
    mean_over = claim.a.mean_over
    common_items: set | None = None
    if mean_over and matched[mean_over]:  # the same classes (OOD sets) on every side: average the common ones
        for d in data.values():
            items = set(d.frame[mean_over])
            common_items = items if common_items is None else common_items & items
    for role, d in data.items():
        f = d.frame.copy()
        f["k"] = pd.to_numeric(f["k"], errors="coerce")
        if mean_over:
            if common_items is not None:
                f = f[f[mean_over].isin(common_items)]
            items = set(f[mean_over])
            dup = f.duplicated([*key, mean_over])
            if dup.any():
                return pd.DataFrame(), key, _ambiguous(role, f[f.duplicated([*key, mean_over], keep=False)], key), None
            agg = []
            for k_vals, g in f.groupby(key, dropna=False, sort=True):
                complete = set(g[mean_over]) == items and bool(g["ok"].all())
                bad = g.loc[~g["ok"], "status"]
                agg.append({**dict(zip(key, k_vals if isinstance(k_vals, tuple) else (k_vals,))),
                            "value": float(g["value"].mean()) if complete else math.nan, "ok": complete,
                            "status": "ok" if complete else (_worst(list(bad)) if len(bad) else "missing")})
            f = pd.DataFrame(agg, columns=[*key, "value", "ok", "status"])
        elif f.duplicated(key).any():
            return pd.DataFrame(), key, _ambiguous(role, f[f.duplicated(key, keep=False)], key), None
        keep = [*key, "value", "ok", "status"] + (["curve"] if "curve" in f else [])
        frames[role] = f[keep].rename(columns={c: f"{c}_{role}" for c in ("value", "ok", "status", "curve")})
    merged = None
    for f in frames.values():
        f = f.astype({c: object for c in key if c != "seed"})
        merged = f if merged is None else merged.merge(f, on=key, how="outer")
    for role in frames:
        merged[f"ok_{role}"] = merged[f"ok_{role}"].astype("boolean").fillna(False).astype(bool)
        merged[f"status_{role}"] = merged[f"status_{role}"].astype(object).where(
            merged[f"status_{role}"].notna(), "absent")
    items = set(map(str, common_items)) if common_items is not None else None
    return merged.reset_index(drop=True), key, None, items


def _worst(statuses: Sequence[str]) -> str:
    for s in ("failed", "pending", "missing"):
        if s in statuses:
            return s
    return statuses[0] if statuses else "missing"


def _ambiguous(role: str, rows: pd.DataFrame, key: Sequence[str]) -> str:
    differ = [c for c in _IDENT if c not in key and c in rows and rows[c].astype(str).nunique() > 1]
    return (f"side {role} selects several rows per unit (they differ in {', '.join(differ) or 'nothing named'}: "
            f"e.g. {', '.join(sorted(set(rows['recipe'].astype(str))))}); narrow its selector")


def _missing_detail(claim: Claim, data: Mapping[str, _SideData], merged: pd.DataFrame, n: int,
                    plan: _PlanIndex | None = None) -> str:
    """What is missing: the sides without runs (and where the config plans them), the units not paired."""
    parts = []
    sides = claim.sides()
    absent: dict[str, list[str]] = {}  # where the config plans them -> the sides without runs
    for role, d in data.items():
        side = sides[role]
        if d.n_rows == 0:
            absent.setdefault(plan.hint(side) if plan is not None else "",
                              []).append(f"side {role} ({side.describe(score=claim.statistic == 'auroc')})")
            continue
        if not merged.empty:
            st = merged[f"status_{role}"].astype(str)
            bad = st[st != "ok"].value_counts()
            if len(bad):
                parts.append(f"side {role}: " + ", ".join(
                    f"{c} unit{'s' if c != 1 else ''} {'not run' if s == 'absent' else s}" for s, c in bad.items()))
    parts = [f"no runs in the summaries for {' nor '.join(names)}" + (f": {hint}" if hint else "")
             for hint, names in absent.items()] + parts
    units = len(merged)
    if units:
        parts.append(f"{n} of {units} unit{'s' if units != 1 else ''} paired")
    return "; ".join(parts)


def _paper_classes(claim: Claim) -> tuple[str, int]:
    """What the claim's side a averages over in the paper, and how many: ('classes', 10), ('OOD sets', 5)."""
    a = claim.a
    if a.evalset != ("test",):
        return "OOD sets", len(a.evalset)
    if a.cls != "all":
        return "classes", len(a.cls)
    return "classes", len(dataset_facts(str(a.dataset)).classes)


def _coverage(claim: Claim, n_items: int, seeds: Sequence[int]) -> str:
    """'classes 9/10; seeds 3/5 (0,1,2)': what a verdict rests on, out of what the paper used."""
    what, wanted = _paper_classes(claim)
    seeds = sorted(int(s) for s in seeds)
    return f"{what} {n_items}/{wanted}; seeds {len(seeds)}/{PAPER_SEEDS} ({','.join(map(str, seeds))})"


def _rectangle(merged: pd.DataFrame, cell_key: Sequence[str], complete: np.ndarray) -> np.ndarray:
    """Rows of ``merged`` in the largest complete cells x seeds block found greedily (a per-seed mean needs it).

    A per-seed mean over cells compares like with like only when every seed
    has the same cells. While some (cell, seed) is not paired, the cell or the
    seed with the largest share of unpaired entries is dropped (a cell on a
    tie: n is the seeds). Returns the mask of the rows kept (all paired).
    """
    if not len(merged):
        return np.zeros(0, dtype=bool)
    cells = (pd.MultiIndex.from_frame(merged[list(cell_key)].astype(str)).factorize()[0] if cell_key
             else np.zeros(len(merged), dtype=int))
    seeds = merged["seed"].astype(int).to_numpy()
    grid = pd.DataFrame({"cell": cells, "seed": seeds, "ok": complete}).pivot_table(
        index="cell", columns="seed", values="ok", aggfunc="all", fill_value=False).astype(bool)
    while grid.size and not grid.to_numpy().all():
        miss_cell, miss_seed = 1 - grid.mean(axis=1), 1 - grid.mean(axis=0)
        if miss_cell.max() >= miss_seed.max():
            grid = grid.drop(index=miss_cell.idxmax())
        else:
            grid = grid.drop(columns=miss_seed.idxmax())
    return np.isin(cells, grid.index) & np.isin(seeds, grid.columns) & complete


def _cell_values(claim: Claim, pairs: pd.DataFrame, constant: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per paired cell: the values compared (a, b; with vs: a - b and vs.a - vs.b) and the censored times."""
    n = len(pairs)
    censored = 0
    if STATISTICS[claim.statistic].source == "pair" and n:
        ta, tb = [], []
        for ca, cb in zip(pairs["curve_a"], pairs["curve_b"]):
            target = _last(cb)
            (x, cx), (y, cy) = _epochs_to(target, ca), _epochs_to(target, cb)
            ta.append(x)
            tb.append(y)
            censored += int(cx) + int(cy)
        return np.array(ta), np.array(tb), censored
    va = pairs["value_a"].to_numpy(dtype=float) if n else np.array([])
    vb = np.full(n, constant) if claim.b.constant else (pairs["value_b"].to_numpy(dtype=float) if n else np.array([]))
    if claim.vs and n:
        va = va - vb
        vb = pairs["value_vs_a"].to_numpy(dtype=float) - pairs["value_vs_b"].to_numpy(dtype=float)
    return va, vb, censored


def _items_used(claim: Claim, pairs: pd.DataFrame, cell_key: Sequence[str], items: set | None) -> list[str]:
    """The classes (OOD sets) the verdict rests on."""
    field_ = "evalset" if claim.a.evalset != ("test",) else "cls"
    if field_ in cell_key:
        return sorted({str(v) for v in pairs[field_]}, key=_class_order)
    if claim.a.mean_over == field_ and items is not None:
        return sorted(items, key=_class_order)
    own = claim.a.evalset if field_ == "evalset" else claim.a.cls
    return list(own) if own != "all" else []


@dataclass(frozen=True)
class _Subset:
    """The paper's numbers for a verdict on a subset of its classes (see :func:`_paper_subset`)."""

    same_classes: bool  # the paper prints the classes: its numbers are recomputed over the same ones
    fields: dict  # ClaimResult fields: paper_effect, paper_numbers, paper_scope, paper_sd
    withheld: str  # a vs-reported claim the printed number cannot be compared with: why


def _paper_subset(claim: Claim, reported: Mapping[str, pd.DataFrame], used: Sequence[str],
                  wanted: int) -> _Subset | None:
    """Where our runs cover fewer of an all-class claim's classes than the paper: the paper's mean over the same
    classes where its table prints them (its spread is then unknown), else its all-class mean labelled as such and
    a vs-reported verdict withheld. None when there is nothing to adjust."""
    prints = claim.paper is not None or claim.b.reported is not None
    if not (prints and claim.a.cls == "all" and used and len(used) < wanted):
        return None
    try:
        eff, nums = paper_effect(claim, reported, classes=used)
    except KeyError:
        scope = f"the paper prints only its mean over all {wanted} classes; ours covers {len(used)}"
        withheld = (f"vs reported withheld: {scope}, so the printed number is not comparable (classes used: "
                    f"{', '.join(used)})") if claim.b.reported is not None else ""
        return _Subset(False, {"paper_scope": scope}, withheld)
    scope = f"the paper's numbers are its mean over the same {len(used)} classes"
    return _Subset(True, {"paper_effect": eff, "paper_numbers": nums, "paper_scope": scope,
                          "paper_sd": math.nan}, "")


def _evaluate_one(claim: Claim, index: _Index, partial: bool, min_pairs: int, n_resamples: int,
                  seed: int) -> ClaimResult:
    reported = index.reported
    try:
        p_eff, p_nums = paper_effect(claim, reported)
    except KeyError:
        p_eff, p_nums = math.nan, {}
    try:
        stated = stated_size(claim, reported)
    except KeyError:
        stated = math.nan
    try:
        p_sd = paper_spread(claim, reported)
    except KeyError:
        p_sd = math.nan
    data = {role: _side_data(claim, side, index, partial) for role, side in claim.sides().items()}
    stand_ins = sorted({f"{d.dataset} for {s.dataset}" for d, s in zip(data.values(), claim.sides().values())
                        if d.stand_in})
    what, wanted = _paper_classes(claim)
    a_frame = data["a"].frame
    seen_items = a_frame["evalset" if what == "OOD sets" else "cls"].nunique() if len(a_frame) else 0
    base = dict(claim=claim, paper_effect=p_eff, paper_numbers=p_nums, stated=stated, stand_in=bool(stand_ins),
                stand_in_of="; ".join(stand_ins), n_classes_paper=wanted, paper_sd=p_sd,
                coverage=(_coverage(claim, seen_items, {int(s) for s in a_frame["seed"]}) + " found"
                          if len(a_frame) else ""))
    waiting = "pending" if partial else "not run"
    if any(d.n_rows == 0 for d in data.values()):
        return ClaimResult(verdict=waiting, detail=_missing_detail(claim, data, pd.DataFrame(), 0, index.plan),
                           n_pairs=0, n_units=0, stats=None, **base)
    merged, key, problem, items = _units(claim, data)
    if problem:
        return ClaimResult(verdict="not run", detail=problem, n_pairs=0, n_units=0, stats=None, **base)
    complete = np.ones(len(merged), dtype=bool)
    for role in data:
        complete &= merged[f"ok_{role}"].to_numpy(dtype=bool)
    cell_key = [k for k in key if k != "seed"]
    kept = _rectangle(merged, cell_key, complete)
    pairs = merged[kept]
    n_seeds_found = int(merged["seed"].nunique())
    used = _items_used(claim, pairs, cell_key, items)
    subset = _paper_subset(claim, reported, used if len(pairs) else [], wanted) if what == "classes" else None
    if subset is not None:
        base.update(subset.fields)
    constant = math.nan
    if claim.b.constant:
        constant = (claim.b.value if claim.b.value is not None
                    else _constant(claim, reported, used if subset is not None and subset.same_classes else None))
    va, vb, censored = _cell_values(claim, pairs, constant)
    cells = pd.DataFrame({"seed": pairs["seed"].astype(int).to_numpy(), "a": va, "b": vb})
    if cell_key:
        cells["cell"] = pd.MultiIndex.from_frame(pairs[cell_key].astype(str)).factorize()[0]
    else:
        cells["cell"] = 0
    per_seed = cells.groupby("seed", sort=True)[["a", "b"]].mean()
    seeds = tuple(int(s) for s in per_seed.index)
    n = len(seeds)
    n_cells = len(cells)
    per_cell = n_cells // n if n else 0
    icc, pooled = math.nan, math.nan
    if n and per_cell > 1:
        grid = cells.assign(d=cells["a"] - cells["b"]).pivot(index="cell", columns="seed", values="d")
        icc = within_seed_correlation(grid.to_numpy())
        pooled = t_test(cells["a"].to_numpy() - cells["b"].to_numpy(), claim.boundary, claim.alternative)
    base.update(n_cells=n_cells, n_classes=len(used), seeds=seeds, within_seed_corr=icc, p_pooled=pooled,
                coverage=_coverage(claim, len(used), seeds) if n else base["coverage"])
    unit = (f"{n} seed{'s' if n != 1 else ''}" + (f", each the mean over {per_cell} paired cells" if per_cell > 1
                                                  else ""))
    dropped = len(merged) - n_cells
    detail = unit + (("; " + _missing_detail(claim, data, merged, int(complete.sum()))) if dropped else "")
    if dropped and int(complete.sum()) > n_cells:
        detail += (f"; {int(complete.sum()) - n_cells} paired cells left out so that every seed has the same "
                   "cells")
    if censored:
        detail += f"; {censored} of {2 * n_cells} times to target censored (never reached: last epoch + one interval)"
    if n == 0:
        return ClaimResult(verdict=waiting, detail=detail, n_pairs=0, n_units=n_seeds_found, stats=None, **base)
    if claim.b.constant and not math.isfinite(constant):
        return ClaimResult(verdict="not run", detail="the reported number is not in reported_results.csv",
                           n_pairs=n, n_units=n_seeds_found, stats=None, **base)
    stats = effect_stats(per_seed["a"].to_numpy(), per_seed["b"].to_numpy(), effect=claim.effect,
                         alternative=claim.alternative, boundary=claim.boundary, n_resamples=n_resamples, seed=seed)
    if subset is not None and subset.withheld:
        return ClaimResult(verdict="withheld", detail=f"{subset.withheld}; {detail}", n_pairs=n,
                           n_units=n_seeds_found, stats=stats, **base)
    if n < min_pairs:
        return ClaimResult(verdict="too few", detail=f"at least {min_pairs} seeds needed for a verdict; " + detail,
                           n_pairs=n, n_units=n_seeds_found, stats=stats, **base)
    return ClaimResult(verdict="", detail=detail, n_pairs=n, n_units=n_seeds_found, stats=stats, **base)


def _constant(claim: Claim, reported: pd.DataFrame, classes: Sequence[str] | None = None) -> float:
    try:
        return paper_cell(reported, _paper_side_cell(claim, "b", claim.b, claim.a, classes))
    except KeyError:
        return math.nan


def family_of(claim: Claim, stand_in: bool) -> str:
    """The Holm family of a claim: the paper's claims, our learning checks, each on real or stand-in data."""
    name = "learns" if claim.kind == "learns" else "paper"
    if stand_in:
        return "stand-in" if name == "paper" else "stand-in learns"
    return name


def _paper_p(r: ClaimResult) -> tuple[int, float]:
    """n and the one-sided t p our test would give if the paper's numbers were reproduced exactly (NaN: unknown).

    The paper's effect as our mean, its printed spread (:func:`paper_spread`)
    as our sd, at our n (the paper's :data:`PAPER_SEEDS` before runs exist).
    """
    n = r.n_pairs if r.n_pairs >= 2 else PAPER_SEEDS
    if not (math.isfinite(r.paper_effect) and math.isfinite(r.paper_sd)):
        return n, math.nan
    return n, one_sided_t_p(r.paper_effect, r.paper_sd, n, r.claim.boundary, r.claim.alternative)


def _power(results: Sequence[ClaimResult], alpha: float) -> list[dict]:
    """Power in the open, for one Holm family: could each claim be supported if the paper were reproduced exactly?

    Every claim's p from the paper's numbers (:func:`_paper_p`) goes through
    the same Holm correction as the verdicts (both directions, one family);
    a claim whose paper numbers are unknown counts as p = 1 (never rejected,
    so it never helps another claim). Supported after Holm: "reproducible at
    n = N", else "underpowered at n = N"; an effect the paper's own numbers
    put on the other side: "the paper's own numbers do not show it".
    """
    np_ = [_paper_p(r) for r in results]
    ps = np.array([p for _, p in np_], dtype=float)
    known = np.isfinite(ps)
    fam = np.where(known, ps, 1.0)
    adj = holm(np.concatenate([fam, np.where(known, 1 - fam, 1.0)]))[:len(results)]
    out = []
    for (n, p), a in zip(np_, adj):
        if not math.isfinite(p):
            out.append(dict(power_n=n, paper_p=p, power=""))
        elif p >= 0.5:
            out.append(dict(power_n=n, paper_p=p, power="the paper's own numbers do not show it"))
        else:
            out.append(dict(power_n=n, paper_p=p,
                            power=f"reproducible at n = {n}" if a < alpha else f"underpowered at n = {n}"))
    return out


def evaluate_claims(summary_df: pd.DataFrame, curves_df: pd.DataFrame | None = None,
                    claims: Sequence[Claim] | None = None, partial: bool = False, *, min_pairs: int = MIN_PAIRS,
                    alpha: float = ALPHA, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    reported: pd.DataFrame | None = None, plan: Any = None) -> list[ClaimResult]:
    """Test every claim on our summary rows (``records.summary.COLUMNS``) and learning curves (``CURVE_COLUMNS``).

    The unit is the seed (docs/CLAIMS.md): a claim over several classes is
    tested on the per-seed class means. Works on partial results: a claim
    whose runs are absent is ``not run`` (``pending`` with ``partial``), one
    with fewer than ``min_pairs`` seeds ``too few``. Holm's correction is
    applied over both directions of every tested claim of a family
    (:func:`family_of`). ``plan`` (``planning.grid.Plan`` of the config in
    effect): a side without runs names the experiment that plans them, or
    says that none does. Summaries are validated (``inputs.check_summary``).
    """
    summary = read_summaries(check_summary(summary_df if summary_df is not None else pd.DataFrame()))
    curves = read_curves(check_curves(curves_df if curves_df is not None else pd.DataFrame()))
    if not curves.empty:
        curves["seed"] = pd.to_numeric(curves["seed"], errors="coerce").astype("Int64")
        curves["epoch"] = pd.to_numeric(curves["epoch"], errors="coerce")
        curves = curves[curves["seed"].notna() & curves["epoch"].notna()]
    if not summary.empty:
        summary["seed"] = pd.to_numeric(summary["seed"], errors="coerce").astype("Int64")
    claims = list(claims) if claims is not None else load_claims()
    reported = reported if reported is not None else rep.load_reported()
    index = _Index.build(summary, curves, reported, plan)
    results = [_evaluate_one(c, index, partial, min_pairs, n_resamples, seed) for c in claims]
    out: list[ClaimResult] = list(results)
    families = [family_of(r.claim, r.stand_in) for r in results]
    for name in dict.fromkeys(families):
        members = [i for i, f in enumerate(families) if f == name]
        idx = [i for i in members if results[i].verdict == ""]
        p_for = np.array([results[i].stats.p_for for i in idx], dtype=float)
        p_against = np.array([results[i].stats.p_against for i in idx], dtype=float)
        adj = holm(np.concatenate([p_for, p_against]))  # one family over both directions
        m = int(np.isfinite(p_for).sum())
        for j, i in enumerate(idx):
            pf, pa = float(adj[j]), float(adj[len(idx) + j])
            verdict = ("supported" if pf < alpha else "contradicted" if pa < alpha else "not significant")
            out[i] = dataclasses.replace(results[i], verdict=verdict, p_holm=pf, p_holm_against=pa, family=name,
                                         family_size=m)
        for i, power in zip(members, _power([out[i] for i in members], alpha)):
            out[i] = dataclasses.replace(out[i], **power)
    return out
