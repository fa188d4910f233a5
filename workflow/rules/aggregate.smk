# Aggregation in stages: per experiment, then global (no job with thousands of inputs).
localrules:
    summarize_experiment,
    summary,


# Reads every run's score files (read-only; each run's metrics.json is written by its score jobs).
rule summarize_experiment:
    input:
        experiment_scores_files,
    output:
        summary="results/summary/{experiment}.csv",
        curves="results/summary/{experiment}_curves.csv",
    log:
        "results/logs/summarize_{experiment}.log",
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
        expand("results/summary/{experiment}.csv", experiment=PLAN.experiments),
    output:
        "results/summary.csv",
    log:
        "results/logs/summary.log",
    shell:
        "firm-bench combine --out {output} {input} > {log} 2>&1"
