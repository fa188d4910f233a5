# The replication report: results/report/index.html (firm_bench.paper.report),
# one self-contained page (figures and table files embedded in it) with every
# paper table and figure (it waits for those an experiment of the config feeds;
# the others it lists as fed by none, or shows if rendered on their own), the paper's claims checked (results/claims.csv and
# its forest plot), agreement with the paper and provenance. `firm-bench report
# --partial` gives the same view while runs are still going (no Snakemake
# needed), in results/report/partial/; `snakemake --report report.zip` gives
# Snakemake's standard report of the registered tables and figures beside it.
localrules:
    report,


rule report:
    input:
        tables=paper_tables(),
        figures=paper_figures(),
        summaries=experiment_summaries(),
        claims=CLAIMS_CSV,
        forest=CLAIMS_FOREST,
    output:
        REPORT,
    log:
        log_file("report.log"),
    params:
        config=report_config_file,
        tables_dir=input_folder("tables", TABLES_DIR),
        figures_dir=input_folder("figures", FIGURES_DIR),
    shell:
        "firm-bench report --configfile {params.config} --out {output} --tables-dir {params.tables_dir}"
        " --figures-dir {params.figures_dir} --claims-csv {input.claims} --claims-forest {input.forest}"
        " > {log} 2>&1"
