"""The numbers the FIRM paper reports, in firm-bench's vocabulary.

``firm_bench/paper/reported_results.csv`` is the project's transcription of
the paper's printed numbers (one row per printed number, 1626 rows), and
``firm_bench/paper/NOTES.md`` its notes: which labels were lost in the text
extraction and inferred, and where the paper contradicts itself. (The scripts
that built and checked the transcription are not part of the repository.) This
module is the only reader of that file, and :func:`to_our_vocabulary` is the
only place where the paper's names become ours:

================  =====================================  ===========================
CSV column        paper's values                         ours
================  =====================================  ===========================
``table``         1a, 2, 10b, ...                        ``paper_table`` (same)
``in_class``      0..19, bottle, ..., mean, all          ``cls``
``method``        FIRM, NT-Xent, SupCon, SupCon*         ``loss`` firm, ntxent,
                                                         supcon, supcon_star
                  OC-SVM, GEOM, CSI, ... (literature)    ``loss`` empty,
                                                         ``reported_only`` True
``outliers``      rotation, oe, oe_rotation              rot, oe, oe_rot
                  cutpaste_nsa (MVTec; CutPaste or NSA,  empty = not stated; it
                  not stated per class)                  matches any of ours
``dataset``       cifar100_super                         cifar100
                  Table 4: the OOD set (svhn, lsun,      ``ood`` svhn, lsun_resize,
                  imagenet, lsun_fix, ..., mean)         imagenet_resize, ...;
                                                         ``dataset`` cifar10 (the ID
                                                         set), ``cls`` all
``score``         cos, rot, kde_ens, ... (blank: lost)   same; empty = not stated
``metric``        auroc, aulc, relative_improvement      auroc, aulc,
                  (which metric: in the note)            relative_improvement_auroc,
                                                         relative_improvement_aulc
``value, std``    printed strings, in %                  ``value_pct``, ``std_pct``
                                                         (floats, AUROC points in %;
                                                         relative improvements in %)
================  =====================================  ===========================

An empty label on the paper's side means "the paper does not say"; when a
table is matched against our runs it matches any of our values
(:func:`matches`). Our summaries hold AUROC in [0, 1]; :data:`PERCENT`
converts them to the paper's unit.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Mapping

import pandas as pd

__all__ = [
    "COLUMNS",
    "LOSS_DISPLAY",
    "OUTLIERS_DISPLAY",
    "PERCENT",
    "STAND_INS",
    "load_reported",
    "matches",
    "paper_dataset",
    "paper_rows",
    "reported_path",
    "to_our_vocabulary",
]

#: our summaries hold fractions in [0, 1]; the paper prints percent
PERCENT = 100.0

#: the paper's method names -> our loss names (anything else is a literature method)
_LOSS_NAMES = {"FIRM": "firm", "NT-Xent": "ntxent", "SupCon": "supcon", "SupCon*": "supcon_star"}
#: our loss names as the paper prints them (row labels)
LOSS_DISPLAY = {ours: paper for paper, ours in _LOSS_NAMES.items()}

_OUTLIER_NAMES = {"rotation": "rot", "oe": "oe", "oe_rotation": "oe_rot", "cutpaste_nsa": None}
#: our outlier sources as the paper prints them after the method ("FIRM w/ OE")
OUTLIERS_DISPLAY = {"rot": "", "oe": "w/ OE", "oe_rot": "w/ OE (rot.)", "none": "(no outliers)"}

_DATASET_NAMES = {"cifar100_super": "cifar100"}
#: Table 4's OOD sets -> our dataset names (the paper's "LSUN" and "ImageNet" are the resize variants)
_OOD_NAMES = {"svhn": "svhn", "lsun": "lsun_resize", "imagenet": "imagenet_resize", "lsun_fix": "lsun_fix",
              "imagenet_fix": "imagenet_fix", "cifar100": "cifar100", "mean": "mean"}
#: Table 4: the in-distribution set (all of CIFAR-10, unlabeled)
_OOD_ID_DATASET = "cifar10"

#: our miniature datasets -> the paper dataset they stand in for (compared, labelled, never counted)
STAND_INS: Mapping[str, str] = {"fmnist_mini": "fashion_mnist"}

COLUMNS = ["paper_table", "dataset", "ood", "cls", "method", "loss", "outliers", "score", "metric",
           "value_pct", "std_pct", "network", "note", "reported_only"]
_CSV_COLUMNS = ["table", "dataset", "in_class", "method", "outliers", "score", "metric", "value", "std",
                "network", "note"]


def reported_path() -> Path:
    """The packaged ``reported_results.csv``."""
    return Path(str(resources.files("firm_bench") / "paper" / "reported_results.csv"))


def to_our_vocabulary(raw: pd.DataFrame) -> pd.DataFrame:
    """The transcription (columns of reported_results.csv, all strings) renamed to our vocabulary.

    See the module docstring for every rename. Also: the first of Table 1a's
    two CSI rows (mean only; NOTES.md "Table 1") is labelled ``CSI (mean only)``
    so that the two rows stay apart. Raises ValueError naming the column and
    value for anything this mapping does not know (a new transcription must be
    mapped here, not silently passed through).
    """
    missing = [c for c in _CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"reported results lack column(s) {missing}; expected {_CSV_COLUMNS}")
    df = raw.fillna("").astype(str)

    def lookup(mapping: Mapping[str, str | None], column: str, values: pd.Series) -> pd.Series:
        unknown = sorted(set(values) - set(mapping) - {""})
        if unknown:
            raise ValueError(f"reported results: unknown {column} value(s) {unknown}; map them in to_our_vocabulary")
        return values.map(lambda v: mapping.get(v) if v else None)

    is_ood = df["table"] == "4"
    out = pd.DataFrame({"paper_table": df["table"]})
    out["dataset"] = df["dataset"].map(lambda d: _DATASET_NAMES.get(d, d)).where(~is_ood, _OOD_ID_DATASET)
    out["ood"] = lookup(_OOD_NAMES, "Table 4 dataset", df["dataset"].where(is_ood, ""))
    out["cls"] = df["in_class"]
    first_csi = df["note"].str.startswith("first of two CSI rows")
    out["method"] = df["method"].where(~first_csi, df["method"] + " (mean only)")
    out["loss"] = df["method"].map(_LOSS_NAMES)
    out["outliers"] = lookup(_OUTLIER_NAMES, "outliers", df["outliers"])
    out["score"] = df["score"].replace("", None)
    gain_of = df["note"].str.contains("in AULC").map({True: "aulc", False: "auroc"})
    out["metric"] = df["metric"].where(df["metric"] != "relative_improvement",
                                       "relative_improvement_" + gain_of)
    out["value_pct"] = pd.to_numeric(df["value"], errors="raise")
    out["std_pct"] = pd.to_numeric(df["std"].replace("", None), errors="raise")
    out["network"] = df["network"].replace("", None)
    out["note"] = df["note"]
    out["reported_only"] = out["loss"].isna()
    return out[COLUMNS]


@functools.lru_cache(maxsize=4)
def _load(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"reported results {path} do not exist; reinstall firm-bench (package data firm_bench/paper/*)")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    try:
        return to_our_vocabulary(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_reported(path: str | Path | None = None) -> pd.DataFrame:
    """Every reported number in our vocabulary (columns :data:`COLUMNS`; a fresh copy)."""
    return _load(str(path or reported_path())).copy()


def paper_rows(reported: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows of one paper table (``"5"``, ``"10a"``); KeyError naming the valid tables."""
    rows = reported[reported["paper_table"] == table]
    if rows.empty:
        valid = ", ".join(dict.fromkeys(reported["paper_table"]))
        raise KeyError(f"paper table {table!r} is not in the reported results; valid: {valid}")
    return rows


def paper_dataset(ours: str, paper_datasets: list[str] | tuple[str, ...]) -> tuple[str, bool]:
    """The paper dataset our ``ours`` dataset is compared with in a table, and whether it is a stand-in.

    ``ours`` itself when the table reports it (exact); else its
    :data:`STAND_INS` entry (a miniature of that dataset); else, when the
    table reports one dataset only, that one (the table rendered in
    miniature). Otherwise ``ours`` (nothing to compare with). A stand-in is
    shown beside the paper's number but never counted as agreement.
    """
    if ours in paper_datasets:
        return ours, False
    if STAND_INS.get(ours) in paper_datasets:
        return STAND_INS[ours], True
    if len(paper_datasets) == 1:
        return paper_datasets[0], True
    return ours, False


def matches(paper_value: object, ours: object) -> bool:
    """Whether a paper label matches ours: equal, or not stated by the paper (empty)."""
    return paper_value is None or (isinstance(paper_value, float) and pd.isna(paper_value)) or paper_value == ours
