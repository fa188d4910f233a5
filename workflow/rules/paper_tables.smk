# Paper tables, ours beside the paper's: results/tables/<table>.{md,tex,csv}
# (firm_bench.paper.tables). Each is rendered from the summaries of the
# experiments that feed it (an experiment's paper_items, else its own name), so
# `snakemake results/tables/table5.md` rebuilds that table alone from existing
# runs. The Markdown is registered in Snakemake's own report.
localrules:
    paper_table,


rule paper_table:
    input:
        paper_item_summaries,
    output:
        md=report(
            os.path.join(TABLES_DIR, "{item}.md"),
            category="Paper tables",
            caption="../report/paper_table.rst",
        ),
        tex=os.path.join(TABLES_DIR, "{item}.tex"),
        csv=os.path.join(TABLES_DIR, "{item}.csv"),
    log:
        log_file("paper_table_{item}.log"),
    wildcard_constraints:
        item="|".join(paper.TABLES),
    params:
        out_dir=subpath(output.md, parent=True),
    shell:
        "firm-bench paper-table {wildcards.item} {input} --out-dir {params.out_dir} > {log} 2>&1"
