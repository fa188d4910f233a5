"""Run-directory locks (core.lock, rundir.writing) between real processes, and exiting with the workflow."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from firm_bench.core import lock as locks
from firm_bench.core import rundir as runs
from firm_bench.core.errors import RunDirLocked
from tests.helpers.holders import holder, stop


def test_a_second_writer_is_refused_at_once_naming_theholder(tmp_path):
    run = tmp_path / "run"
    proc = holder(run, "train")
    try:
        for command, evalset in [("train", None), ("features", "test"), ("score", "test"), ("metrics", None)]:
            t0 = time.perf_counter()
            with pytest.raises(RunDirLocked) as err, runs.writing(run, command, evalset):
                pass
            assert time.perf_counter() - t0 < 2  # at once, no waiting
            msg = str(err.value)
            assert f"run directory {run}" in msg and f"PID {proc.pid} on {locks.host()}" in msg, msg
            assert "firm-bench train" in msg and f"kill {proc.pid}" in msg and "--run-dir" in msg
    finally:
        stop(proc)
    with runs.writing(run, "train"):  # free again once the holder is gone
        pass


def test_training_is_refused_while_scores_are_written_and_score_jobs_share(tmp_path):
    run = tmp_path / "run"
    proc = holder(run, "score", "test")
    try:
        with runs.writing(run, "score", "test"), runs.writing(run, "metrics"):  # the workflow's score jobs
            pass
        with pytest.raises(RunDirLocked, match=f"PID {proc.pid}"), runs.writing(run, "train"):
            pass  # a shared holder, found in /proc/locks
        with pytest.raises(RunDirLocked, match="test features"), runs.writing(run, "features", "test"):
            pass  # its features are not re-extracted meanwhile
        with runs.writing(run, "features", "ood-svhn"):  # another evaluation set's features are free
            pass
    finally:
        stop(proc)


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, capfd):
    run = tmp_path / "run"
    proc = holder(run, "train")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert str(proc.pid) in (run / runs.LOCK_FILE).read_text()  # its record stays behind
    with runs.writing(run, "train"):
        pass
    err = capfd.readouterr().err
    assert f"took over the lock of firm-bench train (PID {proc.pid}" in err and "no longer running" in err
    assert (run / runs.LOCK_FILE).read_text() == ""  # released cleanly this time


def test_locks_are_reentrant_within_a_process(tmp_path):
    run = tmp_path / "run"
    with runs.writing(run, "run"):  # firm-bench run: training, features and scores under one hold
        with runs.writing(run, "train"), runs.writing(run, "features", "test"), runs.writing(run, "score", "test"):
            pass
        with runs.writing(run, "metrics"):
            pass
    proc = holder(run, "train", then="pass")  # and released afterwards
    proc.wait()


def test_a_process_exits_with_the_one_it_watches(tmp_path):
    """A training job watches Snakemake's PID (``--exit-with``): killing Snakemake stops it."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    code = textwrap.dedent(f"""
        import time
        from firm_bench.core.lock import exit_with
        exit_with({parent.pid})
        print("watching", flush=True)
        time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "watching"
        time.sleep(0.5)
        assert child.poll() is None  # runs while the watched process does
        parent.kill()
        parent.wait()
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert f"process {parent.pid} (the workflow that started this job) exited" in child.stderr.read()
    finally:
        for p in (parent, child):
            if p.poll() is None:
                stop(p)


def test_only_training_creates_a_run_directory(tmp_path):
    for command, evalset in [("features", "test"), ("score", "test"), ("metrics", None)]:
        with pytest.raises(FileNotFoundError, match="is it a run directory"), \
                runs.writing(tmp_path / "nope", command, evalset):
            pass
    assert not (tmp_path / "nope").exists()
