"""The state of runs at a glance, from their directories alone (no Snakemake, no torch): ``firm-bench status``.

One run's state (:func:`run_state`), from its files:

- ``done``: ``trained.json`` says ok (``scored`` when ``metrics.json`` exists);
- ``failed``: ``trained.json`` or ``status.json`` says failed, with the reason;
- ``running``: ``status.json`` says running and its process is alive: on this
  host, its ``pid`` exists; on another host (a cluster node), its heartbeat
  is recent (``run.monitor``: rewritten every ``heartbeat_every_s``, at an
  epoch's end), with its epoch and ETA;
- ``stopped``: interrupted by a signal (a checkpoint at that epoch), or
  ``running`` with its process gone (killed; on another host: no heartbeat for
  :func:`stale_after` seconds); it resumes from its last checkpoint on rerun;
- ``pending``: not started (no ``status.json``);
- ``unknown``: ``running`` in a status.json of an older firm-bench, written once
  at the start, without heartbeat or process: alive or dead cannot be told.

:func:`grid_status` gathers the runs of a grid (the workflow's plan gives the
run directories: ``cli.cmd_status``), :func:`format_status` prints it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from firm_bench.core import rundir as runs

STATES = ("done", "running", "stopped", "failed", "pending", "unknown")
#: the shortest silence after which a run on another host is taken for dead
MIN_STALE_S = 600.0


@dataclass
class RunState:
    """What a run is doing now. ``epoch`` / ``epochs``: its progress; ``eta_s``: seconds left (running);
    ``detail``: the reason (failed), what stopped it (stopped), where it runs (running)."""

    run_dir: str
    state: str
    epoch: int | None = None
    epochs: int | None = None
    eta_s: float | None = None
    detail: str = ""
    scored: bool = False
    experiments: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return asdict(self)


def _read(path: Path) -> dict | None:
    """A JSON record, or None when absent; a damaged one as ``{"damaged": why}`` (reported, never fatal here)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"damaged": f"{path.name} unreadable ({exc}); rerun the run's training to rewrite it"}
    return data if isinstance(data, dict) else {"damaged": f"{path.name} does not hold a JSON object"}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0: no signal sent, only the check)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


def stale_after(status: Mapping) -> float:
    """Seconds without a heartbeat after which a run on another host is taken for dead.

    A heartbeat is written at the first epoch end ``heartbeat_every_s`` after
    the last one, so the longest regular gap is about that plus an epoch plus
    a learning-curve evaluation; three such gaps, at least :data:`MIN_STALE_S`.
    """
    every = float(status.get("heartbeat_every_s") or 30.0)
    per_epoch = float(status.get("seconds_per_epoch") or 0.0)
    return max(MIN_STALE_S, 3 * (every + 2 * per_epoch))


