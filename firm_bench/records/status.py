"""The state of runs at a glance, from their directories alone (no Snakemake, no torch): ``firm-bench status``.

One run's state (:func:`run_state`), from its files:

- ``done``: ``trained.json`` says ok (``scored`` when ``metrics.json`` exists and holds the final model's
  scores, ``records.chain``; else the detail says why they are stale);
- ``failed``: ``trained.json`` or ``status.json`` says failed, with the reason;
- ``running``: ``status.json`` says running and its process is alive, with
  its epoch and ETA. On this host its ``pid`` must be the recorded trainer's:
  the process exists, started before the status's ``started`` time, and
  holds the run directory's lock (a PID reused by another process after a
  kill fails these); a trainer seen holding the lock is alive however long
  its heartbeat is silent (a pack's run waiting for the pack to reach its
  epoch). Otherwise (another host, or no lock to see) its heartbeat must be
  recent (``run.monitor``: rewritten every ``heartbeat_every_s``, at an
  epoch's end; silent for less than :func:`stale_after`);
- ``stopped``: interrupted by a signal (a checkpoint at that epoch), or
  ``running`` with its process gone (killed, its PID free or reused, its
  heartbeat stale); it resumes from its last checkpoint on rerun;
- ``pending``: not started (no ``status.json``);
- ``damaged``: ``status.json`` or ``trained.json`` unreadable, or a field of it
  not what firm-bench writes (a non-numeric epoch, a ``running`` one without
  heartbeat, as earlier formats wrote it, ...): the detail names the
  file and the reason; the other runs are listed as usual;
- ``refused``: (a workflow's grid) the run's recorded ``config.yaml`` is
  another recipe than the plan's (``config.plan_differences``, named in the
  detail): whatever its training did, its results are not the plan's.

A run directory (:func:`find_run_dirs`) holds a run's ``status.json``,
``trained.json``, or a ``config.yaml`` written by firm-bench (its checksum
header): a Snakemake profile's ``config.yaml`` is not a run.

:func:`grid_status` gathers the runs of a grid (the workflow's plan gives the
run directories: ``cli.cmd_status``), :func:`format_status` prints it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from firm_bench.core import config as config_mod
from firm_bench.core import lock as locks
from firm_bench.core import rundir as runs
from firm_bench.core.errors import ConfigError, DamagedFile
from firm_bench.records import chain

STATES = ("done", "running", "stopped", "failed", "pending", "damaged", "refused")
#: states shown in the counts only when some run is in them
RARE_STATES = ("damaged", "refused")
#: the shortest silence after which a run is taken for dead
MIN_STALE_S = 600.0
#: how much earlier than a status's ``started`` (whole seconds, written after the process began) the
#: recorded process may have started; one started later is another process that got the PID
START_SLACK_S = 2.0


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


class _Damaged(Exception):
    """Run file ``name`` is not what firm-bench writes, for ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


def _read(path: Path, read: Callable[[Path], dict] = runs.read_record) -> dict | None:
    """A run file as ``read`` gives it (a JSON record: ``rundir.read_record``), or None when absent; raises
    :class:`_Damaged` for a damaged or unreadable one."""
    try:
        return read(path)
    except FileNotFoundError:
        return None
    except DamagedFile as exc:
        raise _Damaged(path.name, exc.problem) from None
    except OSError as exc:
        raise _Damaged(path.name, f"cannot be read ({exc.strerror})") from None


