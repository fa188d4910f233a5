# Plumbing: validation, the plan, wildcard constraints, input functions.
import os

from snakemake.utils import validate

from firm_bench import workflow as fw
from firm_bench.config import registered_names
from firm_bench.gpu_slots import count_gpus
from firm_bench.scores import SCORE_FAMILIES

validate(config, "../schemas/config.schema.yaml")
PLAN = fw.plan(config)  # fails here, before any job, on an unknown dataset/loss/score/...
RUNS = config["runs_root"]
RUN = os.path.join(RUNS, "{dataset}", "{cls}", "{loss}", "{outliers}", "{recipe}", "seed{seed}")
GPU_SLOTS = config["gpu_slots"] if config["gpu_slots"] is not None else count_gpus()
_NAMES = registered_names()


wildcard_constraints:
    dataset="|".join(_NAMES["dataset.name"]),
    loss="|".join(_NAMES["loss.name"]),
    outliers="|".join(_NAMES["outliers.name"]),
    cls=fw.CLS_PATTERN,
    recipe=fw.RECIPE_PATTERN,
    seed=r"\d+",
    evalset=r"test|ood-[a-z0-9_]+",
    family="|".join(sorted(set(SCORE_FAMILIES.values()))),
    experiment="|".join(PLAN.experiments) or "none",


def run_file(name):
    """A file of the run directory, as a pattern with the run's wildcards."""
    return os.path.join(RUN, name)


def run_of(wildcards):
    return fw.Run(
        wildcards.dataset, wildcards.cls, wildcards.loss, wildcards.outliers, wildcards.recipe, int(wildcards.seed)
    )


def run_dir(wildcards):
    return run_of(wildcards).path(RUNS)


def train_args(wildcards):
    return fw.cli_args(PLAN, run_of(wildcards))


def family_scores(wildcards):
    return " ".join(PLAN.scores_of_family(run_of(wildcards), wildcards.family))


def run_ks(wildcards):
    return " ".join(str(k) for k in sorted(PLAN.runs[run_of(wildcards)].ks))


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