def _heartbeat(status: Mapping) -> float | None:
    """The time (epoch seconds) status.json was written: ``time_unix``, else its ``time`` text."""
    if status.get("time_unix") is not None:
        return float(status["time_unix"])
    try:
        return time.mktime(time.strptime(str(status.get("time")), "%Y-%m-%dT%H:%M:%S%z"))
    except (TypeError, ValueError):
        return None


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s} s" if s < 120 else (f"{s // 60} min" if s < 7200 else f"{s / 3600:.1f} h")


def run_state(run_dir: str | Path, now: float | None = None, host: str | None = None) -> RunState:
    """The state of one run directory (see the module docstring); reads only."""
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    scored = (run_dir / runs.METRICS_FILE).exists()
    trained = _read(run_dir / runs.TRAINED_FILE)
    status = _read(run_dir / runs.STATUS_FILE)
    base = RunState(str(run_dir), "pending", scored=scored)
    if trained is not None and "damaged" not in trained:
        if trained.get("state") == "ok":
            return RunState(str(run_dir), "done", trained.get("epochs"), trained.get("epochs"), scored=scored)
        if trained.get("state") == "failed":
            return RunState(str(run_dir), "failed", trained.get("epoch"), detail=str(trained.get("reason")))
    if status is None:
        return base
    if "damaged" in status:  # written whole or not at all: damaged from outside; the checkpoint decides on rerun
        base.state, base.detail = "stopped", status["damaged"]
        return base
    state, epoch, epochs = status.get("state"), status.get("epoch"), status.get("epochs")
    if state == "failed":
        return RunState(str(run_dir), "failed", epoch, epochs, detail=str(status.get("reason")))
    if state == "ok":  # trained.json not written (yet): training ended, the marker is on its way
        return RunState(str(run_dir), "done", epoch, epochs, scored=scored)
    if state == "interrupted":
        return RunState(str(run_dir), "stopped", epoch, epochs,
                        detail=f"interrupted by {status.get('signal', 'a signal')} at epoch {epoch}/{epochs}, "
                               "checkpoint saved; resumes on rerun")
    beat = _heartbeat(status)
    silent = now - beat if beat is not None else None
    if "heartbeat_every_s" not in status:  # an older firm-bench: one status at the start, no process recorded
        return RunState(str(run_dir), "unknown", epoch, epochs,
                        detail=f"running since {_ago(silent) if silent is not None else '?'} ago by a status.json of "
                               "an older firm-bench (no heartbeat): alive or killed cannot be told from its files")
    where = f"pid {status.get('pid')} on {status.get('host')}" if status.get("pid") else "no pid recorded"
    if status.get("pid") and status.get("host") == host:
        alive = pid_alive(status["pid"])
    else:  # another host (or an older status without a pid): the heartbeat decides
        alive = silent is not None and silent < stale_after(status)
    if not alive:
        why = (f"its process ({where}) is gone" if status.get("host") == host and status.get("pid")
               else f"no heartbeat for {_ago(silent) if silent is not None else 'ever'} ({where})")
        return RunState(str(run_dir), "stopped", epoch, epochs,
                        detail=f"{why}: killed? last seen at epoch {epoch}/{epochs}; resumes from its last checkpoint "
                               "on rerun")
    eta = status.get("eta_s")
    eta = None if eta is None else max(0.0, float(eta) - (silent or 0.0))
    return RunState(str(run_dir), "running", epoch, epochs, eta, detail=f"{where}, heartbeat {_ago(silent or 0)} ago")


def grid_status(run_dirs: Iterable[str | Path], experiments: Mapping[str, Sequence[str]] | None = None,
                now: float | None = None) -> list[RunState]:
    """The state of every run directory (each once, in order); ``experiments``: experiment -> its run dirs."""
    member: dict[str, list[str]] = {}
    for exp, dirs in (experiments or {}).items():
        for d in dirs:
            member.setdefault(str(d), []).append(exp)
    out = []
    for d in dict.fromkeys(str(d) for d in run_dirs):
        st = run_state(d, now=now)
        st.experiments = member.get(d, [])
        out.append(st)
    return out


def find_run_dirs(root: str | Path) -> list[str]:
    """Every run directory under ``root`` (those holding a config.yaml or status.json), sorted."""
    root = Path(root)
    found = {p.parent for name in (runs.CONFIG_FILE, runs.STATUS_FILE) for p in root.rglob(name)}
    return sorted(str(p) for p in found)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _short(run_dir: str, root: str | None) -> str:
    if root:
        try:
            return str(Path(run_dir).relative_to(root))
        except ValueError:
            pass
    return run_dir


def format_status(states: Sequence[RunState], title: str = "", root: str | None = None,
                  show_pending: bool = False) -> str:
    """The grid at a glance: counts, per-experiment counts, then the running (epoch, ETA), stopped and failed runs."""
    counts = {s: sum(st.state == s for st in states) for s in STATES}
    done = counts["done"]
    scored = sum(st.scored for st in states if st.state == "done")
    lines = [title] if title else []
    shown = [s for s in STATES if s != "unknown" or counts[s]]
    lines.append(f"{len(states)} runs: " + ", ".join(f"{counts[s]} {s}" for s in shown)
                 + (f" ({scored} of {done} done scored)" if done else ""))
    exps = list(dict.fromkeys(e for st in states for e in st.experiments))
    if len(exps) > 1:
        width = max(len(e) for e in exps)
        for exp in exps:
            mine = [st for st in states if exp in st.experiments]
            lines.append(f"  {exp:<{width}}  " + "  ".join(f"{s} {sum(st.state == s for st in mine):>3}" for s in shown))
    sections = [("running", lambda st: f"epoch {st.epoch}/{st.epochs}, eta {_clock(st.eta_s)} ({st.detail})"),
                ("stopped", lambda st: st.detail), ("failed", lambda st: st.detail or "no reason recorded"),
                ("unknown", lambda st: st.detail)]
    if show_pending:
        sections.append(("pending", lambda st: "not started"))
    for state, text in sections:
        mine = [st for st in states if st.state == state]
        if mine:
            lines.append(f"{state}:")
            lines += [f"  {_short(st.run_dir, root)}  {text(st)}" for st in mine]
    return "\n".join(lines) + "\n"
