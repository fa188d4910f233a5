# Plumbing: validation, the plan, wildcard constraints, input functions.
# Planning reads the registries' names from firm_bench.core.catalog (no torch
# import), and each job rule has one params function building its whole
# argument string from the plan: Snakemake's cost per job is what bounds
# `snakemake -n` on the paper's ~6,300 jobs (benchmarks/bench_dag.py).
import os

from snakemake.utils import validate

from firm_bench.core import catalog
from firm_bench.planning import grid as fw
from firm_bench.planning.gpu_slots import count_gpus

validate(config, "../../firm_bench/schema/workflow.schema.yaml")
PLAN = fw.plan(config)  # fails here, before any job, on an unknown dataset/loss/score/...
RUNS = config["runs_root"]
# One wildcard for the run: dataset/cls/loss/outliers/recipe/seedN (fw.Run.id).
RUN = os.path.join(RUNS, "{run}")
GPU_SLOTS = config["gpu_slots"] if config["gpu_slots"] is not None else count_gpus()


def _alternatives(names):
    return "(?:" + "|".join(sorted(set(names), key=len, reverse=True)) + ")"


wildcard_constraints:
    run="/".join(
        [
            _alternatives(catalog.names("dataset.name") + [r.dataset for r in PLAN.runs]),
            fw.CLS_PATTERN,
            _alternatives(catalog.names("loss.name") + [r.loss for r in PLAN.runs]),
            _alternatives(catalog.names("outliers.name") + [r.outliers for r in PLAN.runs]),
            fw.RECIPE_PATTERN,
            r"seed\d+",
        ]
    ),
    evalset=r"test|ood-[a-z0-9_]+",
    family=_alternatives(catalog.score_families() + [f for e in PLAN.experiments for f in PLAN.experiment_families(e)]),
    experiment="|".join(PLAN.experiments) or "none",


def run_file(name):
    """A file of the run directory, as a pattern with the {run} wildcard."""
    return os.path.join(RUN, name)


def train_args(wildcards):
    return fw.train_args(PLAN, fw.Run.parse(wildcards.run))


def features_args(wildcards):
    return fw.features_args(PLAN, fw.Run.parse(wildcards.run), wildcards.evalset)


def score_args(wildcards):
    return fw.score_args(PLAN, fw.Run.parse(wildcards.run), wildcards.evalset, wildcards.family)


def experiment_scores_files(wildcards):
    """The score files an experiment reports (only its own score families)."""
    exp = wildcards.experiment
    return [
        f"{run.path(RUNS)}/scores/{evalset}/by_family/{family}.json"
        for run in dict.fromkeys(PLAN.experiments[exp])
        for evalset in PLAN.experiment_evalsets(exp)
        for family in PLAN.experiment_families(exp)
    ]


def experiment_run_dirs(wildcards):
    return " ".join(dict.fromkeys(PLAN.run_dirs(wildcards.experiment)))


def experiment_scores(wildcards):
    return " ".join(PLAN.config["experiments"][wildcards.experiment]["scores"])


def experiment_ks(wildcards):
    return " ".join(str(k) for k in PLAN.config["experiments"][wildcards.experiment]["k"])


def experiment_evalsets(wildcards):
    return " ".join(PLAN.experiment_evalsets(wildcards.experiment))


def experiment_title(wildcards):
    return PLAN.config["experiments"][wildcards.experiment]["title"] or wildcards.experiment


def all_targets():
    return (
        ["results/summary.csv", "results/report/index.html"]
        + [f"results/summary/{e}.md" for e in PLAN.experiments]
    )
