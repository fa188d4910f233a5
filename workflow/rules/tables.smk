# One plain mean ± std table per experiment (results/tables/<experiment>.md).
localrules:
    table,


rule table:
    input:
        "results/summary/{experiment}.csv",
    output:
        "results/tables/{experiment}.md",
    log:
        "results/logs/table_{experiment}.log",
    params:
        title=experiment_title,
    shell:
        "firm-bench table {input} --title {params.title:q} --out {output} > {log} 2>&1"
