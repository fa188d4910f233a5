# firm-bench: the FIRM paper's experiments as one DAG.
#
#   snakemake --cores all --resources gpu=4                 # everything in the config
#   snakemake --cores all results/tables/table1a.md         # one table
#   snakemake --cores all --configfile workflow/config/mini.yaml   # CPU miniature
#   snakemake --profile workflow/profiles/slurm             # a SLURM cluster
#
# Rules are thin: each calls the firm-bench CLI. What runs is decided by
# firm_bench.workflow.plan() from the config (see workflow/config/*.yaml).
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config/paper.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/tables.smk"


rule all:
    input:
        all_targets(),
    default_target: True
