"""The firm-bench command line: listings, errors, and a whole run."""

import subprocess
import sys

import pytest

from firm_bench.cli import main
from firm_bench.core.catalog import config_names as registered_names


def test_list_commands_print_the_registries(capsys):
    for what, key in [("losses", "loss.name"), ("scores", "scores.names"), ("datasets", "dataset.name")]:
        assert main(["list", what]) == 0
        assert capsys.readouterr().out.split() == registered_names()[key]
    assert main(["list", "presets"]) == 0
    assert {"paper", "mini", "smoke"} <= set(capsys.readouterr().out.split())


def test_config_prints_resolved_config_and_run_dir(capsys):
    assert main(["config", "--preset", "paper", "--set", "dataset.cls=3", "--set", "loss.name=ntxent"]) == 0
    out = capsys.readouterr().out
    assert "# run directory: results/runs/cifar10/3/ntxent/rot/paper/seed0" in out
    assert "bn_momentum: 0.9" in out


def test_bad_input_exits_2_with_a_clear_message(capsys, tmp_path):
    assert main(["train", "--preset", "smoke", "--set", "loss.name=frim", "--run-dir", str(tmp_path)]) == 2
    assert "unknown value 'frim'; valid: ntxent, supcon, supcon_star, firm" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nope")]) == 2
    assert "a run directory?" in capsys.readouterr().err
    assert main(["data", "check", "cifar10", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err


@pytest.mark.slow
def test_console_script_runs_the_whole_pipeline(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "firm_bench.cli", "run", "--preset", "smoke", "--no-progress",
         "--set", "optim.epochs=1", "--set", "device=cpu", "--runs-root", str(tmp_path)],
        check=True, capture_output=True, text=True,
    ).stdout
    run = tmp_path / "fmnist_mini" / "0" / "firm" / "rot" / "smoke+optim.epochs=1" / "seed0"  # device: not recipe
    assert f"run directory: {run}" in out
    assert "| cos_k5" in out and (run / "metrics.json").exists()
    rc = subprocess.run([sys.executable, "-m", "firm_bench.cli", "score", str(run), "--scores", "locsvm", "--k", "1"],
                        capture_output=True, text=True)
    assert rc.returncode == 0 and (run / "scores" / "test" / "locsvm.json").exists()
