"""SIGINT / SIGTERM mid-training: a checkpoint at the epoch's end, status interrupted, exit 130 / 143, resume.

Real subprocesses receive the signal while they train (after the progress
line of epoch 1, so mid-run). ``checkpoint.every`` is larger than the run, so
the only checkpoint before the end is the one the signal made.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.records.metrics import collect_metrics

from tests.run.conftest import STRAIGHT_EPOCHS as EPOCHS
from tests.run.conftest import STRAIGHT_SETS

SETS = [*STRAIGHT_SETS, "--set", "checkpoint.every=100", "--progress", "lines", "--progress-every", "1"]


def _cmd(run_dir):
    return [sys.executable, "-m", "firm_bench.cli", "train", "--preset", "smoke", *SETS, "--run-dir", str(run_dir)]


def _env():
    return {**os.environ, "PYTHONHASHSEED": "0", "FIRM_BENCH_HEARTBEAT_S": "0"}  # a heartbeat every epoch


def _signal_mid_run(run_dir, signum):
    """Start training, wait for epoch 1's progress line, check the live heartbeat, send ``signum``; (rc, stderr)."""
    proc = subprocess.Popen(_cmd(run_dir), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 180
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(f"firm-bench: epoch 1/{EPOCHS} ") or time.time() > deadline:
            break
    status = runs.read_status(run_dir)  # the heartbeat of epoch 1 (or later), written before its line
    assert status["state"] == "running" and status["pid"] == proc.pid and status["epochs"] == EPOCHS, status
    assert status["epoch"] >= 1 and status["host"] and status["eta_s"] is not None and status["seconds_per_epoch"] > 0
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, "".join(lines) + err


def _check_interrupted(run_dir, rc, err, signum):
    name = signal.Signals(signum).name
    assert rc == 128 + signum, err  # 130 / 143, the convention
    assert "Traceback" not in err, err
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted" and status["signal"] == name
    epoch = status["epoch"]
    assert 1 <= epoch < EPOCHS, status  # landed mid-run
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["epoch"] == epoch
    assert not (run_dir / runs.TRAINED_FILE).exists()
    assert f"interrupted by {name} at epoch {epoch}/{EPOCHS}" in err
    assert "Resume with the same command: firm-bench train --preset smoke" in err  # says how to resume
    assert [r["epoch"] for r in runs.read_curve(run_dir)] == list(range(epoch + 1))
    return epoch


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_resume_equals_an_uninterrupted_run(tmp_path, straight_smoke):
    straight, stopped = straight_smoke, tmp_path / "stopped"
    rc, err = _signal_mid_run(stopped, signal.SIGTERM)
    epoch = _check_interrupted(stopped, rc, err, signal.SIGTERM)
    resumed = subprocess.run(_cmd(stopped), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from its checkpoint at epoch {epoch}/{EPOCHS}" in resumed.stderr
    assert "other settings" not in resumed.stderr  # same threads, device, precision
    assert runs.read_status(stopped)["state"] == "ok"
    assert runs.read_status(stopped)["resumed_under_other_settings"] == []
    a, b = runs.read_curve(straight), runs.read_curve(stopped)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == list(range(EPOCHS + 1))
    assert [r["auroc"] for r in a] == [r["auroc"] for r in b]  # bit for bit
    wa = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)["model"]
    wb = torch.load(stopped / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_sigint_checkpoints_and_a_resume_under_other_settings_is_recorded(tmp_path, one_thread, capsys):
    """SIGINT: no traceback, exit 130. A resume under settings that change a CPU run's rounding (its checkpoint
    says 7 threads, this process runs 1): a warning, and status, trained.json and the metrics label say so."""
    from firm_bench.run.train import train

    run = tmp_path / "run"
    rc, err = _signal_mid_run(run, signal.SIGINT)
    epoch = _check_interrupted(run, rc, err, signal.SIGINT)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=False)
    assert state["numerics"]["threads"] == 1 and state["numerics"]["precision"] == "fp32"
    state["numerics"]["threads"] = 7  # as if trained on a 7-thread machine until now
    record = {k: v for k, v in runs.read_json(runs.checksum_path(ckpt)).items() if k not in ("sha256", "bytes")}
    runs.atomic_torch_save(ckpt, state, record=record)  # as training writes it: with its checksum record
    cfg = config.validate(config.load_yaml(run / runs.CONFIG_FILE))
    capsys.readouterr()
    train(cfg, run, progress="off")
    warned = capsys.readouterr().err
    assert "WARNING: resuming under other settings" in warned and "threads 7 -> 1" in warned
    want = [f"resumed at epoch {epoch}: threads 7 -> 1"]
    assert runs.read_status(run)["resumed_under_other_settings"] == want
    assert runs.read_json(run / runs.TRAINED_FILE)["resumed_under_other_settings"] == want
    assert torch.load(ckpt, weights_only=False)["resumes"] == [{"epoch": epoch, "changes": ["threads 7 -> 1"]}]
    assert collect_metrics(cfg, run)["recipe"]["resumed_under_other_settings"] == want[0]


def test_stop_requests_set_on_the_first_signal_and_stop_at_once_on_the_second(capfd):  # the note goes to fd 2 (os.write)
    from firm_bench.run.interrupt import stop_requests

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_requests() as req:
        assert not req.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert req.requested and req.name == "SIGTERM" and req.signum == signal.SIGTERM
        assert "SIGTERM received: training stops at the end of the current epoch" in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):  # a second signal: what it would do without the handler
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # restored
