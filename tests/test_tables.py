"""firm_bench.tables: every paper table renders from a synthetic results fixture, ours beside the paper's."""

import argparse
import functools
import itertools

import numpy as np
import pandas as pd
import pytest

from firm_bench import reported as rep
from firm_bench import tables as tabs
from firm_bench.datasets import DATASETS
from firm_bench.scores import score_family
from firm_bench.summary import COLUMNS

K = tabs.default_k()


def summary(experiment, datasets, classes, losses, outliers, scores, seeds=(0, 1), recipe="paper", auroc=0.9,
            **columns):
    """Summary rows as the workflow writes them: every run x score (x k), all ok."""
    rows = []
    for dataset, cls, loss, outl, score, seed in itertools.product(datasets, classes, losses, outliers, scores, seeds):
        for k in ([1, K] if score_family(score) == "knn" else [None]):
            rows.append({
                "experiment": experiment, "dataset": dataset, "cls": str(cls), "loss": loss, "outliers": outl,
                "recipe": recipe, "seed": seed, "evalset": "test", "score": score, "k": k,
                "auroc": auroc + 0.002 * seed - (0.3 if k == 1 else 0), "aulc": auroc - 0.05, "status": "ok",
                "reason": None, "schedule": "onecycle", "checkpoint": "last", "bn_momentum": 0.9, "tau": 0.2,
                "batch_size": 32, "epochs": 2000, "train_seconds": 60.0,
                "run_dir": f"results/runs/{dataset}/{cls}/{loss}/{outl}/{recipe}/seed{seed}", **columns,
            })
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["k"] = df["k"].astype("Int64")
    return df


def summary_from_paper(table: str, seeds=(0, 1)) -> pd.DataFrame:
    """Our runs as if they had reproduced the paper's own rows of ``table`` exactly.

    Per-class paper values become the runs' AUROC / AULC (+- 0.05 points over
    seeds); a table that prints only class means gets that mean for every
    class of the dataset. A label the paper does not state becomes ours
    (cutpaste_scar, cos). k-NN scores also get a k = 1 row 30 points off.
    """
    cells = rep.paper_rows(rep.load_reported(), table)
    cells = cells[cells["loss"].notna() & cells["metric"].isin(["auroc", "aulc"])]
    rows = []
    keys = ["dataset", "loss", "outliers", "score"]
    for key, group in cells.groupby(keys, dropna=False, sort=False):
        dataset, loss, outliers, score = key
        outliers = outliers if isinstance(outliers, str) else "cutpaste_scar"
        score = score if isinstance(score, str) else "cos"
        ood = group["ood"].notna().any()  # Table 4: one result per OOD set
        values = group.pivot_table(index=["ood", "cls"] if ood else ["cls"], columns="metric", values="value_pct",
                                   dropna=False).reset_index()
        per_item = values[(values["cls"] != "mean") & (values.get("ood", "") != "mean")]
        if per_item.empty:  # class means only: every class gets the mean
            per_item = pd.concat([values.assign(cls=str(c)) for c in range(len(DATASETS.get(dataset).classes))])
        for item in per_item.to_dict("records"):
            for seed in seeds:
                for k in ([1, K] if score_family(score) == "knn" else [None]):
                    off = 0.05 * (2 * seed - 1) / 100 - (0.3 if k == 1 else 0)
                    ood_name = item["ood"] if ood else "test"
                    rows.append({
                        "experiment": f"t{table}", "dataset": dataset, "cls": item["cls"], "loss": loss,
                        "outliers": outliers, "recipe": "paper", "seed": seed, "evalset": ood_name, "score": score,
                        "k": k, "auroc": item.get("auroc", 90.0) / 100 + off, "aulc": item.get("aulc", np.nan) / 100,
                        "status": "ok", "reason": None, "schedule": "onecycle", "checkpoint": "last",
                        "bn_momentum": 0.9, "tau": 0.2, "batch_size": 32, "epochs": 2000, "train_seconds": 60.0,
                        "run_dir": f"results/runs/{dataset}/{item['cls']}/{loss}/{outliers}/paper/seed{seed}",
                    })
    return pd.DataFrame(rows, columns=COLUMNS)


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
    assert "failed" in next(ln for ln in md.splitlines() if ln.startswith("| 3 "))  # class 3's "ours" line
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
    from firm_bench.summary import write_csv

    src = write_csv(summary_from_paper("6"), tmp_path / "table6.csv")
    parser = argparse.ArgumentParser()
    tabs.register_cli(parser.add_subparsers())
    args = parser.parse_args(["paper-table", "table6", str(src), "--out-dir", str(tmp_path / "t"), "--tolerance", "0.5"])
    assert args.func(args) == 0
    for ext in ("md", "tex", "csv"):
        assert (tmp_path / "t" / f"table6.{ext}").stat().st_size > 0
    cells = tabs.read_cells(tmp_path / "t" / "table6.csv")
    again = tabs.compare(tabs.TABLES.get("table6"), tabs.read_summaries([src]), reported)
    assert tabs.agreement(cells) == tabs.agreement(again)
    assert tabs.render(tabs.TABLES.get("table6"), cells, "md") == (tmp_path / "t" / "table6.md").read_text().replace(
        "0.5 point", "1.0 point")
    with pytest.raises(FileNotFoundError, match="snakemake"):
        tabs.read_summaries([tmp_path / "absent.csv"])


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
    assert tabs.loss_form_label(rows, compact=True).startswith("loss forms: NT-Xent pairwise, SupCon concat")
    # a cell CSV written before the label existed reads back, the form unknown
    from firm_bench.summary import write_csv

    path = write_csv(cells.drop(columns=["loss_form", "id_labels"]), tmp_path / "old.csv")
    assert tabs.read_cells(path)["loss_form"].isna().all()


def test_older_summaries_without_the_form_read_as_unknown(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm", "supcon"], ["rot"], ["cos"]).drop(columns=["loss_form", "id_labels"])
    df = tabs.read_summaries(rows)
    assert df["loss_form"].isna().all()
    assert tabs.loss_form_label(df) == "loss forms: not recorded (results from before the label)"
    partly = df.assign(loss_form=df["loss"].map({"firm": "pairwise"}))
    assert tabs.loss_form_label(partly) == ("loss forms: SupCon unknown, FIRM pairwise (N×N) — SupCon: form not "
                                            "recorded (older results)")
    text = tabs.render(tabs.TABLES.get("table10a"), tabs.compare(tabs.TABLES.get("table10a"), df, reported), "md")
    assert "loss forms: not recorded" in text


def test_id_labels_are_named_in_the_caption(reported):
    rows = summary("e", ["cifar10"], range(10), ["firm"], ["rot"], ["cos"], loss_form="pairwise", id_labels=True)
    assert "in-distribution class labels used" in tabs.recipe_label(rows)
    assert "class labels" not in tabs.recipe_label(rows.assign(id_labels=False))
