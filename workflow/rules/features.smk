# Feature extraction (GPU): every view any score needs, cached per run and
# evaluation set ("test", or "ood-<name>" for Table 4's OOD sets).
rule features:
    input:
        run_file("trained.json"),
    output:
        run_file("features/{evalset}/meta.json"),
    log:
        run_file("logs/features_{evalset}.log"),
    params:
        args=features_args,
    threads: config["threads"]["features"]
    resources:
        gpu=config["gpu_per_job"],
        mem_mb=config["resources"]["features_mem_mb"],
        runtime=config["resources"]["features_runtime"],
    shell:
        "firm-bench features {params.args} --gpu-slots {GPU_SLOTS} --runs-per-gpu {config[runs_per_gpu]}"
        " --no-progress > {log} 2>&1"
