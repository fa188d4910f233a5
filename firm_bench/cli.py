"""The ``firm-bench`` command line: every argparse definition of the package lives here.

Subcommands parse their arguments and call one library function each, so
Snakemake rules, tests and users reach the same code. ``firm-bench --help``
lists them in two groups (:data:`COMMANDS`, the one table of their names,
groups and one-line descriptions): what a user types (``run``, ``list``,
``config``, ``plan``, ``status``, ``report``, ``claims``, ...) and what the
workflow's rules call (``train-pack``, ``features``, ``score``, ``metrics``,
``summarize``, ...). Every command that reads a workflow config takes it as
``--configfile F`` (Snakemake's spelling; a file, or a bundled config by
name); ``--config F`` of ``run``/``train``/``config`` is a run-override YAML.

A run directory holds its resolved config, so ``features`` and ``score``
need only the directory. User errors (``core.errors.USER_ERRORS``) print one
line and exit 2; a recorded training failure exits 1; SIGINT / SIGTERM during
training save a checkpoint at the epoch's end and exit 130 / 143, saying how
to resume. Output piped into a reader that closes early (``| head``) ends
quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs


#: Every subcommand: its group in ``firm-bench --help`` and its one-line description (also its --help's first line).
USER, WORKFLOW = "user commands", "workflow internals (what the Snakemake rules call; rarely typed)"
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (USER, "train one run, extract its features and score it (a finished run: print its results)"),
    "list": (USER, "the registered names and what each means (datasets, losses, scores, tables, ...)"),
    "config": (USER, "the resolved run config and its run directory, or one key's meaning (--describe KEY)"),
    "data": (USER, "dataset utilities: verify a dataset on disk (data check NAME)"),
    "plan": (USER, "runs, epochs, images and GPU-hours a paper target needs (workflow config: --configfile)"),
    "status": (USER, "the runs of a workflow config or a directory at a glance: done / running / failed / pending"),
    "report": (USER, "the replication report: every paper table and figure in one offline HTML page"),
    "claims": (USER, "the paper's claims checked on our runs: paired by seed, one Holm family, a verdict per claim"),
    "paper-table": (USER, "one paper table from experiment summaries: ours beside the paper's (md, tex, csv)"),
    "figure": (USER, "one paper figure from experiment summaries and learning curves (PNG and PDF)"),
    "train": (WORKFLOW, "train one run (resumes from its last checkpoint); `run` = train + features + score"),
    "train-pack": (WORKFLOW, "train several compatible runs at once as one fused model (one GPU job)"),
    "features": (WORKFLOW, "extract and cache a trained run's features (every rotation, the test crops)"),
    "score": (WORKFLOW, "compute a run's detection scores from its feature cache (scores/, metrics.json)"),
    "metrics": (WORKFLOW, "gather a run's score files and learning curve into metrics.json"),
    "summarize": (WORKFLOW, "one CSV row per run x score of an experiment (results/summary/<experiment>.csv)"),
    "combine": (WORKFLOW, "concatenate experiment summaries into one CSV (results/summary.csv)"),
    "table": (WORKFLOW, "an experiment summary as a plain mean ± std Markdown table (paper-table: the paper's layout)"),
}

DEFAULT_WORKFLOW_CONFIG = "workflow/config/paper.yaml"


def _overview() -> str:
    """``firm-bench --help``'s list of subcommands, by group (from :data:`COMMANDS`)."""
    width = max(map(len, COMMANDS)) + 2
    lines = []
    for group in (USER, WORKFLOW):
        lines += ["", f"{group}:"]
        lines += [f"  {name:<{width}}{text}" for name, (g, text) in COMMANDS.items() if g == group]
    lines += ["", "First steps: firm-bench run --preset mini (one run, ~2 min on a CPU); firm-bench list; "
              "firm-bench COMMAND --help."]
    return "\n".join(lines[1:])


def _command(sub: argparse._SubParsersAction, name: str, details: str = "") -> argparse.ArgumentParser:
    """Subcommand ``name`` with its :data:`COMMANDS` description (and ``details`` after it in its --help)."""
    text = COMMANDS[name][1]
    return sub.add_parser(name, description=f"{text[0].upper()}{text[1:]}." + (f" {details}" if details else ""))


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new one's ``dest`` and says, in one line, to use the new one."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"firm-bench: note: {parser.prog} {option_string} is deprecated; it means {self.new} "
              f"(the same value)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_configfile_arg(p: argparse.ArgumentParser, *old: str, default: str | None = DEFAULT_WORKFLOW_CONFIG) -> None:
    """``--configfile F``: the workflow config, as Snakemake spells it; ``old`` spellings kept as hidden aliases."""
    from firm_bench.planning.grid import bundled_configs

    p.add_argument("--configfile", default=default, metavar="F",
                   help=f"workflow config: a YAML file, or a bundled one by name ({', '.join(bundled_configs())}); "
                        f"default {default or 'none'}" + (" (the bundled paper config where that file is absent)"
                                                          if default == DEFAULT_WORKFLOW_CONFIG else ""))
    for flag in old:
        p.add_argument(flag, dest="configfile", action=_DeprecatedAlias, new="--configfile", help=argparse.SUPPRESS)


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
    p.add_argument("--retrain", action="store_true",
                   help="train from scratch even where the run directory holds a checkpoint or a finished run "
                        "(whose checkpoints were deleted: kept without this flag); its results are replaced")
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
    _exit_with(args)
    return cfg, run_dir


