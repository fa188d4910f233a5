"""firm-bench's exact k-NN cosine scoring vs faiss-cpu's exact search, on the CPU (issue 6; not a test).

Builds seeded random L2-normalised float32 features, ``--queries`` test
features and a ``--bank`` of training features of ``--dim`` dimensions
(default 10k x 50k x 512), and times, at the same thread count (``--threads``,
default all cores, set with ``torch.set_num_threads`` and
``faiss.omp_set_num_threads``):

- ``ours``: ``firm_bench.method.scores.knn_mean_similarity(queries, bank, k)``, the
  function every k-NN score (cos, cos_norm, rot, ens, ...) calls on the
  normalised features: mean of the k largest cosine similarities per query;
- ``faiss``: ``faiss.IndexFlatIP`` exact inner-product search of the same
  queries against the same bank with the same k, then the mean of the k
  similarities it returns. The index is built outside the timing (a flat
  index only copies the bank), so faiss is timed on its search alone.

for each ``--k`` (default 1 5, the k values of the paper's k-NN scores,
``scores.k``). Each method runs in its own process: torch and faiss ship
separate OpenMP runtimes, and in one process each one's idle spinning threads
slow the other down (on 2 cores, by 1.5-2x), which real use, with one of the
two, never sees. ``--repeat`` rounds alternate the two processes (so both see
the same background load); the median seconds are reported with the ratio
ours / faiss (issue 6's target: at most 1.5). The first round checks that both
give the same mean similarities (max |difference| at most ``--atol``; float32
sums in another order differ by ~1e-7, and tied neighbours have equal
similarities, so ties cannot matter). Exit status 2 when faiss is not installed
(``pip install faiss-cpu``, or ``pip install -e '.[bench]'``), 1 when the results
disagree or a worker fails. The README quotes:

    python benchmarks/bench_knn.py --repeat 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if (REPO / "firm_bench" / "__init__.py").exists() and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this tree's firm_bench, installed or not

METHODS = ("ours", "faiss")


def unit_features(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32, C-contiguous, each row of L2 norm 1 (numpy only: no BLAS, no torch)."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x


def worker(args: argparse.Namespace) -> None:
    """One process, one method: build the data, time each k once, print {k: seconds} as JSON."""
    rng = np.random.default_rng(args.seed)
    bank = unit_features(args.bank, args.dim, rng)
    queries = unit_features(args.queries, args.dim, rng)
    if args.worker == "ours":
        import torch

        from firm_bench.method.scores import knn_mean_similarity

        torch.set_num_threads(args.threads)
        bank_t, queries_t = torch.from_numpy(bank), torch.from_numpy(queries)  # shared memory, no copy
        version = torch.__version__

        def run(k: int, q: np.ndarray | None = None) -> np.ndarray:
            return knn_mean_similarity(queries_t if q is None else torch.from_numpy(q), bank_t, k).numpy()

    else:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        index = faiss.IndexFlatIP(args.dim)
        index.add(bank)
        version = faiss.__version__

        def run(k: int, q: np.ndarray | None = None) -> np.ndarray:
            sims, _ = index.search(queries if q is None else q, k)
            return sims.mean(axis=1, dtype=np.float32)

    seconds = {}
    for k in args.k:
        run(k, queries[:256])  # warm-up: thread pools, BLAS initialisation
        t0 = time.perf_counter()
        means = run(k)
        seconds[k] = time.perf_counter() - t0
        if args.save:
            np.save(Path(args.save) / f"{args.worker}_k{k}.npy", means)
    print(json.dumps({"seconds": seconds, "version": version}))


def run_worker(method: str, args: argparse.Namespace, save: str | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method,
           "--queries", str(args.queries), "--bank", str(args.bank), "--dim", str(args.dim),
           "--threads", str(args.threads), "--seed", str(args.seed), "--k", *map(str, args.k)]
    if save:
        cmd += ["--save", save]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_knn: the {method} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["seconds"] = {int(k): v for k, v in out["seconds"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10_000, help="number of query (test) features")
    ap.add_argument("--bank", type=int, default=50_000, help="number of bank (training) features")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 5], help="k values (default: the paper's 1 5)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, each timing both methods (median reported)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and faiss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--atol", type=float, default=1e-5, help="max |ours - faiss| accepted per query")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name in ("queries", "bank", "dim", "repeat", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    for k in args.k:
        if not 1 <= k <= args.bank:
            ap.error(f"--k {k} must be between 1 and --bank ({args.bank})")
    if args.worker:
        worker(args)
        return 0
    if importlib.util.find_spec("faiss") is None:
        print("bench_knn: faiss is not installed, so there is nothing to compare against; "
              "install it with `pip install faiss-cpu` (or `pip install -e '.[bench]'`)", file=sys.stderr)
        return 2

    times: dict[str, dict[int, list[float]]] = {m: {k: [] for k in args.k} for m in METHODS}
    versions: dict[str, str] = {}
    diffs: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_knn.") as tmp:
        for r in range(args.repeat):
            for method in METHODS:
                out = run_worker(method, args, tmp if r == 0 else None)
                versions[method] = out["version"]
                for k in args.k:
                    times[method][k].append(out["seconds"][k])
            if r == 0:
                for k in args.k:
                    ours, theirs = (np.load(Path(tmp) / f"{m}_k{k}.npy").astype(np.float64) for m in METHODS)
                    diffs[k] = float(np.abs(ours - theirs).max())

    rows = []
    for k in args.k:
        t_ours, t_faiss = statistics.median(times["ours"][k]), statistics.median(times["faiss"][k])
        rows.append({"k": k, "ours_s": t_ours, "faiss_s": t_faiss, "ratio": t_ours / t_faiss,
                     "max_abs_diff": diffs[k], "ours_all_s": times["ours"][k], "faiss_all_s": times["faiss"][k]})
    print(f"k-NN cosine, exact: {args.queries} queries x {args.bank} bank x {args.dim} dims, "
          f"{args.threads} threads, median of {args.repeat}; torch {versions['ours']}, faiss {versions['faiss']}")
    print(f"{'k':>4} {'ours s':>9} {'faiss s':>9} {'ours/faiss':>11} {'max |diff|':>11}")
    for r in rows:
        print(f"{r['k']:>4} {r['ours_s']:>9.3f} {r['faiss_s']:>9.3f} {r['ratio']:>11.2f} {r['max_abs_diff']:>11.1e}")
    bad = [r["k"] for r in rows if not r["max_abs_diff"] <= args.atol]
    for r in rows:
        if r["k"] in bad:
            print(f"bench_knn: k={r['k']}: ours and faiss differ by up to {r['max_abs_diff']:.3g} "
                  f"(> --atol {args.atol})", file=sys.stderr)
    if args.out:
        from firm_bench.core.rundir import atomic_write_json

        atomic_write_json(args.out, {
            "benchmark": "knn", "queries": args.queries, "bank": args.bank, "dim": args.dim,
            "threads": args.threads, "repeat": args.repeat, "seed": args.seed,
            "torch": versions["ours"], "faiss": versions["faiss"], "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows, "agree": not bad,
        })
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
