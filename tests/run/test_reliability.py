"""Nothing lost, nothing mislabelled: one writer per run directory, self-checking records, clear errors.

Each test reproduces a way a run directory used to be corrupted or mislabelled
(two trainers on one directory, a checkpoint adopted by another loss, a
truncated config filled with defaults, an old model's scores served under a
new recipe, a short learning curve integrated, nameless errors on damaged
files, disk full), with real processes where processes are the point.
"""

import os
import subprocess
import sys
import time

import pytest
import torch

from firm_bench.cli import main
from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.core.errors import DamagedFile, DiskFull
from firm_bench.records.metrics import write_metrics
from firm_bench.run.features import extract_run_features
from firm_bench.run.score import score_run
from firm_bench.run.train import train

CLI = [sys.executable, "-m", "firm_bench.cli"]
ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def smoke(**overrides):
    return config.resolve("smoke", overrides=["device=cpu", "threads=1", *(f"{k}={v}" for k, v in overrides.items())])


def _train_cmd(run, *sets):
    args = [*CLI, "train", "--preset", "smoke", "--no-progress", "--set", "device=cpu", "--set", "threads=1"]
    for s in sets:
        args += ["--set", s]
    return [*args, "--run-dir", str(run)]


def _wait_training(proc, run, timeout=120):
    """Until ``proc`` trains ``run`` (its status says running), failing if it ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        status = run / runs.STATUS_FILE
        if status.exists() and runs.read_status(run)["state"] == "running":
            return
        time.sleep(0.1)
    raise AssertionError("training did not start")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A smoke run trained (2 epochs), its features extracted and scored (cos, center)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    cfg = smoke(**{"scores.names": "[cos, center]", "scores.k": "[5]", "features.crops": 0})
    train(cfg, run, progress=False)
    extract_run_features(cfg, run)
    score_run(cfg, run)
    return cfg, run


def _copy(run, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


# ------------------------------------------------------------------ two processes, one run directory


@pytest.mark.slow
def test_a_second_trainer_on_a_run_directory_is_refused_at_once(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(run, "optim.lr=0.05", "optim.epochs=200"), env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_training(first, run)
        t0 = time.time()
        second = subprocess.run(_train_cmd(run, "optim.lr=0.2", "optim.epochs=200"), env=ENV,
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2 and time.time() - t0 < 30, second.stderr[-2000:]
        err = second.stderr
        assert f"run directory {run} is in use by firm-bench train" in err and f"PID {first.pid}" in err, err
        assert f"kill {first.pid}" in err and "Traceback" not in err
        assert first.poll() is None  # the first goes on, untouched
        assert runs.read_run_config(run)["optim"]["lr"] == 0.05
    finally:
        first.kill()
        first.wait()


def test_a_command_line_sweep_gets_one_run_directory_per_override(capsys):
    dirs = {}
    for sets in ([], ["optim.lr=0.2"], ["optim.lr=0.3"], ["loss.tau=0.5"], ["optim.epochs=3"],
                 ["optim.lr=0.2", "loss.tau=0.5"], ["augment.crop_scale=[0.5, 1.0]"], ["device=cpu", "threads=2"]):
        assert main(["config", "--preset", "smoke", *(a for s in sets for a in ("--set", s))]) == 0
        out = capsys.readouterr().out
        dirs[tuple(sets)] = out.splitlines()[0].removeprefix("# run directory: ")
    assert dirs[()] == dirs[("device=cpu", "threads=2")] == "results/runs/fmnist_mini/0/firm/rot/smoke/seed0"
    assert dirs[("optim.lr=0.2",)].endswith("/smoke+optim.lr=0.2/seed0")
    assert dirs[("optim.lr=0.2", "loss.tau=0.5")].endswith("/smoke+loss.tau=0.5+optim.lr=0.2/seed0")
    assert len(set(dirs.values())) == len(dirs) - 1  # all different but the run-local knobs
    crop = dirs[("augment.crop_scale=[0.5, 1.0]",)].split("/")[-2]
    assert crop.startswith("smoke+") and len(crop) == len("smoke+") + 10  # a list: a short hash
    cfg = config.resolve("smoke", overrides=["optim.lr=0.2", "optim.weight_decay=0.001"], name_recipe=True)
    assert cfg["recipe_overrides"] == {"optim.lr": 0.2, "optim.weight_decay": 0.001}  # recorded in the config
    assert cfg["recipe"] == "smoke+optim.lr=0.2+optim.weight_decay=0.001"
    named = config.resolve("smoke", overrides=["optim.lr=0.2", "recipe=mine"], name_recipe=True)
    assert named["recipe"] == "mine" and named["recipe_overrides"] == {}  # a named recipe is kept


@pytest.mark.slow
def test_a_training_job_stops_when_the_workflow_is_killed(tmp_path):
    """Snakemake SIGKILLed cannot stop its jobs: the trainer watches its PID (``--exit-with``) and stops."""
    workflow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    run = tmp_path / "run"
    trainer = subprocess.Popen([*_train_cmd(run, "optim.epochs=200"), "--exit-with", str(workflow.pid)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_training(trainer, run)
        workflow.kill()
        workflow.wait()
        assert trainer.wait(timeout=30) != 0
        assert f"process {workflow.pid} (the workflow that started this job) exited" in trainer.stderr.read()
        with runs.writing(run, "train"):  # its lock went with it
            pass
    finally:
        for p in (workflow, trainer):
            if p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------------ the checkpoint stores the config


def test_a_run_with_another_loss_never_adopts_a_checkpoint(finished, tmp_path):
    cfg, run = finished
    run = _copy(run, tmp_path)
    (run / runs.CONFIG_FILE).unlink()  # nothing left but the checkpoint to tell what was trained
    with pytest.raises(config.ConfigError) as err:
        train({**cfg, "loss": {**cfg["loss"], "name": "ntxent"}}, run, progress=False)
    msg = str(err.value)
    assert "different config" in msg and "loss.name: 'firm' -> 'ntxent'" in msg and str(run / "checkpoints") in msg
    with pytest.raises(config.ConfigError, match=r"optim.lr: 0.05 -> 0.2"):
        train(smoke(**{"scores.names": "[cos, center]", "optim.lr": 0.2}), run, progress=False)


def test_a_truncated_config_is_never_filled_with_defaults(finished, tmp_path, capsys):
    _, run = finished
    run = _copy(run, tmp_path)
    path = run / runs.CONFIG_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:12]))  # parseable YAML: the old reader filled the rest with schema defaults
    for command in (["features", str(run)], ["score", str(run)], ["metrics", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{path} (the run's recorded config)" in err and "checksum" in err, err


def test_features_refuse_a_config_that_is_not_the_checkpoints(finished, tmp_path):
    cfg, run = finished
    run = _copy(run, tmp_path)
    runs.write_run_config(run, {**cfg, "loss": {**cfg["loss"], "tau": 0.5}})  # a valid config, but not this model's
    with pytest.raises(DamagedFile, match=r"is not the config .*last.pt was trained with \(loss.tau: 0.2 -> 0.5\)"):
        extract_run_features(config.validate(runs.read_run_config(run)), run)


# ------------------------------------------------------------------ a fresh training invalidates the old results


def _files(run):
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_finished_run_whose_checkpoints_were_deleted_keeps_its_results(finished, tmp_path, capfd, monkeypatch):
    """Checkpoints deleted to save disk: a rerun of its training (the same recipe, the data moved, Snakemake's
    trained.json removed before the job) trains nothing and loses nothing; another recipe is refused by name."""
    import shutil

    from firm_bench.run import train as train_mod

    cfg, run = finished
    run = _copy(run, tmp_path)
    shutil.rmtree(run / "checkpoints")
    before = _files(run)
    trained_before = runs.read_json(run / runs.TRAINED_FILE)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_mod, "build_training", no_training)
    result = train(cfg, run, progress=False)
    assert result.final_auroc == trained_before["final_auroc"] and _files(run) == before
    assert "is finished and its checkpoints were deleted: its results are kept" in capfd.readouterr().err
    (run / runs.TRAINED_FILE).unlink()  # Snakemake removes a job's output before rerunning it
    moved = {**cfg, "dataset": {**cfg["dataset"], "root": str(tmp_path / "moved")}}  # data_root set: run-local
    train(moved, run, progress=False)
    trained = runs.read_json(run / runs.TRAINED_FILE)
    assert {k: trained[k] for k in trained_before if k != "checkpoints"} == trained_before  # the training's outcome
    assert "results kept" in trained["checkpoints"]
    assert (run / runs.TRAINED_FILE).stat().st_mtime <= (run / "metrics.json").stat().st_mtime  # no step reruns
    assert {k: v for k, v in _files(run).items() if k != runs.TRAINED_FILE} == \
        {k: v for k, v in before.items() if k != runs.TRAINED_FILE}
    with pytest.raises(config.ConfigError, match=r"finished run of a different config \(loss.tau: 0.2 -> 0.5\)"):
        train({**cfg, "loss": {**cfg["loss"], "tau": 0.5}}, run, progress=False)
    assert {k: v for k, v in _files(run).items() if k != runs.TRAINED_FILE} == \
        {k: v for k, v in before.items() if k != runs.TRAINED_FILE}


def test_refinishing_keeps_the_provenance_of_the_training_that_made_the_model(finished, tmp_path, monkeypatch):
    """A rerun of a finished run's training job (pack_runs or data_root changed, --forcerun, an upgrade) finds the
    final checkpoint and trains nothing: versions.json, train_seconds and the speed / pack label stay the
    training's; what the re-finish changed is recorded beside them (``refinished``)."""
    cfg, run = finished
    run = _copy(run, tmp_path)
    versions = runs.read_json(run / "versions.json")
    trained_before = runs.read_json(run / runs.TRAINED_FILE)
    real = runs.versions
    monkeypatch.setattr(runs, "versions", lambda device=None: {**real(device), "git_commit": "upgraded"})
    (run / runs.TRAINED_FILE).unlink()  # Snakemake removes a job's output before rerunning it
    moved = {**cfg, "dataset": {**cfg["dataset"], "root": str(tmp_path / "moved")}}
    train(moved, run, progress=False)
    assert runs.read_json(run / "versions.json") == versions
    trained = runs.read_json(run / runs.TRAINED_FILE)
    for key in ("train_seconds", "speed", "final_auroc", "curve_sha256"):
        assert trained[key] == trained_before[key], key
    (change,) = trained["refinished"]
    assert change["versions"]["git_commit"] == [versions["git_commit"], "upgraded"]
    assert any(line.startswith("dataset.root: ") for line in change["config"]), change
    assert runs.read_status(run)["train_seconds"] == trained_before["train_seconds"]
    assert (run / runs.TRAINED_FILE).stat().st_mtime <= (run / "metrics.json").stat().st_mtime
    train(moved, run, progress=False)  # again: the record grows, the training's provenance stays
    again = runs.read_json(run / runs.TRAINED_FILE)
    assert len(again["refinished"]) == 2 and again["train_seconds"] == trained_before["train_seconds"]


