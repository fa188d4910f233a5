"""Cost planner: the runs, epochs, images and GPU-hours a paper target needs.

``firm-bench plan TARGET`` expands TARGET (an experiment of the workflow
config, a paper item such as ``table7`` that several experiments feed, or
``all``) with :func:`firm_bench.planning.grid.plan`, resolves each run's config
as the workflow will (:func:`firm_bench.planning.grid.run_config`) and adds up:

- training: per run, epochs x steps per epoch x batch x 2 views, where a
  step is ``batch_size`` samples of the epoch's training set, the normal
  class's training images times the outlier multiplicity
  (1 + the outlier source's registered ``copies``: rot x4, ref_cutpaste_scar
  x3, oe x(1 + oe_ratio), ...), the sizes the datasets register
  (``sizes``; both read from ``core/facts``, no torch);
- learning-curve evaluations: every ``eval.every`` epochs (and the last) a
  forward pass of the bank and the test set (none for ``cls: all``);
- feature extraction: bank and test images at every angle plus the test
  crops, for each evaluation set (Table 4: one per OOD set), for the trained
  model and (``features.untrained``) the untrained-encoder baseline.

Time = training views / throughput + forward passes / (3 x throughput) (a
forward pass costs about a third of a training view's forward + backward),
each scaled by the model's cost relative to the benchmarked one: pixels
((S / 32)^2, ImageNet stem (S / 128)^2) times width^2. The throughput is the
views/s of ``benchmarks/bench_fast.py``'s JSON (``--throughput-json``: the
``fusedK`` variant of the workflow's ``pack_runs`` K where it was measured,
else its ``best`` entry), or of ``bench_train.py``'s, or ``--views-per-s``;
the default comes from the measured figures in
``firm_bench/schema/throughput.yaml`` (:func:`default_throughput`), each
with its source: the GPU figure of packs of ``pack_runs`` runs where one was
measured, else the single-run GPU figure, said so, with the CPU-measured
speed-up of such packs beside it. A pack's views/s is the device's (all its
runs), so its GPU-hours are device time per run. Throughput is measured at
batch 32: the batch-size sweep's larger batches run faster per view, so
their hours are upper bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from firm_bench.core.config import protocol
from firm_bench.core.facts import datasets, method
from firm_bench.core.rundir import OOD_PREFIX, TEST_EVALSET

__all__ = [
    "DEFAULT_VIEWS_PER_S",
    "Cost",
    "Throughput",
    "default_throughput",
    "plan_cost",
    "throughput_figures",
    "throughput_from_json",
]

# The single-run GPU figure the planner falls back to (throughput.yaml, its default entry):
# H100, benchmarks/bench_train.py --preset paper (batch 32, float32), the loop before the fast path.
DEFAULT_VIEWS_PER_S = 1713.0
DEFAULT_SOURCE = "H100, pre-fast-path loop (bench_train.py, paper preset): 1713 views/s"
FORWARD_FRACTION = 1 / 3  # a forward pass ~ a third of a training view (forward + backward)
THROUGHPUT_FILE = "throughput.yaml"  # package data of firm_bench.schema: the measured figures, with sources


@dataclass(frozen=True)
class Throughput:
    """Training views per second of the benchmarked model (32 px, width 1, batch 32) on one GPU."""

    views_per_s: float
    source: str
    eval_s_per_image: float | None = None  # measured forward cost; None: FORWARD_FRACTION / views_per_s


@dataclass
class Cost:
    """What one target needs. ``runs`` counts distinct runs (shared runs once)."""

    target: str
    experiments: list[str]
    runs: int = 0
    epochs: set[int] = field(default_factory=set)
    images_per_epoch: set[int] = field(default_factory=set)
    train_views: float = 0.0
    forward_images: float = 0.0
    gpu_hours: float = 0.0
    train_jobs: int = 0  # training jobs: runs, or with pack_runs > 1 the packs holding them

    def row(self) -> dict:
        def span(values: set[int]) -> str:
            return "-" if not values else (str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}")

        return {"target": self.target, "experiments": ",".join(self.experiments), "runs": self.runs,
                "epochs": span(self.epochs), "images_per_epoch": span(self.images_per_epoch),
                "train_views": self.train_views, "forward_images": self.forward_images,
                "gpu_hours": round(self.gpu_hours, 1), "train_jobs": self.train_jobs}


def multiplicity(outliers: Mapping[str, Any]) -> int:
    """Training samples per normal image for the config's ``outliers`` section (the outlier source's ``copies``)."""
    return method.lookup(method.OUTLIERS, "outlier source", outliers["name"]).multiplicity(outliers)


def model_factor(cfg: Mapping[str, Any], image_size: int) -> float:
    """Cost of a view of this run relative to the benchmarked one (32 px CIFAR ResNet-18, width 1)."""
    stem = 128 if cfg["model"]["encoder"] == "resnet18_imagenet" else 32  # 7x7/2 conv + max-pool: 4x smaller maps
    return (image_size / stem) ** 2 * float(cfg["model"]["width"]) ** 2


def run_cost(cfg: Mapping[str, Any], dataset: str, cls: str, evalsets: Sequence[str]) -> dict:
    """Epochs, images per epoch, training views and forward passes of one run config.

    Sizes are the datasets' declared ``sizes`` (``core.facts.datasets``), the
    outliers per image the source's ``copies`` (``core.facts.method.OUTLIERS``).
    """
    data = datasets.dataset(dataset)
    n = data.size("train") if cls == "all" else data.size("train_per_class", cls)
    per_epoch = n * multiplicity(cfg["outliers"])
    batch, epochs = int(cfg["optim"]["batch_size"]), int(cfg["optim"]["epochs"])
    views = 2.0 * epochs * (per_epoch // batch) * batch
    test = 0 if cls == "all" else data.size("test", cls)
    every = int(cfg["eval"]["every"])
    evals = epochs // every + (epochs % every != 0) + bool(cfg["eval"]["at_start"])
    rot_select = cfg["checkpoint"]["select"] == "best_test" and cfg["checkpoint"]["select_score"] == "rot"
    forward = evals * (n + test) * (4 if rot_select else 1) if test else 0  # rot: four angles per evaluation
    f = cfg["features"]
    models = 2 if f["untrained"] else 1  # the trained model and the untrained-encoder baseline
    for ev in evalsets:  # test: the run's test set; ood-<name>: this dataset's test set + the OOD set's
        ev_test = test if ev == TEST_EVALSET else data.size("test") + datasets.dataset(ev[len(OOD_PREFIX):]).size("test")
        forward += models * len(f["angles"]) * (n + ev_test * (1 + int(f["crops"])))
    return {"epochs": epochs, "per_epoch": per_epoch, "views": views, "forward": forward,
            "factor": model_factor(cfg, protocol(cfg).image_size)}


def plan_cost(workflow_cfg: Mapping[str, Any], target: str, throughput: Throughput) -> list[Cost]:
    """One :class:`Cost` per experiment of ``target`` and, for several, a total over distinct runs."""
    from firm_bench.planning import grid as workflow
    from firm_bench.planning.grid import paper_item_feeders

    p = workflow.plan(workflow_cfg)
    feeders = paper_item_feeders(p.config)
    if target == "all":
        groups = {e: [e] for e in p.experiments}
    elif feeders.get(target):  # a paper item: every experiment feeding it (table7: table7, table7_oe)
        groups = {e: [e] for e in feeders[target]}
    elif target in p.experiments:
        groups = {target: [target]}
    else:
        valid = ["all", *p.experiments, *(k for k, v in feeders.items() if v and k not in p.experiments)]
        raise ValueError(f"unknown target {target!r}; valid: {', '.join(valid)}")
    per_eval = throughput.eval_s_per_image or FORWARD_FRACTION / throughput.views_per_s
    configs: dict[tuple, dict] = {}
    cache: dict = {}

    def cost_of(run) -> dict:
        sizes = datasets.dataset(run.dataset).sizes or {}
        sized_by_class = isinstance(sizes.get("train_per_class"), dict) or run.cls == "all"
        key = (run.dataset, run.cls if sized_by_class else "", run.outliers, run.recipe, tuple(sorted(p.runs[run].evalsets)))
        if key not in cache:
            ckey = (run.dataset, run.outliers, run.recipe, run.cls == "all")
            if ckey not in configs:
                configs[ckey] = workflow.run_config(p, run)
            c = run_cost(configs[ckey], run.dataset, run.cls, sorted(p.runs[run].evalsets))
            c["hours"] = c["factor"] * (c["views"] / throughput.views_per_s + c["forward"] * per_eval) / 3600
            cache[key] = c
        return cache[key]

    def add(cost: Cost, runs) -> Cost:
        for run in runs:
            c = cost_of(run)
            cost.runs += 1
            cost.epochs.add(c["epochs"])
            cost.images_per_epoch.add(c["per_epoch"])
            cost.train_views += c["views"]
            cost.forward_images += c["forward"]
            cost.gpu_hours += c["hours"]
        return cost

    packs = workflow.packs(p)

    def jobs(cost: Cost, runs) -> Cost:
        wanted = set(runs)
        cost.train_jobs = sum(1 for pack in packs if wanted & set(pack.runs))
        return cost

    out = [jobs(add(Cost(name, exps), sorted(set(p.experiments[name]))), p.experiments[name])
           for name, exps in groups.items()]
    if len(out) > 1:
        every = sorted({r for exps in groups.values() for e in exps for r in p.experiments[e]})
        out.append(jobs(add(Cost(f"{target} (distinct runs)", sorted(groups)), every), every))
    return out


def throughput_from_json(path: str | Path, variant: str | None = None, pack_runs: int = 1) -> Throughput:
    """Views/s from a benchmark's JSON: bench_fast.py (``best``, or ``results[variant]``) or bench_train.py.

    Without ``variant`` and with ``pack_runs`` > 1: the measured packs of that
    size (``fused<K>``, else ``fused<K>-grouped``) where the benchmark has them.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read throughput JSON {str(path)!r}: {exc}") from None
    where = f"{path}"
    if variant is None and pack_runs > 1:
        measured = data.get("results") or {}
        variant = next((v for v in (f"fused{pack_runs}", f"fused{pack_runs}-grouped") if v in measured), None)
    if variant:
        r = (data.get("results") or {}).get(variant)
        if not r or "views_per_s" not in r:
            raise ValueError(f"{path}: no measured variant {variant!r}; measured: {', '.join(data.get('results', {}))}")
        gpu = data.get("environment", {}).get("gpu") or data.get("environment", {}).get("device", "?")
        return Throughput(float(r["views_per_s"]), f"{where} ({variant}, {gpu})", r.get("eval_s_per_image"))
    if "best" in data:  # a pack variant's views/s is the device's (all its runs)
        b = data["best"]
        gpu = data.get("environment", {}).get("gpu") or data.get("environment", {}).get("device", "?")
        return Throughput(float(b["views_per_s_per_gpu"]), f"{where} ({b['variant']}, {gpu})", b.get("eval_s_per_image"))
    if "views_per_s" in data:
        return Throughput(float(data["views_per_s"]), f"{where} (bench_train, {data.get('device', '?')})")
    raise ValueError(f"{path}: no views_per_s found (expected bench_fast.py or bench_train.py output)")


