"""fp32 vs bf16 autocast training: does the precision change a run's statistics? (not a test)

The reference code trained in float32; firm-bench's fast path can train
under bfloat16 autocast (``speed.bf16``, on by default for CUDA under
``auto``). This benchmark trains the same preset per seed twice, with
``speed.bf16=false`` (fp32) and ``speed.bf16=true`` (bf16 autocast of the
model's forward and backward; the loss in float32), each through the real
pipeline (``train`` -> ``extract_run_features`` -> ``score_run``), and compares

- the final learning-curve AUROC (k-NN cos, ``eval.k``) and
- the ``cos`` score at k = 5 of the feature cache (the tables' number),

per seed, as mean ± std over seeds, and as the paired difference (bf16 - fp32;
same seed, same data, same draws) with a paired t-test (scipy) and its 95%
confidence interval. "Within seed noise" here means: the 95% interval of the
paired difference contains 0 and |mean difference| is below the std over
seeds of either precision. The JSON (stdout, and ``--out``) holds every
number. The README quotes:

    python benchmarks/bench_precision.py --preset mini --seeds 0,1,2 --threads 1

On a CPU, bf16 autocast needs a CPU with bf16 support to be fast, but it
runs (slowly) anywhere; on CUDA pass ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if (REPO / "firm_bench" / "__init__.py").exists() and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this tree's firm_bench, installed or not

PRECISIONS = {"fp32": ["speed.bf16=false"], "bf16": ["speed.bf16=true"]}


def one_run(preset: str, overrides: list[str]) -> dict:
    """Train, extract and score one run in a temporary directory; its final AUROC and cos k=5."""
    from firm_bench.core import config
    from firm_bench.run.features import extract_run_features
    from firm_bench.run.score import score_run
    from firm_bench.run.train import train

    cfg = config.resolve(preset, overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(cfg, tmp, progress=False)
        extract_run_features(cfg, tmp)
        scores = score_run(cfg, tmp, names=["cos"], ks=[5])
        seconds = time.perf_counter() - t0
    cos = scores["cos_k5"]
    if cos["status"] != "ok":
        raise RuntimeError(f"cos k=5 failed: {cos.get('reason')}")
    return {"final_auroc": result.final_auroc, "cos_k5": cos["auroc"], "seconds": round(seconds, 1)}


def paired(a: list[float], b: list[float]) -> dict:
    """Paired difference b - a: mean, std, 95% t interval and two-sided paired t-test p (n >= 2)."""
    from scipy import stats

    d = [y - x for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    if n < 2:
        return {"n": n, "mean": mean}
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    p = float(stats.ttest_rel(b, a).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    return {"n": n, "mean": mean, "std": sd, "ci95": [mean - half, mean + half], "p_paired_t": p}


def mean_std(v: list[float]) -> dict:
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return {"mean": m, "std": s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mini", help="run preset (default mini)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra run-config override for every run")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    import torch

    seeds = [int(s) for s in args.seeds.split(",")]
    base = [f"device={args.device}", *([f"threads={args.threads}"] if args.threads else []), *args.overrides]
    per: dict[str, dict[str, list[float]]] = {p: {"final_auroc": [], "cos_k5": [], "seconds": []} for p in PRECISIONS}
    for seed in seeds:
        for precision, extra in PRECISIONS.items():
            r = one_run(args.preset, [*base, f"seed={seed}", *extra])
            for key, value in r.items():
                per[precision][key].append(value)
            print(f"bench_precision: seed {seed} {precision}: final AUROC {r['final_auroc']:.4f}, "
                  f"cos k5 {r['cos_k5']:.4f} ({r['seconds']} s)", file=sys.stderr, flush=True)
    report = {
        "benchmark": "bench_precision",
        "command": " ".join(["python", "benchmarks/bench_precision.py", *(argv if argv is not None else sys.argv[1:])]),
        "environment": {"torch": torch.__version__, "platform": platform.platform(), "processor": platform.processor(),
                        "device": args.device, "threads": torch.get_num_threads()},
        "preset": args.preset, "seeds": seeds, "runs": per,
        "summary": {p: {m: mean_std(per[p][m]) for m in ("final_auroc", "cos_k5")} for p in PRECISIONS},
        "bf16_minus_fp32": {m: paired(per["fp32"][m], per["bf16"][m]) for m in ("final_auroc", "cos_k5")},
    }
    within = {}
    for m, d in report["bf16_minus_fp32"].items():
        stds = [report["summary"][p][m]["std"] for p in PRECISIONS]
        within[m] = bool("ci95" in d and d["ci95"][0] <= 0 <= d["ci95"][1]
                         and all(s is not None and abs(d["mean"]) < s for s in stds))
    report["within_seed_noise"] = within
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
