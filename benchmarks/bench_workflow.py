"""The workflow's own overhead: wall time of a whole workflow against its training time spread over the cores.

Runs ``snakemake --cores N`` on a workflow config (default: the mini config,
target ``all``) in a fresh working directory and reports

- ``wall_s``: the workflow's wall time, start-up and every job included;
- ``train_s``: the training time its runs record (``train_seconds`` of each
  run's ``trained.json``: the training loop with its learning-curve
  evaluations), summed;
- ``ideal_s`` = ``train_s`` / N: the wall time if the cores did nothing but
  train, perfectly shared;
- ``overhead`` = ``wall_s`` / ``ideal_s``, against the target ``--target-ratio``
  (1.5: issue 21); and the jobs per rule (each a fresh process).

With ``pack_runs`` > 1 a pack's members each record the pack's time, so
``train_s`` counts a pack K times: use it with ``pack_runs: 1`` (the configs'
default). ``--dry`` plans only (``snakemake -n``): the jobs per rule and how
many are not training, no timing, nothing trained. Not a test: the mini
workflow trains for minutes; run it on an otherwise idle machine and quote
the JSON (``--out``) with its command.

    python benchmarks/bench_workflow.py --cores 2 --out bench_workflow.json   # mini, all: minutes
    python benchmarks/bench_workflow.py --dry                                 # the plan only: seconds
    python benchmarks/bench_workflow.py --configfile workflow/config/quickstart.yaml   # README's first workflow
    python benchmarks/bench_workflow.py --configfile workflow/config/smoke.yaml --target results/summary.csv
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
TRAINING_RULES = re.compile(r"^(train|train_pack_\d+)$")


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table as {rule: jobs}, without its total ({} when it printed none: nothing to do)."""
    if "Job stats:" not in output:
        return {}
    counts: dict[str, int] = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def training_seconds(workdir: Path) -> dict[str, float]:
    """``train_seconds`` of every trained run under ``workdir`` (run directory -> seconds)."""
    out = {}
    for path in sorted((workdir / "results" / "runs").rglob("trained.json")):
        record = json.loads(path.read_text())
        if record.get("state") == "ok":
            out[str(path.parent.relative_to(workdir))] = float(record["train_seconds"])
    return out


def overhead(wall_s: float, train: dict[str, float], cores: int, target: float = TARGET_RATIO) -> dict:
    """The overhead figures of a workflow that took ``wall_s`` and trained ``train`` (run -> seconds) on ``cores``."""
    if not train:
        raise ValueError("no trained run recorded train_seconds: nothing to compare the wall time with")
    train_s = sum(train.values())
    ideal = train_s / cores
    return {"wall_s": round(wall_s, 2), "train_s": round(train_s, 2), "runs": len(train), "cores": cores,
            "ideal_s": round(ideal, 2), "overhead": round(wall_s / ideal, 3), "target": target,
            "within_target": wall_s / ideal <= target}


def snakemake(workdir: Path, args: argparse.Namespace, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           *([args.target] if args.target else []), "--cores", str(args.cores), "--configfile", args.configfile,
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_workflow: snakemake failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default=str(ROOT / "workflow" / "config" / "mini.yaml"))
    ap.add_argument("--target", default=None, help="a Snakemake target (default: the workflow's all)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--target-ratio", type=float, default=TARGET_RATIO, help="the overhead target (wall / ideal)")
    ap.add_argument("--dry", action="store_true", help="plan only (snakemake -n): jobs per rule, no timing")
    ap.add_argument("--workdir", default=None, help="an empty folder to run in (default: a temporary one, removed)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.cores < 1:
        ap.error("--cores must be at least 1")
    report: dict = {"benchmark": "bench_workflow", "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                    "configfile": args.configfile, "target": args.target or "all", "cores": args.cores,
                    "load_1min_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        if args.workdir and workdir.exists() and any(workdir.iterdir()):
            ap.error(f"--workdir {workdir} is not empty: the benchmark runs a workflow from nothing")
        workdir.mkdir(parents=True, exist_ok=True)
        if args.dry:
            jobs = job_stats(snakemake(workdir, args, "-n", "--quiet", "rules").stdout)
            report["mode"] = "dry (planned jobs only; nothing trained or timed)"
        else:
            t0 = time.perf_counter()
            proc = snakemake(workdir, args)
            wall = time.perf_counter() - t0
            jobs = job_stats(proc.stdout + proc.stderr)
            report["mode"] = "run"
            report.update(overhead(wall, training_seconds(workdir), args.cores, args.target_ratio))
            report["load_1min_after"] = round(os.getloadavg()[0], 2)
    training = sum(n for rule, n in jobs.items() if TRAINING_RULES.match(rule))
    report["jobs"] = jobs
    report["training_jobs"] = training
    report["other_jobs"] = sum(n for rule, n in jobs.items() if rule != "all") - training  # `all` runs no process
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if "overhead" in report:
        print(f"bench_workflow: wall {report['wall_s']} s for {report['train_s']} s of training on {args.cores} cores: "
              f"{report['overhead']}x the ideal {report['ideal_s']} s (target {args.target_ratio}x)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
