# The paper's claims, checked: results/claims.{md,csv} and a forest plot of the
# effects (firm_bench.paper.claims; docs/CLAIMS.md), from every experiment's
# summary and learning curves. A claim whose runs this config does not plan
# reads "not run" and says what is missing; a stand-in dataset's claims are
# marked as such. The Markdown and the plot are registered in Snakemake's report.
localrules:
    claims,


rule claims:
    input:
        summaries=experiment_summaries(),
        curves=experiment_curves(),
    output:
        md=report(CLAIMS, category="Claims", caption="../report/claims.rst"),
        csv=CLAIMS_CSV,
        forest=report(
            CLAIMS_FOREST, category="Claims", caption="../report/claims_forest.rst"
        ),
        forest_pdf=CLAIMS_FOREST_PDF,
    log:
        log_file("claims.log"),
    params:
        config=report_config_file,
    shell:
        "firm-bench claims --configfile {params.config} --summaries {input.summaries} --curves {input.curves}"
        " --out {output.md} --csv {output.csv} --forest {output.forest} > {log} 2>&1"
