"""Tests of firm_bench/run/pack.py: a pack of K runs leaves every run as training it alone would.

Tolerances, and why. With ``speed.pack_kernels: per_run`` (the CPU default)
each run's forward and backward go through its own view of the fused
weights, the kernels of a run trained alone, and the fused SGD update is
torch's arithmetic: the references are met bit for bit (``==``), curves,
checkpoints, optimiser and scheduler states, scores.

With ``grouped`` kernels (HFTA: one grouped convolution / batched matrix
product per layer for all runs, the CUDA default) the same sums are added
in another order, about 1e-7 relative per operation (first-step loss:
LOSS_REL below). This recipe amplifies any rounding difference about 100x
per step (``test_the_recipe_amplifies_rounding``: a 1e-7 relative change of
one run's weights, as a change of kernel or thread count would make, moves
its loss by more than 1e-3 within an epoch), so whole grouped runs can only
be compared with training alone at a learning rate small enough that the
trajectories stay together (1e-5: the learning curve still moves by 0.1
AUROC between epochs); there the losses agree to LOSS_REL and the AUROCs to
AUROC_ABS (200 test images: one swapped pair moves the AUROC by 1/3600).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.core.errors import (
    ConfigError,
    RecipeMismatch,
    RunDirLocked,
    TrainingFailed,
)
from firm_bench.core.rundir import read_curve
from firm_bench.datasets import load_run_data
from firm_bench.run.features import extract_run_features
from firm_bench.run.pack import Pack
from firm_bench.run.score import score_run
from firm_bench.run.train import train, train_pack
from firm_bench.run.training import build_training
from tests.helpers.holders import holder, stop

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CPU = torch.device("cpu")
LOSS_REL = 2e-5  # grouped kernels, lr 1e-5: relative difference of an epoch's mean loss (observed <= 3e-7)
AUROC_ABS = 2e-3  # grouped kernels, lr 1e-5: learning-curve AUROC (observed 0: no pair swapped)

#: one pack: different seeds, classes, losses (pairwise and concat forms), temperatures
RUNS = [
    ("seed=0",),
    ("seed=1", "loss.name=ntxent", "loss.tau=0.5"),
    ("seed=2", "dataset.cls=3", "loss.name=supcon", "loss.tau=0.1"),
]


def smoke(*overrides: str) -> dict:
    return config.resolve("smoke", overrides=["device=cpu", "threads=1", *overrides])


def small(data):
    """64 training images (4 steps of 64 with rotations), every 5th test image: whole runs in seconds."""
    return dataclasses.replace(data, train_ids=data.train_ids[:64], train_labels=data.train_labels[:64],
                               test_images=data.test_images[::5], test_targets=data.test_targets[::5])


@pytest.fixture(scope="module")
def datas():
    """Each class's small data, loaded once."""
    return {cls: small(load_run_data(smoke(f"dataset.cls={cls}"))) for cls in (0, 3)}


def data_of(cfg, datas):
    return datas[int(cfg["dataset"]["cls"])]


@pytest.fixture(scope="module")
def alone(tmp_path_factory, datas):
    """Every run of RUNS trained by itself (train()), the reference of the packs."""
    root = tmp_path_factory.mktemp("alone")
    for i, extra in enumerate(RUNS):
        cfg = smoke(*extra)
        train(cfg, root / f"run{i}", progress=False, data=data_of(cfg, datas))
    return root


def comparable(rows):
    """Curve rows without the wall clock; NaN (the epoch-0 loss) made comparable."""
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "elapsed_s"}
            for r in rows]


def checkpoint(run_dir, name="last.pt"):
    return torch.load(run_dir / "checkpoints" / name, weights_only=False)


def assert_same_checkpoint(a, b):
    assert a["epoch"] == b["epoch"] and a.keys() == b.keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    oa, ob = a["optimizer"], b["optimizer"]
    assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
    assert all(torch.equal(oa["state"][i]["momentum_buffer"], ob["state"][i]["momentum_buffer"]) for i in oa["state"])
    assert a["scheduler"] == b["scheduler"] and comparable(a["curve"]) == comparable(b["curve"]) and a["best"] == b["best"]


