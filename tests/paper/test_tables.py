"""firm_bench.paper.tables: every paper table renders from a synthetic results fixture, ours beside the paper's."""

import functools

import re

import numpy as np
import pandas as pd
import pytest

from firm_bench.cli import build_parser
from firm_bench.paper import labels
from firm_bench.paper import reported as rep
from firm_bench.paper import tables as tabs
from firm_bench.records.summary import read_summaries
from tests.helpers import ROOT
from tests.helpers.summaries import K, summary, summary_from_paper


@pytest.fixture(scope="module")
def reported():
    return rep.load_reported()


@functools.lru_cache(maxsize=None)
def reproduced(name: str) -> pd.DataFrame:
    """The cells of table ``name`` when our runs reproduce the paper exactly (computed once)."""
    spec = tabs.TABLES.get(name)
    return tabs.compare(spec, summary_from_paper(spec.paper), rep.load_reported())


def test_every_paper_table_has_a_spec_named_in_its_docstring(reported):
    assert {spec.paper for _, spec in tabs.TABLES.items()} == set(reported["paper_table"])
    for name, spec in tabs.TABLES.items():
        assert name == f"table{spec.paper}"
        assert spec.title.startswith(f"Table {spec.paper}:"), spec.title


@pytest.mark.parametrize("name", tabs.TABLES.names())
def test_table_reproduced_exactly_agrees_everywhere(name, reported):
    spec = tabs.TABLES.get(name)
    cells = reproduced(name)
    assert list(cells.columns) == tabs.CELL_COLUMNS
    agreement = tabs.agreement(cells)
    assert agreement.compared > 0 and agreement.within == agreement.compared, cells[
        cells["comparable"] & ~tabs.agrees(cells)][["row", "column", "ours_mean", "paper_value"]]
    # every number the paper prints for this table is in a paper cell, unchanged
    paper = rep.paper_rows(reported, spec.paper)
    paper = paper[paper["metric"].str.removeprefix("relative_improvement_").isin(spec.metrics)]
    assert sorted(cells["paper_value"].dropna()) == sorted(paper["value_pct"])
    # literature rows are reported rows, never ours
    lit = cells[cells["reported_only"]]
    assert (lit["ours_status"] == "not rerun").all() and lit["ours_mean"].isna().all()
    for fmt, table_start in (("md", "|--"), ("tex", "\\begin{tabular}"), ("html", "<table>")):
        text = tabs.render(spec, cells, fmt)
        assert "Agreement" in text and "Table " + spec.paper in text and table_start in text


@pytest.mark.parametrize(
    "table, where, paper_value",
    [
        ("table1a", {"row": "FIRM cos", "column": "3"}, 84.0),
        ("table1a", {"row": "GEOM (reported)", "column": "mean"}, 86.0),
        ("table5", {"row": "SupCon cos", "column": "cifar10 AULC"}, 64.3),
        ("table5", {"row": "FIRM cos: relative improvement over NT-Xent (%)", "column": "cats_vs_dogs AULC"}, 7.9),
        ("table7", {"row": "FIRM w/ OE (rot.)", "column": "ens_norm"}, 88.5),
        ("table4", {"row": "FIRM w/ OE cos", "column": "lsun_resize"}, 97.3),
        ("table2", {"row": "FIRM w/ cutpaste_scar cos", "column": "screw"}, 96.7),
        ("table14", {"row": "SupCon* cos", "column": "19"}, 92.8),
    ],
)
def test_paper_column_matches_reported_results(table, where, paper_value, reported):
    cells = reproduced(table)
    mask = np.logical_and.reduce([cells[c] == v for c, v in where.items()])
    assert mask.sum() == 1, cells[["row", "column"]].drop_duplicates().to_string()
    assert cells.loc[mask, "paper_value"].iloc[0] == pytest.approx(paper_value)


