"""`firm-bench status`: a grid's runs done / running / stopped / failed / pending, from the run directories alone."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firm_bench.cli import main
from firm_bench.core import rundir as runs
from firm_bench.planning.grid import load_workflow_config, plan
from firm_bench.records.status import find_run_dirs, format_status, grid_status, run_state, stale_after
from tests.helpers import ROOT


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): what a killed trainer leaves in its status.json."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running(run_dir, pid, host=None, epoch=5, epochs=30, beat_age=3.0, eta=250.0):
    runs.write_status(run_dir, "running", epoch=epoch, epochs=epochs, pid=pid, host=host or socket.gethostname(),
                      heartbeat_every_s=30.0, seconds_per_epoch=10.0, eta_s=eta)
    status = runs.read_json(run_dir / runs.STATUS_FILE)
    status["time_unix"] -= beat_age
    runs.atomic_write_json(run_dir / runs.STATUS_FILE, status)


def _finished(run_dir, scored=True):
    runs.write_status(run_dir, "ok", epoch=30, epochs=30)
    runs.atomic_write_json(run_dir / runs.TRAINED_FILE, {"state": "ok", "epochs": 30})
    if scored:
        runs.atomic_write_json(run_dir / runs.METRICS_FILE, {"scores": {}})


def _failed(run_dir):
    reason = "non-finite loss (nan) at epoch 3, step 2"
    runs.write_status(run_dir, "failed", reason=reason, epoch=3)
    runs.atomic_write_json(run_dir / runs.TRAINED_FILE, {"state": "failed", "reason": reason, "epoch": 3})


@pytest.fixture
def grid(tmp_path):
    """The mini workflow config's runs under tmp_path (18 when written: Table 1, Table 5 on two classes, ...)."""
    p = plan(load_workflow_config(ROOT / "workflow" / "config" / "mini.yaml"))
    dirs = list(dict.fromkeys(d.replace(p.config["runs_root"], str(tmp_path), 1)
                              for e in p.experiments for d in p.run_dirs(e)))
    assert len(dirs) >= 9
    return tmp_path, dirs


def _status(capsys, root):
    assert main(["status", str(ROOT / "workflow" / "config" / "mini.yaml"), "--runs-root", str(root)]) == 0
    return capsys.readouterr().out


def test_a_finished_grid(grid, capsys):
    root, dirs = grid
    for d in dirs:
        _finished(Path(d), scored=d != dirs[0])
    out = _status(capsys, root)
    n = len(dirs)
    assert f"{n} runs: {n} done, 0 running, 0 stopped, 0 failed, 0 pending ({n - 1} of {n} done scored)" in out
    per_experiment = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(per_experiment) == {"table1", "table5", "table8", "fig5"}
    assert "done   4  running   0" in per_experiment["table1"]
    assert "running:" not in out and "failed:" not in out


def test_a_running_grid_with_a_killed_and_a_failed_run(grid, capsys):
    root, dirs = grid
    d = [Path(x) for x in dirs]
    _finished(d[0])
    _running(d[1], os.getpid())  # a live process on this host
    _running(d[2], _dead_pid())  # its process is gone: kill -9
    _running(d[3], 12345, host="node-17", beat_age=2 * 3600)  # another host, silent for 2 h
    _running(d[4], 12345, host="node-17", beat_age=20.0, epoch=12, eta=100.0)  # another host, beating
    _failed(d[5])
    runs.write_status(d[6], "interrupted", signal="SIGTERM", epoch=7, epochs=30)
    out = _status(capsys, root)
    n = len(dirs)
    assert f"{n} runs: 1 done, 2 running, 3 stopped, 1 failed, {n - 7} pending (1 of 1 done scored)" in out, out
    rel = [str(x.relative_to(root)) for x in d]
    line = next(line for line in out.splitlines() if rel[1] in line)
    assert "epoch 5/30" in line and f"pid {os.getpid()} on {socket.gethostname()}" in line
    assert "eta 0:04:0" in line  # 250 s at the heartbeat, ~3 s ago
    assert "epoch 12/30, eta 0:01:" in next(line for line in out.splitlines() if rel[4] in line)
    assert "is gone: killed? last seen at epoch 5/30" in next(line for line in out.splitlines() if rel[2] in line)
    assert "no heartbeat for 2.0 h (pid 12345 on node-17; stale after 10 min)" in next(line for line in out.splitlines() if rel[3] in line)
    assert "non-finite loss (nan) at epoch 3, step 2" in next(line for line in out.splitlines() if rel[5] in line)
    assert "interrupted by SIGTERM at epoch 7/30" in next(line for line in out.splitlines() if rel[6] in line)
    assert out.index("running:") < out.index("stopped:") < out.index("failed:")
    assert main(["status", "mini", "--runs-root", str(root), "--json"]) == 0
    states = {r["run_dir"]: r["state"] for r in json.loads(capsys.readouterr().out)}
    assert [states[x] for x in dirs] == ["done", "running", "stopped", "stopped", "running", "failed", "stopped",
                                         *["pending"] * (n - 7)]


