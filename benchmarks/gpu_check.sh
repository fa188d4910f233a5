#!/usr/bin/env bash
# The GPU check, prepared: on a CUDA machine, in at most --budget-s seconds (default 480, i.e. 8 minutes),
#   1. the CUDA tests (pytest -k cuda over tests/run and tests/method: CUDA graphs, a pack's grouped kernels,
#      train -> features -> scores on the GPU, the GPU augmentation against the CPU's), then
#   2. benchmarks/bench_fast.py with the paper recipe (--preset paper) for naive, fast and fused 4/8/16/32,
# and writes ONE JSON, <out>/gpu_check.json: the machine, each step's command, exit status, seconds and
# output tail, the test counts, bench_fast's own report (every variant's figures, or its error), and "ok".
#
#   bash benchmarks/gpu_check.sh                      # CUDA; writes $OUT/gpu_check.json ($OUT: the device tool's)
#   bash benchmarks/gpu_check.sh --out results/gpu    # ... or under --out
#   bash benchmarks/gpu_check.sh --device cpu --out /tmp/dry   # dry run on the CPU: the same steps at a tiny size
#
# --device cpu is the dry mode (tests/test_bench.py runs it): the CUDA tests are collected and skip, and
# bench_fast measures the smoke recipe at a tiny size for naive, fast and fused2 (--variants to change).
# Each step runs under `timeout`: the tests get at most a third of the budget, the benchmark what is left
# (bench_fast writes its JSON after every variant, so a benchmark cut short keeps what it measured; the
# variants it did not reach are listed). Exit status: 0 when every step passed, 1 otherwise, 2 on bad usage.
# After a CUDA run: put the figures in README ("Speed") and firm_bench/schema/throughput.yaml.
set -uo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

device=cuda
out="${OUT:-}"
budget=480
tests="tests/run tests/method"
variants=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="${2:?--device needs cuda or cpu}"; shift 2 ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --budget-s) budget="${2:?--budget-s needs seconds}"; shift 2 ;;
        --tests) tests="${2:?--tests needs test paths}"; shift 2 ;;
        --variants) variants="${2:?--variants needs a list}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cpu) ;; *) echo "gpu_check: --device $device: use cuda or cpu (the dry mode)" >&2; exit 2 ;; esac
case "$budget" in ''|*[!0-9]*) echo "gpu_check: --budget-s $budget: a whole number of seconds" >&2; exit 2 ;; esac
if [ -z "$out" ]; then
    echo "gpu_check: no output folder: pass --out DIR (or set OUT)" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's firm_bench, installed or not
PY="${PYTHON:-python3}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

if [ "$device" = cuda ]; then
    [ -n "$variants" ] || variants="naive,fast,fused4,fused8,fused16,fused32"
    bench_args=(--device cuda --preset paper --epochs 1 --warmup-epochs 1)
else
    [ -n "$variants" ] || variants="naive,fast,fused2"
    bench_args=(--device cpu --preset smoke --epochs 1 --warmup-epochs 0 --workers 0 --threads 1
                --eval-bank 64 --eval-test 128 --set features.batch_size=64)
fi

# one step: its command under `timeout -k 10 <seconds>`, output to $work/<name>.log, seconds and status to files
step() {
    local name=$1 seconds=$2
    shift 2
    printf '%s\n' "$*" >"$work/$name.cmd"
    local t0=$(date +%s)
    timeout -k 10 "$seconds" "$@" >"$work/$name.log" 2>&1
    echo $? >"$work/$name.rc"
    echo $(($(date +%s) - t0)) >"$work/$name.s"
    echo "$seconds" >"$work/$name.limit"
    echo "gpu_check: $name: exit $(cat "$work/$name.rc") after $(cat "$work/$name.s") s" >&2
}

# 1. the CUDA tests: at most a third of the budget
read -r -a test_paths <<<"$tests"
step cuda_tests $((budget / 3)) "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda "${test_paths[@]}"

# 2. bench_fast: what is left, less 15 s to write the JSON; one variant at most half of it
left=$((budget - ($(date +%s) - start) - 15))
[ "$left" -gt 10 ] || left=10
step bench_fast "$left" "$PY" benchmarks/bench_fast.py "${bench_args[@]}" --variants "$variants" \
    --timeout $((left / 2 > 5 ? left / 2 : 5)) --out "$work/bench_fast.json"

"$PY" - "$work" "$out/gpu_check.json" "$device" "$variants" "$budget" "$start" <<'EOF'
import json, os, platform, re, sys, time
from pathlib import Path

work, dest, device, variants, budget, start = sys.argv[1:]
work = Path(work)


def step(name):
    log = (work / f"{name}.log").read_text(errors="replace")
    rc = int((work / f"{name}.rc").read_text())
    return {"command": (work / f"{name}.cmd").read_text().strip(), "exit": rc, "timed_out": rc in (124, 137),
            "seconds": int((work / f"{name}.s").read_text()), "limit_s": int((work / f"{name}.limit").read_text()),
            "output_tail": log[-3000:]}


tests = step("cuda_tests")
summary = [line for line in tests["output_tail"].splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[-1])} if summary else {}
tests["counts"] = counts
# on a CUDA machine a CUDA test that skips did not run: a failure of the check; in the dry mode they must skip
tests["ok"] = (tests["exit"] == 0 and counts.get("passed", 0) > 0 and not counts.get("skipped")) if device == "cuda" \
    else (tests["exit"] in (0, 5) and not counts.get("failed") and not counts.get("error") and not counts.get("errors"))

bench = step("bench_fast")
report_path = work / "bench_fast.json"
report = json.loads(report_path.read_text()) if report_path.is_file() else None
results = (report or {}).get("results", {})
wanted = variants.split(",")
bench["report"] = report
bench["measured"] = [v for v in wanted if v in results and "error" not in results[v]]
bench["failed"] = {v: results[v]["error"] for v in wanted if v in results and "error" in results[v]}
bench["not_reached"] = [v for v in wanted if v not in results]
bench["ok"] = bench["exit"] == 0 and bench["measured"] == wanted

check = {
    "check": "benchmarks/gpu_check.sh",
    "mode": "cuda" if device == "cuda" else "cpu dry run (tiny sizes: no figure to quote)",
    "device": device,
    "host": platform.node(),
    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(start))),
    "budget_s": int(budget),
    "seconds": int(time.time()) - int(start),
    "variants": wanted,
    "steps": {"cuda_tests": tests, "bench_fast": bench},
    "ok": tests["ok"] and bench["ok"],
}
tmp = Path(dest).with_name(Path(dest).name + ".tmp")
tmp.write_text(json.dumps(check, indent=2) + "\n")
os.replace(tmp, dest)  # atomic: a reader sees the whole JSON or none
print(f"gpu_check: {'ok' if check['ok'] else 'FAILED'} in {check['seconds']} s; measured: "
      f"{', '.join(bench['measured']) or 'none'}; wrote {dest}", file=sys.stderr)
sys.exit(0 if check["ok"] else 1)
EOF