# ---------------------------------------------------------------- equivalence


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_pack_ends_every_run_as_training_it_alone(k, tmp_path, datas, alone):
    """per_run kernels (CPU default): curves, checkpoints, records of every run equal training it alone, bit for bit."""
    cfgs = [smoke(*extra) for extra in RUNS[:k]]
    dirs = [tmp_path / f"run{i}" for i in range(k)]
    results = train_pack(cfgs, dirs, progress=False, datas=[data_of(c, datas) for c in cfgs])
    for i, (d, result) in enumerate(zip(dirs, results)):
        ref = alone / f"run{i}"
        assert comparable(read_curve(d)) == comparable(read_curve(ref))
        assert [r["epoch"] for r in read_curve(d)] == [0, 1, 2]
        assert_same_checkpoint(checkpoint(d), checkpoint(ref))
        assert config.load_yaml(d / "config.yaml") == config.load_yaml(ref / "config.yaml")
        mine, theirs = runs.read_json(d / runs.TRAINED_FILE), runs.read_json(ref / runs.TRAINED_FILE)
        assert mine.keys() == theirs.keys() and mine["final_auroc"] == theirs["final_auroc"] == result.final_auroc
        if k > 1:  # a run alone (k = 1) is trained by its own engine: no pack
            assert mine["speed"]["pack"] == {"runs": k, "kernels": "per_run", "members": [str(x) for x in dirs],
                                             "index": i}
        assert {k2: v for k2, v in mine["speed"].items() if k2 != "pack"}.keys() == theirs["speed"].keys()
        assert runs.read_status(d)["state"] == "ok" and runs.read_status(d).keys() == runs.read_status(ref).keys()
    if k == 3:  # downstream code reads a packed run as any other: the same scores
        for d, ref in ((dirs[2], alone / "run2"),):
            for run in (d, ref):
                cfg = config.load_yaml(run / "config.yaml")
                cfg["features"].update(angles=[0], crops=0, untrained=False)  # a quick cache (the same for both)
                extract_run_features(cfg, run)
                score_run(cfg, run, names=["cos", "kde"], ks=[5])
            assert runs.read_json(d / "metrics.json")["scores"] == runs.read_json(ref / "metrics.json")["scores"]


def test_runs_of_different_optimiser_settings_and_schedules_train_as_alone(tmp_path, datas):
    """Per-run learning rate, momentum (cycle), weight decay and schedule: each run's own values on its slice."""
    cfgs = [smoke("optim.momentum_cycle=[0.8,0.9]", "optim.lr=0.1"),
            smoke("seed=1", "optim.schedule=warmup_cosine", "optim.warmup_epochs=1", "optim.lr=0.02",
                  "optim.momentum=0.8", "optim.weight_decay=0.001")]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"alone{i}", progress=False, data=datas[0])
    dirs = [tmp_path / "pack0", tmp_path / "pack1"]
    train_pack(cfgs, dirs, progress=False, datas=[datas[0], datas[0]])
    for i, d in enumerate(dirs):
        assert comparable(read_curve(d)) == comparable(read_curve(tmp_path / f"alone{i}"))
        assert_same_checkpoint(checkpoint(d), checkpoint(tmp_path / f"alone{i}"))
    groups = [checkpoint(d)["optimizer"]["param_groups"][0] for d in dirs]
    assert groups[0]["weight_decay"] != groups[1]["weight_decay"] and groups[0]["lr"] != groups[1]["lr"]


def test_grouped_kernels_match_training_alone_within_rounding(tmp_path, datas):
    """grouped kernels (HFTA, the CUDA default) at lr 1e-5: every run's curve as alone within LOSS_REL / AUROC_ABS."""
    extra = ("optim.lr=0.00001", "speed.pack_kernels=grouped")
    cfgs = [smoke(*r, *extra) for r in RUNS]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"alone{i}", progress=False, data=data_of(cfg, datas))
    dirs = [tmp_path / f"pack{i}" for i in range(3)]
    train_pack(cfgs, dirs, progress=False, datas=[data_of(c, datas) for c in cfgs])
    moved = []
    for i, d in enumerate(dirs):
        got, want = read_curve(d), read_curve(tmp_path / f"alone{i}")
        assert [r["epoch"] for r in got] == [r["epoch"] for r in want] == [0, 1, 2]
        assert got[0]["auroc"] == pytest.approx(want[0]["auroc"], abs=AUROC_ABS)  # the untrained encoder
        for g, w in zip(got[1:], want[1:]):
            assert g["loss"] == pytest.approx(w["loss"], rel=LOSS_REL) and g["lr"] == w["lr"]
            assert g["auroc"] == pytest.approx(w["auroc"], abs=AUROC_ABS)
        moved.append(max(abs(r["auroc"] - want[0]["auroc"]) for r in want))
        assert runs.read_json(d / runs.TRAINED_FILE)["speed"]["pack"]["kernels"] == "grouped"
    assert max(moved) > 10 * AUROC_ABS  # the runs did learn: the tolerance is far below what training changed
    losses = [read_curve(tmp_path / f"alone{i}")[1]["loss"] for i in range(3)]
    assert min(abs(a - b) for a in losses for b in losses if a != b) > 0.1  # the runs are told apart