def test_ours_is_mean_and_std_over_seeds_at_the_table_k(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm"], ["rot"], ["cos"], seeds=(0, 1, 2), auroc=0.9)
    cells = tabs.compare(tabs.TABLES.get("table13"), rows, reported)
    c = cells[(cells["row"] == "FIRM cos") & (cells["column"] == "3")].iloc[0]
    assert c["ours_mean"] == pytest.approx(90.2) and c["ours_std"] == pytest.approx(0.2)
    assert (c["n_ok"], c["n_runs"]) == (3, 3)
    assert c["paper_value"] == pytest.approx(84.0) and c["diff"] == pytest.approx(6.2)
    k1 = tabs.compare(tabs.TABLES.get("table13"), rows, reported, k=1)
    assert k1.loc[(k1["row"] == "FIRM cos") & (k1["column"] == "3"), "ours_mean"].iloc[0] == pytest.approx(60.2)


def test_failed_missing_and_absent_cells_say_so(reported):
    rows = summary("e", ["cifar10"], range(10), ["ntxent", "firm"], ["rot"], ["cos"])
    failed = (rows["loss"] == "firm") & (rows["cls"] == "3")
    rows.loc[failed, ["status", "reason", "auroc", "aulc"]] = ["failed", "non-finite loss at epoch 7", None, None]
    missing = (rows["loss"] == "ntxent") & (rows["cls"] == "5") & (rows["seed"] == 1)
    rows.loc[missing, ["status", "auroc"]] = ["missing", None]
    spec = tabs.TABLES.get("table13")
    cells = tabs.compare(spec, rows, reported)

    def cell(row, column):
        return cells[(cells["row"] == row) & (cells["column"] == column)].iloc[0]

    assert cell("FIRM cos", "3")["ours_status"] == "failed"
    assert cell("FIRM cos", "3")["ours_reason"] == "non-finite loss at epoch 7"
    assert np.isnan(cell("FIRM cos", "3")["ours_mean"]) and np.isnan(cell("FIRM cos", "3")["diff"])
    assert cell("FIRM cos", "mean")["ours_status"] == "failed"  # no seed has every class
    assert (cell("NT-Xent cos", "5")["n_ok"], cell("NT-Xent cos", "5")["n_runs"]) == (1, 2)
    assert cell("NT-Xent cos", "mean")["n_ok"] == 1  # only seed 0 has every class
    assert cell("SupCon cos", "0")["ours_status"] == "not run"
    md = tabs.render(spec, cells, "md")
    assert "failed" in next(ln for ln in md.splitlines() if ln.startswith("| cat "))  # class 3 (cat): its "ours" line
    assert "(1/2 seeds)" in md and "not run" in md
    partial = tabs.compare(spec, rows, reported, partial=True)
    assert partial.loc[(partial["row"] == "NT-Xent cos") & (partial["column"] == "5"), "ours_status"].iloc[0] == "ok"
    rows.loc[(rows["loss"] == "ntxent") & (rows["cls"] == "5"), ["status", "auroc"]] = ["missing", None]
    for mode, word in ((False, "missing"), (True, "pending")):
        c = tabs.compare(spec, rows, reported, partial=mode)
        assert c.loc[(c["row"] == "NT-Xent cos") & (c["column"] == "5"), "ours_status"].iloc[0] == word


def test_a_miniature_is_compared_but_never_counted(reported):
    rows = summary("table1", ["fmnist_mini"], [0, 1], ["firm"], ["rot"], ["cos", "rot", "ens"])
    for name, paper_dataset in (("table1c", "fashion_mnist"), ("table1a", "cifar10")):
        cells = tabs.compare(tabs.TABLES.get(name), rows, reported)
        ours = cells[cells["ours_status"] == "ok"]
        assert len(ours) and ours["stand_in"].all() and set(ours["paper_dataset"]) == {paper_dataset}
        assert ours["paper_value"].notna().any() and tabs.agreement(cells).compared == 0
        assert "†" in tabs.render(tabs.TABLES.get(name), cells, "md")
    mean = tabs.compare(tabs.TABLES.get("table1c"), rows, reported)
    assert "(mean of 2/10 classes)" in tabs.render(tabs.TABLES.get("table1c"), mean, "md")


def test_a_table_with_no_runs_renders_the_paper_alone(reported):
    spec = tabs.TABLES.get("table16")
    cells = tabs.compare(spec, summary("e", ["cifar10"], [0], ["firm"], ["rot"], ["cos"]).iloc[0:0], reported)
    assert set(cells["ours_status"]) == {"not run"} and tabs.agreement(cells).compared == 0
    assert "not run" in tabs.render(spec, cells, "md")


def test_recipe_and_k_label_every_output(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm"], ["rot"], ["cos"], checkpoint="best_test")
    spec = tabs.TABLES.get("table10a")
    cells = tabs.compare(spec, rows, reported)
    for fmt in ("md", "tex", "html"):
        text = tabs.render(spec, cells, fmt)
        assert "onecycle" in text and "TEST" in text and "BN momentum 0.9" in text and f"k = {K}" in text
    tex = tabs.render(spec, cells, "tex")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\hline" not in tex


def test_write_table_and_cli_round_trip(tmp_path, reported):
    from firm_bench.records.summary import write_csv

    src = write_csv(summary_from_paper("6"), tmp_path / "table6.csv")
    parser = build_parser()
    args = parser.parse_args(["paper-table", "table6", str(src), "--out-dir", str(tmp_path / "t"), "--tolerance", "0.5"])
    assert args.func(args) == 0
    for ext in ("md", "tex", "csv"):
        assert (tmp_path / "t" / f"table6.{ext}").stat().st_size > 0
    cells = tabs.read_cells(tmp_path / "t" / "table6.csv")
    again = tabs.compare(tabs.TABLES.get("table6"), read_summaries([src]), reported)
    assert tabs.agreement(cells) == tabs.agreement(again)
    assert tabs.render(tabs.TABLES.get("table6"), cells, "md") == (tmp_path / "t" / "table6.md").read_text().replace(
        "0.5 point", "1.0 point")
    with pytest.raises(FileNotFoundError, match="snakemake"):
        read_summaries([tmp_path / "absent.csv"])


def test_rendering_from_results_imports_no_torch(tmp_path):
    """Tables, summaries and reports read CSV/JSON: each workflow job of that kind starts without torch."""
    import subprocess
    import sys

    path = tmp_path / "table1a.csv"
    summary("table1a", ["cifar10"], range(10), ["firm", "ntxent"], ["rot"], ["cos"]).to_csv(path, index=False)
    code = (
        "import sys\n"
        "from firm_bench.cli import main\n"
        f"assert main(['paper-table', 'table1a', {str(path)!r}, '--out-dir', {str(tmp_path / 'out')!r}]) == 0\n"
        f"assert main(['table', {str(path)!r}, '--out', {str(tmp_path / 'plain.md')!r}]) == 0\n"
        f"assert main(['combine', '--out', {str(tmp_path / 'all.csv')!r}, {str(path)!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "CIFAR-10" in (tmp_path / "out" / "table1a.md").read_text()


# --------------------------------------------------------------------------- #
# Table 4: one row per score of ours, each beside the same printed FIRM row
# --------------------------------------------------------------------------- #
OOD_SETS = ["svhn", "lsun_resize", "imagenet_resize", "lsun_fix", "imagenet_fix", "cifar100"]
#: the reference's multiclass scores (evaluate_multiclass.py): cos_5, cos_5_norm, plain / _angled / _ensemble
REFERENCE_T4_SCORES = ["cos", "cos_norm", "rot", "rot_norm", "ens", "ens_norm"]
#: Table 4's printed FIRM and FIRM w/ OE rows, copied by hand from reported_results.csv (in OOD_SETS order, mean)
PAPER_T4 = {"rot": [99.8, 98.1, 95.6, 95.8, 93.6, 88.7, 95.2], "oe": [99.8, 97.3, 93.7, 97.3, 95.3, 90.1, 95.5]}


def ood_summary(scores, oods=OOD_SETS, outliers=("rot", "oe"), auroc=0.9):
    """Table 4 summary rows: one run per outlier source and seed (cls all), scored against each OOD set."""
    frames = [summary("table4", ["cifar10"], ["all"], ["firm"], list(outliers), list(scores), auroc=auroc)
              .assign(evalset=o) for o in oods]
    return pd.concat(frames, ignore_index=True)


def test_table4_shows_each_score_as_its_own_row_beside_the_same_paper_row(reported):
    spec = tabs.TABLES.get("table4")
    cells = tabs.compare(spec, ood_summary(REFERENCE_T4_SCORES), reported)
    ours = cells[cells["ours_status"] == "ok"]
    expected_rows = {f"FIRM {'w/ OE ' if o == 'oe' else ''}{s}" for o in ("rot", "oe") for s in REFERENCE_T4_SCORES}
    assert set(ours["row"]) == expected_rows
    for outliers, values in PAPER_T4.items():
        for score in REFERENCE_T4_SCORES:
            row = ours[(ours["outliers"] == outliers) & (ours["score"] == score)].set_index("column")
            assert list(row.loc[[*OOD_SETS, "mean"], "paper_value"]) == pytest.approx(values), (outliers, score)
            assert row["comparable"].all() and row["diff"].to_numpy() == pytest.approx(90.1 - np.array(values))
    # the paper's FIRM rows are not shown again on their own: each joined our rows
    assert not (cells["ours_status"] == "not run").any()
    assert tabs.agreement(cells).compared == 2 * len(REFERENCE_T4_SCORES) * 7
    md = tabs.render(spec, cells, "md")
    assert "does not state Table 4's score" in md
    assert [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| FIRM")] == [
        f"FIRM {s}" for s in REFERENCE_T4_SCORES] + [f"FIRM w/ OE {s}" for s in REFERENCE_T4_SCORES]


def test_table4_mean_over_some_ood_sets_is_compared_with_the_same_sets(reported):
    cells = tabs.compare(tabs.TABLES.get("table4"), ood_summary(["cos", "rot"], oods=["svhn", "lsun_fix"]), reported)
    mean = cells[(cells["row"] == "FIRM rot") & (cells["column"] == "mean")].iloc[0]
    assert mean["n_classes"] == "2/6" and mean["paper_value"] == pytest.approx((99.8 + 95.8) / 2)
    assert mean["comparable"] and mean["diff"] == pytest.approx(90.1 - 97.8)
    assert mean["paper_basis"] == "mean of OOD sets lsun_fix, svhn of Table 4"


def test_paper_config_scores_table4_as_the_reference_does():

    import yaml

    cfg = yaml.safe_load((ROOT / "workflow" / "config" / "paper.yaml").read_text())
    t4 = cfg["experiments"]["table4"]
    assert t4["scores"] == REFERENCE_T4_SCORES and t4["k"] == [5]


# --------------------------------------------------------------------------- #
# class subsets: the paper's mean over the same classes, or no Δ
# --------------------------------------------------------------------------- #
RAW = None


def raw_paper(table, method, score, outliers="rotation"):
    """Printed per-class values of one configuration, read from the CSV directly (not through reported.py)."""
    global RAW
    if RAW is None:
        RAW = pd.read_csv(rep.reported_path(), dtype=str, keep_default_na=False)
    rows = RAW[(RAW["table"] == table) & (RAW["method"] == method) & (RAW["score"] == score)
               & (RAW["outliers"] == outliers) & (RAW["metric"] == "auroc")]
    return dict(zip(rows["in_class"], rows["value"].astype(float)))


def mean_cell(cells, row, column="mean"):
    hit = cells[(cells["row"] == row) & (cells["column"] == column)]
    assert len(hit) == 1, cells[["row", "column"]].drop_duplicates().to_string()
    return hit.iloc[0]


@pytest.mark.parametrize("table", ["table1a", "table13"])
def test_a_class_subset_is_compared_with_the_papers_mean_over_the_same_classes(table, reported):
    rows = summary("e", ["cifar10"], [0, 3], ["firm"], ["rot"], ["cos", "rot"], auroc=0.9)
    spec = tabs.TABLES.get(table)
    cells = tabs.compare(spec, rows, reported)
    for score in ("cos", "rot"):
        printed = raw_paper(table.removeprefix("table"), "FIRM", score)
        c = mean_cell(cells, f"FIRM {score}")
        expect = (printed["0"] + printed["3"]) / 2
        assert c["n_classes"] == "2/10" and c["mean_of"] == "0, 3"
        assert c["paper_value"] == pytest.approx(expect) and np.isnan(c["paper_std"])
        assert c["paper_value"] != pytest.approx(printed["mean"])  # not the 10-class mean
        assert c["diff"] == pytest.approx(90.1 - expect) and c["comparable"]
        assert c["paper_basis"] == f"mean of classes 0, 3 of Table {spec.paper}"
    md = tabs.render(spec, cells, "md")  # the basis: a footnote mark in the cell, its text in the notes
    mark = re.search(r"\| [0-9.]+ (\[[a-z]\]) +\|", md)[1]
    assert f"- {mark} Mean of classes 0, 3 of Table {spec.paper}." in md
    tex, html = tabs.render(spec, cells, "tex"), tabs.render(spec, cells, "html")  # LaTeX table notes, HTML list
    assert f"\\item{{}} {mark} Mean of classes 0, 3 of Table {spec.paper}." in tex
    assert f"<li>{mark} Mean of classes 0, 3 of Table {spec.paper}.</li>" in html
    assert tabs.agreement(cells).compared == 2 * 3  # classes 0, 3 and the subset mean, per score


def test_a_mean_only_table_takes_the_subset_mean_from_its_per_class_table(reported):
    rows = summary("e", ["cifar100"], [0, 3, 7], ["firm"], ["rot", "oe"], ["cos"], auroc=0.9)
    spec = tabs.TABLES.get("table1b")
    cells = tabs.compare(spec, rows, reported)
    printed = raw_paper("14", "FIRM", "cos")
    c = mean_cell(cells, "FIRM cos", "cifar100")
    assert c["paper_value"] == pytest.approx((printed["0"] + printed["3"] + printed["7"]) / 3)
    assert c["comparable"] and c["paper_basis"] == "mean of classes 0, 3, 7 of Table 14"
    # FIRM w/ OE on CIFAR-100: no per-class numbers anywhere -> the printed full mean, no Δ, not counted
    oe = mean_cell(cells, "FIRM w/ OE cos", "cifar100")
    assert oe["paper_value"] == pytest.approx(94.7) and oe["paper_std"] == pytest.approx(0.1)
    assert np.isnan(oe["diff"]) and not oe["comparable"]
    assert "no per-class numbers" in oe["paper_basis"]
    assert tabs.agreement(cells).compared == 1
    md = tabs.render(spec, cells, "md")
    oe_lines = md.split("| FIRM w/ OE cos")[1].splitlines()[:3]
    mark = re.search(r"94\.7 ± 0\.1 (\[[a-z]\])", oe_lines[1])[1]
    assert f"- {mark} Printed mean of all 20 classes" in md and oe_lines[2].split("|")[3].strip() == "–"


def test_a_per_class_table_of_other_runs_gives_no_subset_mean(reported):
    # NOTES.md: Table 1d's rot and ens means differ from Table 16's (other runs); cos agrees
    rows = summary("e", ["cats_vs_dogs"], [1], ["firm"], ["rot"], ["cos", "rot", "ens"], auroc=0.9)
    cells = tabs.compare(tabs.TABLES.get("table1d"), rows, reported)
    cos = mean_cell(cells, "FIRM cos", "cats_vs_dogs")
    assert cos["paper_value"] == pytest.approx(raw_paper("16", "FIRM", "cos")["1"]) and cos["comparable"]
    for score, printed in (("rot", 90.0), ("ens", 89.7)):
        c = mean_cell(cells, f"FIRM {score}", "cats_vs_dogs")
        assert c["paper_value"] == pytest.approx(printed) and np.isnan(c["diff"]) and not c["comparable"]
        assert "Table 16" in c["paper_basis"] and "other runs" in c["paper_basis"]


def test_subset_means_of_table5_use_only_same_run_sources(reported):
    rows = summary("e", ["cifar10", "cifar100"], [0, 3], ["ntxent", "firm"], ["rot"], ["cos"], auroc=0.9)
    cells = tabs.compare(tabs.TABLES.get("table5"), rows, reported)
    a = raw_paper("10a", "NT-Xent", "cos")
    c10 = mean_cell(cells, "NT-Xent cos", "cifar10 AUROC")  # Table 10a: the same runs (set A)
    assert c10["paper_value"] == pytest.approx((a["0"] + a["3"]) / 2) and c10["comparable"]
    c100 = mean_cell(cells, "NT-Xent cos", "cifar100 AUROC")  # Table 14 prints 87.7, Table 5 86.3
    assert c100["paper_value"] == pytest.approx(86.3) and np.isnan(c100["diff"]) and not c100["comparable"]
    aulc = mean_cell(cells, "NT-Xent cos", "cifar10 AULC")  # no per-class AULC anywhere
    assert aulc["paper_value"] == pytest.approx(89.2) and np.isnan(aulc["diff"])
    gain = mean_cell(cells, "FIRM cos: relative improvement over NT-Xent (%)", "cifar10 AUROC")
    assert np.isnan(gain["diff"]) and "relative improvement over a subset" in gain["paper_basis"]
    assert tabs.agreement(cells).compared == 2


def test_full_means_are_unchanged_by_the_subset_rule(reported):
    cells = reproduced("table1b")
    assert cells["paper_basis"].isna().all() and tabs.agreement(cells).compared == 4


# --------------------------------------------------------------------------- #
# per-table notes in every caption
# --------------------------------------------------------------------------- #
def test_table1a_caption_says_which_rows_its_rot_and_ens_rows_are(tmp_path, reported):
    rows = summary("table1a", ["cifar10"], range(10), ["firm"], ["rot"], ["cos", "rot", "ens", "rot_norm", "ens_norm"])
    paths = tabs.write_table("table1a", rows, tmp_path)
    md = (tmp_path / "table1a.md").read_text()
    assert "equal Table 11's rot_norm and ens_norm rows" in md and "our rot and ens rows are compared with them" in md
    assert "equal Table 11's rot\\_norm and ens\\_norm rows" in (tmp_path / "table1a.tex").read_text()
    spec = tabs.TABLES.get("table1a")
    cells = tabs.read_cells(paths[-1])
    assert "our rot and ens rows are compared with them" in tabs.render(spec, cells, "html")
    # and it is so: our rot meets the printed "rot" row (= Table 11 rot_norm), our rot_norm meets nothing here
    assert mean_cell(cells, "FIRM rot", "0")["paper_value"] == pytest.approx(raw_paper("1a", "FIRM", "rot")["0"])
    assert mean_cell(cells, "FIRM rot", "0")["paper_value"] == pytest.approx(raw_paper("11", "FIRM", "rot_norm")["0"])
    assert np.isnan(mean_cell(cells, "FIRM rot_norm", "0")["paper_value"])


def test_per_class_sources_are_per_class_tables_of_the_same_dataset(reported):
    for name, spec in tabs.TABLES.items():
        for src in spec.per_class_from:
            source = tabs.TABLES.get(f"table{src}")
            assert source.per_class and not spec.per_class, (name, src)
            assert set(rep.paper_rows(reported, src)["dataset"]) <= set(rep.paper_rows(reported, spec.paper)["dataset"])


REFERENCE = {"ntxent": "pairwise", "supcon": "concat", "supcon_star": "concat", "firm": "pairwise"}


def test_caption_names_the_form_of_each_loss(reported, tmp_path):
    losses = ["ntxent", "supcon", "supcon_star", "firm"]
    rows = summary("e", ["cifar10"], range(10), losses, ["rot"], ["cos"])
    rows["loss_form"] = rows["loss"].map(REFERENCE)
    spec = tabs.TABLES.get("table5")
    cells = tabs.compare(spec, rows, reported)
    assert dict(cells.dropna(subset=["loss_form"])[["loss", "loss_form"]].drop_duplicates().values) == REFERENCE
    md = tabs.render(spec, cells, "md")
    assert ("loss forms: NT-Xent pairwise (N×N), SupCon concat (2N×2N), SupCon* concat (2N×2N), FIRM pairwise (N×N)"
            " — as the reference ran them") in md
    assert r"concat (2N$\times$2N)" in tabs.render(spec, cells, "tex")
    # the override: every loss pairwise, which the reference did not do for SupCon / SupCon*
    forced = tabs.render(spec, tabs.compare(spec, rows.assign(loss_form="pairwise"), reported), "md")
    assert "loss forms: all pairwise (N×N) — override; the reference ran SupCon/SupCon* in concat (2N×2N)" in forced
    assert labels.loss_form_label(rows, compact=True).startswith("loss forms: NT-Xent pairwise, SupCon concat")
    # a cell CSV written by an earlier firm-bench, without the label: refused, naming the file
    from firm_bench.records.summary import write_csv

    path = write_csv(cells.drop(columns=["loss_form", "id_labels"]), tmp_path / "old.csv")
    with pytest.raises(ValueError, match="old.csv lacks column.*loss_form.*rebuild it"):
        tabs.read_cells(path)


def test_summaries_of_an_earlier_firm_bench_are_refused_and_unrun_losses_name_no_form(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm", "supcon"], ["rot"], ["cos"])
    with pytest.raises(ValueError, match=r"lack\(s\) column\(s\) \['loss_form', 'id_labels'\].*rebuild"):
        read_summaries(rows.drop(columns=["loss_form", "id_labels"]))
    df = read_summaries(rows.assign(loss_form=None))
    assert labels.loss_form_label(df) == "loss forms: unknown"
    partly = df.assign(loss_form=df["loss"].map({"firm": "pairwise"}))  # no SupCon run recorded a form
    assert labels.loss_form_label(partly) == "loss forms: FIRM pairwise (N×N) — as the reference ran them"


def test_id_labels_are_named_in_the_caption(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm"], ["rot"], ["cos"], loss_form="pairwise", id_labels=True)
    assert "in-distribution class labels used" in labels.recipe_label(rows)
    assert "class labels" not in labels.recipe_label(rows.assign(id_labels=False))


# --------------------------------------------------------------------------- #
# the untrained-encoder baseline and the protocol labels in captions
# --------------------------------------------------------------------------- #
def test_untrained_encoder_row_one_per_seed_whatever_the_loss(reported):
    """Every run's untrained_auroc becomes an 'untrained encoder' row: per class the mean over seeds of the
    baseline, taken once per seed (it is the seed's initial weights), never compared with the paper."""
    rows = summary("table13", ["cifar10"], [0, 3], ["ntxent", "supcon", "supcon_star", "firm"], ["rot"], ["cos"])
    rows["untrained_auroc"] = 0.55 + 0.01 * rows["seed"] + 0.001 * rows["cls"].astype(int)
    rows.loc[rows["loss"] == "firm", "untrained_auroc"] = 0.55 + 0.01 * rows["seed"] + 0.001 * rows["cls"].astype(int)
    cells = tabs.compare(tabs.TABLES.get("table13"), rows, reported)
    base = cells[cells["loss"] == tabs.UNTRAINED]
    assert set(base["row"]) == {"untrained encoder cos"} and set(base["metric"]) == {"auroc"}
    per_class = base[base["cls"] != "mean"].set_index("cls")
    assert per_class.loc["3", "ours_mean"] == pytest.approx(100 * (0.555 + 0.003))
    assert per_class.loc["3", "n_ok"] == 2  # one value per seed, not one per loss
    assert base["paper_value"].isna().all() and not base["comparable"].any()
    md = tabs.render(tabs.TABLES.get("table13"), cells, "md")
    assert "untrained encoder: the same scores of each run's encoder at initialisation" in md
    # results without the baseline (features.untrained: false, or from before it): no such row
    rows["untrained_auroc"] = None
    assert not (tabs.compare(tabs.TABLES.get("table13"), rows, reported)["loss"] == tabs.UNTRAINED).any()


def test_caption_names_the_protocol_and_the_generators_differences(reported):
    rows = summary("table2", ["mvtec"], ["bottle", "grid"], ["ntxent", "firm"], ["ref_nsa"], ["cos"],
                   precision="bf16", normalization="reference", head_init="kaiming", image_size=256, eval_size=32,
                   eval_zoom=1.0, batching="paired")
    md = tabs.render(tabs.TABLES.get("table2"), tabs.compare(tabs.TABLES.get("table2"), rows, reported), "md")
    assert "precision bf16 (the reference: fp32)" in md and "normalisation reference," in md
    assert "evaluated at 32 px, zoom 1.0 (training at 256 px)" in md and "paired batches" in md
    assert "Outliers ref_nsa differ from the reference code in: Poisson solve" in md


# --------------------------------------------------------------------------- #
# faithfulness labels on the outputs
# --------------------------------------------------------------------------- #
def test_supcon_on_the_older_mvtec_generator_is_labelled_as_matching_no_reference_commit(reported):
    spec = tabs.TABLES.get("table2")
    rows = summary("t2", ["mvtec"], ["bottle"], ["ntxent", "supcon", "firm"], ["ref_cutpaste_scar"], ["cos"])
    md = tabs.render(spec, tabs.compare(spec, rows, reported), "md")
    assert "- SupCon with ref_cutpaste_scar matches no commit the reference ran" in md
    assert "@2558887f" in md and "jitter 0.1" in md
    other = summary("t2", ["mvtec"], ["bottle"], ["supcon"], ["ref_nsa"], ["cos"])  # NSA: the later commits
    assert "matches no commit" not in tabs.render(spec, tabs.compare(spec, other, reported), "md")
    from firm_bench.paper import figures as figs

    fig = figs.draw("fig3", figs.FigureData(rows, pd.DataFrame()))  # its panels: features missing, still labelled
    assert "matches no commit the reference ran" in fig._supxlabel.get_text().replace("\n", " ")


@pytest.mark.parametrize("name", ["table1d", "table16"])
def test_cats_vs_dogs_tables_say_whose_images_they_are(name, reported):
    spec = tabs.TABLES.get(name)
    for cells in (tabs.compare(spec, summary("e", ["cats_vs_dogs"], [0, 1], ["firm"], ["rot"], ["cos"]), reported),
                  tabs.compare(spec, summary("e", ["cats_vs_dogs"], [0], ["firm"], ["rot"], ["cos"]).iloc[0:0],
                               reported)):
        md = tabs.render(spec, cells, "md")
        assert "Kaggle JPEGs" in md and "unpublished 64 × 64 npz" in md and "training constants" in md
