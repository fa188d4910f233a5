# Feature extraction (GPU): every view any score needs, cached per run and
# evaluation set ("test", or "ood-<name>" for Table 4's OOD sets), for the
# trained encoder and the untrained-encoder baseline.
rule features:
    input:
        run_file("trained.json"),
    output:
        run_file("features/{evalset}/meta.json"),
    log:
        run_file("logs/features_{evalset}.log"),
    threads: CONFIG["threads"]["features"]
    resources:
        gpu=CONFIG["gpu_per_job"],
        gpu_slots=GPU_SLOTS,
        mem_mb=CONFIG["resources"]["features_mem_mb"],
        runtime=CONFIG["resources"]["features_runtime"],
    params:
        args=features_args,
    shell:
        "firm-bench features {params.args}"
        " --gpu-slots {resources.gpu_slots}"
        " --no-progress > {log} 2>&1"
