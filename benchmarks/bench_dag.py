"""How long `snakemake -n` takes to plan the paper's whole grid (not a test).

Runs `snakemake -n --quiet rules` on workflow/config/paper.yaml (or --configfile)
in an empty temporary working directory, --repeat times, and prints the wall
times and the jobs per rule. The README quotes its output:

    python benchmarks/bench_dag.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_workflow import job_stats  # noqa: E402 - the benchmarks' one reader of Snakemake's job table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default=str(ROOT / "workflow" / "config" / "paper.yaml"))
    ap.add_argument("--target", default=None, help="a single target, e.g. results/summary/table1a.md")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times, out = [], ""
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", tmp,
                   *([args.target] if args.target else []), "-n", "--quiet", "rules",
                   "--configfile", args.configfile]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(f"snakemake failed:\n{proc.stderr[-3000:]}")
            out = proc.stdout
    stats = list(job_stats(out).items())
    print(f"snakemake -n on {Path(args.configfile).name}{' ' + args.target if args.target else ''}")
    print(f"wall seconds: min {min(times):.2f}, median {statistics.median(times):.2f} over {len(times)} runs")
    for rule, count in [*stats, ("total", sum(count for _, count in stats))]:
        print(f"  {rule:<22}{count:>7}")


if __name__ == "__main__":
    main()
