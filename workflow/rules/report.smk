# The replication report: results/report/index.html (firm_bench.paper.report), one
# offline page with every paper table and figure, agreement with the paper and
# provenance. `firm-bench report --partial` gives the same page while runs are
# still going (no Snakemake needed).
REPORT = "results/report/index.html"


def report_config_file(wildcards):
    """The workflow config file in effect: the first --configfile, else the Snakefile's configfile."""
    return workflow.configfiles[0]


localrules:
    report,


rule report:
    input:
        tables=expand(os.path.join(TABLES_DIR, "{item}.csv"), item=catalog.names("tables")),
        figures=expand(os.path.join(FIGURES_DIR, "{item}.png"), item=catalog.names("figures")),
        summaries=expand("results/summary/{experiment}.csv", experiment=PLAN.experiments),
    output:
        REPORT,
    log:
        "results/logs/report.log",
    params:
        config=report_config_file,
        tables_dir=TABLES_DIR,
        figures_dir=FIGURES_DIR,
    shell:
        "firm-bench report --config {params.config} --out {output} --tables-dir {params.tables_dir}"
        " --figures-dir {params.figures_dir} > {log} 2>&1"