def test_a_failed_grid_and_a_directory_of_runs(grid, capsys):
    root, dirs = grid
    for x in dirs:
        _failed(Path(x))
    out = _status(capsys, root)
    n = len(dirs)
    assert f"{n} runs: 0 done, 0 running, 0 stopped, {n} failed, 0 pending" in out
    assert out.count("non-finite loss (nan) at epoch 3, step 2") == n
    assert main(["status", str(root)]) == 0  # no workflow config: every run directory found under it
    assert f"{n} runs: 0 done, 0 running, 0 stopped, {n} failed" in capsys.readouterr().out


def test_states_of_single_runs(tmp_path):
    run = tmp_path / "r"
    assert run_state(run).state == "pending"
    run.mkdir()
    (run / runs.STATUS_FILE).write_text('{"state": "runn')  # damaged from outside
    st = run_state(run)
    assert st.state == "damaged" and st.detail.startswith("status.json: is damaged (") and "rerun the run's" in st.detail
    runs.write_status(run, "running", epoch=0, epochs=5)  # an earlier firm-bench's format: no heartbeat, no pid
    st = run_state(run)
    assert st.state == "damaged" and st.detail.startswith("status.json: is running without a heartbeat") \
        and "rerun the run's training" in st.detail
    assert stale_after({"heartbeat_every_s": 30, "seconds_per_epoch": 400}) == 3 * (30 + 800)
    assert stale_after({}) == 600
    text = format_status(grid_status([run]), "t")
    assert "1 runs: 0 done, 0 running, 0 stopped, 0 failed, 0 pending, 1 damaged" in text


def _since(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - seconds_ago))


def test_a_reused_pid_or_a_stale_heartbeat_is_not_running(tmp_path):
    """On this host a PID that exists is not enough: a dead trainer's PID given to another process, or a
    heartbeat silent for hours, is a stopped run."""
    reused, stale = tmp_path / "reused", tmp_path / "stale"
    for d in (reused, stale):
        d.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the PID's new owner
    try:
        _running(reused, other.pid)
        status = runs.read_json(reused / runs.STATUS_FILE)
        status["started"] = _since(3600)  # the training began an hour before the process now holding its PID
        runs.atomic_write_json(reused / runs.STATUS_FILE, status)
        st = run_state(reused)
        assert st.state == "stopped", st
        assert f"PID {other.pid} now belongs to another process" in st.detail and "reused" in st.detail
    finally:
        other.kill()
        other.wait()
    _running(stale, os.getpid(), beat_age=2 * 3600)  # alive, yet silent for two hours (a stuck or reused PID)
    st = run_state(stale)
    assert st.state == "stopped" and "no heartbeat for 2.0 h" in st.detail and "stale after 10 min" in st.detail
    _running(stale, os.getpid(), beat_age=3.0)  # the same with a fresh heartbeat: running
    assert run_state(stale).state == "running"


def test_a_live_pid_must_hold_the_run_lock(tmp_path):
    """A run whose directory has a lock file is running only while its recorded process holds that lock."""
    run = tmp_path / "r"
    run.mkdir()
    lock = run / runs.LOCK_FILE
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _running(run, holder.pid)
        assert run_state(run).state == "running"
        _running(run, holder.pid, beat_age=2 * 3600)  # silent for long (a pack's run waiting), yet the lock's holder
        assert run_state(run).state == "running"
        _running(run, os.getpid())  # alive, but not the lock's holder
        st = run_state(run)
        assert st.state == "stopped" and f"process {os.getpid()} does not hold the run directory's lock" in st.detail
    finally:
        holder.kill()
        holder.wait()
    _running(run, holder.pid)
    assert run_state(run).state == "stopped"


