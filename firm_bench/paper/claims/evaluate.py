"""Testing the claims on our summaries and learning curves: selection, pairing, the paper's numbers, verdicts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from firm_bench.core import catalog
from firm_bench.paper import reported as rep
from firm_bench.paper.claims.spec import STATISTICS, UNTRAINED, Claim, Side, _matched, _thaw, load_claims
from firm_bench.paper.claims.stats import ALPHA, BOOTSTRAP_SEED, N_RESAMPLES, EffectStats, effect_stats, holm
from firm_bench.records.summary import read_curves, read_summaries

#: no verdict from fewer pairs than this
MIN_PAIRS = 3
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "not significant", "too few", "not run", "pending")


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
    """The recipes of a workflow variant: base = the preset's own (no '-'); else '<preset>-<variant>'."""
    recipes = {str(r) for r in recipes}
    if variant == "base":
        return {r for r in recipes if "-" not in r}
    return {r for r in recipes if r.split("-", 1)[1:] == [variant]}


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
    values = []
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
        values.append(float(r["value_pct"].iloc[0]))
    return float(np.mean(values))


def _paper_side_cell(claim: Claim, role: str, side: Side, a: Side) -> dict:
    """The reported_results.csv cell of one side (``paper`` table and overrides; constants: their own)."""
    paper = _thaw(claim.paper) or {}
    over = dict(paper.get(role) or {})
    metric = claim.statistic if claim.statistic in ("auroc", "aulc") else "auroc"
    ref = a if side.reported is not None else side
    if ref.evalset != ("test",):
        ood, cls = ("mean" if ref.mean_over == "evalset" else ref.evalset[0]), "all"
    else:
        ood, cls = None, ("mean" if ref.cls == "all" else list(ref.cls))
    if side.reported is not None:
        r = dict(side.reported)
        return {"table": r["table"], "method": r["method"], "dataset": a.dataset, "metric": metric,
                "ood": r.get("ood", ood), "cls": r.get("cls", cls)}
    cell = {"table": paper["table"], "dataset": side.dataset, "loss": side.loss, "metric": metric, "ood": ood,
            "cls": cls, "outliers": list(side.outliers), "score": side.score}
    cell.update(over)
    return cell


def paper_effect(claim: Claim, reported: pd.DataFrame | Mapping[str, pd.DataFrame]) -> tuple[float, dict[str, float]]:
    """The paper's own effect of ``claim`` (from the tables it prints), and the numbers it comes from.

    NaN when the paper prints no number for a side (figures, learning curves).
    Raises KeyError when a cited cell is not in reported_results.csv.
    """
    if claim.paper is None and claim.b.reported is None:
        return math.nan, {}
    if claim.b.value is not None and claim.paper is None:
        return math.nan, {}
    reported = _by_table(reported)
    nums: dict[str, float] = {}
    roles = {"a": claim.a, "b": claim.b, **({"vs_a": claim.vs[0], "vs_b": claim.vs[1]} if claim.vs else {})}
    if claim.paper is None:  # a literature constant without our side in the paper (not used by the file)
        return math.nan, {"b": paper_cell(reported, _paper_side_cell(claim, "b", claim.b, claim.a))}
    for role, side in roles.items():
        if side.value is not None:
            nums[role] = side.value
        else:
            nums[role] = paper_cell(reported, _paper_side_cell(claim, role, side, claim.a))
    if claim.effect == "relative":
        return (nums["a"] / nums["b"] - 1) * 100, nums
    eff = nums["a"] - nums["b"]
    if claim.vs:
        eff -= nums["vs_a"] - nums["vs_b"]
    return eff, nums


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