def throughput_figures() -> list[dict]:
    """The measured throughput figures (``firm_bench/schema/throughput.yaml``), each with its device and source."""
    from importlib import resources

    import yaml

    text = resources.files("firm_bench.schema").joinpath(THROUGHPUT_FILE).read_text()
    return list((yaml.safe_load(text) or {}).get("figures") or [])


def default_throughput(pack_runs: int = 1, figures: Sequence[Mapping[str, Any]] | None = None) -> Throughput:
    """The throughput to plan ``pack_runs``-run packs at, from the measured figures, saying where it comes from.

    A GPU figure of packs of exactly ``pack_runs`` runs, where one was
    measured; else the default single-run GPU figure (the entry marked
    ``default``), labelled as such, with the CPU-measured views/s of such
    packs relative to runs one after another beside it where that was
    measured (``bench_fast.py`` on the CPU: not a GPU figure, only a sign).
    """
    figures = list(throughput_figures() if figures is None else figures)
    gpu = [f for f in figures if f.get("kind") == "gpu" and int(f.get("pack_runs", 1)) == pack_runs]
    if gpu and pack_runs > 1:
        f = gpu[0]
        return Throughput(float(f["views_per_s"]), f"{f['device']}, packs of {pack_runs} ({f['variant']}): "
                                                   f"{float(f['views_per_s']):,.0f} views/s [{f['source']}]")
    base = next((f for f in figures if f.get("default")), None)
    views = float(base["views_per_s"]) if base else DEFAULT_VIEWS_PER_S
    source = (f"{base['device']}, {base['variant']}: {views:,.0f} views/s [{base['source']}]" if base else DEFAULT_SOURCE)
    if pack_runs == 1:
        return Throughput(views, source)
    cpu = [f for f in figures if f.get("kind") == "cpu" and int(f.get("pack_runs", 1)) == pack_runs]
    note = (f"; on the CPU ({cpu[0]['device']}) packs of {pack_runs} measured {float(cpu[0]['vs_runs_alone']):.2f}x "
            f"the views/s of runs one after another [{cpu[0]['source']}]") if cpu else ""
    return Throughput(views, f"packs of {pack_runs} not measured on a GPU: the single-run figure, an upper bound on "
                             f"GPU-hours: {source}{note}")


def format_table(costs: Sequence[Cost], throughput: Throughput, pack_runs: int = 1) -> str:
    head = ("target", "runs", "train jobs", "epochs", "images/epoch", "train views", "GPU-hours")
    rows = [(c.target, str(c.runs), str(c.train_jobs), c.row()["epochs"], c.row()["images_per_epoch"],
             f"{c.train_views:.3g}", f"{c.gpu_hours:,.1f}") for c in costs]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.append(f"throughput: {throughput.views_per_s:,.0f} training views/s per GPU ({throughput.source})")
    if pack_runs > 1:
        lines.append(f"pack_runs: {pack_runs} (train jobs: packs of up to {pack_runs} runs as one fused model, one GPU "
                     "each; GPU-hours are device time per run at the pack's throughput)")
    return "\n".join(lines)
