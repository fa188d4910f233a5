"""The ``firm-bench`` command line.

Subcommands parse their arguments and call one library function each, so
Snakemake rules, tests and users reach the same code::

    firm-bench run      [--preset P] [--config F] [--set k=v ...] [--run-dir D]
    firm-bench train    [--preset P] [--config F] [--set k=v ...] [--run-dir D]
    firm-bench features RUN_DIR
    firm-bench score    RUN_DIR [--scores cos kde ...] [--k 1 5]
    firm-bench data check NAME [--root DIR] [--download]
    firm-bench list     {datasets,losses,scores,outliers,encoders,schedules,presets}
    firm-bench config   [--preset P] [--config F] [--set k=v ...]

``run`` is train + features + score. A run directory holds its resolved
config, so ``features`` and ``score`` need only the directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from firm_bench import config as config_mod
from firm_bench import runs


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help=f"bundled preset ({', '.join(config_mod.list_presets())})")
    p.add_argument("--config", default=None, help="YAML file of overrides (applied after the preset)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one key, e.g. --set optim.epochs=50 --set loss.name=ntxent (repeatable)",
    )
    p.add_argument("--recipe", default=None, help="recipe name recorded in the config and run directory (default: the preset)")
    p.add_argument("--run-dir", default=None, help="run directory (default: results/runs/<dataset>/<cls>/...)")
    p.add_argument("--runs-root", default="results/runs", help="root of the default run directories")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_gpu_arg(p)


def _add_gpu_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu-slots", type=int, default=0, metavar="N",
        help="pin this job to one of N local GPUs through lock-file slots (0: off; ignored under SLURM)",
    )
    p.add_argument("--runs-per-gpu", type=int, default=1, metavar="R",
                   help="with --gpu-slots: let R jobs share each GPU")


def _take_gpu_slot(args: argparse.Namespace) -> None:
    from firm_bench.gpu_slots import acquire_gpu_slot

    gpu = acquire_gpu_slot(getattr(args, "gpu_slots", 0), runs_per_gpu=getattr(args, "runs_per_gpu", 1))
    if gpu is not None:
        print(f"firm-bench: GPU slot on GPU {gpu} (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})",
              file=sys.stderr)


def _resolve(args: argparse.Namespace) -> tuple[dict, Path]:
    cfg = config_mod.resolve(args.preset, args.config, args.overrides)
    if args.recipe:
        cfg["preset"] = args.recipe
    run_dir = Path(args.run_dir) if args.run_dir else runs.run_dir_for(cfg, args.runs_root)
    return cfg, run_dir


def _run_config(run_dir: Path) -> dict:
    path = run_dir / runs.CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory? (run `firm-bench train` first)")
    return config_mod.validate(config_mod.load_yaml(path))


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False)


def cmd_train(args: argparse.Namespace) -> int:
    from firm_bench.train import TrainingFailed, train

    cfg, run_dir = _resolve(args)
    _take_gpu_slot(args)
    try:
        result = train(cfg, run_dir, progress=_progress(args))
    except TrainingFailed as exc:
        if not args.record_failure:
            raise
        print(f"firm-bench: training failed: {exc} (recorded in {run_dir}/status.json)", file=sys.stderr)
        return 0
    print(json.dumps({"run_dir": str(run_dir), "final_auroc": result.final_auroc, "epochs": result.epochs}))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from firm_bench.features import extract_run_features

    run_dir = Path(args.run_dir)
    _take_gpu_slot(args)
    path = extract_run_features(_run_config(run_dir), run_dir, progress=_progress(args), evalset=args.evalset)
    print(path)
    return 0


def _print_scores(metrics: dict) -> None:
    from tabulate import tabulate

    def num(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "-"

    rows = [
        [name, rec["status"], num(rec["auroc"]) if rec["auroc"] is not None else rec.get("reason", ""),
         num(rec.get("untrained_auroc"))]
        for name, rec in metrics["scores"].items()
    ]
    print(tabulate(rows, headers=["score", "status", "AUROC", "untrained encoder"], tablefmt="github",
                   disable_numparse=True))
    if metrics.get("aulc") is not None:
        print(f"AULC (learning curve, {metrics['curve_points']} points after epoch 0): {metrics['aulc']:.4f}")


def cmd_score(args: argparse.Namespace) -> int:
    from firm_bench.evaluate import score_run

    run_dir = Path(args.run_dir)
    records = score_run(_run_config(run_dir), run_dir, args.scores, args.k, evalset=args.evalset)
    if args.out:
        runs.atomic_write_json(args.out, records)
    _print_scores(runs.read_json(run_dir / "metrics.json"))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from firm_bench.evaluate import write_metrics

    run_dir = Path(args.run_dir)
    metrics = write_metrics(_run_config(run_dir), run_dir)
    _print_scores(metrics)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from firm_bench import summary

    df = summary.experiment_rows(args.experiment, args.run_dirs, args.scores, args.k, args.evalsets)
    summary.write_csv(df, args.out)
    if args.curves_out:
        summary.write_csv(summary.experiment_curves(args.experiment, args.run_dirs), args.curves_out)
    print(f"{args.out}: {len(df)} rows, {int((df['status'] != 'ok').sum())} failed or missing")
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    from firm_bench import summary

    df = summary.combine(args.inputs)
    summary.write_csv(df, args.out)
    print(f"{args.out}: {len(df)} rows from {len(args.inputs)} experiments")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    import pandas as pd

    from firm_bench import summary

    df = pd.read_csv(args.summary, dtype={"cls": str})
    runs.atomic_write_text(args.out, summary.mean_std_table(df, args.title or args.summary))
    print(args.out)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from firm_bench.evaluate import score_run
    from firm_bench.features import extract_run_features
    from firm_bench.train import train

    cfg, run_dir = _resolve(args)
    _take_gpu_slot(args)
    train(cfg, run_dir, progress=_progress(args))
    extract_run_features(cfg, run_dir, progress=_progress(args))
    score_run(cfg, run_dir)
    print(f"run directory: {run_dir}")
    _print_scores(runs.read_json(run_dir / "metrics.json"))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg, run_dir = _resolve(args)
    print(f"# run directory: {run_dir}")
    print(config_mod.dump(cfg), end="")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from firm_bench.datasets import check_dataset

    print(check_dataset(args.name, root=args.root, download=args.download))
    return 0


def _listing() -> dict[str, list[str]]:
    names = config_mod.registered_names()
    return {
        "datasets": names["dataset.name"],
        "losses": names["loss.name"],
        "scores": names["scores.names"],
        "outliers": names["outliers.name"],
        "encoders": names["model.encoder"],
        "schedules": names["optim.schedule"],
        "presets": config_mod.list_presets(),
    }


def cmd_list(args: argparse.Namespace) -> int:
    for name in _listing()[args.what]:
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firm-bench", description="FIRM anomaly-detection benchmark and paper-replication harness"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name, func, text in [
        ("run", cmd_run, "train, extract features and score one run"),
        ("train", cmd_train, "train one run (resumes from its last checkpoint)"),
        ("config", cmd_config, "print the resolved config and run directory"),
    ]:
        p = sub.add_parser(name, help=text, description=text)
        _add_config_args(p)
        p.set_defaults(func=func)
        if name == "train":
            p.add_argument("--record-failure", action="store_true",
                           help="exit 0 when training fails (NaN loss): the failure is recorded as a result (workflow)")

    evalset_help = "evaluation set: test (the run's own protocol) or ood-<dataset> (Table 4's OOD sets)"
    p = sub.add_parser("features", help="extract and cache a trained run's features")
    p.add_argument("run_dir")
    p.add_argument("--evalset", default="test", help=evalset_help)
    p.add_argument("--no-progress", action="store_true")
    _add_gpu_arg(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("score", help="compute scores from a run's feature cache")
    p.add_argument("run_dir")
    p.add_argument("--evalset", default="test", help=evalset_help)
    p.add_argument("--scores", nargs="+", default=None, help="score names (default: the config's scores.names)")
    p.add_argument("--k", nargs="+", type=int, default=None, help="k of the k-NN scores (default: scores.k)")
    p.add_argument("--out", default=None, help="also write these scores' records to this JSON file (workflow)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("metrics", help="gather a run's score files and learning curve into metrics.json")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("summarize", help="one CSV row per run x score of an experiment")
    p.add_argument("--experiment", required=True)
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--k", nargs="+", type=int, default=[5])
    p.add_argument("--evalsets", nargs="+", default=["test"], help="test and/or ood-<dataset>")
    p.add_argument("--out", required=True)
    p.add_argument("--curves-out", default=None, help="also write the runs' learning curves to this CSV")
    p.add_argument("run_dirs", nargs="*")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("combine", help="concatenate experiment summaries into one CSV")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="*")
    p.set_defaults(func=cmd_combine)

    p = sub.add_parser("table", help="mean ± std table (Markdown) of an experiment summary")
    p.add_argument("summary")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("data", help="dataset utilities")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="verify a dataset on disk: per-class counts and image shape")
    c.add_argument("name")
    c.add_argument("--root", default=None, help="dataset root (default: $FIRM_BENCH_DATA, then ./data)")
    c.add_argument("--download", action="store_true", help="download if missing (needs network)")
    c.set_defaults(func=cmd_data_check)

    from firm_bench import figures, plan_cost, report, tables

    for module in (tables, figures, report, plan_cost):  # paper-table, figure, report, plan
        module.register_cli(sub)

    p = sub.add_parser("list", help="list registered names")
    p.add_argument("what", choices=["datasets", "losses", "scores", "outliers", "encoders", "schedules", "presets"])
    p.set_defaults(func=cmd_list)
    return parser


def _raised(exc: BaseException, module: str, name: str) -> bool:
    """Whether ``exc`` is ``module.name``; never imports ``module`` (a module not loaded raised nothing)."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(exc, getattr(mod, name))


def main(argv: Sequence[str] | None = None) -> int:
    from firm_bench.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # torch-free commands (tables, reports) must not import train/datasets to catch
        if isinstance(exc, (config_mod.ConfigError, UnknownNameError, FileNotFoundError, ValueError)) or _raised(
            exc, "firm_bench.datasets.base", "DatasetError"
        ):
            print(f"firm-bench: error: {exc}", file=sys.stderr)
            return 2
        if _raised(exc, "firm_bench.train", "TrainingFailed"):
            print(f"firm-bench: training failed: {exc} (recorded in status.json)", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
