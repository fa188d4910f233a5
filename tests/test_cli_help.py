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
    for name in ("metrics", "summarize", "combine", "catalog", "train-pack", "features", "score", "table"):
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
