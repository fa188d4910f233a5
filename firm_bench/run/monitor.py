"""What a watcher sees of a training run: progress in its log, and status.json kept current.

Progress (``progress``): ``bar`` = a tqdm bar (a terminal); ``lines`` = one
line every ``every`` epochs, made for log files (Snakemake job logs, SLURM
output), e.g.::

    firm-bench: epoch 120/2000 loss 4.1234 cos_k5 0.8123 3086 views/s elapsed 0:10:12 eta 2:39:40

(``cos_k5``: the learning curve's point, the AUROC of the k-NN cosine score
with k = ``eval.k``, named as the score tables name it (:func:`curve_score`),
on the epochs it is evaluated; ``views/s``: augmented training views per
second since the last line, two per training image, outliers included: the
unit of the benchmarks and ``firm-bench plan``; ``eta``: the remaining epochs at this run's
mean time per epoch since it started or resumed, evaluations included);
``off``; ``auto`` = ``bar`` on a terminal, else ``lines``.

Heartbeat: while training, status.json says ``running`` with the epoch, the
process (``pid``, ``host``), the mean time per epoch and the ETA, and is
rewritten every :data:`HEARTBEAT_S` seconds (at the first epoch end after them;
``$FIRM_BENCH_HEARTBEAT_S`` sets another interval), so
``firm-bench status`` can tell a live run from a killed one (its process
gone, or on another host no heartbeat for long) without asking Snakemake.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from firm_bench.core import rundir as runs

MODES = ("auto", "bar", "lines", "off")
#: seconds between status.json heartbeats (one is written at the first epoch end after them);
#: $FIRM_BENCH_HEARTBEAT_S overrides it (0: every epoch)
HEARTBEAT_S = 30.0
HEARTBEAT_ENV = "FIRM_BENCH_HEARTBEAT_S"


def heartbeat_s() -> float:
    """The heartbeat interval: $FIRM_BENCH_HEARTBEAT_S if set, else :data:`HEARTBEAT_S`."""
    raw = os.environ.get(HEARTBEAT_ENV)
    try:
        return max(0.0, float(raw)) if raw else HEARTBEAT_S
    except ValueError:
        raise ValueError(f"${HEARTBEAT_ENV}={raw!r} is not a number of seconds") from None


def progress_mode(progress: bool | str | None) -> str:
    """``bar`` | ``lines`` | ``off`` from a ``progress`` argument (True = bar, False = off, None = auto)."""
    mode = {None: "auto", True: "bar", False: "off"}.get(progress, progress)  # type: ignore[arg-type]
    if mode not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {progress!r}")
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return str(mode)


VIEWS_PER_IMAGE = 2  # the two augmented views of every training image (run.engine.draws.DeviceAugment)


def curve_score(k: int) -> str:
    """The learning curve's score as the score tables name it: the k-NN cosine score ``cos`` at ``eval.k``."""
    return runs.score_key("cos", k)


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``-`` for unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Monitor:
    """Progress output and status.json heartbeats of one training process (epochs ``start_epoch + 1 .. epochs``).

    ``images_per_epoch``: training images (ID + outliers) per epoch, for the
    throughput; ``fields()``: extra status fields (the resolved speed
    options, resumes under other settings), read at every heartbeat;
    ``label``: a prefix of the progress lines (a pack's runs: the run's name).
    """

    def __init__(self, run_dir: str | Path, epochs: int, start_epoch: int, images_per_epoch: int,
                 progress: bool | str | None = None, every: int = 10, fields: Callable[[], dict] = dict,
                 desc: str = "train", label: str = "", score: str = "auroc") -> None:
        self.run_dir, self.epochs, self.start_epoch = Path(run_dir), epochs, start_epoch
        self.label = f"{label}: " if label else ""
        self.score = score
        self.images_per_epoch, self.every, self.fields = images_per_epoch, max(1, int(every)), fields
        self.mode = progress_mode(progress)
        self.t0 = time.monotonic()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.last_line = (start_epoch, self.t0)
        self.last_beat = -math.inf
        self.heartbeat_s = heartbeat_s()
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, initial=start_epoch, desc=desc, unit="epoch", dynamic_ncols=True)

    def seconds_per_epoch(self, epoch: int) -> float | None:
        done = epoch - self.start_epoch
        return (time.monotonic() - self.t0) / done if done > 0 else None

    def eta(self, epoch: int) -> float | None:
        per = self.seconds_per_epoch(epoch)
        return None if per is None else per * (self.epochs - epoch)

    def beat(self, epoch: int, force: bool = False) -> None:
        """Rewrite status.json as running at ``epoch`` if :func:`heartbeat_s` passed since the last one (or ``force``)."""
        now = time.monotonic()
        if not force and now - self.last_beat < self.heartbeat_s:
            return
        self.last_beat = now
        per = self.seconds_per_epoch(epoch)
        runs.write_status(self.run_dir, "running", epoch=epoch, epochs=self.epochs, pid=os.getpid(),
                          host=socket.gethostname(), started=self.started, heartbeat_every_s=self.heartbeat_s,
                          seconds_per_epoch=None if per is None else round(per, 3),
                          eta_s=None if per is None else round(per * (self.epochs - epoch), 1), **self.fields())

    def epoch_done(self, epoch: int, loss: float, auroc: float | None = None) -> None:
        """After epoch ``epoch`` (its mean loss; ``auroc`` if it was evaluated): heartbeat, then progress."""
        self.beat(epoch)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", **({self.score: f"{auroc:.4f}"} if auroc is not None else {}))
        elif self.mode == "lines" and (epoch % self.every == 0 or epoch == self.epochs
                                       or epoch == self.start_epoch + 1):
            self.line(epoch, loss, auroc)

    def line(self, epoch: int, loss: float, auroc: float | None) -> str:
        """Print (to stderr) and return one progress line."""
        now = time.monotonic()
        last_epoch, last_t = self.last_line
        rate = (epoch - last_epoch) * self.images_per_epoch * VIEWS_PER_IMAGE / (now - last_t) if now > last_t \
            else math.nan
        self.last_line = (epoch, now)
        text = (f"firm-bench: {self.label}epoch {epoch}/{self.epochs} loss {loss:.4f}"
                + (f" {self.score} {auroc:.4f}" if auroc is not None else "")
                + f" {rate:.0f} views/s elapsed {clock(now - self.t0)} eta {clock(self.eta(epoch))}")
        print(text, file=sys.stderr, flush=True)
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