def _exit_with(args: argparse.Namespace) -> None:
    """``--exit-with PID``: stop (SIGTERM to ourselves) when process PID exits (``core.lock.exit_with``)."""
    if getattr(args, "exit_with", None) is not None:
        from firm_bench.core.lock import exit_with

        exit_with(args.exit_with)


def _run_config(run_dir: Path) -> dict:
    """The run's recorded config, its checksum verified (``rundir.read_run_config``; never filled in from
    a damaged file), validated."""
    recorded = runs.read_run_config(run_dir)
    config_mod.check_format(recorded, run_dir / runs.CONFIG_FILE)
    return config_mod.validate(recorded)


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
            result = train(cfg, run_dir, progress=_progress(args), progress_every=args.progress_every,
                           retrain=args.retrain)
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
    for run_dir, *pairs in args.members:  # each member's recipe named as `train` names one (config.recipe_name)
        cfg = config_mod.resolve(args.preset, args.config, [*args.overrides, *pairs], name_recipe=not args.recipe)
        if args.recipe:
            cfg["recipe"] = args.recipe
        cfgs.append(cfg)
        run_dirs.append(Path(run_dir))
    _exit_with(args)
    _take_gpu_slot(args)
    with _workflow_errors(args):
        results = train_pack(cfgs, run_dirs, progress=_progress(args), progress_every=args.progress_every,
                             retrain=args.retrain)
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
    cfg = _run_config(run_dir)
    records = (_score_refreshed(cfg, run_dir, args) if args.refresh
               else score_run(cfg, run_dir, args.scores, args.k, evalset=args.evalset))
    if args.out:
        runs.atomic_write_json(args.out, records)
    _print_scores(runs.read_json(run_dir / "metrics.json"))
    return 0


def _score_refreshed(cfg: dict, run_dir: Path, args: argparse.Namespace, wait_s: float = 1800.0) -> dict:
    """``score --refresh`` (the workflow's score jobs): a stale feature cache (``records.chain``: another
    checkpoint, other features settings, another run's) is extracted again, then scored.

    The score jobs of one run's families run together: the first to hold the evaluation set's features
    extracts (``run.features.refresh_run_features`` checks again under the lock), the others wait for it
    (up to ``wait_s``) and score the new cache.
    """
    import time

    from firm_bench.core.errors import RunDirLocked, StaleRecord
    from firm_bench.run.features import refresh_run_features
    from firm_bench.run.score import score_run

    deadline, refreshed, waited = time.monotonic() + wait_s, 0, False
    while True:
        try:
            try:
                return score_run(cfg, run_dir, args.scores, args.k, evalset=args.evalset)
            except StaleRecord as exc:
                if refreshed >= 2:  # still stale after extracting: not something extracting mends
                    raise
                print(f"firm-bench: {exc.path} {exc.problem}: extracting the features again", file=sys.stderr)
            if not refresh_run_features(cfg, run_dir, evalset=args.evalset):
                print("firm-bench: the features are fresh (another job extracted them)", file=sys.stderr)
            refreshed += 1
        except RunDirLocked as exc:  # another job of the run extracts the features (or scores): wait for it
            if time.monotonic() > deadline:
                raise
            if not waited:
                print(f"firm-bench: waiting for the run directory ({exc})", file=sys.stderr)
            waited = True
            time.sleep(2.0)


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
    from firm_bench.records import summary

    df = summary.read_csv(args.summary)
    runs.atomic_write_text(args.out, summary.mean_std_table(df, args.title or args.summary))
    print(args.out)
    return 0


def _say(text: str) -> None:
    """One line of ``firm-bench run``'s account of what it does (stderr, beside the training's progress lines)."""
    print(f"firm-bench: {text}", file=sys.stderr, flush=True)


