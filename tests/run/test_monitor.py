"""Progress lines for log files and status.json heartbeats (run.monitor), on a fake clock."""

import os
import re
import socket

import pytest

from firm_bench.core import rundir as runs
from firm_bench.run import monitor as M


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(M.time, "monotonic", c)
    monkeypatch.delenv(M.HEARTBEAT_ENV, raising=False)
    return c


def test_lines_every_few_epochs_with_loss_auroc_rate_and_eta(tmp_path, clock, capsys):
    """Resumed at epoch 10 of 100, 2 s per epoch, 500 images (1000 views) per epoch, a line every 5 epochs (and the
    first, last); the curve's point named as the score tables name it."""
    mon = M.Monitor(tmp_path, epochs=100, start_epoch=10, images_per_epoch=500, progress="lines", every=5,
                    score=M.curve_score(5))
    printed = []
    for epoch in range(11, 101):
        clock.t += 2.0
        mon.epoch_done(epoch, loss=1.0 / epoch, auroc=0.5 + epoch / 1000 if epoch % 10 == 0 else None)
        printed += [line for line in capsys.readouterr().err.splitlines() if line]
    epochs = [int(re.match(r"firm-bench: epoch (\d+)/100 ", line).group(1)) for line in printed]
    assert epochs == [11, 15, *range(20, 101, 5)]
    assert printed[0] == "firm-bench: epoch 11/100 loss 0.0909 500 views/s elapsed 0:00:02 eta 0:02:58"
    line_20 = printed[2]
    assert line_20 == "firm-bench: epoch 20/100 loss 0.0500 cos_k5 0.5200 500 views/s elapsed 0:00:20 eta 0:02:40"
    assert printed[-1].endswith("eta 0:00:00")


def test_heartbeat_writes_status_with_process_epoch_and_eta(tmp_path, clock):
    mon = M.Monitor(tmp_path, epochs=50, start_epoch=0, images_per_epoch=10, progress="off",
                    fields=lambda: {"speed": {"bf16": False}})
    mon.beat(0, force=True)
    status = runs.read_status(tmp_path)
    assert status["state"] == "running" and status["epoch"] == 0 and status["pid"] == os.getpid()
    assert status["host"] == socket.gethostname() and status["speed"] == {"bf16": False} and status["eta_s"] is None
    for epoch in range(1, 11):  # 4 s per epoch: a heartbeat at most every 30 s
        clock.t += 4.0
        mon.epoch_done(epoch, loss=0.1)
        if epoch == 7:
            assert runs.read_status(tmp_path)["epoch"] == 0  # 28 s after the first heartbeat: none yet
        if epoch == 8:
            assert runs.read_status(tmp_path)["epoch"] == 8  # 32 s after it: the second
    status = runs.read_status(tmp_path)
    assert status["epoch"] == 8 and status["seconds_per_epoch"] == 4.0 and status["eta_s"] == 4.0 * 42
    assert status["time_unix"] > 0 and status["heartbeat_every_s"] == 30.0


def test_heartbeat_interval_from_the_environment(tmp_path, clock, monkeypatch):
    monkeypatch.setenv(M.HEARTBEAT_ENV, "0")
    mon = M.Monitor(tmp_path, epochs=5, start_epoch=0, images_per_epoch=1, progress="off")
    for epoch in range(1, 4):
        clock.t += 0.001
        mon.epoch_done(epoch, loss=0.0)
        assert runs.read_status(tmp_path)["epoch"] == epoch
    monkeypatch.setenv(M.HEARTBEAT_ENV, "soon")
    with pytest.raises(ValueError, match="FIRM_BENCH_HEARTBEAT_S"):
        M.heartbeat_s()


def test_progress_modes():
    assert M.progress_mode(False) == "off" and M.progress_mode(True) == "bar" and M.progress_mode("lines") == "lines"
    assert M.progress_mode(None) in ("bar", "lines") and M.progress_mode("auto") in ("bar", "lines")
    with pytest.raises(ValueError, match="progress must be one of"):
        M.progress_mode("loud")
    assert M.clock(3725.4) == "1:02:05" and M.clock(None) == "-"
