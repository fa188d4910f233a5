# Scoring (CPU), one job per score family of a run, from the feature cache.
rule score:
    input:
        run_file("features/{evalset}/meta.json"),
    output:
        run_file("scores/{evalset}/by_family/{family}.json"),
    log:
        run_file("logs/score_{evalset}_{family}.log"),
    threads: CONFIG["threads"]["score"]
    resources:
        mem_mb=CONFIG["resources"]["score_mem_mb"],
        runtime=CONFIG["resources"]["score_runtime"],
    params:
        args=score_args,
    shell:
        "OMP_NUM_THREADS={threads} firm-bench score {params.args} --out {output} > {log} 2>&1"
