# Paper tables, ours beside the paper's: results/tables/<table>.{md,tex,csv}
# (firm_bench.paper.tables). Each is rendered from the summaries of the experiments
# that feed it (an experiment's paper_items, else its own name), so
# `snakemake results/tables/table5.md` rebuilds that table alone from
# existing runs. Include this file before figures.smk and report.smk: it
# defines the helpers they use.
import os

PAPER_FEEDERS = fw.paper_item_feeders(config)
TABLES_DIR = "results/tables"


def paper_item_summaries(wildcards):
    """Summaries of the experiments feeding a paper table or figure (none: every cell 'not run')."""
    return [f"results/summary/{e}.csv" for e in PAPER_FEEDERS[wildcards.item]]


def paper_item_curves(wildcards):
    """Learning curves of the experiments feeding a paper figure."""
    return [f"results/summary/{e}_curves.csv" for e in PAPER_FEEDERS[wildcards.item]]


localrules:
    paper_table,


rule paper_table:
    input:
        paper_item_summaries,
    output:
        md=os.path.join(TABLES_DIR, "{item}.md"),
        tex=os.path.join(TABLES_DIR, "{item}.tex"),
        csv=os.path.join(TABLES_DIR, "{item}.csv"),
    log:
        "results/logs/paper_table_{item}.log",
    params:
        out_dir=subpath(output[0], parent=True),
    wildcard_constraints:
        item="|".join(catalog.names("tables")),
    shell:
        "firm-bench paper-table {wildcards.item} {input} --out-dir {params.out_dir} > {log} 2>&1"
