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
        run=run_dir,
        slots=GPU_SLOTS,
        per_gpu=config["runs_per_gpu"],
    threads: config["threads"]["train"]
    resources:
        gpu=config["gpu_per_job"],
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    shell:
        "firm-bench train {params.args} --set threads={threads} --run-dir {params.run}"
        " --gpu-slots {params.slots} --runs-per-gpu {params.per_gpu} --no-progress --record-failure > {log} 2>&1"
