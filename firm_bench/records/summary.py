"""Aggregate run results into pandas tables.

- :func:`experiment_rows`: one row per run x score (x k) of one experiment,
  read from each run's ``metrics.json`` (its score jobs write it), with
  AUROC, the untrained-encoder baseline, AULC and the run's recipe labels. A run or score that failed or is missing
  is a row with ``status`` failed / missing and a ``reason``, and no number; a run whose metrics.json or
  status.json is damaged, or whose records are another run's than its path names or an earlier model's
  (``records.chain``: moved, copied, relabelled, stale), ``damaged`` with the file and what to do as its reason.
- :func:`combine`: every experiment's rows into ``results/summary.csv``.
- :func:`read_csv`: a summary or learning-curve CSV read back, checked (a row
  cut short or a value that is not a number names the file, line and column).
- :func:`read_summaries` / :func:`read_curves`: experiment summaries and
  learning curves read back as one frame each, every result once (what the
  paper tables, figures and report are drawn from).
- :func:`mean_std_table`: mean +/- std over seeds per configuration, as a
  Markdown table (the paper-shaped tables come from ``firm_bench.paper.tables``).

Aggregation is staged (per experiment, then global) so that no single
Snakemake job has thousands of inputs. Reading results needs no torch.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from firm_bench.core import rundir as runs
from firm_bench.core.facts.method import uses_k
from firm_bench.core.errors import DamagedFile
from firm_bench.records import chain

ID_COLUMNS = ["experiment", "dataset", "cls", "loss", "outliers", "recipe", "seed", "evalset", "score", "k"]
VALUE_COLUMNS = ["auroc", "aulc", "status", "reason", "untrained_auroc"]
#: recipe labels of each row (records.metrics.recipe_labels; where they differ from the reference: docs/FAITHFULNESS.md)
RECIPE_LABELS = ["schedule", "momentum", "checkpoint", "select_score", "bn_momentum", "head_init", "loss_form", "id_labels", "tau",
                 "batch_size", "epochs", "normalization", "precision", "image_size", "eval_size", "eval_zoom", "batching"]
LABEL_COLUMNS = [*RECIPE_LABELS, "resumed_under_other_settings", "train_seconds", "run_dir"]
#: recipe labels read as text (object columns: a label no row recorded stays None, not a float NaN)
TEXT_LABELS = ["loss_form", "id_labels", "select_score", "head_init", "normalization", "precision", "image_size",
               "eval_size", "eval_zoom", "batching", "momentum"]
COLUMNS = ID_COLUMNS + VALUE_COLUMNS + LABEL_COLUMNS


def _parse_run_dir(run_dir: str) -> dict:
    return dataclasses.asdict(runs.Run.of_dir(run_dir))


def _metrics(run_dir: str | Path) -> dict | None:
    """The run's metrics.json (its score jobs write it, the last one under a lock, so it holds every score).

    Reads only: a summary (or a partial report) never writes into run directories.
    """
    path = Path(run_dir) / runs.METRICS_FILE
    return runs.read_record(path) if path.exists() else None


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
        metrics_path = Path(run_dir) / runs.METRICS_FILE
        try:
            metrics = _metrics(run_dir)
            status = runs.read_status(run_dir) or {}
            chain.check_metrics(run_dir, metrics)  # this run's (its path), of its final model: else refused
        except DamagedFile as exc:  # one damaged run is one marked cell, never an aborted summary
            metrics, status = None, {"state": "damaged", "reason": str(exc)}
        labels = dict(metrics["recipe"]) if metrics else {}
        base = {
            "experiment": experiment, **ident,
            "aulc": metrics.get("aulc") if metrics else None,
            **{k: labels.get(k) for k in LABEL_COLUMNS if k in labels},
            "train_seconds": metrics.get("train_seconds") if metrics else status.get("train_seconds"),
            "run_dir": str(run_dir),
        }
        for evalset, score in ((e, s) for e in evalsets for s in scores):
            for k in ks if uses_k(score) else [None]:
                key = runs.score_key(score, k)
                row = {**base, "evalset": runs.ood_of(evalset) or evalset, "score": score, "k": k}
                rec = (metrics or {}).get("evalsets", {}).get(evalset, {}).get(key)
                if status.get("state") in ("failed", "damaged"):
                    row.update(status=status["state"], reason=status.get("reason"), auroc=None, aulc=None)
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
    from firm_bench.core.rundir import read_curve

    rows = []
    for run_dir in dict.fromkeys(run_dirs):
        ident = _parse_run_dir(run_dir)
        try:
            chain.check_metrics(run_dir, _metrics(run_dir))  # another run's curve is never drawn as this one's
            curve = read_curve(run_dir)
        except DamagedFile as exc:  # its rows (experiment_rows) say so; the other runs' curves are drawn
            print(f"firm-bench: warning: {exc}", file=sys.stderr)
            continue
        for point in curve:
            rows.append({"experiment": experiment, **ident, "epoch": point["epoch"], "auroc": point["auroc"],
                         "loss_value": point["loss"], "elapsed_s": point["elapsed_s"], "run_dir": str(run_dir)})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return runs.atomic_write_text(path, buf.getvalue())


#: the numeric columns of a summary and of a learning-curve CSV: each value a number or empty
SUMMARY_NUMBERS = ("seed", "k", "auroc", "aulc", "untrained_auroc", "train_seconds")
CURVE_NUMBERS = ("seed", "epoch", "auroc", "loss_value", "elapsed_s")


def read_csv(path: str | Path, numbers: Sequence[str] = SUMMARY_NUMBERS, what: str = "an experiment summary"
             ) -> pd.DataFrame:
    """A summary (or learning-curve) CSV firm-bench wrote, checked: every row whole, every number a number.

    A file cut mid-row (a copy or write interrupted: no final newline, or a
    row with fewer fields than the header) or a value of a ``numbers`` column
    that is not a number (``abc`` as an AUROC) raises :class:`DamagedFile`
    naming the file, the row, the column and the value, and how to rebuild it;
    pandas would otherwise fill the gap with NaN (a missing result) or read
    the column as text.
    """
    import csv

    path = Path(path)
    fix = f"rebuild it (`snakemake {path}`, or delete it and rerun the workflow)"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFile(path, f"is not a UTF-8 CSV file (byte {exc.start})", what, fix) from None
    if text and not text.endswith("\n"):
        raise DamagedFile(path, f"is cut short: its last line (line {text.count(chr(10)) + 1}) ends mid-row, "
                                "without a newline", what, fix)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise DamagedFile(path, f"is not a valid CSV file ({exc})", what, fix) from None
    if not rows:
        raise DamagedFile(path, "is empty (no header line)", what, fix)
    header = rows[0]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DamagedFile(path, f"row {line - 1} has {len(row)} fields, its header {len(header)}: the row is "
                                    "cut or mangled", what, fix)
    df = pd.read_csv(io.StringIO(text), dtype={"cls": str})
    for col in (c for c in numbers if c in df.columns):
        raw = df[col]
        value = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & value.isna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise DamagedFile(path, f"row {i + 1}: {col} is {raw.iloc[i]!r}, not a number", what, fix)
        df[col] = value
    return df


def combine(paths: Iterable[str | Path]) -> pd.DataFrame:
    frames = [read_csv(p) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def read_summaries(paths: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """Experiment summaries (``results/summary/<experiment>.csv``) as one frame, each result once.

    Runs shared by experiments (Table 5 and Table 10a) appear once. ``ood`` is
    the OOD set of the unlabeled multiclass protocol (Table 4): the summary's
    ``evalset`` where it is not ``test``, else empty. A summary that lacks a
    column of :data:`COLUMNS` (written by an earlier firm-bench) is refused.
    """
    if isinstance(paths, pd.DataFrame):
        df = paths.copy()
    else:
        paths = [Path(p) for p in paths]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"summary {p} does not exist; build it with `snakemake {p}`")
        df = combine(paths)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing and df.empty:  # no rows: nothing recorded in any format
        df = df.reindex(columns=[*df.columns, *missing])
    elif missing:
        where = ", ".join(map(str, paths)) if not isinstance(paths, pd.DataFrame) else "the summary rows"
        raise ValueError(f"{where} lack(s) column(s) {missing} (written by an earlier firm-bench); rebuild the "
                         "summaries: delete them and rerun `snakemake` for them")
    text = ["experiment", "dataset", "loss", "outliers", "recipe", "score", "status", "reason", "run_dir", "schedule",
            "checkpoint", *TEXT_LABELS]
    df = df.astype({c: object for c in text})
    df["evalset"] = df["evalset"].fillna("test").astype(str)
    df["ood"] = df["evalset"].where(df["evalset"] != "test", None)
    df["cls"] = df["cls"].astype(str)
    df["k"] = pd.to_numeric(df["k"], errors="coerce")
    return df.drop_duplicates(["run_dir", "evalset", "score", "k"], keep="first").reset_index(drop=True)


def read_curves(paths: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """Learning curves (``results/summary/<experiment>_curves.csv``) as one frame, each run's curve once."""
    if isinstance(paths, pd.DataFrame):
        frames = [paths]
    else:
        frames = []
        for p in map(Path, paths):
            if not p.is_file():
                raise FileNotFoundError(f"learning curves {p} do not exist; build them with `snakemake {p}`")
            frames.append(read_csv(p, CURVE_NUMBERS, "the learning curves of an experiment"))
    frames = [f for f in frames if not f.empty]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)
    df = df.reindex(columns=list(dict.fromkeys([*CURVE_COLUMNS, *df.columns])))
    df["cls"] = df["cls"].astype(str)
    return df.drop_duplicates(["run_dir", "epoch"]).reset_index(drop=True)


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
        nothing = "failed" if (group["status"] == "failed").any() else "missing"  # as the cells (_fmt)
        row.append(f"{per_seed.mean() * 100:.1f} ± {per_seed.std(ddof=1) * 100:.1f}" if len(per_seed) > 1
                   else (f"{per_seed.mean() * 100:.1f}" if len(per_seed) else nothing))
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
