"""What a newcomer meets at the command line: grouped help, --version, one spelling of the workflow config,
listings that explain every name, a quiet end in a closed pipe, warnings instead of silent empty outputs."""

import subprocess
import sys
from pathlib import Path

import pytest

import firm_bench
from firm_bench import cli
from firm_bench.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def subcommands() -> dict:
    return next(a for a in build_parser()._actions if a.dest == "command").choices


def test_every_subcommand_is_described_once_in_its_group():
    """--help lists each subcommand under its group with its description; each subcommand's own --help starts
    with that description. A command added without a COMMANDS entry fails here."""
    parsers = subcommands()
    assert set(parsers) == set(cli.COMMANDS)
    overview = build_parser().format_help()
    user, internals = overview.split(cli.USER + ":")[1].split(cli.WORKFLOW + ":")
    for name, (group, text) in cli.COMMANDS.items():
        assert f"  {name} " in (user if group == cli.USER else internals), name
        assert text in overview
        assert parsers[name].description.startswith(text[0].upper() + text[1:]), name
    for name in ("run", "plan", "status", "report", "claims", "list", "config"):
        assert cli.COMMANDS[name][0] == cli.USER
    for name in ("metrics", "summarize", "combine", "train-pack", "features", "score", "table"):
        assert cli.COMMANDS[name][0] == cli.WORKFLOW


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"firm-bench {firm_bench.__version__}"


@pytest.mark.parametrize("command", ["plan", "status", "report", "claims"])
def test_the_workflow_config_is_spelled_configfile_everywhere(command, capsys):
    args = build_parser().parse_args([command, *(["all"] if command == "plan" else []), "--configfile", "mini"])
    assert args.configfile == "mini"
    assert capsys.readouterr().err == ""  # the current spelling: no note


@pytest.mark.parametrize("command", ["report", "claims"])
def test_the_old_config_spelling_still_works_with_a_note(command, capsys):
    args = build_parser().parse_args([command, "--config", "smoke"])
    assert args.configfile == "smoke"
    err = capsys.readouterr().err
    assert "--config is deprecated" in err and "--configfile" in err and err.count("\n") == 1
    assert "--config " not in build_parser()._subparsers._group_actions[0].choices[command].format_help()


def test_status_takes_configfile_and_still_a_positional_config(tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["status", "--configfile", "mini", "--runs-root", str(root)]) == 0
    new = capsys.readouterr()
    assert "grid of mini" in new.out and new.err == ""
    assert main(["status", "mini", "--runs-root", str(root)]) == 0  # the old positional spelling
    old = capsys.readouterr()
    assert old.out == new.out and "status --configfile mini" in old.err
    root.mkdir()
    assert main(["status", str(root)]) == 0  # a directory of runs stays positional
    assert f"runs under {root}" in capsys.readouterr().out


