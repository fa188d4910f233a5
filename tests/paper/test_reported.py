"""firm_bench.paper.reported: the paper's numbers, loaded once and renamed to our vocabulary."""


import pandas as pd
import pytest
import tomllib

from firm_bench.core.facts import CONFIG_NAMES
from firm_bench.paper import reported as rep
from tests.helpers import ROOT

SHARED = ROOT.parent / "shared" / "paper"


@pytest.fixture(scope="module")
def reported():
    return rep.load_reported()


@pytest.fixture(scope="module")
def raw():
    return pd.read_csv(rep.reported_path(), dtype=str, keep_default_na=False)


#: the one edit of the packaged NOTES.md: it names no file outside the repository
SHARED_POINTER = b"`seeds/002_50e2184daa206de8.txt` (in shared/), "


@pytest.mark.parametrize("name", ["reported_results.csv", "NOTES.md"])
def test_packaged_copies_equal_the_shared_transcription(name):
    if not (SHARED / name).is_file():
        pytest.skip(f"{SHARED / name} is not beside this checkout")
    packaged, shared = (ROOT / "firm_bench" / "paper" / name).read_bytes(), (SHARED / name).read_bytes()
    assert b"shared/" not in packaged
    assert packaged == shared.replace(SHARED_POINTER, b"")


def test_package_data_ships_the_paper_files():
    """The transcription and its notes are package data (tests/test_packaging.py installs a wheel and reads them)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"*.csv", "*.md"} <= set(data["firm_bench.paper"])


def test_every_printed_number_is_loaded(reported, raw):
    assert len(reported) == len(raw) == 1626
    assert list(reported.columns) == rep.COLUMNS
    assert reported["value_pct"].notna().all()


def test_vocabulary_is_ours(reported):
    names = {key: list(table) for key, table in CONFIG_NAMES.items()}
    own = reported[~reported["reported_only"]]
    assert set(own["loss"]) == set(names["loss.name"])
    assert set(reported["outliers"].dropna()) <= set(names["outliers.name"])
    assert set(reported["dataset"]) <= set(names["dataset.name"])
    assert set(reported["ood"].dropna()) - {"mean"} <= set(names["dataset.name"])
    assert set(reported["score"].dropna()) <= set(names["scores.names"])
    assert set(reported["metric"]) == {"auroc", "aulc", "relative_improvement_auroc", "relative_improvement_aulc"}
    # literature rows keep their printed names and have no loss
    lit = reported[reported["reported_only"]]
    assert lit["loss"].isna().all() and {"OC-SVM", "GEOM", "CSI", "DROC"} <= set(lit["method"])


@pytest.mark.parametrize(
    "where, expect",
    [
        # (raw CSV row fields) -> (our fields)
        ({"table": "5", "dataset": "cifar100_super", "method": "FIRM", "metric": "auroc"},
         {"dataset": "cifar100", "loss": "firm", "outliers": "rot", "score": "cos", "value_pct": 87.8, "std_pct": 0.2}),
        ({"table": "5", "dataset": "cats_vs_dogs", "method": "FIRM", "note": "relative improvement of FIRM over NT-Xent in AULC, percent"},
         {"metric": "relative_improvement_aulc", "value_pct": 7.9}),
        ({"table": "7", "method": "FIRM", "outliers": "oe_rotation", "score": "center"},
         {"outliers": "oe_rot", "value_pct": 97.2, "std_pct": 0.1}),
        ({"table": "4", "dataset": "lsun", "method": "FIRM", "outliers": "oe"},
         {"dataset": "cifar10", "ood": "lsun_resize", "cls": "all", "value_pct": 97.3}),
        ({"table": "2", "in_class": "screw", "method": "SupCon"},
         {"loss": "supcon", "outliers": None, "score": None, "value_pct": 39.8, "std_pct": 6.4}),
        ({"table": "1a", "in_class": "mean", "method": "CSI", "value": "92.2"},
         {"method": "CSI (mean only)", "reported_only": True, "std_pct": None}),
    ],
)
def test_renamed_cells(reported, raw, where, expect):
    mask = pd.Series(True, index=raw.index)
    for col, value in where.items():
        mask &= raw[col] == value
    assert mask.sum() == 1, where
    row = reported.loc[mask[mask].index[0]]
    for col, value in expect.items():
        got = row[col]
        if value is None:
            assert pd.isna(got), (col, got)
        else:
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, (col, got)


def test_unknown_names_are_refused_with_the_column(raw):
    bad = raw.copy()
    bad.loc[0, "outliers"] = "mixup"
    with pytest.raises(ValueError, match="outliers.*mixup"):
        rep.to_our_vocabulary(bad)
    with pytest.raises(ValueError, match="lack column"):
        rep.to_our_vocabulary(raw.drop(columns="in_class"))


def test_paper_rows_names_the_valid_tables(reported):
    assert set(rep.paper_rows(reported, "10b")["paper_table"]) == {"10b"}
    with pytest.raises(KeyError, match="valid: 1a, 1b"):
        rep.paper_rows(reported, "17")


@pytest.mark.parametrize(
    "ours, table_datasets, expect",
    [
        ("cifar10", ["cifar10"], ("cifar10", False)),
        ("fmnist_mini", ["cifar10", "fashion_mnist"], ("fashion_mnist", True)),
        ("fmnist_mini", ["cifar10"], ("cifar10", True)),
        ("svhn", ["cifar10", "cifar100"], ("svhn", False)),
    ],
)
def test_paper_dataset(ours, table_datasets, expect):
    assert rep.paper_dataset(ours, table_datasets) == expect


def test_unstated_paper_labels_match_anything():
    assert rep.matches(None, "cos") and rep.matches(float("nan"), "rot")
    assert rep.matches("cos", "cos") and not rep.matches("cos", "rot")
