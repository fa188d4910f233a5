"""records.summary: experiment rows from run directories (ok, failed, missing), curves, combining and reading back,
and the mean +- std table, against hand computations."""

import re
import statistics

import pandas as pd
import pytest

from firm_bench.core import rundir as runs
from firm_bench.records.summary import (
    COLUMNS,
    combine,
    experiment_curves,
    experiment_rows,
    mean_std_table,
    read_curves,
    read_summaries,
    write_csv,
)
from tests.helpers.summaries import summary

RECIPE = {"schedule": "onecycle", "checkpoint": "last", "bn_momentum": 0.9, "loss_form": "pairwise", "tau": 0.2}


def _run(root, cls, seed, aurocs=None, state="ok", reason=None, aulc=0.5):
    """A run directory as training and scoring leave it: status.json, and metrics.json where it was scored."""
    run_dir = root / f"fmnist_mini/{cls}/firm/rot/smoke/seed{seed}"
    run_dir.mkdir(parents=True)
    runs.write_status(run_dir, state, **({"reason": reason} if reason else {}))
    if aurocs is not None:
        scores = {key: {"score": key.split("_k")[0], "k": 5 if "_k" in key else None, "status": "ok", "auroc": a,
                        "reason": None, "untrained_auroc": 0.5} for key, a in aurocs.items()}
        runs.atomic_write_json(run_dir / runs.METRICS_FILE, {
            "recipe": RECIPE, "aulc": aulc, "train_seconds": 12.0, "scores": scores, "evalsets": {"test": scores}})
    return str(run_dir)


def test_rows_of_ok_failed_and_missing_runs(tmp_path):
    ok = _run(tmp_path, 0, 0, {"cos_k5": 0.8, "center": 0.7}, aulc=0.75)
    failed = _run(tmp_path, 0, 1, state="failed", reason="loss is nan at epoch 3")
    unscored = _run(tmp_path, 1, 0)
    df = experiment_rows("exp", [ok, failed, unscored], scores=["cos", "center"], ks=[5])
    assert list(df.columns) == COLUMNS and len(df) == 6
    by = {(r.run_dir, r.score): r for r in df.itertuples()}
    assert by[ok, "cos"].auroc == 0.8 and by[ok, "cos"].k == 5 and by[ok, "cos"].status == "ok"
    assert by[ok, "center"].auroc == 0.7 and pd.isna(by[ok, "center"].k)  # a score without k
    assert by[ok, "cos"].aulc == 0.75 and by[ok, "cos"].loss_form == "pairwise" and by[ok, "cos"].untrained_auroc == 0.5
    assert (by[ok, "cos"].dataset, by[ok, "cos"].cls, by[ok, "cos"].seed) == ("fmnist_mini", "0", 0)
    for score in ("cos", "center"):
        assert by[failed, score].status == "failed" and by[failed, score].reason == "loss is nan at epoch 3"
        assert pd.isna(by[failed, score].auroc) and pd.isna(by[failed, score].aulc)
        assert by[unscored, score].status == "missing" and "metrics.json" in by[unscored, score].reason


def test_a_score_the_run_lacks_is_missing_not_a_number(tmp_path):
    run = _run(tmp_path, 0, 0, {"cos_k5": 0.8})
    df = experiment_rows("exp", [run], scores=["cos", "rot"], ks=[5])
    rot = df[df.score == "rot"].iloc[0]
    assert rot.status == "missing" and "test/rot_k5" in rot.reason and pd.isna(rot.auroc)