def test_the_recipe_amplifies_rounding(datas):
    """Why grouped kernels are compared at a small learning rate: a 1e-7 change of one run's weights, trained
    alone twice, moves its losses by > 1e-3 within an epoch of the smoke recipe (the same holds for any change
    of kernel, thread count or device)."""
    cfg = smoke()
    a, b = build_training(cfg, datas[0], CPU), build_training(cfg, datas[0], CPU)
    with torch.no_grad():
        for p in b.model.parameters():
            p.mul_(1 + 1e-7)
    la, lb = a.engine.run_epoch(a.prepare(1)), b.engine.run_epoch(b.prepare(1))
    rel = ((la - lb).abs() / la.abs()).tolist()
    assert rel[0] < 1e-5 and max(rel) > 1e-3, rel


def test_grouped_graph_body_equals_grouped_eager_steps(datas):
    """The graphed pack step's body (device buffers only), run eagerly on the CPU, trains as the eager steps."""
    cfgs = [smoke(*r, "speed.pack_kernels=grouped") for r in RUNS]

    out = []
    for mode in ("off", "body"):
        ts = [build_training(c, data_of(c, datas), CPU) for c in cfgs]
        pack = Pack(ts, graph_mode=mode)
        losses = [pack.run_epoch([t.prepare(epoch) for t in ts]) for epoch in (1, 2)]
        out.append((torch.stack(losses), pack.fused.state_dict()))
    assert torch.equal(out[0][0], out[1][0])
    assert all(torch.equal(out[0][1][k], out[1][1][k]) for k in out[0][1])


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("kernels", ["per_run", "grouped"])
def test_a_nan_run_is_recorded_failed_and_the_others_go_on(kernels, tmp_path, datas, alone):
    """Run 1's loss turns non-finite (lr 1e30): it fails as it fails alone, the others end as without it."""
    bad = ("seed=1", "optim.lr=1e30")
    cfg_bad = smoke(*bad)
    with pytest.raises(TrainingFailed):
        train(cfg_bad, tmp_path / "bad_alone", progress=False, data=datas[0])
    reason = runs.read_json(tmp_path / "bad_alone" / runs.TRAINED_FILE)["reason"]
    assert "non-finite loss" in reason
    cfgs = [smoke(*RUNS[0], f"speed.pack_kernels={kernels}"), smoke(*bad, f"speed.pack_kernels={kernels}"),
            smoke(*RUNS[2], f"speed.pack_kernels={kernels}")]
    dirs = [tmp_path / f"run{i}" for i in range(3)]
    results = train_pack(cfgs, dirs, progress=False, datas=[data_of(c, datas) for c in cfgs])
    failed = runs.read_json(dirs[1] / runs.TRAINED_FILE)
    assert failed["state"] == "failed" and runs.read_status(dirs[1])["state"] == "failed"
    assert failed["reason"] == reason and results[1].final_auroc is None  # the same step and value as alone
    if kernels == "per_run":  # the others: exactly as alone
        for i in (0, 2):
            assert comparable(read_curve(dirs[i])) == comparable(read_curve(alone / f"run{i}"))
            assert_same_checkpoint(checkpoint(dirs[i]), checkpoint(alone / f"run{i}"))
    else:  # the others: exactly as in a grouped pack whose run 1 trains normally (no NaN reaches them)
        good = [smoke(*r, "speed.pack_kernels=grouped") for r in RUNS]
        ref = [tmp_path / f"ref{i}" for i in range(3)]
        train_pack(good, ref, progress=False, datas=[data_of(c, datas) for c in good])
        for i in (0, 2):
            assert comparable(read_curve(dirs[i])) == comparable(read_curve(ref[i]))
            assert all(torch.equal(a, b) for a, b in zip(checkpoint(dirs[i])["model"].values(),
                                                          checkpoint(ref[i])["model"].values()))
    for i in (0, 2):
        assert runs.read_json(dirs[i] / runs.TRAINED_FILE)["state"] == "ok"