def _run_header(cfg: dict, run_dir: Path) -> str:
    """What a run trains and where: dataset and class, loss, outliers, recipe, epochs, device, threads, run dir."""
    import torch

    from firm_bench.core.facts.datasets import dataset

    data = cfg["dataset"]
    classes = dataset(data["name"]).classes
    cls = data["cls"]
    index = dataset(data["name"]).class_index(cls) if cls != "all" else None
    shown = f"class {cls}" + (f" ({classes[index]})" if index is not None and str(cls) != classes[index] else "")
    optim = cfg["optim"]
    device = runs.pick_device(cfg["device"])
    threads = cfg["threads"] or torch.get_num_threads()
    return (f"run: {cfg['loss']['name']} on {data['name']} {shown}, outliers {cfg['outliers']['name']}, "
            f"recipe {cfg['recipe']}, {optim['epochs']} epoch{'s' * (optim['epochs'] != 1)} of batch {optim['batch_size']}, "
            f"on {device} with {threads} threads -> {run_dir}")


def _finished_metrics(cfg: dict, run_dir: Path) -> dict | None:
    """The run's metrics.json when ``run_dir`` holds this config's run trained, extracted and scored; else None."""
    metrics_file = run_dir / "metrics.json"
    if not (metrics_file.is_file() and (run_dir / runs.TRAINED_FILE).is_file() and (run_dir / runs.CONFIG_FILE).is_file()):
        return None
    if runs.read_json(run_dir / runs.TRAINED_FILE).get("state") != "ok":
        return None
    recorded = runs.read_run_config(run_dir)
    if config_mod.recorded_differences(recorded, cfg, run_dir / runs.CONFIG_FILE) or recorded.get("features") != cfg["features"]:
        return None  # another recipe or other features: the normal path says what differs, or extracts again
    from firm_bench.core.errors import StaleRecord
    from firm_bench.core.facts.method import uses_k
    from firm_bench.records import chain

    metrics = runs.read_json(metrics_file)
    try:  # the final model's scores of this run, else extracted and scored again
        chain.check_metrics(run_dir, metrics)
    except StaleRecord:
        return None
    wanted = {runs.score_key(n, k) for n in cfg["scores"]["names"] for k in (cfg["scores"]["k"] if uses_k(n) else [None])}
    return metrics if wanted <= set(metrics.get("scores", {})) else None


def _new_root(run_dir: Path) -> Path | None:
    """The topmost directory of ``run_dir``'s path that does not exist yet (None: the run directory exists)."""
    new = None
    for path in [run_dir, *run_dir.parents]:
        if path.exists():
            return new
        new = path
    return new


def cmd_run(args: argparse.Namespace) -> int:
    import shutil
    import time

    from firm_bench.core.errors import USER_ERRORS
    from firm_bench.run.monitor import clock, progress_mode

    cfg, run_dir = _resolve(args)
    done = None if args.reevaluate else _finished_metrics(cfg, run_dir)
    if done is not None:  # before torch is imported: instant
        _say(f"{run_dir} is finished (trained, features extracted, scored): its results. "
             "--reevaluate extracts the features and scores them again")
        print(f"run directory: {run_dir}")
        _print_scores(done)
        return 0
    from firm_bench.run.features import extract_run_features
    from firm_bench.run.score import score_run
    from firm_bench.run.train import train

    _take_gpu_slot(args)
    mode = progress_mode(_progress(args))
    talk = _say if mode != "off" else (lambda text: None)
    _say(_run_header(cfg, run_dir))
    created = _new_root(run_dir)
    try:
        with runs.writing(run_dir, "run"):  # the three steps as one: no other process between them
            train(cfg, run_dir, progress=_progress(args), progress_every=args.progress_every)
            f, t0 = cfg["features"], time.monotonic()
            talk(f"features: encoding the training and test images at rotations {', '.join(map(str, f['angles']))}"
                 + (f", {f['crops']} random crops of each test image" if f["crops"] else "")
                 + (", with the trained and the untrained encoder" if f["untrained"] else "") + " ...")
            meta = runs.read_json(extract_run_features(cfg, run_dir, progress=mode == "bar"))
            if meta.get("state") == "ok":
                talk(f"features: {meta['n_bank']} training and {meta['n_test']} test images, {meta['dim']}-d, "
                     f"in {clock(time.monotonic() - t0)}")
            t0 = time.monotonic()
            score_run(cfg, run_dir, on_score=lambda i, n, key: talk(
                f"scoring: {i}/{n} {key} (elapsed {clock(time.monotonic() - t0)})"))
            talk(f"scoring: done in {clock(time.monotonic() - t0)}")
    except USER_ERRORS:
        # a start that failed (no data, a bad option) leaves no run directory behind; a trained epoch stays
        if created is not None and created.is_dir() and not (run_dir / "checkpoints").exists():
            shutil.rmtree(created, ignore_errors=True)
        raise
    print(f"run directory: {run_dir}")
    _print_scores(runs.read_json(run_dir / "metrics.json"))
    return 0


def _schema_node(key: str) -> dict:
    """The run schema's entry of dotted ``key``; ConfigError names the valid keys at the level that failed."""
    node = config_mod.load_schema()
    done: list[str] = []
    for part in key.split("."):
        props = node.get("properties") or {}
        if part not in props:
            where = ".".join(done) or "the top level"
            raise config_mod.ConfigError(f"config --describe: unknown key {key!r}; valid at {where}: "
                                         f"{', '.join(props) or '(none: ' + '.'.join(done) + ' has no sub-keys)'}")
        node, done = props[part], [*done, part]
    return node


