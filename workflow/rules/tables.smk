# One plain mean ± std table per experiment (results/summary/<experiment>.md);
# the paper-shaped tables (results/tables/) are rendered from the same summaries.
localrules:
    table,


rule table:
    input:
        summary_file("{experiment}.csv"),
    output:
        summary_file("{experiment}.md"),
    log:
        log_file("table_{experiment}.log"),
    params:
        title=experiment_title,
    shell:
        "firm-bench table {input} --title {params.title:q} --out {output} > {log} 2>&1"
