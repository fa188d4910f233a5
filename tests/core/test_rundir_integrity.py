"""Self-checking run records (core.rundir): damaged files name themselves, checksums, disk full, leftovers."""

import errno
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.core.errors import USER_ERRORS, DamagedFile, DiskFull

# ------------------------------------------------------------------ damaged JSON records


@pytest.mark.parametrize("name, fix", [
    ("status.json", "firm-bench train --config"),
    ("trained.json", "firm-bench train --config"),
    ("versions.json", "firm-bench train --config"),
    ("metrics.json", "firm-bench metrics"),
    ("features/test/meta.json", "firm-bench features RUN --evalset test"),
    ("features/ood-svhn/meta.json", "firm-bench features RUN --evalset ood-svhn"),
    ("scores/test/cos_k5.json", "firm-bench score RUN --evalset test --scores cos --k 5"),
    ("scores/test/center.json", "firm-bench score RUN --evalset test --scores center"),
])
def test_a_truncated_json_record_names_the_file_what_it_is_and_what_to_do(tmp_path, name, fix):
    run = tmp_path / "RUN"
    path = run / name
    runs.atomic_write_json(path, {"state": "ok", "reason": "a long enough text to be cut"})
    path.write_bytes(path.read_bytes()[:25])  # cut inside a string: 'Unterminated string' on its own
    with pytest.raises(DamagedFile) as err:
        runs.read_json(path)
    msg = str(err.value)
    assert str(path) in msg and "is damaged" in msg and fix.replace("RUN", str(run)) in msg, msg
    assert isinstance(err.value, USER_ERRORS)  # one line on the command line, exit status 2


def test_read_status_and_curve_of_damaged_files(tmp_path):
    (tmp_path / runs.STATUS_FILE).write_text('{"state": "runn')
    with pytest.raises(DamagedFile, match="training status"):
        runs.read_status(tmp_path)
    runs.write_curve(tmp_path, [{"epoch": 0, "auroc": 0.5, "loss": 1.0, "lr": 0.1, "elapsed_s": 0.0}] * 2)
    text = (tmp_path / runs.CURVE_FILE).read_text()
    (tmp_path / runs.CURVE_FILE).write_text(text[:-12])  # the last row cut short
    with pytest.raises(DamagedFile, match="learning curve"):
        runs.read_curve(tmp_path)


# ------------------------------------------------------------------ checkpoints and caches carry a checksum


def _tensor_file(path, values=None):
    values = torch.arange(4096, dtype=torch.float32) if values is None else values
    runs.atomic_torch_save(path, {"x": values})
    return values


def _flip_a_byte_inside_the_tensor(path, values):
    data = bytearray(path.read_bytes())
    at = data.find(values.numpy().tobytes()[4000:4016])
    assert at > 0
    data[at + 3] ^= 0x40
    path.write_bytes(bytes(data))


def test_flipped_bytes_inside_a_tensor_fail_the_checksum(tmp_path):
    path = tmp_path / "RUN" / "checkpoints" / "last.pt"
    values = _tensor_file(path)
    rec = runs.read_json(runs.checksum_path(path))
    assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and rec["bytes"] == path.stat().st_size
    assert torch.equal(runs.torch_load(path)["x"], values)
    _flip_a_byte_inside_the_tensor(path, values)
    assert not torch.equal(torch.load(path)["x"], values)  # torch alone loads it silently
    with pytest.raises(DamagedFile) as err:
        runs.torch_load(path)
    msg = str(err.value)
    assert str(path) in msg and "training checkpoint" in msg and "checksum record" in msg and "rm " in msg


def test_a_truncated_feature_cache_names_itself_without_a_torch_traceback(tmp_path):
    from firm_bench.method.scores import FeatureCache

    run = tmp_path / "RUN"
    path = runs.cache_path(run)
    cache = FeatureCache(angles=(0,), bank=torch.randn(1, 8, 4), test=torch.randn(1, 6, 4), test_crops=None,
                         targets=torch.tensor([1, 1, 1, 0, 0, 0]))
    cache.save(path)
    assert torch.equal(FeatureCache.load(path).bank, cache.bank)
    runs.checksum_path(path).unlink()  # without its record: torch's own error, named
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DamagedFile) as err:
        FeatureCache.load(path)
    msg = str(err.value)
    assert str(path) in msg and "feature cache of evaluation set test" in msg
    assert f"firm-bench features {run} --evalset test" in msg and "cannot be read" in msg


