# Training (GPU). trained.json is written last by `firm-bench train`; the
# checkpoints are NOT outputs, so Snakemake never deletes them as incomplete
# and a killed job resumes from checkpoints/last.pt when it is rerun.
rule train:
    output:
        run_file("trained.json"),
    log:
        run_file("logs/train.log"),
    params:
        args=train_args,
    threads: config["threads"]["train"]
    resources:
        gpu=config["gpu_per_job"],
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    shell:
        "firm-bench train {params.args} --set threads={threads} --gpu-slots {GPU_SLOTS} --runs-per-gpu {config[runs_per_gpu]}"
        " --no-progress --record-failure > {log} 2>&1"
