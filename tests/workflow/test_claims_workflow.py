"""The claims rule through Snakemake on the mini config: results/claims.md with a verdict for each claim the
miniature can test, "not run" (with what is missing) for the rest, all marked as a stand-in.

The summaries are written by hand for every run the mini config plans (training them is the mini workflow's
job, minutes on a CPU); ``--allowed-rules claims`` makes Snakemake run the claims rule on them as they are.
"""

import pandas as pd
import pytest

from firm_bench.paper import claims as C
from firm_bench.planning import grid
from firm_bench.records.summary import write_csv
from tests.helpers.claims import effect_value, plan_results
from tests.helpers.snakemake import CONFIGS, snakemake


@pytest.mark.slow
def test_the_mini_config_renders_the_claims_with_verdicts_and_not_run_lines(tmp_path):
    plan = grid.plan(grid.load_workflow_config(CONFIGS / "mini.yaml"))
    for exp, (rows, curves) in plan_results(plan, effect_value({"firm": 0.01, "supcon": -0.05})).items():
        write_csv(rows, tmp_path / "results" / "summary" / f"{exp}.csv")
        write_csv(curves, tmp_path / "results" / "summary" / f"{exp}_curves.csv")
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", CONFIGS / "mini.yaml", "--allowed-rules", "claims",
                     "--", "results/claims.md")
    assert "localrule claims" in proc.stdout + proc.stderr
    results = tmp_path / "results"
    for name in ("claims.md", "claims.csv", "claims_forest.png", "claims_forest.pdf", "logs/claims.log"):
        assert (results / name).is_file(), name
    md = (results / "claims.md").read_text()
    table = pd.read_csv(results / "claims.csv")
    assert len(table) == len(C.load_claims())
    assert md.startswith("# The paper's claims, checked")
    assert "Stand-in data only: nothing here is evidence about the paper" in md
    assert "config " in md and "4 summaries" in md
    verdicts = {"supported", "contradicted", "not significant"}
    tested = table[table["verdict"].isin(verdicts)]
    assert len(tested) >= 15 and tested["stand_in"].all()  # Table 5, Figures 1/4, Table 1 and the learning checks
    # the seed is the unit: n = 2 seeds, each the mean over 2 classes; coverage and power in the open
    assert (tested["n_pairs"] == 2).all() and (tested["n_cells"] == 4).all()
    assert set(tested["family"]) == {"stand-in", "stand-in learns"}
    assert tested["coverage"].str.startswith("classes 2/10; seeds 2/5").all()
    assert "underpowered at n = 2" in md and "**partial**: classes 2/10" in md
    assert "| verdict, our learning checks (not the paper's claims) | claims |" in md
    assert "within-seed correlation of the differences: median" in md
    not_run = table[table["verdict"] == "not run"]
    assert len(not_run) + len(tested) + table["verdict"].isin(["too few", "withheld"]).sum() == len(table)
    assert not_run["detail"].str.contains("this config plans no such run").all()  # CIFAR, MVTec, OE, ...
    for row in table.to_dict("records"):  # one line per claim in the Markdown, with its verdict
        line = next(x for x in md.splitlines() if x.startswith(f"| **{row['id']}**"))
        assert f"| {row['verdict']}" in line
        if row["verdict"] == "not run":
            assert "| not run: no runs in the summaries for side" in line
        if row["stand_in"]:
            assert C.STAND_IN_LABEL in line
    # nothing left to do on a rerun
    again = snakemake(tmp_path, "-n", "--configfile", CONFIGS / "mini.yaml", "--allowed-rules", "claims", "--",
                      "results/claims.md")
    assert "Nothing to be done" in again.stdout + again.stderr