def _value_source(args: argparse.Namespace, key: str) -> str:
    """Which layer set ``key`` in the resolved config: --set, the --config file, the preset, or the schema."""
    def has(tree: dict) -> bool:
        return key in config_mod.leaves(tree) or any(k.startswith(key + ".") for k in config_mod.leaves(tree))

    if has(config_mod.parse_overrides(args.overrides)):
        return "--set"
    if args.config and has(config_mod.load_yaml(args.config)):
        return f"--config {args.config}"
    if args.preset and has(config_mod.load_preset(args.preset)):
        return f"preset {args.preset} (firm_bench/presets/{args.preset}.yaml)"
    return "the schema's default"


def _describe(args: argparse.Namespace, key: str) -> str:
    """``config --describe KEY``: the schema's description, default and allowed values, and this config's value."""
    from firm_bench.core.facts import CONFIG_NAMES

    node = _schema_node(key)
    cfg, _ = _resolve(args)
    value = cfg
    for part in key.split("."):
        value = value[part]
    lines = [f"{key}: {node.get('description', '(no description)')}"]
    if node.get("type") == "object" and "properties" in node:
        width = max(map(len, node["properties"])) + 2
        lines += ["", "keys:"] + [f"  {k:<{width}}{_summary(v.get('description'))}" for k, v in node["properties"].items()]
        lines += ["", f"firm-bench config --describe {key}.KEY for one of them"]
        return "\n".join(lines)
    allowed = []
    if "enum" in node:
        allowed.append("one of " + ", ".join(json.dumps(v) for v in node["enum"]))
    if key in CONFIG_NAMES:
        allowed.append("a registered name: " + ", ".join(CONFIG_NAMES[key]) + " (firm-bench list)")
    if "type" in node:
        allowed.append("type " + " or ".join(node["type"] if isinstance(node["type"], list) else [node["type"]]))
    for bound, text in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if bound in node:
            allowed.append(f"{text} {node[bound]}")
    if "pattern" in node:
        allowed.append(f"matching {node['pattern']}")
    shown = "the resolved config" if not (args.preset or args.config or args.overrides) else \
        " ".join(["this config", *([f"(--preset {args.preset})"] if args.preset else [])])
    lines += ["", f"  default:  {json.dumps(node.get('default'))} (firm_bench/schema/run.schema.yaml)",
              f"  allowed:  {'; '.join(allowed) or 'anything'}",
              f"  value:    {json.dumps(value)} in {shown}, set by {_value_source(args, key)}"]
    if key.startswith("optim.momentum"):  # what the momentum keys amount to under this schedule
        lines.append(f"  trains:   momentum {config_mod.momentum_label(cfg)} (schedule {cfg['optim']['schedule']}; "
                     "the label on this run's outputs)")
    return "\n".join(lines)


def _in_schema_order(cfg: dict, node: dict | None = None) -> dict:
    """``cfg`` with its keys in the schema's order (sections and keys as run.schema.yaml lists them)."""
    props = (node if node is not None else config_mod.load_schema()).get("properties") or {}
    ordered = {k: cfg[k] for k in props if k in cfg} | {k: v for k, v in cfg.items() if k not in props}
    return {k: _in_schema_order(v, props[k]) if isinstance(v, dict) and k in props else v for k, v in ordered.items()}


def cmd_config(args: argparse.Namespace) -> int:
    if args.describe:
        print(_describe(args, args.describe))
        return 0
    cfg, run_dir = _resolve(args)
    print(f"# run directory: {run_dir}")
    print(f"# momentum trains as: {config_mod.momentum_label(cfg)} (optim.schedule {cfg['optim']['schedule']})")
    print("# what a key means, its default and allowed values: firm-bench config --describe KEY")
    print(config_mod.dump(_in_schema_order(cfg)), end="")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from firm_bench.datasets import check_dataset

    print(check_dataset(args.name, root=args.root, download=args.download))
    return 0


def _summary(text: str | None) -> str:
    """The first sentence of a docstring or comment, on one line, without reST markup."""
    import re

    para = " ".join((text or "").strip().split("\n\n")[0].split()).replace("``", "")
    match = re.search(r"(?<=[a-z0-9)\]'\"`]{3}[.!?])\s+(?=[A-Z(\[])", para)  # not after e.g. / App.
    return para[: match.start()] if match else para


def _registry_docs(module: str, attr: str) -> list[tuple[str, str]]:
    """(name, first sentence of its docstring) of a registry (imports it: torch)."""
    import importlib
    import inspect

    registry = getattr(importlib.import_module(module), attr)
    return [(name, _summary(inspect.getdoc(obj))) for name, obj in registry.items()]