def test_a_damaged_file_marks_its_run_and_the_listing_goes_on(grid, capsys):
    root, dirs = grid
    d = [Path(x) for x in dirs]
    _finished(d[0])
    _running(d[1], os.getpid())
    status = runs.read_json(d[1] / runs.STATUS_FILE)
    runs.atomic_write_json(d[1] / runs.STATUS_FILE, {**status, "heartbeat_every_s": "abc"})
    _running(d[2], os.getpid())
    status = runs.read_json(d[2] / runs.STATUS_FILE)
    runs.atomic_write_json(d[2] / runs.STATUS_FILE, {**status, "epoch": "five"})
    (d[3]).mkdir(parents=True)
    (d[3] / runs.TRAINED_FILE).write_bytes(b"\xff\xfe not json")
    runs.atomic_write_json(d[4] / runs.TRAINED_FILE, ["ok"])
    _failed(d[5])
    out = _status(capsys, root)
    n = len(dirs)
    assert f"{n} runs: 1 done, 0 running, 0 stopped, 1 failed, {n - 6} pending, 4 damaged" in out, out
    lines = {str(x.relative_to(root)): next(line for line in out.splitlines() if str(x.relative_to(root)) in line)
             for x in d[1:5]}
    rel = list(lines)
    assert "status.json: heartbeat_every_s is 'abc', not a number; rerun the run's training" in lines[rel[0]]
    assert "status.json: epoch is 'five', not an integer" in lines[rel[1]]
    assert "trained.json: is damaged (" in lines[rel[2]]
    assert "trained.json: holds a JSON list, not the object firm-bench writes" in lines[rel[3]]
    assert out.index("failed:") < out.index("damaged:")
    (d[0] / runs.STATUS_FILE).write_text("{")  # a finished run: trained.json decides, a damaged status is not read
    assert run_state(d[0]).state == "done"


def test_a_directory_listing_skips_profiles_and_other_folders(tmp_path, capsys):
    """`status DIR` lists run directories only: not a Snakemake profile's or a workflow's config.yaml."""
    shutil.copytree(ROOT / "workflow" / "profiles", tmp_path / "workflow" / "profiles")
    shutil.copy(ROOT / "workflow" / "config" / "mini.yaml", tmp_path / "workflow" / "config.yaml")
    assert list((tmp_path / "workflow" / "profiles").rglob("config.yaml"))
    pending, done = (tmp_path / "runs" / "fmnist" / c / "firm" / "rot" / "smoke" / "seed0" for c in "01")
    runs.write_run_config(pending, {"dataset": {"name": "fmnist"}})  # a run that has not started: config only
    done.mkdir(parents=True)
    _finished(done)
    assert find_run_dirs(tmp_path) == [str(pending), str(done)]
    assert main(["status", str(tmp_path)]) == 0
    assert "2 runs: 1 done, 0 running, 0 stopped, 0 failed, 1 pending" in capsys.readouterr().out


def test_status_needs_no_torch(grid):
    root, dirs = grid
    _running(Path(dirs[0]), os.getpid())
    code = ("import sys; from firm_bench.cli import main; "
            f"rc = main(['status', 'mini', '--runs-root', {str(root)!r}]); "
            "assert 'torch' not in sys.modules and 'snakemake' not in sys.modules, 'imported torch'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "1 running" in out.stdout


def test_a_run_of_another_recipe_than_the_plans_is_refused_not_done(grid, capsys):
    """A directory of the plan trained under another recipe (the Quick start's 30 epochs where the mini workflow
    plans 6, a preset changed since) is not "done, scored": status names what differs."""
    from firm_bench.core import config
    from firm_bench.planning.grid import run_config

    root, dirs = grid
    p = plan(load_workflow_config("mini"))
    by_dir = {r.path(str(root)): r for r in p.runs}
    for d in dirs:
        _finished(Path(d))
        runs.write_run_config(d, run_config(p, by_dir[d]))  # the plan's own recipe: done
    other, moved = Path(dirs[0]), Path(dirs[1])
    runs.write_run_config(other, config.resolve("mini", overrides=[f"dataset.cls={by_dir[str(other)].cls}"]))
    planned = run_config(p, by_dir[str(moved)])  # where it ran and its data lies are not the recipe
    runs.write_run_config(moved, {**planned, "threads": 7, "dataset": {**planned["dataset"], "root": "/old/data"}})
    out = _status(capsys, root)
    n = len(dirs)
    assert f"{n} runs: {n - 1} done, 0 running, 0 stopped, 0 failed, 0 pending, 1 refused" in out, out
    refused = out.split("refused:\n", 1)[1]
    assert str(other.relative_to(root)) in refused and "optim.epochs: 30 -> 6" in refused
    assert "features.crops: 4 -> 2" in refused and "move or delete this run directory" in refused
    runs.atomic_write_text(moved / runs.CONFIG_FILE, "# firm-bench run config; sha256 of the text below: 0\nx: 1\n")
    out = _status(capsys, root)  # a damaged config.yaml marks its run, the listing goes on
    assert "1 damaged, 1 refused" in out and f"{moved.relative_to(root)}  config.yaml: does not match" in out
