# Plumbing: the plan, every output path, the wildcard constraints and the input
# functions; the rule files hold rules only, and none needs another included
# first. The config is validated once, by firm_bench.planning.grid.plan
# (schema firm_bench/schema/workflow.schema.yaml, defaults filled): rules read
# the validated CONFIG. Planning reads the registered names from their facts
# (firm_bench/core/facts, no torch), and each job rule has one params function
# building its whole argument string: Snakemake's cost per job bounds
# `snakemake -n` on the paper's ~6,400 jobs (benchmarks/bench_dag.py).
import os

from firm_bench.core.facts import datasets as dataset_facts, method, paper
from firm_bench.core.rundir import EVALSET_PATTERN, Run
from firm_bench.planning import grid as fw
from firm_bench.planning.gpu_slots import count_gpus

PLAN = fw.plan(
    config
)  # fails here, before any job, on an unknown dataset/loss/score/...
CONFIG = PLAN.config  # validated, every default filled in
RUNS = CONFIG["runs_root"]
# One wildcard for the run: dataset/cls/loss/outliers/recipe/seedN (Run.id).
RUN = os.path.join(RUNS, "{run}")
GPU_SLOTS = CONFIG["gpu_slots"] if CONFIG["gpu_slots"] is not None else count_gpus()
PACKED = CONFIG["pack_runs"] > 1  # train runs in packs (train.smk: one rule per pack)
PACKS = fw.packs(PLAN) if PACKED else []
# Where the runs run and their data lies (data_root, oe_path, a device): in the
# training commands, not their params (a rerun trigger): fw.local_args.
LOCAL_ARGS = fw.local_args(PLAN).replace("{", "{{").replace("}", "}}")
TRAIN_SLURM_EXTRA = fw.train_slurm_extra(
    CONFIG
)  # SIGTERM before a training job's time limit
SUMMARY_DIR = "results/summary"
SUMMARY = "results/summary.csv"
TABLES_DIR = "results/tables"
FIGURES_DIR = "figures"
REPORT = "results/report/index.html"
CLAIMS = "results/claims.md"
CLAIMS_CSV = "results/claims.csv"
CLAIMS_FOREST = "results/claims_forest.png"
CLAIMS_FOREST_PDF = "results/claims_forest.pdf"
LOGS = "results/logs"
PAPER_FEEDERS = fw.paper_item_feeders(CONFIG)


def _alternatives(names):
    return "(?:" + "|".join(sorted(set(names), key=len, reverse=True)) + ")"


wildcard_constraints:
    run="/".join(
        [
            _alternatives(
                list(dataset_facts.DATASETS) + [r.dataset for r in PLAN.runs]
            ),
            fw.CLS_PATTERN,
            _alternatives(list(method.LOSSES) + [r.loss for r in PLAN.runs]),
            _alternatives(list(method.OUTLIERS) + [r.outliers for r in PLAN.runs]),
            fw.RECIPE_PATTERN,
            r"seed\d+",
        ]
    ),
    evalset=EVALSET_PATTERN,
    family=_alternatives(
        sorted(set(method.SCORES.values()))
        + [f for e in PLAN.experiments for f in PLAN.experiment_families(e)]
    ),
    experiment="|".join(PLAN.experiments) or "none",


def run_file(name):
    """A file of the run directory, as a pattern with the {run} wildcard."""
    return os.path.join(RUN, name)


def summary_file(name):
    """results/summary/<name>: a per-experiment summary (name may hold wildcards)."""
    return os.path.join(SUMMARY_DIR, name)


def log_file(name):
    """results/logs/<name>: the log of a local job."""
    return os.path.join(LOGS, name)


def train_args(wildcards):
    return fw.train_args(PLAN, Run.parse(wildcards.run))


def pack_outputs(pack):
    """The trained.json of every run of a pack (the outputs of its rule)."""
    return [os.path.join(run.path(RUNS), "trained.json") for run in pack.runs]


def features_args(wildcards):
    return fw.features_args(PLAN, Run.parse(wildcards.run), wildcards.evalset)


def score_args(wildcards):
    return fw.score_args(
        PLAN, Run.parse(wildcards.run), wildcards.evalset, wildcards.family
    )


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
    return " ".join(CONFIG["experiments"][wildcards.experiment]["scores"])


def experiment_ks(wildcards):
    return " ".join(str(k) for k in CONFIG["experiments"][wildcards.experiment]["k"])


def experiment_evalsets(wildcards):
    return " ".join(PLAN.experiment_evalsets(wildcards.experiment))


def experiment_title(wildcards):
    return PLAN.experiment_title(wildcards.experiment)


def experiment_summaries():
    return expand(summary_file("{experiment}.csv"), experiment=PLAN.experiments)


def experiment_curves():
    return expand(summary_file("{experiment}_curves.csv"), experiment=PLAN.experiments)


def paper_item_summaries(wildcards):
    """Summaries of the experiments feeding a paper table or figure (none: every cell 'not run')."""
    return [summary_file(f"{e}.csv") for e in PAPER_FEEDERS[wildcards.item]]


def paper_item_curves(wildcards):
    """Learning curves of the experiments feeding a paper figure."""
    return [summary_file(f"{e}_curves.csv") for e in PAPER_FEEDERS[wildcards.item]]


DEFAULT_ITEMS = fw.default_items(CONFIG)


def paper_tables():
    return expand(
        os.path.join(TABLES_DIR, "{item}.csv"),
        item=[i for i in DEFAULT_ITEMS if i in paper.TABLES],
    )


def paper_figures():
    return expand(
        os.path.join(FIGURES_DIR, "{item}.png"),
        item=[i for i in DEFAULT_ITEMS if i in paper.FIGURES],
    )


def input_folder(name, default):
    """A params function: the folder of a rule's named input files (all in one folder), ``default`` without any."""

    def folder(wildcards, input):
        return os.path.dirname(input[name][0]) if input[name] else default

    return folder


def report_config_file(wildcards):
    """The workflow config file in effect: the first --configfile, else the Snakefile's configfile."""
    return workflow.configfiles[0]


def all_targets():
    return [SUMMARY, CLAIMS, REPORT] + expand(
        summary_file("{experiment}.md"), experiment=PLAN.experiments
    )
