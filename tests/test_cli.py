"""The firm-bench command line: listings, errors, and a whole run."""

import subprocess
import sys

import pytest

from firm_bench.cli import main
from firm_bench.core.facts import CONFIG_NAMES


def test_list_commands_print_the_registries(capsys):
    for what, key in [("losses", "loss.name"), ("scores", "scores.names"), ("datasets", "dataset.name")]:
        assert main(["list", what, "--names"]) == 0
        assert capsys.readouterr().out.split() == list(CONFIG_NAMES[key])
    assert main(["list", "presets", "--names"]) == 0
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


def test_a_checkpoint_of_another_recipe_says_what_to_do_where(capsys, tmp_path):
    """From the command line: another --run-dir or --retrain. In the workflow (whose run directories
    are named by the run): delete the run directory and force its training job; never "use another run directory"."""
    from firm_bench.core import config
    from firm_bench.core import rundir as runs

    run = tmp_path / "run"
    trained = config.resolve("smoke", overrides=["device=cpu"])
    runs.write_run_config(run, trained)
    # the checkpoint records the config it trained; it is refused before its weights are looked at
    runs.atomic_torch_save(run / "checkpoints" / "last.pt", {"config": trained, "epoch": 1})
    args = ["train", "--preset", "smoke", "--set", "device=cpu", "--set", "loss.tau=0.5", "--run-dir", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds a checkpoint or finished run of a different config (loss.tau: 0.2 -> 0.5)" in err
    assert "another --run-dir" in err and "--retrain" in err
    assert main([*args, "--in-workflow"]) == 2
    err = capsys.readouterr().err
    assert "trained under another recipe (loss.tau: 0.2 -> 0.5)" in err and "config.recipe_name" in err
    assert f"delete {run} " in err and f"--forcerun {run}/trained.json" in err and "another --run-dir" not in err


@pytest.mark.parametrize("command", ["train", "train-pack"])
def test_a_workflow_job_watches_snakemake_and_prints_a_resume_command_that_resumes(command, monkeypatch, capsys,
                                                                                    tmp_path):
    """``--exit-with PID`` is honoured by ``train`` and ``train-pack`` alike; the resume command printed when
    the job is interrupted leaves it out (that Snakemake is gone: pasted, the command would stop at once)."""
    from firm_bench.core import lock
    from firm_bench.core.errors import TrainingInterrupted
    from firm_bench.run import train as train_mod

    watched = []
    monkeypatch.setattr(lock, "exit_with", lambda pid: watched.append(pid))

    def interrupted(cfgs, run_dirs, **kwargs):
        run_dir = run_dirs[0] if isinstance(run_dirs, list) else run_dirs
        raise TrainingInterrupted(15, "SIGTERM", 1, 2, str(run_dir))

    monkeypatch.setattr(train_mod, "train", interrupted)
    monkeypatch.setattr(train_mod, "train_pack", interrupted)
    where = (["--run-dir", str(tmp_path / "a")] if command == "train"
             else ["--member", str(tmp_path / "a"), "seed=0", "--member", str(tmp_path / "b"), "seed=1"])
    args = [command, "--preset", "smoke", *where, "--no-progress", "--exit-with", "4242", "--in-workflow"]
    assert main(args) == 143
    assert watched == [4242]
    err = capsys.readouterr().err
    shown = err.split("Resume with the same command: ", 1)[1]
    assert shown.startswith(f"firm-bench {command} --preset smoke ") and "--exit-with" not in shown and "4242" not in shown
    assert main([*args[:-3], "--no-progress", "--exit-with=4243"]) == 143 and watched == [4242, 4243]
    assert "4243" not in capsys.readouterr().err.split("Resume with the same command: ", 1)[1]