# ---------------------------------------------------------------- resume


def test_a_rerun_trains_only_the_unfinished_runs(tmp_path, datas, alone):
    cfgs = [smoke(*r) for r in RUNS[:2]]
    dirs = [tmp_path / "run0", tmp_path / "run1"]
    train(cfgs[0], dirs[0], progress=False, data=datas[0])  # run 0 finished before

    def checkpoints(run_dir):
        return {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").iterdir()}

    before, curve = checkpoints(dirs[0]), (dirs[0] / "curve.csv").read_text()
    train_pack(cfgs, dirs, progress=False, datas=[datas[0], datas[0]])
    assert checkpoints(dirs[0]) == before  # not trained again: its records are written again from its checkpoint
    assert (dirs[0] / "curve.csv").read_text() == curve and runs.read_json(dirs[0] / runs.TRAINED_FILE)["state"] == "ok"
    assert comparable(read_curve(dirs[1])) == comparable(read_curve(alone / "run1"))
    # a run whose last checkpoint is final but whose trained.json is gone (Snakemake removes a rerun job's
    # outputs): its records are written again, nothing is retrained
    (dirs[1] / runs.TRAINED_FILE).unlink()
    curve = (dirs[1] / "curve.csv").read_text()
    train_pack(cfgs, dirs, progress=False, datas=[datas[0], datas[0]])
    assert runs.read_json(dirs[1] / runs.TRAINED_FILE)["state"] == "ok" and (dirs[1] / "curve.csv").read_text() == curve


@pytest.mark.parametrize("k", [1, 2])
def test_a_failed_run_is_trained_again(k, tmp_path, datas, alone, monkeypatch):
    """One policy alone (k = 1) and in a pack: a run recorded failed (a GPU's NaN, say) is trained again by a
    rerun, from its last checkpoint, and ends with the numbers of a run that never failed."""
    from firm_bench.run import train as trainer

    cfgs = [smoke(*r, "checkpoint.every=1") for r in RUNS[:k]]
    dirs = [tmp_path / f"run{i}" for i in range(k)]
    ds = [data_of(c, datas) for c in cfgs]
    real, calls = trainer.first_non_finite, []

    def nan_at_epoch_2(values):  # run 0's losses of epoch 2 read non-finite
        calls.append(1)
        return (0, float("nan")) if len(calls) == k + 1 else real(values)

    monkeypatch.setattr(trainer, "first_non_finite", nan_at_epoch_2)
    if k == 1:
        with pytest.raises(TrainingFailed, match="at epoch 2, step 1"):
            train(cfgs[0], dirs[0], progress=False, data=ds[0])
    else:
        results = train_pack(cfgs, dirs, progress=False, datas=ds)
        assert results[0].final_auroc is None and results[1].final_auroc is not None
    assert runs.read_json(dirs[0] / runs.TRAINED_FILE)["state"] == "failed" and checkpoint(dirs[0])["epoch"] == 1
    monkeypatch.setattr(trainer, "first_non_finite", real)
    train_pack(cfgs, dirs, progress=False, datas=ds) if k > 1 else train(cfgs[0], dirs[0], progress=False, data=ds[0])
    for i, d in enumerate(dirs):
        assert runs.read_json(d / runs.TRAINED_FILE)["state"] == "ok"
        assert comparable(read_curve(d)) == comparable(read_curve(alone / f"run{i}"))
        assert_same_checkpoint(checkpoint(d), checkpoint(alone / f"run{i}"))


def test_runs_resumed_at_different_epochs_join_the_pack(tmp_path, datas, alone, monkeypatch):
    """Killed between two runs' checkpoint writes: run 0 at epoch 1, run 1 at epoch 0. The rerun trains run 1's
    first epoch alone in the pack, then both; every number as uninterrupted."""
    cfgs = [smoke(*r, "optim.epochs=3", "checkpoint.every=1") for r in RUNS[:2]]
    ds = [data_of(c, datas) for c in cfgs]
    ref = [tmp_path / "ref0", tmp_path / "ref1"]
    train_pack(cfgs, ref, progress=False, datas=ds)
    dirs = [tmp_path / "run0", tmp_path / "run1"]
    real_save, saves = runs.atomic_torch_save, []

    class Killed(Exception):
        pass

    def save(path, obj, record=None):
        if path.name == "last.pt":
            saves.append(path)
            if len(saves) == 2:  # run 0's epoch-1 checkpoint is written, run 1's is not
                raise Killed
        return real_save(path, obj, record)

    monkeypatch.setattr(runs, "atomic_torch_save", save)
    with pytest.raises(Killed):
        train_pack(cfgs, dirs, progress=False, datas=ds)
    monkeypatch.setattr(runs, "atomic_torch_save", real_save)
    assert checkpoint(dirs[0])["epoch"] == 1 and not (dirs[1] / "checkpoints" / "last.pt").exists()
    train_pack(cfgs, dirs, progress=False, datas=ds)
    for d, r in zip(dirs, ref):
        assert comparable(read_curve(d)) == comparable(read_curve(r))
        assert_same_checkpoint(checkpoint(d), checkpoint(r))


PACK_EPOCHS = 3
PACK_CMD = [sys.executable, "-m", "firm_bench.cli", "train-pack", "--preset", "smoke",
            "--set", f"optim.epochs={PACK_EPOCHS}",
            "--set", "eval.every=3", "--set", "device=cpu", "--set", "threads=1", "--no-progress"]
PACK_ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def pack_members(root):
    return ["--member", str(root / "a"), "seed=0", "--member", str(root / "b"), "seed=1", "loss.name=ntxent"]


@pytest.fixture(scope="module")
def straight_pack(tmp_path_factory):
    """The uninterrupted pack of the kill-and-resume tests (firm-bench train-pack), trained once."""
    root = tmp_path_factory.mktemp("straight_pack")
    out = subprocess.run([*PACK_CMD, *pack_members(root)], check=True, env=PACK_ENV, capture_output=True, text=True)
    assert [r["state"] for r in json.loads(out.stdout.strip().splitlines()[-1])] == ["ok", "ok"]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_and_resume_of_a_pack_gives_the_same_numbers(tmp_path, sig, straight_pack):
    """A pack killed mid-way (firm-bench train-pack) and restarted ends every run as the uninterrupted pack.

    SIGKILL: each run resumes from its last periodic checkpoint. SIGTERM (a SLURM time limit, a pre-emption):
    the pack ends the epoch in progress, every run saves its checkpoint there and reads ``interrupted``, and
    the command exits 143.
    """
    straight, killed = straight_pack, tmp_path / "killed"
    proc = subprocess.Popen([*PACK_CMD, *pack_members(killed)], env=PACK_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "b" / "checkpoints" / "last.pt"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if ckpt.exists() and torch.load(ckpt, weights_only=False)["epoch"] >= 1:
                break
        except Exception:  # being replaced right now
            pass
        time.sleep(0.05)
    proc.send_signal(sig)
    assert proc.wait() == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM)
    interrupted_at = torch.load(ckpt, weights_only=False)["epoch"]
    assert 1 <= interrupted_at < PACK_EPOCHS, interrupted_at
    assert not (killed / "b" / runs.TRAINED_FILE).exists()
    if sig == signal.SIGTERM:  # both runs stopped at the same epoch's end, with their checkpoints
        for name in ("a", "b"):
            status = runs.read_status(killed / name)
            assert status["state"] == "interrupted" and status["signal"] == "SIGTERM", status
            assert status["epoch"] == checkpoint(killed / name)["epoch"] == interrupted_at
    resumed = subprocess.run([*PACK_CMD, *pack_members(killed)], check=True, env=PACK_ENV, capture_output=True, text=True)
    assert "from its checkpoint at epoch" in resumed.stderr
    for name in ("a", "b"):
        assert comparable(read_curve(straight / name)) == comparable(read_curve(killed / name))
        assert_same_checkpoint(checkpoint(straight / name), checkpoint(killed / name))


# ---------------------------------------------------------------- compatibility


def test_incompatible_runs_are_refused_with_the_key(tmp_path, datas):
    with pytest.raises(ConfigError, match="model.width differs"):
        train_pack([smoke(), smoke("model.width=0.125")], [tmp_path / "a", tmp_path / "b"], progress=False)
    with pytest.raises(ConfigError, match="training rows per epoch is 64, not 256"):
        train_pack([smoke(), smoke("outliers.name=none")], [tmp_path / "c", tmp_path / "d"], progress=False,
                     datas=[datas[0], datas[0]])
    with pytest.raises(ConfigError, match="twice"):
        train_pack([smoke(), smoke()], [tmp_path / "e", tmp_path / "e"], progress=False)


def test_a_pack_holds_every_run_directory(tmp_path):
    """A second process on one of the pack's run directories: the pack is refused at once, naming it; nothing written."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    proc = holder(dirs[1], "train")
    try:
        with pytest.raises(RunDirLocked, match=f"PID {proc.pid}"):
            train_pack([smoke(), smoke("seed=1")], dirs, progress=False)
    finally:
        stop(proc)
    assert not (dirs[0] / runs.CONFIG_FILE).exists() and not (dirs[1] / runs.CONFIG_FILE).exists()


def test_a_run_of_another_recipe_is_refused_naming_the_keys(tmp_path, datas):
    """A pack member whose directory holds a finished run or a checkpoint of another recipe: RecipeMismatch, as alone."""
    cfgs = [smoke("optim.epochs=1"), smoke("optim.epochs=1", "seed=1")]
    dirs = [tmp_path / "a", tmp_path / "b"]
    train_pack(cfgs, dirs, progress=False, datas=[datas[0], datas[0]])
    changed = [smoke("optim.epochs=1", "optim.lr=0.01"), cfgs[1]]
    with pytest.raises(RecipeMismatch, match="optim.lr"):  # run a finished: its config.yaml is another recipe's
        train_pack(changed, dirs, progress=False, datas=[datas[0], datas[0]])
    (dirs[0] / runs.TRAINED_FILE).unlink()
    with pytest.raises(RecipeMismatch, match="optim.lr"):  # its final checkpoint, too
        train_pack(changed, dirs, progress=False, datas=[datas[0], datas[0]])


def test_a_packs_progress_lines_name_their_run(tmp_path, datas, capfd):
    """--progress lines for a pack: each run's lines, prefixed with its place in the pack; status.json heartbeats."""
    cfgs = [smoke("optim.epochs=2"), smoke("optim.epochs=2", "seed=1")]
    dirs = [tmp_path / "cls0" / "seed0", tmp_path / "cls0" / "seed1"]
    train_pack(cfgs, dirs, progress="lines", datas=[datas[0], datas[0]], progress_every=1)
    err = capfd.readouterr().err
    for name in ("seed0", "seed1"):
        assert f"firm-bench: {name}: epoch 1/2 loss " in err and f"firm-bench: {name}: epoch 2/2 loss " in err, err
    assert runs.read_status(dirs[1])["state"] == "ok"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on a GPU machine)")
def test_grouped_pack_cuda_graph_captures_and_never_syncs():
    """On a GPU: the fused step of a pack is one CUDA graph (checked at capture), with no host sync in an epoch."""
    import warnings

    cuda = torch.device("cuda")
    cfgs = [config.resolve("smoke", overrides=["device=cuda", "optim.epochs=4", *r]) for r in RUNS]
    ts = [build_training(c, load_run_data(c), cuda) for c in cfgs]
    assert ts[0].opts.cuda_graph and ts[0].opts.pack_kernels == "grouped"
    pack = Pack(ts)
    first = pack.run_epoch([t.prepare(1) for t in ts]).cpu()
    assert pack.status["cuda_graph"] == "on", pack.status
    assert torch.isfinite(first).all()
    upcoming = [t.prepare(2) for t in ts]
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            losses = pack.run_epoch(upcoming)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sites = [f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]
    assert not sites, f"host syncs in a captured pack epoch at {sites}"
    assert torch.isfinite(losses.cpu()).all() and not torch.equal(losses.cpu(), first)
