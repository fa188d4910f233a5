# Aggregation in stages: per experiment, then global (no job with thousands of
# inputs). Reads every run's score files and metrics.json, read-only.
localrules:
    summarize_experiment,
    summary,


rule summarize_experiment:
    input:
        experiment_scores_files,
    output:
        summary=summary_file("{experiment}.csv"),
        curves=summary_file("{experiment}_curves.csv"),
    log:
        log_file("summarize_{experiment}.log"),
    params:
        runs=experiment_run_dirs,
        scores=experiment_scores,
        k=experiment_ks,
        evalsets=experiment_evalsets,
    shell:
        "firm-bench summarize --experiment {wildcards.experiment} --scores {params.scores} --k {params.k}"
        " --evalsets {params.evalsets}"
        " --out {output.summary} --curves-out {output.curves} {params.runs} > {log} 2>&1"


rule summary:
    input:
        experiment_summaries(),
    output:
        SUMMARY,
    log:
        log_file("summary.log"),
    shell:
        "firm-bench combine --out {output} {input} > {log} 2>&1"
