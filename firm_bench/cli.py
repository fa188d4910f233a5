"""The ``firm-bench`` command line: every argparse definition of the package lives here.

Subcommands parse their arguments and call one library function each, so
Snakemake rules, tests and users reach the same code::

    firm-bench run      [--preset P] [--config F] [--set k=v ...] [--run-dir D]   # train + features + score
    firm-bench train    [--preset P] [--config F] [--set k=v ...] [--run-dir D]
    firm-bench train-pack [--preset P] [--set k=v ...] --member DIR [k=v ...] --member DIR ...   # one fused model
    firm-bench features RUN_DIR [--evalset test|ood-<name>]
    firm-bench score    RUN_DIR [--scores cos kde ...] [--k 1 5]
    firm-bench metrics | summarize | combine | table        # reading results (no torch)
    firm-bench paper-table NAME | figure NAME | report [--partial]   # the paper's outputs
    firm-bench claims [--config F] [--partial]               # the paper's claims, checked (results/claims.md)
    firm-bench plan TARGET                                   # runs and GPU-hours of a target
    firm-bench status [WORKFLOW_CONFIG | RUNS_DIR]            # the grid at a glance (no torch)
    firm-bench data check NAME [--root DIR] [--download]
    firm-bench list {datasets,losses,scores,outliers,encoders,schedules,presets}
    firm-bench config [--preset P] [--config F] [--set k=v ...]
    firm-bench catalog [--write | --check]                  # the registry snapshot planning reads

A run directory holds its resolved config, so ``features`` and ``score``
need only the directory. User errors (``core.errors.USER_ERRORS``) print one
line and exit 2; a recorded training failure exits 1; SIGINT / SIGTERM during
training save a checkpoint at the epoch's end and exit 130 / 143, saying how
to resume.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help=f"bundled preset ({', '.join(config_mod.list_presets())})")
    p.add_argument("--config", default=None, help="YAML file of overrides (applied after the preset)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one key, e.g. --set optim.epochs=50 --set loss.name=ntxent (repeatable)",
    )
    p.add_argument("--recipe", default=None, help="recipe name recorded in the config and run directory (default: the preset)")
    _add_progress_args(p)
    p.add_argument("--exit-with", type=int, default=None, metavar="PID",
                   help="stop (SIGTERM) when process PID exits; the workflow passes Snakemake's PID, so a killed "
                        "Snakemake leaves no training behind")
    _add_gpu_arg(p)


def _add_progress_args(p: argparse.ArgumentParser) -> None:
    from firm_bench.run.monitor import MODES  # torch-free

    p.add_argument("--progress", choices=MODES, default="auto",
                   help="training progress: a bar (terminal), lines (log files: epoch, loss, AUROC, images/s, ETA), "
                        "off; auto = bar on a terminal, else lines")
    p.add_argument("--progress-every", type=int, default=None, metavar="N",
                   help="with --progress lines: a line every N epochs (default: eval.every)")
    p.add_argument("--no-progress", action="store_true", help="no progress output (= --progress off)")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    _add_recipe_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default: results/runs/<dataset>/<cls>/...)")
    p.add_argument("--runs-root", default="results/runs", help="root of the default run directories")


def _add_workflow_job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record-failure", action="store_true",
                   help="exit 0 when training fails (NaN loss): the failure is recorded as a result (workflow)")
    p.add_argument("--in-workflow", action="store_true",
                   help="a job of the Snakemake workflow: errors say what to do in the workflow")


def _add_gpu_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu-slots", type=int, default=0, metavar="N",
        help="pin this job to one of N local GPUs through lock-file slots (0: off; ignored under SLURM)",
    )


def _take_gpu_slot(args: argparse.Namespace) -> None:
    from firm_bench.planning.gpu_slots import acquire_gpu_slot

    gpu = acquire_gpu_slot(getattr(args, "gpu_slots", 0))
    if gpu is not None:
        print(f"firm-bench: GPU slot on GPU {gpu} (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})",
              file=sys.stderr)


def _resolve(args: argparse.Namespace) -> tuple[dict, Path]:
    """The run config and directory; without --recipe the recipe names what the overrides change (a sweep
    from the command line never shares a run directory: ``config.resolve(name_recipe=True)``)."""
    cfg = config_mod.resolve(args.preset, args.config, args.overrides, name_recipe=not args.recipe)
    if args.recipe:
        cfg["recipe"] = args.recipe
    run_dir = Path(args.run_dir) if args.run_dir else runs.run_dir_for(cfg, args.runs_root)
    if getattr(args, "exit_with", None) is not None:
        from firm_bench.core.lock import exit_with

        exit_with(args.exit_with)
    return cfg, run_dir


def _run_config(run_dir: Path) -> dict:
    """The run's recorded config, its checksum verified (``rundir.read_run_config``; never filled in from
    a damaged file), validated."""
    return config_mod.validate(runs.read_run_config(run_dir))


def _progress(args: argparse.Namespace) -> bool | str:
    if getattr(args, "no_progress", False):
        return "off" if hasattr(args, "progress") else False
    return getattr(args, "progress", True)


@contextlib.contextmanager
def _workflow_errors(args: argparse.Namespace) -> Iterator[None]:
    """A recipe mismatch in a workflow job says what to do in the workflow (``--in-workflow``)."""
    from firm_bench.core.errors import RecipeMismatch

    try:
        yield
    except RecipeMismatch as exc:
        if args.in_workflow:
            raise config_mod.ConfigError(exc.in_workflow()) from None
        raise


def cmd_train(args: argparse.Namespace) -> int:
    from firm_bench.core.errors import TrainingFailed
    from firm_bench.run.train import train

    cfg, run_dir = _resolve(args)
    _take_gpu_slot(args)
    try:
        with _workflow_errors(args):
            result = train(cfg, run_dir, progress=_progress(args), progress_every=args.progress_every)
    except TrainingFailed as exc:
        if not args.record_failure:
            raise
        print(f"firm-bench: training failed: {exc} (recorded in {run_dir}/status.json)", file=sys.stderr)
        return 0
    print(json.dumps({"run_dir": str(run_dir), "final_auroc": result.final_auroc, "epochs": result.epochs}))
    return 0


def cmd_train_pack(args: argparse.Namespace) -> int:
    from firm_bench.run.train import train_pack

    if not args.members:
        raise config_mod.ConfigError("train-pack needs at least one --member RUN_DIR [KEY=VALUE ...]")
    cfgs, run_dirs = [], []
    for run_dir, *pairs in args.members:
        cfg = config_mod.resolve(args.preset, args.config, [*args.overrides, *pairs])
        if args.recipe:
            cfg["recipe"] = args.recipe
        cfgs.append(cfg)
        run_dirs.append(Path(run_dir))
    _take_gpu_slot(args)
    with _workflow_errors(args):
        results = train_pack(cfgs, run_dirs, progress=_progress(args), progress_every=args.progress_every)
    states = [runs.read_json(r.run_dir / runs.TRAINED_FILE).get("state") for r in results]
    print(json.dumps([{"run_dir": str(r.run_dir), "state": s, "final_auroc": r.final_auroc, "epochs": r.epochs}
                      for r, s in zip(results, states)]))
    failed = [str(r.run_dir) for r, s in zip(results, states) if s != "ok"]
    if failed and not args.record_failure:
        print(f"firm-bench: training failed for {', '.join(failed)} (recorded in their status.json)", file=sys.stderr)
        return 1
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from firm_bench.run.features import extract_run_features

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
    from firm_bench.run.score import score_run

    run_dir = Path(args.run_dir)
    records = score_run(_run_config(run_dir), run_dir, args.scores, args.k, evalset=args.evalset)
    if args.out:
        runs.atomic_write_json(args.out, records)
    _print_scores(runs.read_json(run_dir / "metrics.json"))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from firm_bench.records.metrics import write_metrics

    run_dir = Path(args.run_dir)
    metrics = write_metrics(_run_config(run_dir), run_dir)
    _print_scores(metrics)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from firm_bench.records import summary

    df = summary.experiment_rows(args.experiment, args.run_dirs, args.scores, args.k, args.evalsets)
    summary.write_csv(df, args.out)
    if args.curves_out:
        summary.write_csv(summary.experiment_curves(args.experiment, args.run_dirs), args.curves_out)
    print(f"{args.out}: {len(df)} rows, {int((df['status'] != 'ok').sum())} failed or missing")
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    from firm_bench.records import summary

    df = summary.combine(args.inputs)
    summary.write_csv(df, args.out)
    print(f"{args.out}: {len(df)} rows from {len(args.inputs)} experiments")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    import pandas as pd

    from firm_bench.records import summary

    df = pd.read_csv(args.summary, dtype={"cls": str})
    runs.atomic_write_text(args.out, summary.mean_std_table(df, args.title or args.summary))
    print(args.out)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from firm_bench.run.features import extract_run_features
    from firm_bench.run.monitor import progress_mode
    from firm_bench.run.score import score_run
    from firm_bench.run.train import train

    cfg, run_dir = _resolve(args)
    _take_gpu_slot(args)
    with runs.writing(run_dir, "run"):  # the three steps as one: no other process between them
        train(cfg, run_dir, progress=_progress(args), progress_every=args.progress_every)
        extract_run_features(cfg, run_dir, progress=progress_mode(_progress(args)) == "bar")
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
    from firm_bench.core.catalog import config_names

    names = config_names()
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



# --------------------------------------------------------------------------- #
# paper outputs, planning, the catalog
# --------------------------------------------------------------------------- #
TOLERANCE_HELP = "agreement tolerance in AUROC points (default: the tables' DEFAULT_TOLERANCE, 1 point)"


def cmd_paper_table(args: argparse.Namespace) -> int:
    from firm_bench.paper.tables import DEFAULT_TOLERANCE, write_table

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    for path in write_table(args.name, args.summaries, args.out_dir, k=args.k, tolerance=tolerance,
                            partial=args.partial):
        print(path)
    return 0


def cmd_figure(args: argparse.Namespace) -> int:
    from firm_bench.paper.figures import write_figure

    for path in write_figure(args.name, args.summaries, args.curves, args.out_dir, threads=args.threads,
                             partial=args.partial, k=args.k):
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from firm_bench.paper.report import build_report
    from firm_bench.paper.tables import DEFAULT_TOLERANCE

    print(build_report(args.config, args.out, summary_dir=args.summary_dir, tables_dir=args.tables_dir,
                       figures_dir=args.figures_dir, partial=args.partial,
                       tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
                       threads=args.threads, claims_csv=args.claims_csv, claims_forest=args.claims_forest))
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    """``firm-bench claims``: verdicts on the paper's claims from whatever summaries exist."""
    from firm_bench.paper.claims import write_claims
    from firm_bench.planning import grid

    plan = grid.plan(grid.load_workflow_config(args.config))
    missing: list[str] = []
    if args.summaries is None:  # the config's experiments: the summaries and curves built so far
        summary_dir = Path(args.summary_dir)
        summaries = [summary_dir / f"{e}.csv" for e in plan.experiments]
        missing = [str(p) for p in summaries if not p.is_file()]
        summaries = [p for p in summaries if p.is_file()]
        curves = [p.with_name(f"{p.stem}_curves.csv") for p in summaries]
        curves = [p for p in curves if p.is_file()]
    else:
        summaries, curves = args.summaries, args.curves
    for path in write_claims(summaries, curves, args.out, args.csv, None if args.no_forest else args.forest,
                             args.partial, claims_file=args.claims_file, plan=plan, missing=missing,
                             config_label=str(args.config)):
        print(path)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``firm-bench plan``: print the cost table (or JSON) of a target."""
    from firm_bench.planning.cost import (
        Throughput,
        default_throughput,
        format_table,
        plan_cost,
        throughput_from_json,
    )
    from firm_bench.planning.grid import load_workflow_config, validate_config

    cfg = load_workflow_config(args.configfile)
    if args.pack_runs is not None:
        cfg = {**cfg, "pack_runs": args.pack_runs}
    pack_runs = int(validate_config(cfg)["pack_runs"])
    if args.views_per_s:
        tp = Throughput(float(args.views_per_s), "--views-per-s")
    elif args.throughput_json:
        tp = throughput_from_json(args.throughput_json, args.variant, pack_runs)
    else:
        tp = default_throughput(pack_runs)
    costs = plan_cost(cfg, args.target, tp)
    if args.json:
        print(json.dumps({"throughput": tp.__dict__, "pack_runs": pack_runs, "costs": [c.row() for c in costs]},
                         indent=2))
    else:
        print(format_table(costs, tp, pack_runs))
    return 0



def cmd_status(args: argparse.Namespace) -> int:
    """``firm-bench status``: the runs of a workflow config (or every run under a directory), from their files."""
    from firm_bench.records.status import find_run_dirs, format_status, grid_status

    target = Path(args.target)
    if target.is_dir():
        root = str(target)
        states = grid_status(find_run_dirs(target))
        title = f"runs under {target}"
    else:
        from firm_bench.planning.grid import load_workflow_config, plan

        p = plan(load_workflow_config(args.target), only=args.experiment or None)
        if args.runs_root:
            p.config["runs_root"] = args.runs_root
        root = p.config["runs_root"]
        experiments = {e: p.run_dirs(e) for e in p.experiments}
        states = grid_status([d for dirs in experiments.values() for d in dirs], experiments)
        title = f"grid of {args.target} (runs under {root})"
    if args.json:
        print(json.dumps([st.row() for st in states], indent=1))
    else:
        print(format_status(states, title, root=root, show_pending=args.pending), end="")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from firm_bench import build_catalog
    from firm_bench.core import catalog

    if args.write:
        build_catalog.write()
        print(f"wrote {catalog.SNAPSHOT}")
        return 0
    if args.check:
        stale = build_catalog.is_stale()
        print(f"{catalog.SNAPSHOT}: {'stale: run firm-bench catalog --write' if stale else 'up to date'}")
        return 1 if stale else 0
    print(json.dumps(build_catalog.build(), indent=1, sort_keys=True))
    return 0


def _add_paper_commands(sub: argparse._SubParsersAction) -> None:
    """paper-table, figure, report, claims, plan. Choices come from the catalog snapshot (no torch, no pandas)."""
    from firm_bench.core import catalog

    tables, figures = catalog.names("tables"), catalog.names("figures")
    p = sub.add_parser("paper-table", help="render a paper table: ours beside the paper's (md, tex, csv)",
                       description="A paper table, ours beside the paper's: results/tables/NAME.{md,tex,csv}.")
    p.add_argument("name", choices=tables, metavar="NAME", help=f"one of: {', '.join(tables)}")
    p.add_argument("summaries", nargs="*", help="summaries of the experiments feeding it (results/summary/<e>.csv)")
    p.add_argument("--out-dir", default="results/tables", help="where NAME.md, NAME.tex and NAME.csv go")
    p.add_argument("--k", type=int, default=None, help="k of the k-NN scores shown (default: eval.k of the schema)")
    p.add_argument("--tolerance", type=float, default=None, help=TOLERANCE_HELP)
    p.add_argument("--partial", action="store_true", help="label absent results 'pending' (runs still going)")
    p.set_defaults(func=cmd_paper_table)

    p = sub.add_parser("figure", help="draw a paper figure from our runs (PNG and PDF)",
                       description="A paper figure from our runs: figures/NAME.{png,pdf}.")
    p.add_argument("name", choices=figures, metavar="NAME", help=f"one of: {', '.join(figures)}")
    p.add_argument("--summaries", nargs="*", default=[], help="summaries of the experiments feeding it")
    p.add_argument("--curves", nargs="*", default=[], help="learning curves of those experiments (<e>_curves.csv)")
    p.add_argument("--out-dir", default="figures", help="where NAME.png and NAME.pdf go")
    p.add_argument("--threads", type=int, default=1, help="threads of t-SNE (n_jobs)")
    p.add_argument("--k", type=int, default=None, help="k of the k-NN scores (default: eval.k of the schema)")
    p.add_argument("--partial", action="store_true", help="label panels without data 'pending' (runs still going)")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("report", help="the replication report: every paper table and figure in one HTML page",
                       description="The replication report: one offline HTML page with every paper table and figure "
                                   "and the paper's claims, checked.")
    p.add_argument("--config", default="workflow/config/paper.yaml", help="workflow config (default: %(default)s)")
    p.add_argument("--out", default="results/report/index.html", help="the page (default: %(default)s)")
    p.add_argument("--partial", action="store_true",
                   help="summarise the runs that exist now and render everything into <out dir>/partial/")
    p.add_argument("--summary-dir", default="results/summary")
    p.add_argument("--tables-dir", default="results/tables")
    p.add_argument("--figures-dir", default="figures")
    p.add_argument("--tolerance", type=float, default=None, help=TOLERANCE_HELP)
    p.add_argument("--threads", type=int, default=1, help="threads of the t-SNE figures (partial view)")
    p.add_argument("--claims-csv", default="results/claims.csv",
                   help="the claims table firm-bench claims wrote (complete view; default: %(default)s)")
    p.add_argument("--claims-forest", default="results/claims_forest.png", help="its forest plot (complete view)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "claims", help="check the paper's claims on our runs: paired tests, Holm, a verdict per claim",
        description="The paper's claims, checked (firm_bench/paper/claims.yaml; docs/CLAIMS.md): results/claims.md "
                    "and .csv and a forest plot, from whatever summaries exist. A claim whose runs are absent reads "
                    "'not run' ('pending' with --partial) and names what is missing.")
    p.add_argument("--config", default="workflow/config/paper.yaml",
                   help="workflow config whose experiments are read (a file, or a bundled one by name); "
                        "default %(default)s")
    p.add_argument("--summary-dir", default="results/summary",
                   help="where the experiments' summaries are (<experiment>.csv, <experiment>_curves.csv)")
    p.add_argument("--summaries", nargs="*", default=None,
                   help="these summary files instead of the config's (each must exist unless --partial)")
    p.add_argument("--curves", nargs="*", default=[], help="with --summaries: their learning curves")
    p.add_argument("--out", default="results/claims.md", help="the verdicts, Markdown (default: %(default)s)")
    p.add_argument("--csv", default="results/claims.csv", help="one row per claim, every statistic")
    p.add_argument("--forest", default="results/claims_forest.png", help="forest plot PNG (a PDF beside it)")
    p.add_argument("--no-forest", action="store_true", help="no forest plot")
    p.add_argument("--claims-file", default=None,
                   help="claims YAML (default: the packaged firm_bench/paper/claims.yaml)")
    p.add_argument("--partial", action="store_true",
                   help="runs still going: claims without results read 'pending', absent --summaries are skipped")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("plan", help="runs, epochs, images and GPU-hours of a paper target",
                       description="Runs, epochs, images and GPU-hours a paper target needs, from a benchmark's throughput.")
    p.add_argument("target", help="an experiment (table1a, fig5, ...), a paper item (table7) or all")
    p.add_argument("--configfile", default="workflow/config/paper.yaml",
                   help="workflow config file, or a bundled one by name (paper, mini, smoke); default %(default)s "
                        "(the bundled paper config where that file is absent)")
    p.add_argument("--throughput-json", default=None,
                   help="JSON of benchmarks/bench_fast.py (its best variant) or bench_train.py")
    p.add_argument("--variant", default=None, help="with --throughput-json: a bench_fast variant instead of the best")
    p.add_argument("--views-per-s", type=float, default=None, help="throughput to assume, training views/s per GPU")
    p.add_argument("--pack-runs", type=int, default=None, metavar="K",
                   help="plan with pack_runs K (default: the workflow config's): train jobs and the throughput of packs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plan)


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
            _add_workflow_job_args(p)

    text = "train several compatible runs at once as one fused model (one GPU job; each run keeps its directory)"
    p = sub.add_parser("train-pack", help=text, description=text + (
        ". The options before the first --member apply to every run; each --member names a run directory "
        "and the overrides of that run (seed, class, loss, outliers, ...). Runs may differ only in the keys "
        "firm_bench.core.packs.PACK_VARYING lists. Finished runs are not trained again; each run resumes from "
        "its own last checkpoint."))
    _add_recipe_args(p)
    p.add_argument("--member", dest="members", action="append", nargs="+", default=[], metavar=("RUN_DIR", "KEY=VALUE"),
                   help="a run of the pack: its directory, then its own overrides (repeat per run)")
    _add_workflow_job_args(p)
    p.set_defaults(func=cmd_train_pack)

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

    _add_paper_commands(sub)

    p = sub.add_parser("status", help="the grid at a glance: runs done / running / stopped / failed / pending",
                       description="The runs of a workflow config (or every run under a directory) at a glance, "
                                   "from the run directories alone (no Snakemake, no torch): counts per state and "
                                   "experiment, each running run's epoch and ETA, what stopped or failed and why.")
    p.add_argument("target", nargs="?", default="workflow/config/paper.yaml",
                   help="a workflow config (file, or a bundled one by name: paper, mini, smoke), or a directory of "
                        "run directories (default: %(default)s)")
    p.add_argument("--runs-root", default=None, help="with a workflow config: its runs_root, if elsewhere")
    p.add_argument("--experiment", nargs="+", default=None, help="only these experiments of the config")
    p.add_argument("--pending", action="store_true", help="also list the runs not started")
    p.add_argument("--json", action="store_true", help="one JSON record per run instead")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("catalog", help="the catalog snapshot of every registered name (planning reads it)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite firm_bench/schema/catalog.json from the registries")
    group.add_argument("--check", action="store_true", help="exit 1 when the snapshot differs from the registries")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("list", help="list registered names")
    p.add_argument("what", choices=["datasets", "losses", "scores", "outliers", "encoders", "schedules", "presets"])
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import shlex

    from firm_bench.core.errors import USER_ERRORS, TrainingFailed, TrainingInterrupted

    args = build_parser().parse_args(argv)
    command = shlex.join(["firm-bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except TrainingInterrupted as exc:
        print(f"firm-bench: interrupted by {exc.signame} at epoch {exc.epoch}/{exc.epochs}: checkpoint saved in "
              f"{exc.run_dir}/checkpoints/last.pt, status.json says interrupted. Resume with the same command: "
              f"{command} (a Snakemake job: rerun snakemake; it resumes from the checkpoint)", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"firm-bench: interrupted (SIGINT); every file is written whole or not at all, so rerun the same "
              f"command to continue: {command}", file=sys.stderr)
        return 130
    except TrainingFailed as exc:
        print(f"firm-bench: training failed: {exc} (recorded in status.json)", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        print(f"firm-bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