def test_a_kill_between_record_and_rename_leaves_a_file_that_verifies(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    old = _tensor_file(path)
    real_replace = os.replace

    def killed(src, dst):
        if str(dst) == str(path):
            raise KeyboardInterrupt  # after the new record, before the new file
        real_replace(src, dst)

    monkeypatch.setattr(runs.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _tensor_file(path, torch.ones(4096))
    monkeypatch.setattr(runs.os, "replace", real_replace)
    assert torch.equal(runs.torch_load(path)["x"], old)  # the previous file, still trusted
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------ disk full


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, fd, room):
        self.fd, self.room = fd, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return os.write(self.fd, b)

    def fileno(self):
        return self.fd

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


@pytest.mark.parametrize("room", [0, 200, 5000])
def test_disk_full_while_saving_says_so_naming_the_file(tmp_path, monkeypatch, room):
    path = tmp_path / "checkpoints" / "last.pt"
    old = _tensor_file(path)
    monkeypatch.setattr(runs.os, "fdopen", lambda fd, mode: _FullDisk(fd, room))
    with pytest.raises(DiskFull) as err:
        _tensor_file(path, torch.ones(4096))  # torch: "enforce fail at inline_container.cc"
    assert str(err.value).startswith(f"no space left on device writing {path}")
    with pytest.raises(DiskFull, match=f"no space left on device writing {tmp_path / 'x.json'}"):
        runs.atomic_write_json(tmp_path / "x.json", {"a": "b" * 10000})
    monkeypatch.undo()
    assert torch.equal(runs.torch_load(path)["x"], old)  # the previous checkpoint is untouched
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------ temporary files of killed writes


def test_a_training_stopped_by_a_full_disk_is_recorded_failed_at_its_checkpoint(tmp_path):
    """status.json of a training killed by a full disk says failed, why, and the epoch it resumes from;
    a status that is not this process's training, or an error that is not a full disk, is left alone."""
    from firm_bench.core import lock as locks

    run = tmp_path / "run"
    run.mkdir()
    running = dict(epoch=3, epochs=6, pid=os.getpid(), host=locks.host(), started="2026-12-07T00:00:00+0000",
                   heartbeat_every_s=30.0)
    runs.write_status(run, "running", **running)
    runs.atomic_write_json(runs.checksum_path(run / "checkpoints" / "last.pt"), {"sha256": "0" * 64, "epoch": 2})
    full = DiskFull(run / "checkpoints" / "last.pt", "no space left on device writing x")
    with pytest.raises(ValueError), runs.writing(run, "train"):
        raise ValueError("not a full disk")
    assert runs.read_status(run)["state"] == "running"
    with pytest.raises(DiskFull), runs.writing(run, "train"):
        raise full
    status = runs.read_status(run)
    assert (status["state"], status["epoch"], status["epochs"], status["stage"]) == ("failed", 2, 6, "disk full")
    assert status["reason"] == ("stopped by a full disk: no space left on device writing x; the training resumes "
                                "from its checkpoint at epoch 2 when rerun")
    runs.write_status(run, "running", **{**running, "pid": os.getpid() + 1})  # another process's training
    with pytest.raises(OSError), runs.writing(run, "train"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert runs.read_status(run)["state"] == "running"
    runs.write_status(run, "running", **running)
    with pytest.raises(OSError), runs.writing(run, "train"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert runs.read_status(run)["state"] == "failed"


def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    run = tmp_path / "RUN"
    code = textwrap.dedent(f"""
        import time
        from firm_bench.core import rundir
        def slow(fh):
            fh.write(b"x" * 1000); fh.flush(); print("writing", flush=True); time.sleep(120)
        rundir.atomic_write({str(runs.cache_path(run))!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = list(run.rglob("*.tmp"))
    assert len(left) == 1 and f"-{proc.pid}." in left[0].name  # its writer's PID is in its name
    mine = run / "scores" / "test" / f".cos_k5.json.{runs._temp_tag()}.abc123.tmp"  # a live writer's
    mine.parent.mkdir(parents=True)
    mine.write_text("live")
    anonymous = run / "checkpoints" / ".last.pt.k2j4h5.tmp"  # no PID in the name: only an exclusive holder removes it
    anonymous.parent.mkdir()
    anonymous.write_text("old")
    with runs.writing(run, "score", "test"):
        pass
    assert not left[0].exists() and mine.exists() and anonymous.exists()
    with runs.writing(run, "train"):  # training holds everything: every leftover goes
        pass
    assert not mine.exists() and not anonymous.exists()


# ------------------------------------------------------------------ config.yaml


def test_config_yaml_carries_a_checksum_so_truncation_and_edits_are_caught(tmp_path):
    cfg = config.resolve("smoke")
    runs.write_run_config(tmp_path, cfg)
    assert runs.read_run_config(tmp_path) == cfg
    assert config.load_yaml(tmp_path / runs.CONFIG_FILE) == cfg  # still plain YAML to read
    path = tmp_path / runs.CONFIG_FILE
    lines = path.read_text().splitlines(keepends=True)
    cut = "".join(lines[: len(lines) // 2])
    assert isinstance(yaml.safe_load(cut), dict)
    path.write_text(cut)  # truncated at a line: parseable, and validate() would fill the rest with defaults
    with pytest.raises(DamagedFile, match="does not match its checksum line"):
        runs.read_run_config(tmp_path)
    path.write_text("".join(lines).replace("lr: 0.05", "lr: 0.5"))
    with pytest.raises(DamagedFile, match="truncated or edited"):
        runs.read_run_config(tmp_path)
    path.write_text("".join(lines[1:]))  # no checksum line at all
    with pytest.raises(DamagedFile, match="no checksum line"):
        runs.read_run_config(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="a run directory"):
        runs.read_run_config(tmp_path)


# ------------------------------------------------------------------ the learning curve


def _row(epoch):
    return {"epoch": epoch, "auroc": 0.5 + epoch / 100, "loss": 1.0, "lr": 0.1, "elapsed_s": float(epoch)}


@pytest.mark.parametrize("over, epochs", [
    ({}, [0, 1, 2]),
    ({"optim.epochs": 25, "eval.every": 10}, [0, 10, 20, 25]),
    ({"optim.epochs": 20, "eval.every": 10, "eval.at_start": False}, [10, 20]),
    ({"dataset.cls": "all"}, []),  # no test set: no curve
])
def test_expected_curve_epochs_follow_the_recipe(over, epochs):
    cfg = config.resolve("smoke", overrides=[f"{k}={v}" for k, v in over.items()])
    assert runs.expected_curve_epochs(cfg) == epochs


def test_a_short_or_edited_curve_is_refused_before_aulc(tmp_path):
    cfg = config.resolve("smoke", overrides=["optim.epochs=5"])
    rows = [_row(e) for e in range(6)]
    runs.write_curve(tmp_path, rows)
    runs.atomic_write_json(tmp_path / runs.TRAINED_FILE, {"state": "ok", **runs.curve_record(rows)})
    assert runs.checked_curve(tmp_path, cfg) == rows
    runs.write_curve(tmp_path, rows[:3])
    with pytest.raises(DamagedFile) as err:
        runs.checked_curve(tmp_path, cfg)
    msg = str(err.value)
    assert str(tmp_path / runs.CURVE_FILE) in msg and "holds 3 points" in msg and "evaluates 6" in msg
    assert "firm-bench train --config" in msg
    edited = [dict(r) for r in rows]
    edited[4]["auroc"] = 0.99
    runs.write_curve(tmp_path, edited)
    with pytest.raises(DamagedFile, match="differs from the curve recorded in .*trained.json"):
        runs.checked_curve(tmp_path, cfg)