def test_a_missing_workflow_config_names_a_flag_the_command_has(capsys, tmp_path):
    missing = str(tmp_path / "nope.yaml")
    for argv in (["status", "--configfile", missing], ["report", "--configfile", missing],
                 ["claims", "--configfile", missing, "--no-forest"], ["plan", "all", "--configfile", missing]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--configfile" in err, argv
        flag = err.split("use ")[1].split()[0]
        assert flag in build_parser()._subparsers._group_actions[0].choices[argv[0]].format_help()


def test_a_closed_pipe_ends_quietly():
    """`firm-bench list losses | true`: the reader is gone before the first write; no traceback, status 141."""
    proc = subprocess.run(f"{sys.executable} -m firm_bench.cli list losses | true; echo ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=ROOT)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "141"


def test_paper_table_and_figure_without_input_warn_and_name_their_experiment(tmp_path, capsys):
    assert main(["paper-table", "table5", "--out-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: no summaries given" in err and "table5 of the paper config" in err
    assert "results/summary/table5.csv" in err
    assert main(["figure", "fig1", "--out-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: no --summaries or --curves given" in err and "fig1 of the paper config" in err
    assert (tmp_path / "fig1.png").is_file()  # still drawn: panels without data, as before


# --------------------------------------------------------------------------- list
def test_list_alone_lists_the_categories(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines if line and not line.startswith("firm-bench")]
    assert listed == list(cli.LISTINGS)
    assert {"tables", "experiments", "figures", "datasets", "losses", "scores"} <= set(listed)


@pytest.mark.parametrize("what", ["losses", "scores", "outliers", "encoders", "schedules", "datasets", "presets",
                                  "configs", "tables", "figures"])
def test_list_gives_every_name_a_description(what, capsys):
    assert main(["list", what, "--names"]) == 0
    names = capsys.readouterr().out.split()
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == names
    for name, line in zip(names, lines):
        text = line[len(name):].strip()
        assert len(text) > 15, (name, text)


def test_list_descriptions_come_from_the_registries(capsys):
    import inspect

    from firm_bench.core.facts.paper import title
    from firm_bench.method.losses import LOSSES
    from firm_bench.method.scores import SCORES

    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    assert "supcon_star  SupCon* (multiclass SupCon [2])" in out
    assert inspect.getdoc(LOSSES.get("firm")).splitlines()[0].replace("``", "") in out
    assert main(["list", "scores"]) == 0
    out = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "averaged over the 4 rotations x the random test crops" in out["locsvm_ens"]
    assert "linear one-class SVM" in out["locsvm_ens"] and "RBF one-class SVM" in out["ocsvm"]
    assert "norm" in out["rot_norm"] and "averaged over the 4 rotations" in out["rot_norm"]
    assert [line.split()[0] for line in out.values()] == SCORES.names()
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "lsun_fix" in out and "OOD test set of Table 4" in out.split("lsun_fix")[1].splitlines()[0]
    assert main(["list", "tables"]) == 0
    out = capsys.readouterr().out
    assert title("table5") in out and "paper config experiment: table7, table7_oe" in out


def test_list_experiments_of_a_workflow_config(capsys):
    from firm_bench.planning.grid import load_workflow_config, plan

    assert main(["list", "experiments", "--configfile", "mini"]) == 0
    out = capsys.readouterr().out
    p = plan(load_workflow_config("mini"))
    assert [line.split()[0] for line in out.splitlines()] == list(p.experiments)
    assert f"({len(p.experiments['table5'])} runs; feeds table5" in out


# ------------------------------------------------------------------ config --describe
def test_config_describe_prints_the_schemas_entry_and_where_the_value_came_from(capsys):
    from firm_bench.core.config import load_schema

    node = load_schema()["properties"]["optim"]["properties"]["schedule"]
    assert main(["config", "--preset", "paper", "--describe", "optim.schedule"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"optim.schedule: {node['description']}")
    assert '"onecycle"' in out and "onecycle, warmup_cosine" in out and "set by preset paper" in out
    assert main(["config", "--describe", "optim.schedule"]) == 0
    assert "set by the schema's default" in capsys.readouterr().out
    assert main(["config", "--preset", "mini", "--set", "optim.schedule=warmup_cosine",
                 "--describe", "optim.schedule"]) == 0
    assert 'value:    "warmup_cosine"' in (out := capsys.readouterr().out) and "set by --set" in out
    assert main(["config", "--preset", "mini", "--describe", "model.width"]) == 0
    assert "set by preset mini" in capsys.readouterr().out
    assert main(["config", "--preset", "paper", "--describe", "optim.momentum"]) == 0
    assert "trains:   momentum cycled 0.95-0.85-0.95" in capsys.readouterr().out


def test_config_describe_a_section_and_an_unknown_key(capsys):
    assert main(["config", "--describe", "eval"]) == 0
    out = capsys.readouterr().out
    assert "  every " in out and "  k " in out and "  at_start " in out
    assert main(["config", "--describe", "optim.bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optim.bogus'" in err and "valid at optim: epochs, batch_size" in err


def test_a_missing_dataset_advises_options_that_exist(tmp_path, capsys):
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--set dataset.download=true" in err and "firm-bench data check NAME --download" in err
    assert "--download (CLI)" not in err


# --------------------------------------------------------------------------- run
def test_a_failed_start_leaves_no_run_directory(tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["run", "--preset", "paper", "--runs-root", str(root), "--set", f"dataset.root={tmp_path / 'none'}",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("firm-bench: run: firm on cifar10 class 0 (airplane), outliers rot, recipe paper, "
                            "2000 epochs of batch 32, on ") and first.endswith(f"-> {root / 'cifar10/0/firm/rot/paper/seed0'}")
    assert "cifar-10-batches-py" in err  # the data error, as before
    assert not root.exists()  # nothing left for `status` to count as pending


def test_a_failed_start_keeps_a_directory_that_existed(tmp_path, capsys):
    run = tmp_path / "mine"
    (run / "notes").mkdir(parents=True)
    assert main(["run", "--preset", "paper", "--run-dir", str(run), "--set", f"dataset.root={tmp_path / 'none'}",
                 "--no-progress"]) == 2
    assert (run / "notes").is_dir()


@pytest.mark.slow
def test_run_says_what_it_does_and_a_finished_run_prints_its_results_at_once(tmp_path):
    """Header first (what, where), epoch lines with the curve's score as the tables name it, features and scoring
    lines; a second `run` prints the same results without training, extracting or scoring; --reevaluate does."""
    import time

    def run(*extra):
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "firm_bench.cli", "run", "--preset", "smoke", "--progress", "lines",
             "--set", "optim.epochs=1", "--set", "device=cpu", "--set", "features.crops=0",
             "--set", "features.untrained=false", "--set", "scores.names=[cos,center,kde]",
             "--run-dir", str(tmp_path / "run"), *extra], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        return proc, time.monotonic() - t0

    first, _ = run()
    lines = first.stderr.splitlines()
    run_dir = tmp_path / "run"
    assert lines[0].startswith("firm-bench: run: firm on fmnist_mini class 0 (T-shirt/top), outliers rot, "
                               "recipe smoke+"), lines[0]
    assert ", 1 epoch of batch 64, on cpu with " in lines[0]
    assert lines[0].endswith(f"-> {run_dir}")
    epoch = next(line for line in lines if "epoch 1/1" in line)
    assert " cos_k5 0." in epoch and " views/s " in epoch and "auroc" not in epoch
    assert any(line.startswith("firm-bench: features: 200 training and 1000 test images") for line in lines)
    scoring = [line for line in lines if line.startswith("firm-bench: scoring: ")]
    assert [s.split()[2] for s in scoring[:-1]] == ["1/4", "2/4", "3/4", "4/4"]
    assert [s.split()[3] for s in scoring[:-1]] == ["cos_k1", "cos_k5", "center", "kde"]
    table = first.stdout[first.stdout.index("| score"):]

    again, seconds = run()
    assert "is finished" in again.stderr and "epoch" not in again.stderr and "scoring" not in again.stderr
    assert again.stdout[again.stdout.index("| score"):] == table
    assert seconds < 20  # no torch, no training: about a second on an idle core

    forced, _ = run("--reevaluate")
    assert "scoring: 4/4 kde" in forced.stderr and "features: " in forced.stderr
    assert forced.stdout[forced.stdout.index("| score"):] == table  # the same model, the same numbers


# ---------------------------------------------------------------- the quickstart workflow
def test_the_quickstart_config_is_three_losses_on_two_classes_feeding_table5_and_fig4():
    from firm_bench.planning.grid import load_workflow_config, paper_item_feeders, plan

    cfg = load_workflow_config(ROOT / "workflow" / "config" / "quickstart.yaml")
    assert cfg == load_workflow_config("quickstart")  # the checkout's file is the bundled one
    p = plan(cfg)
    runs = p.experiments["quickstart"]
    assert sorted((r.loss, str(r.cls)) for r in runs) == sorted(
        (loss, cls) for loss in ("ntxent", "supcon", "firm") for cls in ("0", "1"))
    assert {r.dataset for r in runs} == {"fmnist_mini"} and {r.seed for r in runs} == {0}
    feeders = paper_item_feeders(cfg)
    assert feeders["table5"] == ["quickstart"] and feeders["fig4"] == ["quickstart"]


@pytest.mark.slow
def test_the_quickstart_workflow_ends_in_a_paper_table_a_figure_and_the_report(tmp_path):
    """README's first workflow, through Snakemake to its default target: Table 5 with our cells beside the paper's,
    Figure 4 from our learning curves, the claims and the report, which lists the paper items no experiment of the
    config feeds without rendering them. Its runs are cut to 2 epochs of the smoke preset's narrow network here
    (the config's shape is the test above; what the workflow makes of it does not depend on the runs' size)."""
    import pandas as pd
    import yaml

    from tests.helpers.snakemake import snakemake

    cfg = yaml.safe_load((ROOT / "workflow" / "config" / "quickstart.yaml").read_text())
    cfg["run_overrides"].update({"optim.epochs": 2, "eval.every": 1, "checkpoint.every": 2, "model.width": 0.0625,
                                 "model.head_layers": 2, "model.head_hidden": 32, "model.proj_dim": 16})
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--cores", "2", "--configfile", path, timeout=1200)
    cells = pd.read_csv(tmp_path / "results" / "tables" / "table5.csv")
    ours = cells[cells["ours_status"] == "ok"]
    assert len(ours) >= 3, cells  # NT-Xent, SupCon and FIRM on the stand-in, each with a number
    assert (tmp_path / "figures" / "fig4.png").stat().st_size > 10_000
    page = (tmp_path / "results" / "report" / "index.html").read_text()
    assert "table5" in page and "fig4" in page
    assert (tmp_path / "results" / "claims.md").is_file()
    # only the items the experiment feeds (and Figure 2, drawn from the losses) are rendered; the report still
    # lists the others, as fed by none
    assert sorted(p.name for p in (tmp_path / "results" / "tables").iterdir()) == [
        "table5.csv", "table5.md", "table5.tex"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["fig2.pdf", "fig2.png", "fig4.pdf", "fig4.png"]
    assert "<a href='#table1a'>table1a</a>" in page and "no experiment feeds it" in page


def test_config_prints_the_resolved_config_in_the_schemas_order(capsys):
    import yaml

    from firm_bench.core import config

    assert main(["config", "--preset", "mini", "--set", "loss.name=ntxent"]) == 0
    out = capsys.readouterr().out
    printed = yaml.safe_load(out)
    assert printed == config.resolve("mini", overrides=["loss.name=ntxent"], name_recipe=True)
    schema = config.load_schema()["properties"]
    assert list(printed) == [k for k in schema if k in printed]
    assert list(printed["optim"]) == [k for k in schema["optim"]["properties"] if k in printed["optim"]]
    assert "# momentum trains as: cycled 0.95-0.85-0.95" in out
