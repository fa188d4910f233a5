"""Another process holding a run directory (``rundir.writing``), for the lock tests."""

import subprocess
import sys
import textwrap


def holder(run, command, evalset=None, then="time.sleep(120)"):
    """A python process that holds ``run`` for ``command`` and prints 'held' once it does (stop it: ``stop``)."""
    run.mkdir(parents=True, exist_ok=True)
    code = textwrap.dedent(f"""
        import sys, time
        from firm_bench.core import rundir
        with rundir.writing({str(run)!r}, {command!r}, {evalset!r}):
            print("held", flush=True)
            {then}
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def stop(proc):
    proc.kill()
    proc.wait()
