"""Guards of a run directory against a second process: ``flock`` locks, and exiting with the workflow.

:func:`hold` takes an advisory ``flock`` on a lock file, exclusive or shared,
without waiting: when another process holds it in a conflicting mode it
raises :class:`~firm_bench.core.errors.RunDirLocked` at once, naming the
holder (PID, host, command, since when; an exclusive holder records itself
in the lock file, shared holders are found in ``/proc/locks``) and what to
do. The kernel drops a lock when its process dies, however it dies (kill -9
included), so the lock of a dead process is simply taken over; the next
holder says so when it finds the dead holder's record. Locks are reentrant
within a process (``firm-bench run`` holds the run directory and calls
training, feature extraction and scoring, which take it again).

:func:`exit_with` makes a process stop when another one exits: a training
job launched by Snakemake watches Snakemake's PID, so a killed workflow
leaves no trainer behind to race the rerun.

``flock`` works on local file systems and on NFS (Linux emulates it with
byte-range locks there). No torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from firm_bench.core.errors import RunDirLocked

__all__ = ["exit_with", "hold", "holders", "host", "pid_alive", "started"]

_HELD: dict[str, list] = {}  # real path of a lock file -> [fd, exclusive, depth] (this process's locks)
_GUARD = threading.Lock()


def host() -> str:
    """This machine's host name (recorded with every lock)."""
    return socket.gethostname() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, exited but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _record(fd: int) -> dict | None:
    """The holder record of a lock file (written by an exclusive holder), or None."""
    try:
        raw = os.pread(fd, 65536, 0)
        rec = json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) else None


def _alive(rec: dict) -> bool:
    """Whether a holder record's process may still run (one of another host cannot be checked: yes)."""
    return rec.get("host") != host() or pid_alive(rec["pid"])


def _cmdline(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return text if len(text) <= 160 else text[:157] + "..."


def _flock_pids(ino: int) -> list[int] | None:
    """PIDs of this host holding a ``flock`` on the file of inode ``ino`` (from /proc/locks; None where unreadable)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    pids = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a blocked waiter's line has "->"
        if len(parts) >= 6 and parts[1] == "FLOCK" and "->" not in parts and parts[5].rsplit(":", 1)[-1] == str(ino):
            pid = int(parts[4]) if parts[4].isdigit() else 0
            if pid and pid not in pids:
                pids.append(pid)
    return pids


def _flock_holders(fd: int) -> list[int]:
    """PIDs of other processes of this host holding a ``flock`` on the file of ``fd`` ([] where unreadable)."""
    try:
        ino = os.fstat(fd).st_ino
    except OSError:
        return []
    return [pid for pid in _flock_pids(ino) or [] if pid != os.getpid()]


def holders(lock_file: str | Path) -> list[int] | None:
    """PIDs of this host holding ``lock_file``'s ``flock`` now (this process included): read only, no lock taken.

    [] when nobody holds it (or the file does not exist); None where it cannot
    be told (no /proc/locks). ``records.status`` asks whether a run's recorded
    trainer still holds the run directory's lock.
    """
    try:
        ino = os.stat(lock_file).st_ino
    except FileNotFoundError:
        return []
    except OSError:
        return None
    return _flock_pids(ino)


def started(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch, to the clock tick), or None if unknown.

    A PID recorded by a process long dead may have been given to a new one:
    one started after the record was written is not the recorded process.
    """
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _describe(rec: dict) -> str:
    return (f"{rec.get('command', 'a firm-bench command')} (PID {rec['pid']} on {rec.get('host', '?')}, "
            f"since {rec.get('since', '?')})")


def _refusal(fd: int, subject: str, exclusive: bool) -> str:
    rec = _record(fd)
    if rec is not None and _alive(rec):
        who, pids = _describe(rec), [rec["pid"]]
    else:
        pids = _flock_holders(fd)
        who = (", ".join(f"{_cmdline(p)} (PID {p} on {host()})" for p in pids) if pids
               else "another process (its PID is not visible from this host)")
    stop = f"stop it (`kill {' '.join(map(str, pids))}`)" if pids else "stop it"
    what = "writing it" if exclusive else "reading it while it is rewritten"
    return (f"{subject} is in use by {who}; {what} at the same time would mix the two processes' files. "
            f"Wait for it to finish, or if it is stuck or left over from a killed workflow, {stop} and rerun. "
            "To run other settings at the same time, give each run its own --run-dir (the default run "
            "directory already differs per recipe override)")


@contextlib.contextmanager
def hold(lock_file: str | Path, *, exclusive: bool, command: str, subject: str) -> Iterator[None]:
    """Hold ``lock_file``'s ``flock`` (exclusive or shared) for the ``with`` block, or fail at once.

    ``command`` is recorded for others to read (exclusive holds only); ``subject``
    names what is locked in the refusal ("run directory R", ...). Raises
    :class:`RunDirLocked` naming the holder and what to do. Reentrant within the
    process (a shared request inside an exclusive hold is satisfied by it; the
    reverse is a programming error).
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(lock_file)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            if exclusive and not held[1]:
                raise RuntimeError(f"{lock_file}: an exclusive lock requested inside a shared one of the same process")
            held[2] += 1
    if held is not None:
        try:
            yield
        finally:
            with _GUARD:
                held[2] -= 1
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirLocked(_refusal(fd, subject, exclusive)) from None
        stale = _record(fd)
        if stale is not None and (stale.get("pid"), stale.get("host")) != (os.getpid(), host()):
            # we hold the lock, so its recorded holder is gone (killed without releasing it)
            print(f"firm-bench: {subject}: took over the lock of {_describe(stale)}, which is no longer running",
                  file=sys.stderr)
        if exclusive:
            rec = {"pid": os.getpid(), "host": host(), "command": command,
                   "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(rec) + "\n").encode(), 0)
        elif stale is not None:
            os.ftruncate(fd, 0)  # no exclusive holder can be alive: forget the dead one
        with _GUARD:
            _HELD[key] = [fd, exclusive, 1]
        try:
            yield
        finally:
            with _GUARD:
                _HELD.pop(key, None)
            if exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def exit_with(pid: int, sig: int = signal.SIGTERM, interval: float = 1.0) -> threading.Thread:
    """Send this process ``sig`` as soon as process ``pid`` (of this host) exits; returns the watching thread.

    A training job launched by the workflow watches the Snakemake process
    (``firm-bench train --exit-with PID``): a SIGKILLed Snakemake cannot stop
    its jobs, and an orphaned trainer would race the trainer of the rerun. The
    signal (SIGTERM) ends the process the way a scheduler's ``kill`` would.
    Watches a pidfd where the platform has one (no PID reuse), else polls
    every ``interval`` seconds.
    """

    def watch() -> None:
        fd = None
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            pass  # already gone
        except (AttributeError, OSError):
            while pid_alive(pid):
                time.sleep(interval)
        if fd is not None:
            with contextlib.suppress(OSError):
                while not select.select([fd], [], [], interval)[0] and pid_alive(pid):
                    pass
            os.close(fd)
        print(f"firm-bench: process {pid} (the workflow that started this job) exited: stopping", file=sys.stderr)
        sys.stderr.flush()
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=watch, name=f"firm-bench-exit-with-{pid}", daemon=True)
    thread.start()
    return thread
