# firm-bench: the FIRM paper's experiments as one DAG.
#
#   snakemake --cores all --resources gpu=4                 # everything in the config
#   snakemake --cores all results/tables/table1a.md         # one paper table
#   snakemake --cores all results/report/index.html         # the replication report
#   snakemake --cores all results/claims.md                  # the paper's claims, checked
#   snakemake --cores all --configfile workflow/config/mini.yaml   # CPU miniature
#   snakemake --profile workflow/profiles/slurm             # a SLURM cluster
#
# Rules are thin: each calls the firm-bench CLI. What runs is decided by
# firm_bench.planning.grid.plan() from the config (see workflow/config/*.yaml).
from snakemake.utils import min_version

min_version("9.0")


# The paper config unless one is given: `--configfile X` replaces it (a merge
# would add the paper's experiments to X's).
if "experiments" not in config:

    configfile: "workflow/config/paper.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/paper_tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