def _number(record: Mapping, key: str, name: str, integer: bool = False) -> float | int | None:
    """``record[key]`` as a number (None when absent or null); anything else raises :class:`_Damaged`."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise _Damaged(name, f"{key} is {value!r}, not {kind}")
    return int(value) if integer else float(value)


def stale_after(status: Mapping) -> float:
    """Seconds without a heartbeat after which a running run is taken for dead.

    A heartbeat is written at the first epoch end ``heartbeat_every_s`` after
    the last one, so the longest regular gap is about that plus an epoch plus
    a learning-curve evaluation; three such gaps, at least :data:`MIN_STALE_S`.
    """
    every = _number(status, "heartbeat_every_s", runs.STATUS_FILE) or 30.0
    per_epoch = _number(status, "seconds_per_epoch", runs.STATUS_FILE) or 0.0
    return max(MIN_STALE_S, 3 * (every + 2 * per_epoch))


def _heartbeat(status: Mapping) -> float | None:
    """The time (epoch seconds) status.json was written: ``time_unix``, else its ``time`` text."""
    beat = _number(status, "time_unix", runs.STATUS_FILE)
    return beat if beat is not None else _when(status.get("time"))


def _when(text: object) -> float | None:
    """Epoch seconds of a ``%Y-%m-%dT%H:%M:%S%z`` time as firm-bench writes them, or None."""
    try:
        return time.mktime(time.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z"))
    except (TypeError, ValueError, OverflowError):
        return None


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s} s" if s < 120 else (f"{s // 60} min" if s < 7200 else f"{s / 3600:.1f} h")


def _lock_holders(run_dir: Path) -> list[int] | None:
    """PIDs of this host holding the run directory's lock; None where that cannot be told (no lock file yet,
    no /proc/locks)."""
    lock_file = run_dir / runs.LOCK_FILE
    return locks.holders(lock_file) if lock_file.exists() else None


def _not_the_trainer(status: Mapping, pid: int, holding: list[int] | None) -> str | None:
    """Why the live process ``pid`` of this host is not the run's recorded trainer, or None when it may be.

    After a kill its PID may be given to another process: that one started
    after the trainer wrote ``started``, and does not hold the run's lock
    (``holding``: its holders, None when unknown).
    """
    began, since = locks.started(pid), _when(status.get("started"))
    if began is not None and since is not None and began > since + START_SLACK_S:
        return (f"PID {pid} now belongs to another process, started {_ago(began - since)} after the training began "
                "(the PID was reused)")
    if holding is not None and pid not in holding:
        return f"process {pid} does not hold the run directory's lock ({runs.LOCK_FILE}): it is not the trainer"
    return None


def run_state(run_dir: str | Path, now: float | None = None, host: str | None = None,
              planned: Callable[[], Mapping] | None = None) -> RunState:
    """The state of one run directory (see the module docstring); reads only; a damaged file gives ``damaged``,
    and so does a run whose trained.json or metrics.json names another run than its path (moved or copied).

    ``planned``: the plan's validated run config of this directory (a workflow's grid), called only when the
    run has started; a run of another recipe is ``refused``.
    """
    run_dir = Path(run_dir)
    try:
        for name in (runs.TRAINED_FILE, runs.METRICS_FILE):
            record = _read(run_dir / name)
            if record is not None:
                chain.check_identity(run_dir, run_dir / name, record.get("run") if name == runs.TRAINED_FILE
                                     else chain.metrics_identity(record))
        st = _run_state(run_dir, time.time() if now is None else now, socket.gethostname() if host is None else host)
        other = _other_recipe(run_dir, planned) if planned is not None and st.state != "pending" else None
        if other:
            return RunState(str(run_dir), "refused", st.epoch, st.epochs, detail=other, scored=st.scored)
        return st
    except _Damaged as exc:
        return RunState(str(run_dir), "damaged", detail=f"{exc}; {runs.describe(run_dir / exc.name)[1]}")
    except DamagedFile as exc:  # records.chain: another run's records
        return RunState(str(run_dir), "damaged", detail=str(exc))


def _stale_scores(run_dir: Path) -> str:
    """Why a done run's metrics.json is not its final model's (``records.chain``), or "" when it is."""
    try:
        chain.check_metrics(run_dir, _read(run_dir / runs.METRICS_FILE))
    except DamagedFile as exc:
        return str(exc)
    return ""


def _other_recipe(run_dir: Path, planned: Callable[[], Mapping]) -> str | None:
    """Why the run's recorded config is not the plan's recipe (``config.plan_differences``), else None."""
    recorded = _read(run_dir / runs.CONFIG_FILE, lambda path: runs.read_run_config(path.parent))
    if recorded is None:
        return None
    try:
        diff = config_mod.plan_differences(recorded, planned())
    except ConfigError as exc:
        diff = [f"its config is not valid today: {' '.join(str(exc).split())}"]
    if not diff:
        return None
    shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
    return (f"another recipe than the plan's ({shown}): its results are not the plan's and the workflow refuses "
            "to resume it; move or delete this run directory, then rerun snakemake to train the plan's")


def _run_state(run_dir: Path, now: float, host: str) -> RunState:
    scored = (run_dir / runs.METRICS_FILE).exists()
    trained = _read(run_dir / runs.TRAINED_FILE)
    base = RunState(str(run_dir), "pending", scored=scored)
    if trained is not None:  # the training's outcome: status.json is not needed (nor read)
        t_epoch = _number(trained, "epoch", runs.TRAINED_FILE, integer=True)
        t_epochs = _number(trained, "epochs", runs.TRAINED_FILE, integer=True)
        if trained.get("state") == "ok":
            stale = _stale_scores(run_dir) if scored else ""
            return RunState(str(run_dir), "done", t_epochs, t_epochs, scored=scored and not stale, detail=stale)
        if trained.get("state") == "failed":
            return RunState(str(run_dir), "failed", t_epoch, detail=str(trained.get("reason")))
    status = _read(run_dir / runs.STATUS_FILE)
    if status is None:
        return base
    state = status.get("state")
    epoch = _number(status, "epoch", runs.STATUS_FILE, integer=True)
    epochs = _number(status, "epochs", runs.STATUS_FILE, integer=True)
    if state == "failed":
        return RunState(str(run_dir), "failed", epoch, epochs, detail=str(status.get("reason")))
    if state == "ok":  # trained.json not written (yet): training ended, the marker is on its way
        return RunState(str(run_dir), "done", epoch, epochs, scored=scored)
    if state == "interrupted":
        return RunState(str(run_dir), "stopped", epoch, epochs,
                        detail=f"interrupted by {status.get('signal', 'a signal')} at epoch {epoch}/{epochs}, "
                               "checkpoint saved; resumes on rerun")
    if state != "running":
        raise _Damaged(runs.STATUS_FILE, f"state is {state!r}, not one of {', '.join(runs.STATUS_STATES)}")
    beat = _heartbeat(status)
    silent = now - beat if beat is not None else None
    if "heartbeat_every_s" not in status:
        raise _Damaged(runs.STATUS_FILE, "is running without a heartbeat (an earlier firm-bench's format)")
    pid = _number(status, "pid", runs.STATUS_FILE, integer=True)
    where = f"pid {pid} on {status.get('host')}" if pid else "no pid recorded"
    local = bool(pid) and status.get("host") == host
    stale = stale_after(status)
    holding = _lock_holders(run_dir) if local else None
    if local and not locks.pid_alive(pid):
        gone: str | None = f"its process ({where}) is gone"
    elif local and (impostor := _not_the_trainer(status, pid, holding)):
        gone = impostor
    elif local and holding is not None:  # the recorded trainer holds the run's lock: alive, however long it
        gone = None                       # is silent (a pack's run waiting for the pack to reach its epoch)
    elif silent is None or silent >= stale:  # another host, or ownership not visible: the heartbeat decides
        gone = f"no heartbeat for {_ago(silent) if silent is not None else 'ever'} ({where}; stale after {_ago(stale)})"
    else:
        gone = None
    if gone:
        return RunState(str(run_dir), "stopped", epoch, epochs,
                        detail=f"{gone}: killed? last seen at epoch {epoch}/{epochs}; resumes from its last checkpoint "
                               "on rerun")
    eta = _number(status, "eta_s", runs.STATUS_FILE)
    eta = None if eta is None or silent is None else max(0.0, eta - silent)
    beat_text = f"heartbeat {_ago(silent)} ago" if silent is not None else "no heartbeat time"
    return RunState(str(run_dir), "running", epoch, epochs, eta, detail=f"{where}, {beat_text}")


def grid_status(run_dirs: Iterable[str | Path], experiments: Mapping[str, Sequence[str]] | None = None,
                now: float | None = None,
                planned: Callable[[str], Mapping] | None = None) -> list[RunState]:
    """The state of every run directory (each once, in order); ``experiments``: experiment -> its run dirs;
    ``planned``: run directory -> the plan's run config (a run of another recipe is ``refused``)."""
    member: dict[str, list[str]] = {}
    for exp, dirs in (experiments or {}).items():
        for d in dirs:
            member.setdefault(str(d), []).append(exp)
    out = []
    for d in dict.fromkeys(str(d) for d in run_dirs):
        st = run_state(d, now=now, planned=(lambda d=d: planned(d)) if planned is not None else None)
        st.experiments = member.get(d, [])
        out.append(st)
    return out


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a run: its ``status.json`` or ``trained.json``, or a ``config.yaml`` firm-bench wrote.

    A ``config.yaml`` alone is a run's only when it starts with firm-bench's
    checksum header (:data:`~firm_bench.core.rundir.CONFIG_HEADER`): a Snakemake
    profile's or a workflow's config.yaml is not.
    """
    path = Path(path)
    if (path / runs.STATUS_FILE).is_file() or (path / runs.TRAINED_FILE).is_file():
        return True
    try:
        with open(path / runs.CONFIG_FILE, "rb") as fh:
            return fh.read(len(runs.CONFIG_HEADER)) == runs.CONFIG_HEADER.encode()
    except OSError:
        return False


def find_run_dirs(root: str | Path) -> list[str]:
    """Every run directory under ``root`` (:func:`is_run_dir`), sorted."""
    root = Path(root)
    found = {p.parent for name in (runs.CONFIG_FILE, runs.STATUS_FILE, runs.TRAINED_FILE) for p in root.rglob(name)}
    return sorted(str(p) for p in found if is_run_dir(p))


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
    shown = [s for s in STATES if s not in RARE_STATES or counts[s]]
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
                ("damaged", lambda st: st.detail), ("refused", lambda st: st.detail)]
    if show_pending:
        sections.append(("pending", lambda st: "not started"))
    for state, text in sections:
        mine = [st for st in states if st.state == state]
        if mine:
            lines.append(f"{state}:")
            lines += [f"  {_short(st.run_dir, root)}  {text(st)}" for st in mine]
    stale = [st for st in states if st.state == "done" and st.detail]
    if stale:
        lines.append("done, scores stale (not counted as scored):")
        lines += [f"  {_short(st.run_dir, root)}  {st.detail}" for st in stale]
    return "\n".join(lines) + "\n"
