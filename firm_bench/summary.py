"""Aggregate run results into pandas tables.

- :func:`experiment_rows`: one row per run x score (x k) of one experiment,
  read from each run's ``metrics.json`` and ``scores/*.json``, with AUROC,
  AULC and the run's recipe labels. A run or score that failed or is missing
  is a row with ``status`` failed / missing and a ``reason``, and no number.
- :func:`combine`: every experiment's rows into ``results/summary.csv``.
- :func:`mean_std_table`: mean +/- std over seeds per configuration, as a
  Markdown table (the paper-shaped tables come from ``firm_bench.tables``).

Aggregation is staged (per experiment, then global) so that no single
Snakemake job has thousands of inputs.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from firm_bench import runs
from firm_bench.catalog import score_family

ID_COLUMNS = ["experiment", "dataset", "cls", "loss", "outliers", "recipe", "seed", "evalset", "score", "k"]
VALUE_COLUMNS = ["auroc", "aulc", "status", "reason", "untrained_auroc"]
#: recipe labels of each row (evaluate.recipe_labels; where they differ from the reference: docs/FAITHFULNESS.md);
#: a summary written before a label existed reads it as unknown
LABEL_COLUMNS = ["schedule", "checkpoint", "select_score", "bn_momentum", "head_init", "loss_form", "id_labels", "tau",
                 "batch_size", "epochs", "normalization", "precision", "image_size", "eval_size", "eval_zoom", "batching",
                 "train_seconds", "run_dir"]
COLUMNS = ID_COLUMNS + VALUE_COLUMNS + LABEL_COLUMNS


def _parse_run_dir(run_dir: str) -> dict:
    parts = Path(run_dir).parts
    dataset, cls, loss, outliers, recipe, seed = parts[-6:]
    return {"dataset": dataset, "cls": cls, "loss": loss, "outliers": outliers, "recipe": recipe,
            "seed": int(seed.removeprefix("seed"))}


def _fresh_metrics(run_dir: str | Path) -> dict | None:
    """The run's metrics, rebuilt from its score files (score jobs of one run may finish in any order).

    Reads only: a summary (or a partial report) never writes into run directories.
    """
    from firm_bench import config as config_mod
    from firm_bench.evaluate import collect_metrics

    cfg_path = Path(run_dir) / runs.CONFIG_FILE
    if not cfg_path.exists():
        return None
    return collect_metrics(config_mod.validate(config_mod.load_yaml(cfg_path)), run_dir)


def experiment_rows(
    experiment: str,
    run_dirs: Iterable[str],
    scores: Sequence[str],
    ks: Sequence[int],
    evalsets: Sequence[str] = ("test",),
) -> pd.DataFrame:
    """Rows of one experiment: every (run, evaluation set, score, k) it reports.

    ``evalset`` is ``test`` (the run's own protocol) or the OOD set's name (Table 4).
    """
    rows = []
    for run_dir in run_dirs:
        ident = _parse_run_dir(run_dir)
        metrics_path = Path(run_dir) / "metrics.json"
        metrics = _fresh_metrics(run_dir)
        status = runs.read_status(run_dir) or {}
        labels = dict(metrics["recipe"]) if metrics else {}
        base = {
            "experiment": experiment, **ident,
            "aulc": metrics.get("aulc") if metrics else None,
            **{k: labels.get(k) for k in LABEL_COLUMNS if k in labels},
            "train_seconds": metrics.get("train_seconds") if metrics else status.get("train_seconds"),
            "run_dir": str(run_dir),
        }
        for evalset, score in ((e, s) for e in evalsets for s in scores):
            for k in ks if score_family(score) == "knn" else [None]:
                key = f"{score}_k{k}" if k is not None else score
                row = {**base, "evalset": evalset.removeprefix("ood-"), "score": score, "k": k}
                rec = (metrics or {}).get("evalsets", {}).get(evalset, {}).get(key)
                if status.get("state") == "failed":
                    row.update(status="failed", reason=status.get("reason"), auroc=None, aulc=None)
                elif rec is None:
                    row.update(status="missing", reason=f"no {evalset}/{key} score in {metrics_path}", auroc=None)
                else:
                    row.update(status=rec["status"], reason=rec.get("reason"), auroc=rec.get("auroc"),
                               untrained_auroc=rec.get("untrained_auroc"))
                rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["k"] = df["k"].astype("Int64")
    return df


CURVE_COLUMNS = ["experiment", "dataset", "cls", "loss", "outliers", "recipe", "seed", "epoch", "auroc", "loss_value",
                 "elapsed_s", "run_dir"]


def experiment_curves(experiment: str, run_dirs: Iterable[str]) -> pd.DataFrame:
    """Learning curves of one experiment's runs: one row per run x evaluated epoch."""
    from firm_bench.runs import read_curve

    rows = []
    for run_dir in dict.fromkeys(run_dirs):
        ident = _parse_run_dir(run_dir)
        for point in read_curve(run_dir):
            rows.append({"experiment": experiment, **ident, "epoch": point["epoch"], "auroc": point["auroc"],
                         "loss_value": point["loss"], "elapsed_s": point["elapsed_s"], "run_dir": str(run_dir)})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return runs.atomic_write_text(path, buf.getvalue())


def combine(paths: Iterable[str | Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"cls": str}) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def _fmt(values: pd.Series, statuses: pd.Series) -> str:
    ok = values[statuses == "ok"].dropna().astype(float) * 100
    bad = int((statuses != "ok").sum())
    if ok.empty:
        return "failed" if (statuses == "failed").any() else "missing"
    text = f"{ok.mean():.1f}" + (f" ± {ok.std(ddof=1):.1f}" if len(ok) > 1 else "")
    return text + (f" ({bad} failed/missing)" if bad else "")


def mean_std_table(df: pd.DataFrame, title: str = "") -> str:
    """Markdown: AUROC (and AULC) mean ± std over seeds (in %), rows = configurations, columns = classes."""
    from tabulate import tabulate

    if df.empty:
        return f"# {title}\n\nno runs\n"
    df = df.copy()
    df["k"] = df["k"].map(lambda v: "" if pd.isna(v) else f"k={int(v)}")
    ev = df["evalset"].fillna("test").astype(str)
    df["configuration"] = (df[["dataset", "loss", "outliers", "recipe", "score", "k"]].astype(str).agg(" ".join, axis=1)
                           + ev.map(lambda e: "" if e == "test" else f" vs {e}")).str.strip()
    classes = sorted(df["cls"].astype(str).unique(), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else c))
    out_rows = []
    for conf, group in df.groupby("configuration", sort=False):
        row = [conf]
        for c in classes:
            cell = group[group["cls"].astype(str) == c]
            row.append(_fmt(cell["auroc"], cell["status"]) if len(cell) else "")
        per_seed = group[group["status"] == "ok"].groupby("seed")["auroc"].mean()
        row.append(f"{per_seed.mean() * 100:.1f} ± {per_seed.std(ddof=1) * 100:.1f}" if len(per_seed) > 1
                   else (f"{per_seed.mean() * 100:.1f}" if len(per_seed) else "missing"))
        aulc = group.drop_duplicates("run_dir")["aulc"].dropna()
        row.append(f"{aulc.mean() * 100:.1f}" if len(aulc) else "")
        out_rows.append(row)
    headers = ["configuration", *classes, "mean over classes", "AULC"]
    shown = ["schedule", "checkpoint", "bn_momentum", "loss_form", "precision", "normalization", "eval_size", "eval_zoom"]
    labels = df.drop_duplicates("run_dir")[[c for c in shown if c in df.columns]].astype(object).fillna("unknown").astype(str)
    provenance = "; ".join(
        f"{col}: {', '.join(sorted(set(labels[col])))}" for col in labels.columns
    )
    table = tabulate(out_rows, headers=headers, tablefmt="github", disable_numparse=True)
    n_runs = df["run_dir"].nunique()
    return (f"# {title}\n\nAUROC in %, mean ± std over seeds ({n_runs} runs). Recipe: {provenance}.\n\n"
            f"{table}\n")