def test_a_training_from_scratch_removes_the_previous_models_results(finished, tmp_path, capfd, monkeypatch):
    cfg, run = finished
    run = _copy(run, tmp_path)
    seen = {}
    real = runs.write_status

    def spy(run_dir, state, **fields):  # what the directory holds while the new training runs
        if state == "running":
            seen.update({n: (run / n).exists() for n in ("trained.json", "features", "scores", "metrics.json",
                                                         "curve.csv")})
        return real(run_dir, state, **fields)

    monkeypatch.setattr(runs, "write_status", spy)
    train(cfg, run, progress=False, retrain=True)  # asked for: the finished run and its checkpoint are replaced
    assert seen == {"trained.json": False, "features": False, "scores": False, "metrics.json": False,
                    "curve.csv": False}, seen
    assert "training from scratch; removed the previous training's trained.json" in capfd.readouterr().err
    assert runs.read_json(run / runs.TRAINED_FILE)["state"] == "ok"  # the new one's
    assert not (run / "features").exists() and not (run / "metrics.json").exists()


# ------------------------------------------------------------------ the curve is checked before AULC


def test_a_short_curve_is_refused_naming_the_file(finished, tmp_path, capsys):
    cfg, run = finished
    run = _copy(run, tmp_path)
    assert write_metrics(cfg, run)["curve_points"] == 2
    curve = run / runs.CURVE_FILE
    curve.write_text("".join(curve.read_text().splitlines(keepends=True)[:-1]))  # the last point gone
    assert main(["metrics", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{curve} (the learning curve) holds 2 points (epochs 0, 1)" in err and "evaluates 3" in err, err
    assert f"firm-bench train --config {run / runs.CONFIG_FILE} --run-dir {run}" in err
    # what it says to do works: the resumed (finished) training rewrites the curve from its checkpoint
    assert main(["train", "--config", str(run / runs.CONFIG_FILE), "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["metrics", str(run)]) == 0
    assert runs.read_json(run / runs.METRICS_FILE)["curve_points"] == 2


# ------------------------------------------------------------------ damaged files name themselves


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name, command, fix", [
    ("features/test/meta.json", "score", "firm-bench features RUN --evalset test"),
    ("features/test/cache.pt", "score", "firm-bench features RUN --evalset test"),
    ("features/test/untrained/cache.pt", "score", "firm-bench features RUN --evalset test"),
    ("scores/test/cos_k5.json", "metrics", "firm-bench score RUN --evalset test --scores cos --k 5"),
    ("status.json", "metrics", "firm-bench train --config RUN/config.yaml --run-dir RUN"),
    ("trained.json", "metrics", "firm-bench train --config RUN/config.yaml --run-dir RUN"),
    ("trained.json", "features", "firm-bench train --config RUN/config.yaml --run-dir RUN"),
    ("checkpoints/last.pt", "features", "rm RUN/checkpoints/last.pt*"),
])
def test_a_damaged_file_is_named_with_what_to_do(finished, tmp_path, capsys, name, command, fix):
    _, run = finished
    run = _copy(run, tmp_path)
    _truncate(run / name)
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"firm-bench: error: {run / name} (") and fix.replace("RUN", str(run)) in err, err


def test_flipped_bytes_in_a_checkpoint_or_cache_are_caught(finished, tmp_path, capsys):
    _, run = finished
    run = _copy(run, tmp_path)
    for name, command in (("features/test/cache.pt", "score"), ("checkpoints/last.pt", "features")):
        path = run / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01  # inside the tensor data: torch alone loads it silently
        path.write_bytes(bytes(data))
        assert main([command, str(run)]) == 2
        err = capsys.readouterr().err
        assert f"{path} (" in err and "does not match its checksum record" in err, err


def test_a_training_resumes_only_from_a_checkpoint_that_verifies(finished, tmp_path, capsys):
    cfg, run = finished
    run = _copy(run, tmp_path)
    _truncate(run / "checkpoints" / "last.pt")
    with pytest.raises(DamagedFile, match="training checkpoint"):
        train(cfg, run, progress=False)


# ------------------------------------------------------------------ disk full


def test_disk_full_while_checkpointing_names_the_file(tmp_path, capsys, monkeypatch):
    import errno

    real = torch.save

    def full(obj, f, *a, **kw):
        if "model" in obj:  # a checkpoint: the disk fills up mid-write
            f.write(b"PK" * 100)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from \
                OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--set", "device=cpu", "--set", "optim.epochs=1", "--run-dir",
                 str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"no space left on device writing {run / 'checkpoints'}" in err, err
    assert "enforce fail" not in err and not list(run.rglob("*.tmp"))
    from firm_bench.records.status import run_state

    st = run_state(run)  # not left "running" at epoch 0: failed, with the full disk as its reason
    assert st.state == "failed" and st.detail.startswith("stopped by a full disk: no space left on device"), st
    with pytest.raises(DiskFull):  # and the library raises it as such
        runs.atomic_torch_save(run / "x.pt", {"model": 1})
