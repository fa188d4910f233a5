# Scoring (CPU), one job per score family of a run, from the feature cache.
rule score:
    input:
        run_file("features/{evalset}/meta.json"),
    output:
        run_file("scores/{evalset}/by_family/{family}.json"),
    log:
        run_file("logs/score_{evalset}_{family}.log"),
    params:
        args=score_args,
    threads: config["threads"]["score"]
    resources:
        mem_mb=config["resources"]["score_mem_mb"],
        runtime=config["resources"]["score_runtime"],
    shell:
        "OMP_NUM_THREADS={threads} firm-bench score {params.args} --out {output} > {log} 2>&1"
