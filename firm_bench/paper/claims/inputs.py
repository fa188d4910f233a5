"""The summaries and learning curves the claims are tested on, validated as they are read.

A summary that lacks a column, carries AUROC in percent, repeats a unit or
names a run inconsistently would otherwise read as "runs not done" or give a
verdict on wrong numbers. :func:`check_summary` / :func:`check_curves` collect
every problem of one file (or frame) and raise one :class:`SummaryError`
naming the file, the column and what to do; :func:`read_summary_files` /
:func:`read_curve_files` read files with that check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from firm_bench.records.summary import read_curves, read_summaries

#: the columns a summary must have for the claims (records.summary.COLUMNS; the recipe labels are not needed)
SUMMARY_REQUIRED = ["dataset", "cls", "loss", "outliers", "recipe", "seed", "score", "auroc", "aulc", "status",
                    "untrained_auroc", "run_dir"]
#: the columns a learning-curves file must have
CURVES_REQUIRED = ["dataset", "cls", "loss", "outliers", "recipe", "seed", "epoch", "auroc", "run_dir"]
#: fractions in [0, 1] (the summaries write AUROC and AULC as fractions; x 100 gives the paper's points)
FRACTIONS = ("auroc", "aulc", "untrained_auroc")
#: one row per unit of a summary, and per run x epoch of a curves file (per experiment, where rows name it)
SUMMARY_UNIT = ["run_dir", "evalset", "score", "k"]
CURVES_UNIT = ["run_dir", "epoch"]
_IDENTITY = ["dataset", "cls", "loss", "outliers", "recipe", "seed"]
_FIX = "rebuild it with `snakemake <that file>` (firm-bench summary writes it)"


class SummaryError(ValueError):
    """A summary or learning-curves file (or frame) the claims cannot use: names the file and every problem."""


def _problems(df: pd.DataFrame, required: Sequence[str], unit: Sequence[str]) -> list[str]:
    out = []
    missing = [c for c in required if c not in df.columns]
    if missing:
        out.append(f"column(s) {missing} missing (required: {', '.join(required)})")
    for col in FRACTIONS:
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce")
            bad = df[col].notna() & v.isna()
            if bad.any():
                out.append(f"column {col!r} is not numeric (e.g. {df.loc[bad, col].iloc[0]!r})")
            outside = v.notna() & ((v < 0) | (v > 1))
            if outside.any():
                out.append(f"column {col!r} has {int(outside.sum())} value(s) outside [0, 1] (e.g. "
                           f"{float(v[outside].iloc[0]):g}): a fraction is expected, not percent")
    for col in ("seed", "epoch"):
        if col in df.columns and col in required:
            v = pd.to_numeric(df[col], errors="coerce")
            bad = v.isna() | (v != v.round())
            if bad.any():
                out.append(f"column {col!r} has {int(bad.sum())} value(s) that are not whole numbers "
                           f"(e.g. {df.loc[bad, col].iloc[0]!r})")
    if "run_dir" in df.columns:
        if df["run_dir"].isna().any():
            out.append(f"column 'run_dir' is empty on {int(df['run_dir'].isna().sum())} row(s)")
        key = [c for c in unit if c in df.columns]
        # a run shared by experiments (Table 5 and Table 10a) is in each one's summary: a unit per experiment
        extra = ["experiment"] if "experiment" in df.columns else []
        dup = (df[[*extra, *key]].astype(str).duplicated(keep=False) if len(key) == len(unit)
               else pd.Series(False, df.index))
        if dup.any():
            first = df.loc[dup, key].astype(str).iloc[0].to_dict()
            out.append(f"{int(dup.sum())} rows repeat a unit ({', '.join(unit)}), e.g. {first}: one row per unit")
        ident = [c for c in _IDENTITY if c in df.columns]
        if ident:
            n_ident = df[["run_dir", *ident]].astype(str).drop_duplicates().groupby("run_dir").size()
            if (n_ident > 1).any():
                out.append(f"run_dir {n_ident[n_ident > 1].index[0]!r} has rows with different {', '.join(ident)}")
    return out


def _check(df: pd.DataFrame, where: str, what: str, required: Sequence[str], unit: Sequence[str]) -> pd.DataFrame:
    if df.empty and len(df.columns) == 0:
        return df
    problems = _problems(df, required, unit)
    if problems:
        raise SummaryError(f"{what} {where}: " + "; ".join(problems) + f"; {_FIX}")
    return df


def check_summary(df: pd.DataFrame, where: str = "(rows given)") -> pd.DataFrame:
    """``df`` unchanged if it is a usable summary, else :class:`SummaryError` naming ``where`` and every problem."""
    return _check(df, where, "summary", SUMMARY_REQUIRED, SUMMARY_UNIT)


def check_curves(df: pd.DataFrame, where: str = "(rows given)") -> pd.DataFrame:
    """Likewise for learning curves (``records.summary.CURVE_COLUMNS``)."""
    return _check(df, where, "learning curves", CURVES_REQUIRED, CURVES_UNIT)


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; build it with `snakemake {path}`")
    try:
        return pd.read_csv(path, dtype={"cls": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SummaryError(f"{what} {path}: not a readable CSV ({exc}); {_FIX}") from None


def read_summary_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Summaries read and checked file by file (each error names its file), then combined (``read_summaries``)."""
    frames = []
    for p in map(Path, paths):
        frames.append(check_summary(_read_csv(p, "summary"), str(p)))
    frames = [f for f in frames if len(f)]
    return read_summaries(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def read_curve_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Learning curves read and checked file by file, then combined (``read_curves``)."""
    frames = [check_curves(_read_csv(p, "learning curves"), str(p)) for p in map(Path, paths)]
    frames = [f for f in frames if len(f)]
    return read_curves(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
