"""The per-experiment Markdown table: a configuration whose runs all failed says so."""

from firm_bench.records.summary import mean_std_table
from tests.helpers.summaries import summary


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
