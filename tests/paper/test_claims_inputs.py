"""Checked inputs of the claims: summaries validated on read (every error names the file and the column), claims
files validated whole (every problem at once), and ``--partial`` never blocked by one bad claim."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from firm_bench.cli import main as cli_main
from firm_bench.paper import claims as C
from tests.helpers.claims import effect_value, order, rows


def _summary(tmp_path, change=None, name="t5.csv"):
    df = rows(value=effect_value({"firm": 0.01}))
    if change:
        df = change(df)
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda df: df.drop(columns="auroc"), ["'auroc'", "missing"]),
    (lambda df: df.drop(columns="status"), ["'status'", "missing"]),
    (lambda df: df.drop(columns="dataset"), ["'dataset'", "missing"]),
    (lambda df: df.drop(columns="run_dir"), ["'run_dir'", "missing"]),
    (lambda df: df.drop(columns="seed"), ["'seed'", "missing"]),
    (lambda df: df.assign(auroc=df["auroc"] * 100), ["'auroc'", "outside [0, 1]", "not percent"]),
    (lambda df: df.assign(aulc="high"), ["'aulc'", "not numeric"]),
    (lambda df: pd.concat([df, df.iloc[:3]]), ["repeat a unit", "one row per unit"]),
    (lambda df: df.assign(seed=df["seed"].astype(float) + 0.5), ["'seed'", "not whole numbers"]),
    (lambda df: df.assign(run_dir="results/runs/same"), ["run_dir 'results/runs/same'", "different"]),
])
def test_a_bad_summary_is_an_error_naming_the_file_and_the_column(tmp_path, change, words):
    path = _summary(tmp_path, change)
    with pytest.raises(C.SummaryError) as err:
        C.read_summary_files([path])
    for w in [str(path), *words]:
        assert w in str(err.value), (w, str(err.value))


def test_every_problem_of_a_summary_is_named_at_once(tmp_path):
    path = _summary(tmp_path, lambda df: df.drop(columns=["auroc", "seed"]).assign(aulc=df["aulc"] * 100))
    msg = str(pytest.raises(C.SummaryError, C.read_summary_files, [path]).value)
    assert "['seed', 'auroc']" in msg and "'aulc'" in msg and "outside [0, 1]" in msg


def test_an_unreadable_summary_names_its_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes(b'a,b\n1,"2\n3,4,5,6\n\x00\xff')
    with pytest.raises((C.SummaryError, ValueError)) as err:
        C.read_summary_files([path])
    assert str(path) in str(err.value)


def test_bad_learning_curves_name_their_file(tmp_path):
    path = tmp_path / "t5_curves.csv"
    pd.DataFrame({"dataset": ["cifar10"], "epoch": [1], "auroc": [91.0]}).to_csv(path, index=False)
    msg = str(pytest.raises(C.SummaryError, C.read_curve_files, [path]).value)
    assert str(path) in msg and "missing" in msg and "'auroc'" in msg and "outside [0, 1]" in msg


def test_the_command_exits_2_naming_the_bad_summary(tmp_path, capsys):
    path = _summary(tmp_path, lambda df: df.drop(columns="auroc"))
    code = cli_main(["claims", "--config", "paper", "--summaries", str(path), "--out", str(tmp_path / "c.md"),
                     "--csv", str(tmp_path / "c.csv"), "--no-forest"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "'auroc'" in err
    assert not (tmp_path / "c.md").exists()


def _entry(**change):
    e = yaml.safe_load(order(id=change.pop("id", "bad.claim")))[0]
    e.update(change)
    return e


def test_a_claims_file_is_validated_whole_every_problem_at_once(tmp_path):
    entries = [
        _entry(id="good"),
        _entry(id="bad.loss", a={"dataset": "cifar10", "loss": "frim"}),
        _entry(id="bad.direction", direction="=>"),
        _entry(id="bad.paper", paper={"table": "99"}),
        _entry(id="bad.stated", paper={"table": "5"},
               stated={"reported": {"table": "5", "metric": "no_such_metric"}, "unit": "points"}),
        _entry(id="bad.variant", b={"dataset": "cifar10", "loss": "ntxent", "variant": "tau9"}),
        _entry(id="bad.reported", b={"reported": {"table": "1a", "method": "NoSuchMethod"}},
               a={"dataset": "cifar10", "loss": "firm", "mean_over": "cls"}),
    ]
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": entries}))
    with pytest.raises(C.ClaimsError) as err:
        C.read_claims(path)
    msg = str(err.value)
    assert "6 problems" in msg and len(err.value.problems) == 6
    for cid, key in [("bad.loss", "a.loss"), ("bad.direction", "direction"), ("bad.paper", "paper.table"),
                     ("bad.stated", "stated.reported"), ("bad.variant", "b.variant"),
                     ("bad.reported", "b.reported")]:
        assert f"claim {cid!r}: key {key!r}" in msg and str(path) in msg, (cid, msg)
    claims, problems = C.read_claims(path, partial=True)
    assert [c.id for c in claims] == ["good"] and len(problems) == 6


def test_partial_evaluates_the_good_claims_and_names_the_bad_ones(tmp_path, capsys):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [_entry(id="good"), _entry(id="bad.paper", paper={"table": "99"})]}))
    summary = _summary(tmp_path)
    common = ["claims", "--config", "paper", "--summaries", str(summary), "--out", str(tmp_path / "c.md"),
              "--csv", str(tmp_path / "c.csv"), "--no-forest", "--claims-file", str(path)]
    assert cli_main(common) == 2
    assert "bad.paper" in capsys.readouterr().err and not (tmp_path / "c.md").exists()
    assert cli_main([*common, "--partial"]) == 0
    md = (tmp_path / "c.md").read_text()
    assert "The claims file has 1 problem" in md and "'bad.paper': key 'paper.table'" in md
    assert list(pd.read_csv(tmp_path / "c.csv")["id"]) == ["good"]


def test_the_packaged_claims_file_has_no_problem():
    claims, problems = C.read_claims(partial=True)
    assert problems == [] and len(claims) == len(C.load_claims())