def _datasets() -> list[tuple[str, str]]:
    from firm_bench.core.facts.datasets import DATASETS

    roles = {"one_class": "one-class protocol", "ood": "OOD test set of Table 4", "oe": "outlier-exposure images"}

    def line(name: str) -> str:
        d = DATASETS[name]
        sizes = {k: sum(v.values()) if isinstance(v, dict) else v for k, v in (d.sizes or {}).items()}
        counts = ", ".join(f"{sizes[k]} {k}" for k in ("train", "test") if k in sizes)
        shown = d.classes if len(d.classes) <= 4 else [*d.classes[:3], "..."]
        classes = f", {len(d.classes)} classes ({', '.join(shown)})" if d.role == "one_class" else ""
        return f"{roles.get(d.role, d.role)}{classes}, {d.image_size} px" + (f", {counts} images" if counts else "")

    return [(name, line(name)) for name in DATASETS]


def _yaml_comment(text: str) -> str:
    """The first sentence of a YAML file's leading comment."""
    lines = []
    for raw in text.splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw.lstrip("#").strip())
    return _summary("\n".join(lines)).split(": ", 1)[-1] if lines and lines[0].split(":")[0].isidentifier() \
        else _summary("\n".join(lines))


def _presets() -> list[tuple[str, str]]:
    from importlib import resources

    return [(n, _yaml_comment(resources.files(config_mod.PRESETS_PACKAGE).joinpath(f"{n}.yaml").read_text()))
            for n in config_mod.list_presets()]


def _workflow_configs() -> list[tuple[str, str]]:
    from importlib import resources

    from firm_bench.planning.grid import BUNDLED, bundled_configs

    return [(n, _yaml_comment(resources.files(BUNDLED).joinpath(f"{n}.yaml").read_text()))
            for n in bundled_configs()]


def _paper_items(key: str) -> list[tuple[str, str]]:
    from firm_bench.core.facts import paper
    from firm_bench.planning.grid import load_workflow_config, paper_item_feeders

    feeders = paper_item_feeders(load_workflow_config(DEFAULT_WORKFLOW_CONFIG))
    return [(name, f"{title} (paper config experiment: {', '.join(feeders.get(name, [])) or 'none'})")
            for name, title in getattr(paper, key.upper()).items()]


def _experiments(configfile: str) -> list[tuple[str, str]]:
    from firm_bench.planning.grid import load_workflow_config, paper_item_feeders, plan

    cfg = load_workflow_config(configfile)
    p = plan(cfg)
    feeds: dict[str, list[str]] = {}
    for item, exps in paper_item_feeders(cfg).items():
        for e in exps:
            feeds.setdefault(e, []).append(item)
    from firm_bench.core.facts.paper import FIGURES, TABLES, title

    return [(e, f"{cfg['experiments'][e].get('title') or (title(e) if e in TABLES or e in FIGURES else e)} "
                f"({len(p.experiments[e])} runs; feeds "
                f"{', '.join(feeds.get(e, [])) or 'no paper item'})") for e in p.experiments]


#: ``firm-bench list WHAT``: what each listing is, and its (name, one-line description) rows
LISTINGS: dict[str, tuple[str, Callable[[argparse.Namespace], list[tuple[str, str]]]]] = {
    "datasets": ("datasets a run trains and tests on (dataset.name, dataset.ood)", lambda a: _datasets()),
    "losses": ("contrastive losses (loss.name)", lambda a: _registry_docs("firm_bench.method.losses", "LOSSES")),
    "outliers": ("synthetic-outlier sources added to each batch (outliers.name)",
                 lambda a: _registry_docs("firm_bench.method.outliers", "OUTLIERS")),
    "scores": ("detection scores computed from the feature cache (scores.names; higher = more normal; in "
               "tables cos_k5 is cos with k = 5)",
               lambda a: _registry_docs("firm_bench.method.scores", "SCORES")),
    "encoders": ("backbones (model.encoder)", lambda a: _registry_docs("firm_bench.method.models", "ENCODERS")),
    "schedules": ("learning-rate schedules (optim.schedule)",
                  lambda a: _registry_docs("firm_bench.method.schedules", "SCHEDULES")),
    "presets": ("run recipes: firm-bench run --preset NAME", lambda a: _presets()),
    "configs": ("bundled workflow configs: snakemake / plan / status / report --configfile NAME",
                lambda a: _workflow_configs()),
    "experiments": ("experiments of a workflow config (--configfile; default the paper's)",
                    lambda a: _experiments(a.configfile)),
    "tables": ("paper tables: firm-bench paper-table NAME, results/tables/NAME.md",
               lambda a: _paper_items("tables")),
    "figures": ("paper figures: firm-bench figure NAME, figures/NAME.png", lambda a: _paper_items("figures")),
}


