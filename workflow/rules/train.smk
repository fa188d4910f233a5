# Training (GPU). trained.json is written last by `firm-bench train` /
# `train-pack`; the checkpoints are NOT outputs, so Snakemake never deletes
# them as incomplete and a killed job resumes from checkpoints/last.pt when it
# is rerun. GPU slots are resources, not params: params are a rerun trigger,
# and moving a finished grid to a machine with another GPU count must not
# retrain it; the same for LOCAL_ARGS (data_root, oe_path, device). `exec`:
# the shell becomes firm-bench, so SIGTERM (SLURM's
# --signal before the time limit: slurm_extra, resources.train_signal_s of the
# workflow config; a pre-emption) and SIGINT reach the trainer
# itself, which checkpoints at the epoch's end and exits 143 / 130; its log
# gets a progress line every eval.every epochs (epoch, loss, AUROC, images/s,
# ETA), and `firm-bench status` reads its heartbeat. `--exit-with $PPID`: the
# job stops when the Snakemake that started it dies (even by SIGKILL), so a
# rerun never finds an orphaned trainer on its directory.
#
# pack_runs: 1 - one job per run (rule train). pack_runs > 1 - one job per
# pack of compatible runs (firm_bench.planning.grid.packs), trained as one
# fused model on one GPU; its outputs are its runs' trained.json.
if not PACKED:

    rule train:
        output:
            run_file("trained.json"),
        log:
            run_file("logs/train.log"),
        threads: CONFIG["threads"]["train"]
        resources:
            gpu=CONFIG["gpu_per_job"],
            gpu_slots=GPU_SLOTS,
            mem_mb=CONFIG["resources"]["train_mem_mb"],
            runtime=CONFIG["resources"]["train_runtime"],
            slurm_extra=TRAIN_SLURM_EXTRA,
        params:
            args=train_args,
        shell:
            "exec firm-bench train {params.args} "
            + LOCAL_ARGS
            + " --set threads={threads}"
            " --gpu-slots {resources.gpu_slots}"
            " --progress lines --record-failure --in-workflow --exit-with $PPID > {log} 2>&1"


for pack in PACKS if PACKED else []:

    rule:
        name:
            pack.name
        output:
            pack_outputs(pack),
        log:
            log_file(f"train_pack/{pack.name}.log"),
        threads: CONFIG["threads"]["train"]
        resources:
            gpu=CONFIG["gpu_per_job"],
            gpu_slots=GPU_SLOTS,
            mem_mb=CONFIG["resources"]["train_mem_mb"],
            runtime=CONFIG["resources"]["train_runtime"] * len(pack.runs),
            slurm_extra=TRAIN_SLURM_EXTRA,
        params:
            args=fw.pack_args(PLAN, pack),
        shell:
            "exec firm-bench train-pack {params.args} "
            + LOCAL_ARGS
            + " --set threads={threads}"
            " --gpu-slots {resources.gpu_slots}"
            " --progress lines --record-failure --in-workflow --exit-with $PPID > {log} 2>&1"