def _by_table(reported: pd.DataFrame | Mapping[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    """The reported numbers split by paper table (what :func:`paper_cell` looks cells up in)."""
    if isinstance(reported, Mapping):
        return reported
    return {str(t): g for t, g in reported.groupby("paper_table", sort=False)}


# --------------------------------------------------------------------------- #
# evaluation
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, with our effect, its uncertainty and the paper's."""

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
    p_holm: float = math.nan
    p_holm_against: float = math.nan
    family: str = ""
    family_size: int = 0

    @property
    def tested(self) -> bool:
        return self.stats is not None and self.verdict not in ("too few", "not run", "pending")

    @property
    def paper_in_ci(self) -> bool | None:
        """Whether the paper's effect (its table's numbers, else its stated size) lies in our interval."""
        ref = self.paper_effect if math.isfinite(self.paper_effect) else self.stated
        if self.stats is None or not math.isfinite(ref):
            return None
        lo, hi = self.stats.ci
        return bool(lo <= ref <= hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _units(claim: Claim, data: Mapping[str, _SideData]) -> tuple[pd.DataFrame, list[str], str | None]:
    """The merged unit table (one row per unit, value_<role> / ok_<role> per side), its key and a problem."""
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
                return pd.DataFrame(), key, _ambiguous(role, f[f.duplicated([*key, mean_over], keep=False)], key)
            agg = []
            for k_vals, g in f.groupby(key, dropna=False, sort=True):
                complete = set(g[mean_over]) == items and bool(g["ok"].all())
                bad = g.loc[~g["ok"], "status"]
                agg.append({**dict(zip(key, k_vals if isinstance(k_vals, tuple) else (k_vals,))),
                            "value": float(g["value"].mean()) if complete else math.nan, "ok": complete,
                            "status": "ok" if complete else (_worst(list(bad)) if len(bad) else "missing")})
            f = pd.DataFrame(agg, columns=[*key, "value", "ok", "status"])
        elif f.duplicated(key).any():
            return pd.DataFrame(), key, _ambiguous(role, f[f.duplicated(key, keep=False)], key)
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
    return merged.reset_index(drop=True), key, None


def _worst(statuses: Sequence[str]) -> str:
    for s in ("failed", "pending", "missing"):
        if s in statuses:
            return s
    return statuses[0] if statuses else "missing"


def _ambiguous(role: str, rows: pd.DataFrame, key: Sequence[str]) -> str:
    differ = [c for c in _IDENT if c not in key and c in rows and rows[c].astype(str).nunique() > 1]
    return (f"side {role} selects several rows per unit (they differ in {', '.join(differ) or 'nothing named'}: "
            f"e.g. {', '.join(sorted(set(rows['recipe'].astype(str))))}); narrow its selector")


def _coverage(claim: Claim, data: Mapping[str, _SideData]) -> str:
    a = data["a"].frame
    if a.empty:
        return ""
    seeds = sorted({int(s) for s in a["seed"]})
    if claim.a.evalset != ("test",):
        what = f"OOD sets {len(set(a['evalset']))}/{len(claim.a.evalset)}"
    else:
        wanted = (len(catalog.dataset(str(claim.a.dataset)).classes) if claim.a.cls == "all" else len(claim.a.cls))
        what = f"classes {a['cls'].nunique()}/{wanted}"
    return f"{what}; seeds {','.join(map(str, seeds))}"


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
    data = {role: _side_data(claim, side, index, partial) for role, side in claim.sides().items()}
    stand_ins = sorted({f"{d.dataset} for {s.dataset}" for d, s in zip(data.values(), claim.sides().values())
                        if d.stand_in})
    base = dict(claim=claim, paper_effect=p_eff, paper_numbers=p_nums, stated=stated, stand_in=bool(stand_ins),
                stand_in_of="; ".join(stand_ins), coverage=_coverage(claim, data))
    if any(d.n_rows == 0 for d in data.values()):
        return ClaimResult(verdict="pending" if partial else "not run",
                           detail=_missing_detail(claim, data, pd.DataFrame(), 0, index.plan), n_pairs=0, n_units=0, stats=None,
                           **base)
    merged, key, problem = _units(claim, data)
    if problem:
        return ClaimResult(verdict="not run", detail=problem, n_pairs=0, n_units=0, stats=None, **base)
    complete = np.ones(len(merged), dtype=bool)
    for role in data:
        complete &= merged[f"ok_{role}"].to_numpy(dtype=bool)
    pairs = merged[complete]
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
        va, vb = np.array(ta), np.array(tb)
    else:
        va = pairs["value_a"].to_numpy(dtype=float) if n else np.array([])
        if claim.b.constant:
            vb = np.full(n, claim.b.value if claim.b.value is not None else _constant(claim, reported))
        else:
            vb = pairs["value_b"].to_numpy(dtype=float) if n else np.array([])
        if claim.vs and n:
            va = va - vb
            vb = pairs["value_vs_a"].to_numpy(dtype=float) - pairs["value_vs_b"].to_numpy(dtype=float)
    detail = _missing_detail(claim, data, merged, n) if n < len(merged) else f"{n} unit{'s' if n != 1 else ''} paired"
    if censored:
        detail += f"; {censored} of {2 * n} times to target censored (never reached: last epoch + one interval)"
    if n == 0:
        verdict = "pending" if partial else "not run"
        return ClaimResult(verdict=verdict, detail=detail, n_pairs=0, n_units=len(merged), stats=None, **base)
    if claim.b.constant and not math.isfinite(float(vb[0])):
        return ClaimResult(verdict="not run", detail="the reported number is not in reported_results.csv",
                           n_pairs=n, n_units=len(merged), stats=None, **base)
    stats = effect_stats(va, vb, effect=claim.effect, alternative=claim.alternative, boundary=claim.boundary,
                         n_resamples=n_resamples, seed=seed)
    if n < min_pairs:
        return ClaimResult(verdict="too few", detail=f"{n} pair{'s' if n != 1 else ''}, at least {min_pairs} "
                                                     f"needed for a verdict; " + detail,
                           n_pairs=n, n_units=len(merged), stats=stats, **base)
    return ClaimResult(verdict="", detail=detail, n_pairs=n, n_units=len(merged), stats=stats, **base)


def _constant(claim: Claim, reported: pd.DataFrame) -> float:
    try:
        return paper_cell(reported, _paper_side_cell(claim, "b", claim.b, claim.a))
    except KeyError:
        return math.nan


def evaluate_claims(summary_df: pd.DataFrame, curves_df: pd.DataFrame | None = None,
                    claims: Sequence[Claim] | None = None, partial: bool = False, *, min_pairs: int = MIN_PAIRS,
                    alpha: float = ALPHA, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    reported: pd.DataFrame | None = None, plan: Any = None) -> list[ClaimResult]:
    """Test every claim on our summary rows (``records.summary.COLUMNS``) and learning curves (``CURVE_COLUMNS``).

    Works on partial results: a claim whose runs are absent is ``not run``
    (``pending`` with ``partial``), one with fewer than ``min_pairs`` pairs
    ``too few``. Holm's correction is applied over the tested claims, the
    stand-in claims as a family of their own (module docstring). ``plan``
    (``planning.grid.Plan`` of the config in effect): a side without runs
    names the experiment that plans them, or says that none does.
    """
    summary = read_summaries(summary_df if summary_df is not None else pd.DataFrame())
    curves = read_curves(curves_df if curves_df is not None else pd.DataFrame())
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
    for family in (False, True):
        idx = [i for i, r in enumerate(results) if r.verdict == "" and r.stand_in == family]
        adj_for = holm([results[i].stats.p_for for i in idx])
        adj_against = holm([results[i].stats.p_against for i in idx])
        m = int(np.isfinite([results[i].stats.p_for for i in idx]).sum()) if idx else 0
        name = "stand-in" if family else "paper"
        for j, i in enumerate(idx):
            pf, pa = float(adj_for[j]), float(adj_against[j])
            verdict = ("supported" if pf < alpha else "contradicted" if pa < alpha else "not significant")
            r = results[i]
            detail = r.detail
            if verdict == "not significant" and r.stats.test == "wilcoxon" and 2.0 ** -r.n_pairs * m >= alpha:
                detail += (f"; the differences are not normal (Shapiro-Wilk p = {r.stats.normality_p:.2g}), and with "
                           f"{r.n_pairs} pairs the Wilcoxon test cannot reach p < {alpha}/{m} (its smallest p is "
                           f"2^-{r.n_pairs})")
            out[i] = dataclasses.replace(r, verdict=verdict, detail=detail, p_holm=pf, p_holm_against=pa,
                                         family=name, family_size=m)
    return out