def cmd_list(args: argparse.Namespace) -> int:
    if args.what is None:  # the categories
        width = max(map(len, LISTINGS)) + 2
        for what, (text, _) in LISTINGS.items():
            print(f"{what:<{width}}{text}")
        print("\nfirm-bench list WHAT: each name with what it is (--names: the names alone)")
        return 0
    rows = LISTINGS[args.what][1](args)
    if args.names:
        for name, _ in rows:
            print(name)
        return 0
    width = max(len(name) for name, _ in rows) + 2
    for name, text in rows:
        print(f"{name:<{width}}{text}".rstrip())
    return 0


# --------------------------------------------------------------------------- #
# paper outputs, planning
# --------------------------------------------------------------------------- #
TOLERANCE_HELP = "agreement tolerance in AUROC points (default: the tables' DEFAULT_TOLERANCE, 1 point)"


def _warn_no_input(item: str, what: str) -> None:
    """A paper table or figure asked for with no summaries: say so, and which experiment's summary feeds it."""
    from firm_bench.planning.grid import load_workflow_config, paper_item_feeders

    feeders = {name: paper_item_feeders(load_workflow_config(name))[item] for name in ("paper", "mini")}
    fed = "; ".join(f"{', '.join(exps)} of the {name} config" for name, exps in feeders.items() if exps) or "none"
    example = next((f"snakemake --cores all results/summary/{exps[0]}.csv" + ("" if name == "paper" else
                    f" --configfile workflow/config/{name}.yaml")
                    for name, exps in feeders.items() if exps), "")
    print(f"firm-bench: warning: no {what} given, so {item} shows no results of ours. It is fed by the summary of "
          f"the experiment {fed} (results/summary/<experiment>.csv" + (f"; build it with `{example}`" if example else "")
          + "); pass them as arguments, or let Snakemake make it.", file=sys.stderr)


def cmd_paper_table(args: argparse.Namespace) -> int:
    from firm_bench.paper.tables import DEFAULT_TOLERANCE, write_table

    if not args.summaries:
        _warn_no_input(args.name, "summaries")
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    for path in write_table(args.name, args.summaries, args.out_dir, k=args.k, tolerance=tolerance,
                            partial=args.partial):
        print(path)
    return 0


def cmd_figure(args: argparse.Namespace) -> int:
    from firm_bench.paper.figures import write_figure

    if not args.summaries and not args.curves:
        _warn_no_input(args.name, "--summaries or --curves")
    for path in write_figure(args.name, args.summaries, args.curves, args.out_dir, threads=args.threads,
                             partial=args.partial, k=args.k):
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from firm_bench.paper.report import build_report
    from firm_bench.paper.tables import DEFAULT_TOLERANCE

    print(build_report(args.configfile, args.out, summary_dir=args.summary_dir, tables_dir=args.tables_dir,
                       figures_dir=args.figures_dir, partial=args.partial,
                       tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
                       threads=args.threads, claims_csv=args.claims_csv, claims_forest=args.claims_forest))
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    """``firm-bench claims``: verdicts on the paper's claims from whatever summaries exist."""
    from firm_bench.paper.claims import write_claims
    from firm_bench.planning import grid

    plan = grid.plan(grid.load_workflow_config(args.configfile))
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
                             config_label=str(args.configfile)):
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

    if args.runs_dir is not None and not Path(args.runs_dir).is_dir():  # the old spelling: status WORKFLOW_CONFIG
        print(f"firm-bench: note: `firm-bench status {args.runs_dir}` is deprecated for a workflow config; "
              f"it means `firm-bench status --configfile {args.runs_dir}`", file=sys.stderr)
        args.configfile, args.runs_dir = args.runs_dir, None
    if args.runs_dir is not None:
        root = str(args.runs_dir)
        states = grid_status(find_run_dirs(Path(args.runs_dir)))
        title = f"runs under {args.runs_dir}"
    else:
        from firm_bench.planning.grid import load_workflow_config, plan, run_config

        p = plan(load_workflow_config(args.configfile), only=args.experiment or None)
        if args.runs_root:
            p.config["runs_root"] = args.runs_root
        root = p.config["runs_root"]
        experiments = {e: p.run_dirs(e) for e in p.experiments}
        by_dir = {run.path(root): run for run in p.runs}
        states = grid_status([d for dirs in experiments.values() for d in dirs], experiments,
                             planned=lambda d: run_config(p, by_dir[d]))  # a run of another recipe: refused
        title = f"grid of {args.configfile} (runs under {root})"
    if args.json:
        print(json.dumps([st.row() for st in states], indent=1))
    else:
        print(format_status(states, title, root=root, show_pending=args.pending), end="")
    return 0