def test_curves_one_row_per_evaluated_epoch(tmp_path):
    run = _run(tmp_path, 0, 0)
    runs.write_curve(run, [{"epoch": e, "auroc": 0.5 + e / 10, "loss": 2.0 - e, "lr": 0.1, "elapsed_s": e}
                           for e in range(3)])
    df = experiment_curves("exp", [run, run])  # a run listed twice is read once
    assert df["epoch"].tolist() == [0, 1, 2] and df["auroc"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert df["loss_value"].tolist() == [2.0, 1.0, 0.0] and set(df["experiment"]) == {"exp"}


def test_summaries_read_back_each_shared_run_once(tmp_path):
    runs_ = [_run(tmp_path, c, s, {"cos_k5": 0.8 + c / 10 + s / 100}) for c in (0, 1) for s in (0, 1)]
    a = write_csv(experiment_rows("table5", runs_, ["cos"], [5]), tmp_path / "table5.csv")
    b = write_csv(experiment_rows("table10a", runs_[:2], ["cos"], [5]), tmp_path / "table10a.csv")
    assert len(combine([a, b])) == 6
    df = read_summaries([a, b])
    assert len(df) == 4 and set(df["cls"]) == {"0", "1"} and df["ood"].isna().all()
    with pytest.raises(FileNotFoundError, match="snakemake .*nope.csv"):
        read_summaries([tmp_path / "nope.csv"])
    curves = tmp_path / "c.csv"
    write_csv(experiment_curves("table5", []), curves)
    assert read_curves([curves]).empty


def test_mean_std_table_is_the_mean_over_seeds_of_the_class_mean(tmp_path):
    values = {(0, 0): 0.80, (0, 1): 0.90, (1, 0): 0.60, (1, 1): 0.70}
    runs_ = [_run(tmp_path, c, s, {"cos_k5": a}) for (c, s), a in values.items()]
    runs_.append(_run(tmp_path, 2, 0, state="failed", reason="nan"))
    text = mean_std_table(experiment_rows("exp", runs_, ["cos"], [5]), title="T")
    row = next(line for line in text.splitlines() if "fmnist_mini firm rot smoke cos k=5" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{85.0:.1f} ± {statistics.stdev([80, 90]):.1f}"  # class 0 over its seeds
    assert cells[2] == f"{65.0:.1f} ± {statistics.stdev([60, 70]):.1f}"
    assert cells[3] == "failed"  # every run of class 2 failed: not "missing", no number
    seed_means = [(0.80 + 0.60) / 2 * 100, (0.90 + 0.70) / 2 * 100]
    assert cells[4] == f"{statistics.mean(seed_means):.1f} ± {statistics.stdev(seed_means):.1f}"
    assert "Recipe: schedule: onecycle" in text and "loss_form: pairwise" in text


def _row(table: str, start: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {start}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_an_all_failed_row_reads_failed_not_missing():
    df = summary("e", ["cifar10"], [0, 1], ["firm", "ntxent"], ["rot"], ["cos"], seeds=(0, 1))
    df = df[df["k"] == 5].copy()
    failed = df["loss"] == "ntxent"
    df.loc[failed, ["status", "auroc", "reason"]] = ["failed", None, "non-finite loss (nan) at epoch 3, step 1"]
    table = mean_std_table(df, "t")
    bad = _row(table, "cifar10 ntxent")
    assert bad[1:4] == ["failed", "failed", "failed"], bad  # class 0, class 1, mean over classes
    good = _row(table, "cifar10 firm")
    assert good[3].startswith("90.") and "±" in good[3]
    missing = df[~failed].assign(status="missing", auroc=None)
    assert _row(mean_std_table(missing, "t"), "cifar10 firm")[1:4] == ["missing"] * 3


def _summary_file(tmp_path):
    path = tmp_path / "table1.csv"
    write_csv(summary("table1", ["fmnist_mini"], [0, 1], ["firm"], ["rot"], ["cos"]), path)
    return path


def test_a_summary_cut_mid_row_is_refused_naming_it(tmp_path, capsys):
    """A summary cut mid-row (an interrupted copy) is never read as results with NaN (missing) cells."""
    from firm_bench.cli import main
    from firm_bench.core.errors import DamagedFile

    path = _summary_file(tmp_path)
    text = path.read_text()
    assert len(read_summaries([path])) == 8
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 40])  # the last row, 40 characters of it
    with pytest.raises(DamagedFile, match=re.escape(f"{path} (an experiment summary) is cut short: its last line "
                                                    f"(line 9) ends mid-row, without a newline; rebuild it "
                                                    f"(`snakemake {path}`")):
        read_summaries([path])
    path.write_text(text.replace("\n", ",\n", 3).replace(",\n", "\n", 1))  # rows 1 and 2 with an extra field
    with pytest.raises(DamagedFile, match=re.escape("row 1 has 36 fields, its header 35: the row is cut or mangled")):
        read_summaries([path])
    path.write_text(text[: text.index("\n", text.index("\n") + 1) + 1] + text.splitlines()[2][:30] + "\n")
    with pytest.raises(DamagedFile, match=re.escape("row 2 has ")):
        combine([path])
    assert main(["table", str(path), "--out", str(tmp_path / "t.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} (an experiment summary)" in err and "row 2 has" in err


def test_a_summary_with_a_value_that_is_not_a_number_is_refused_naming_row_and_column(tmp_path, capsys):
    from firm_bench.cli import main
    from firm_bench.core.errors import DamagedFile

    path = _summary_file(tmp_path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[3, "auroc"] = "abc"
    df.to_csv(path, index=False)
    with pytest.raises(DamagedFile, match=re.escape(f"{path} (an experiment summary) row 4: auroc is 'abc', not a "
                                                    "number; rebuild it")):
        read_summaries([path])
    assert main(["table", str(path), "--out", str(tmp_path / "t.md")]) == 2
    assert "row 4: auroc is 'abc', not a number" in capsys.readouterr().err
    df.loc[3, "auroc"] = ""  # an empty cell is a missing number, as the workflow writes one
    df.to_csv(path, index=False)
    assert read_summaries([path])["auroc"].isna().sum() == 1
    curves = tmp_path / "c.csv"
    frame = experiment_curves("table5", [])
    frame.loc[0] = ["table5", "fmnist_mini", "0", "firm", "rot", "smoke", 0, "x1", 0.5, 1.0, 2.0, "r"]
    frame.to_csv(curves, index=False)
    with pytest.raises(DamagedFile, match=re.escape("(the learning curves of an experiment) row 1: epoch is 'x1'")):
        read_curves([curves])