def _add_paper_commands(sub: argparse._SubParsersAction) -> None:
    """paper-table, figure, report, claims, plan. Choices come from ``core/facts/paper.py`` (no torch, no pandas)."""
    from firm_bench.core.facts.paper import FIGURES, TABLES

    tables, figures = list(TABLES), list(FIGURES)
    p = _command(sub, "paper-table", "Writes results/tables/NAME.{md,tex,csv}; `firm-bench list tables` names "
                                     "them and the experiment of the paper config that feeds each.")
    p.add_argument("name", choices=tables, metavar="NAME", help=f"one of: {', '.join(tables)}")
    p.add_argument("summaries", nargs="*", help="summaries of the experiments feeding it (results/summary/<e>.csv)")
    p.add_argument("--out-dir", default="results/tables", help="where NAME.md, NAME.tex and NAME.csv go")
    p.add_argument("--k", type=int, default=None, help="k of the k-NN scores shown (default: eval.k of the schema)")
    p.add_argument("--tolerance", type=float, default=None, help=TOLERANCE_HELP)
    p.add_argument("--partial", action="store_true", help="label absent results 'pending' (runs still going)")
    p.set_defaults(func=cmd_paper_table)

    p = _command(sub, "figure", "Writes figures/NAME.{png,pdf}; `firm-bench list figures` names them and the "
                                "experiment of the paper config that feeds each.")
    p.add_argument("name", choices=figures, metavar="NAME", help=f"one of: {', '.join(figures)}")
    p.add_argument("--summaries", nargs="*", default=[], help="summaries of the experiments feeding it")
    p.add_argument("--curves", nargs="*", default=[], help="learning curves of those experiments (<e>_curves.csv)")
    p.add_argument("--out-dir", default="figures", help="where NAME.png and NAME.pdf go")
    p.add_argument("--threads", type=int, default=1, help="threads of t-SNE (n_jobs)")
    p.add_argument("--k", type=int, default=None, help="k of the k-NN scores (default: eval.k of the schema)")
    p.add_argument("--partial", action="store_true", help="label panels without data 'pending' (runs still going)")
    p.set_defaults(func=cmd_figure)

    p = _command(sub, "report", "With every paper table and figure, the paper's claims checked, and how each "
                                "number was made.")
    _add_configfile_arg(p, "--config")
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

    p = _command(sub, "claims", "From firm_bench/paper/claims.yaml (docs/CLAIMS.md): results/claims.md and .csv "
                                "and a forest plot, from whatever summaries of the workflow config's experiments "
                                "exist. Tests are paired by seed, one Holm family over both directions. A claim whose "
                                "runs are absent reads 'not run' ('pending' with --partial) and names what is "
                                "missing. Summaries and the claims file are validated first; every problem is named "
                                "(exit 2).")
    _add_configfile_arg(p, "--config")
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
                   help="runs still going: claims without results read 'pending', absent --summaries are skipped, "
                        "bad claims of the claims file are left out and listed")
    p.set_defaults(func=cmd_claims)

    p = _command(sub, "plan", "From a benchmark's throughput (docs/SPEED.md).")
    p.add_argument("target", help="an experiment (table1a, fig5, ...), a paper item (table7) or all")
    _add_configfile_arg(p)
    p.add_argument("--throughput-json", default=None,
                   help="JSON of benchmarks/bench_fast.py (its best variant) or bench_train.py")
    p.add_argument("--variant", default=None, help="with --throughput-json: a bench_fast variant instead of the best")
    p.add_argument("--views-per-s", type=float, default=None, help="throughput to assume, training views/s per GPU")
    p.add_argument("--pack-runs", type=int, default=None, metavar="K",
                   help="plan with pack_runs K (default: the workflow config's): train jobs and the throughput of packs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plan)


def build_parser() -> argparse.ArgumentParser:
    from firm_bench import __version__

    parser = argparse.ArgumentParser(
        prog="firm-bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="FIRM anomaly-detection benchmark and paper-replication harness.", epilog=_overview(),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below; firm-bench COMMAND --help for its options")

    for name, func in [("run", cmd_run), ("train", cmd_train), ("config", cmd_config)]:
        p = _command(sub, name)
        _add_config_args(p)
        if name == "run":
            p.add_argument("--reevaluate", action="store_true",
                           help="a finished run: extract its features and score it again (default: print its results)")
        if name == "config":
            p.add_argument("--describe", default=None, metavar="KEY",
                           help="what KEY (dotted, e.g. optim.schedule; a section lists its keys) means: its "
                                "description, default and allowed values from the schema, and its value here and "
                                "which layer (schema, preset, --config, --set) set it")
        p.set_defaults(func=func)
        if name == "train":
            _add_workflow_job_args(p)

    p = _command(sub, "train-pack", (
        "Each run keeps its directory. The options before the first --member apply to every run; each --member names a run directory "
        "and the overrides of that run (seed, class, loss, outliers, ...). Runs may differ only in the keys "
        "firm_bench.core.packs.PACK_VARYING lists. Finished runs are not trained again; each run resumes from "
        "its own last checkpoint."))
    _add_recipe_args(p)
    p.add_argument("--member", dest="members", action="append", nargs="+", default=[], metavar=("RUN_DIR", "KEY=VALUE"),
                   help="a run of the pack: its directory, then its own overrides (repeat per run)")
    _add_workflow_job_args(p)
    p.set_defaults(func=cmd_train_pack)

    evalset_help = "evaluation set: test (the run's own protocol) or ood-<dataset> (Table 4's OOD sets)"
    p = _command(sub, "features")
    p.add_argument("run_dir")
    p.add_argument("--evalset", default="test", help=evalset_help)
    p.add_argument("--no-progress", action="store_true")
    _add_gpu_arg(p)
    p.set_defaults(func=cmd_features)

    p = _command(sub, "score", "`firm-bench list scores` says what each score is.")
    p.add_argument("run_dir")
    p.add_argument("--evalset", default="test", help=evalset_help)
    p.add_argument("--scores", nargs="+", default=None, help="score names (default: the config's scores.names)")
    p.add_argument("--k", nargs="+", type=int, default=None, help="k of the k-NN scores (default: scores.k)")
    p.add_argument("--out", default=None, help="also write these scores' records to this JSON file (workflow)")
    p.add_argument("--refresh", action="store_true",
                   help="extract the features again when the cache is stale (another checkpoint, other features "
                        "settings, copied from another run) instead of refusing (workflow)")
    p.set_defaults(func=cmd_score)

    p = _command(sub, "metrics")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_metrics)

    p = _command(sub, "summarize")
    p.add_argument("--experiment", required=True)
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--k", nargs="+", type=int, default=[5])
    p.add_argument("--evalsets", nargs="+", default=["test"], help="test and/or ood-<dataset>")
    p.add_argument("--out", required=True)
    p.add_argument("--curves-out", default=None, help="also write the runs' learning curves to this CSV")
    p.add_argument("run_dirs", nargs="*")
    p.set_defaults(func=cmd_summarize)

    p = _command(sub, "combine")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="*")
    p.set_defaults(func=cmd_combine)

    p = _command(sub, "table")
    p.add_argument("summary")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.set_defaults(func=cmd_table)

    p = _command(sub, "data")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="verify a dataset on disk: per-class counts and image shape")
    c.add_argument("name")
    c.add_argument("--root", default=None, help="dataset root (default: $FIRM_BENCH_DATA, then ./data)")
    c.add_argument("--download", action="store_true", help="download if missing (needs network)")
    c.set_defaults(func=cmd_data_check)

    _add_paper_commands(sub)

    p = _command(sub, "status", "From the run directories alone (no Snakemake, no torch): counts per state and "
                                "experiment, each running run's epoch and ETA, what stopped or failed and why.")
    p.add_argument("runs_dir", nargs="?", default=None, metavar="RUNS_DIR",
                   help="every run directory under this directory instead of a workflow config's runs")
    _add_configfile_arg(p)
    p.add_argument("--runs-root", default=None, help="with a workflow config: its runs_root, if elsewhere")
    p.add_argument("--experiment", nargs="+", default=None, help="only these experiments of the config")
    p.add_argument("--pending", action="store_true", help="also list the runs not started")
    p.add_argument("--json", action="store_true", help="one JSON record per run instead")
    p.set_defaults(func=cmd_status)

    p = _command(sub, "list", "Without WHAT: the categories.")
    p.add_argument("what", nargs="?", choices=list(LISTINGS), default=None, metavar="WHAT",
                   help=f"one of: {', '.join(LISTINGS)}")
    p.add_argument("--names", action="store_true", help="the names alone, one a line (for scripts)")
    _add_configfile_arg(p)
    p.set_defaults(func=cmd_list)
    return parser


def _quiet_on_broken_pipe(func, args: argparse.Namespace) -> int:
    """``func(args)``; a reader that closed the pipe early (``firm-bench list losses | head -1``) ends it quietly.

    Exit status 141 (128 + SIGPIPE, as a tool killed by the signal); stdout is
    pointed at /dev/null so the interpreter's final flush does not complain.
    """
    try:
        rc = func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at the interpreter's exit
        return rc
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


def _resumable(argv: Sequence[str]) -> list[str]:
    """The arguments of a command to print for resuming it: without ``--exit-with PID`` (the workflow's
    Snakemake, gone once its job was interrupted: a pasted command carrying it would stop at once)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--exit-with":
            skip = True
        elif not arg.startswith("--exit-with="):
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import shlex

    from firm_bench.core.errors import USER_ERRORS, TrainingFailed, TrainingInterrupted

    args = build_parser().parse_args(argv)
    command = shlex.join(["firm-bench", *_resumable(sys.argv[1:] if argv is None else argv)])
    try:
        return _quiet_on_broken_pipe(args.func, args)
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
