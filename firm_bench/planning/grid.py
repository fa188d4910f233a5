"""The paper's experiment grid as data: what the Snakemake workflow builds.

The workflow config (``workflow/config/*.yaml``, validated against
``firm_bench/schema/workflow.schema.yaml``) declares experiments, one per paper
table or figure. Each experiment is a small grid::

    table13:
      title: "Table 13: per-class AUROC on CIFAR-10"
      datasets: [cifar10]
      classes: all            # or a list of indices / names
      losses: [ntxent, supcon, supcon_star, firm]
      outliers: [rot]
      scores: [cos, rot, ens]
      variants: {}            # name -> {dotted.key: value}: recipe variants (sweeps)

``plan(config)`` expands every experiment into runs. A run is identified by
``(dataset, cls, loss, outliers, recipe, seed)`` and lives in one directory
(``firm_bench.core.rundir``); it is trained once however many experiments use it
(Table 1a and Table 13 share runs). Every name is checked against the
registries here, so a typo fails while the DAG is built, before any job
starts. The Snakefile only turns the plan into rules.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from firm_bench.core import config as config_mod
from firm_bench.core.errors import ConfigError
from firm_bench.core.facts import CONFIG_NAMES, datasets, method, paper
from firm_bench.core.packs import pack_key
from firm_bench.core.rundir import Run, evalset_of

#: wildcard patterns shared by the Snakefile's ``wildcard_constraints`` (a recipe: any run directory level name,
#: ``config.recipe_name``: ``mini-tau0.5+3f9a0c1b2d``)
RECIPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=-]*"
CLS_PATTERN = r"[A-Za-z0-9_]+"


@dataclass
class RunNeeds:
    """What the experiments need from one run: scores (by family) and k values."""

    scores: set[str] = field(default_factory=set)
    ks: set[int] = field(default_factory=set)
    experiments: set[str] = field(default_factory=set)
    evalsets: set[str] = field(default_factory=set)


@dataclass
class Plan:
    config: dict
    runs: dict[Run, RunNeeds]
    experiments: dict[str, list[Run]]
    variants: dict[str, dict]  # recipe name -> overrides
    args_cache: dict[Run, str] = field(default_factory=dict)
    families_cache: dict[Run, list[str]] = field(default_factory=dict)

    def run_dirs(self, experiment: str) -> list[str]:
        return [r.path(self.config["runs_root"]) for r in self.experiments[experiment]]

    def families(self, run: Run) -> list[str]:
        if run not in self.families_cache:
            self.families_cache[run] = sorted({method.score_family(s) for s in self.runs[run].scores})
        return self.families_cache[run]

    def experiment_title(self, experiment: str) -> str:
        """The experiment's ``title``, else the title of the first paper item it feeds (its spec's), else its name."""
        exp = self.config["experiments"][experiment]
        if exp["title"]:
            return str(exp["title"])
        fed = [item for item, exps in paper_item_feeders(self.config).items() if experiment in exps]
        return paper.title(fed[0]) if fed else experiment

    def experiment_evalsets(self, experiment: str) -> list[str]:
        """``test``, or ``ood-<name>`` for each OOD set of an unlabeled multiclass experiment (Table 4)."""
        ood = self.config["experiments"][experiment]["ood"]
        return [evalset_of(name) for name in ood] if ood else [evalset_of(None)]

    def experiment_families(self, experiment: str) -> list[str]:
        return sorted({method.score_family(s) for s in self.config["experiments"][experiment]["scores"]})

    def scores_of_family(self, run: Run, family: str) -> list[str]:
        return sorted(s for s in self.runs[run].scores if method.score_family(s) == family)


BUNDLED = "firm_bench.experiments"  # the package's workflow configs (workflow/config/*.yaml link to them)


def bundled_configs() -> list[str]:
    """Names of the workflow configs shipped in the package (paper, mini, smoke)."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(BUNDLED).iterdir() if p.name.endswith(".yaml"))


def load_workflow_config(ref: str | Path) -> dict:
    """A workflow config: the YAML file ``ref``, else the bundled config of that name (``paper``, ``mini``, ...).

    A path that does not exist but names a bundled config by its stem
    (``workflow/config/paper.yaml`` outside a checkout) reads the bundled one,
    so an installed ``firm-bench plan`` / ``report`` works from any directory.
    """
    path = Path(ref)
    if path.is_file():
        text = path.read_text()
    else:
        name = path.stem if path.suffix in (".yaml", ".yml") else str(ref)
        if name not in bundled_configs():
            raise FileNotFoundError(f"workflow config {str(ref)!r} does not exist (use --configfile FILE or one of "
                                    f"the bundled configs: {', '.join(bundled_configs())})")
        text = resources.files(BUNDLED).joinpath(f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"workflow config {str(ref)!r} must hold a YAML mapping")
    return data


def load_schema() -> dict:
    """The workflow config's JSON schema (package data: firm_bench/schema/workflow.schema.yaml)."""
    return yaml.safe_load(resources.files("firm_bench.schema").joinpath("workflow.schema.yaml").read_text())


def validate_config(cfg: Mapping) -> dict:
    """Validate a workflow config against its schema (defaults filled), like snakemake.utils.validate."""
    schema = load_schema()
    cfg = copy.deepcopy(dict(cfg))
    config_mod._fill_defaults(schema, cfg)
    exp_schema = schema["definitions"]["experiment"]
    for exp in cfg.get("experiments", {}).values():
        if isinstance(exp, dict):
            config_mod._fill_defaults(exp_schema, exp)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ConfigError("invalid workflow config:\n  " + "\n  ".join(lines))
    res = cfg["resources"]
    if res["train_signal_s"] >= 60 * res["train_runtime"]:
        raise ConfigError(f"resources.train_signal_s: {res['train_signal_s']} s is not before the end of a training "
                          f"job (resources.train_runtime: {res['train_runtime']} min); lower it or raise train_runtime")
    return cfg


def train_slurm_extra(cfg: Mapping) -> str:
    """The training jobs' extra sbatch options (their ``slurm_extra`` resource): SIGTERM before the time limit.

    ``--signal=TERM@<resources.train_signal_s>``, not ``B:``, which would signal
    only the batch shell (the Snakemake that waits for the job).
    """
    return f"--signal=TERM@{int(cfg['resources']['train_signal_s'])}"


def recipe_name(cfg: Mapping, variant: str, overrides: Mapping, levels: Mapping) -> str:
    """The recipe of a validated workflow config's ``variant``: ``config.recipe_name`` (the command line's rule)
    of what the workflow's ``run_overrides`` and the variant's ``overrides`` change from the preset.

    ``levels``: the dataset, class, loss, outliers and seed of one of its runs
    (they name the run directory's other levels, not the recipe, but the
    config is validated with them).
    """
    preset = cfg["preset"]
    base = config_mod.resolve(preset, overrides=_pairs(levels))
    full = config_mod.resolve(preset, overrides=_pairs({**levels, **cfg["run_overrides"], **overrides}))
    return config_mod.recipe_name(preset, config_mod.recipe_differences(full, base), variant)


def _levels(run: Run) -> dict:
    """The config keys of a run's directory levels (dataset, class, loss, outliers, seed)."""
    return {"dataset.name": run.dataset, "dataset.cls": int(run.cls) if run.cls.isdigit() else run.cls,
            "loss.name": run.loss, "outliers.name": run.outliers, "seed": run.seed}


def _classes(dataset: str, classes: Any) -> list[str]:
    """The run ids of an experiment's classes (``all``, or indices / names): each class's canonical id.

    A dataset names its classes in runs as the paper does (``core.facts.datasets.DatasetFacts.class_ids``):
    by index (CIFAR-10 ``3``) or by name (MVTec ``bottle``); either spelling is accepted here.
    """
    entry = datasets.dataset(dataset)
    wanted = range(len(entry.classes)) if classes == "all" else classes
    out = []
    for c in wanted:
        try:
            out.append(str(entry.class_id(c)))
        except ValueError as exc:
            raise ConfigError(f"experiments: {exc}") from None
    return list(dict.fromkeys(out))


def _check(kind: str, values: Iterable[str], key: str, where: str) -> None:
    valid = CONFIG_NAMES[key]
    for v in values:
        if v not in valid:
            raise ConfigError(f"{where}: unknown {kind} {v!r}; valid: {', '.join(valid)}")


def plan(cfg: Mapping, only: Iterable[str] | None = None) -> Plan:
    """Expand the (validated) workflow config into runs; fail early on any unknown name."""
    cfg = validate_config(cfg)
    preset = cfg["preset"]
    config_mod.load_preset(preset)  # unknown preset fails here
    runs: dict[Run, RunNeeds] = {}
    experiments: dict[str, list[Run]] = {}
    variants: dict[str, dict] = {}
    names: dict[str, tuple[dict, str]] = {}  # variant -> (its overrides, its recipe name)
    selected = set(only) if only is not None else None
    for exp_name, exp in cfg["experiments"].items():
        if selected is not None and exp_name not in selected:
            continue
        where = f"experiments.{exp_name}"
        _check("dataset", exp["datasets"], "dataset.name", where + ".datasets")
        _check("loss", exp["losses"], "loss.name", where + ".losses")
        _check("outlier source", exp["outliers"], "outliers.name", where + ".outliers")
        _check("score", exp["scores"], "scores.names", where + ".scores")
        if exp["ood"]:
            _check("dataset", exp["ood"], "dataset.name", where + ".ood")
        exp_variants = exp["variants"] or {"": {}}
        seeds = exp["seeds"] if exp["seeds"] is not None else cfg["seeds"]
        evalsets = [evalset_of(name) for name in exp["ood"]] if exp["ood"] else [evalset_of(None)]
        levels = [(dataset, cls) for dataset in exp["datasets"]
                  for cls in (["all"] if exp["ood"] else _classes(dataset, exp["classes"]))]
        recipes = {}
        for vname, overrides in exp_variants.items():
            key = "base" if vname in ("", "base") else vname
            if key in names and names[key][0] != overrides:
                raise ConfigError(f"{where}.variants.{vname}: variant {vname!r} is defined twice with different "
                                  "overrides; give one of them another name")
            if key not in names:
                example = (Run(*levels[0], exp["losses"][0], exp["outliers"][0], preset, int(seeds[0]) if seeds else 0)
                           if levels and exp["losses"] and exp["outliers"] else None)
                try:
                    name = recipe_name(cfg, vname, overrides, _levels(example)) if example else preset
                except ConfigError as exc:
                    raise ConfigError(f"{where}.variants.{vname}: {exc}") from None
                names[key] = (dict(overrides), name)
            recipes[vname] = names[key][1]
            variants[recipes[vname]] = dict(overrides)
        members: list[Run] = []
        for dataset, cls in levels:
            for loss in exp["losses"]:
                for outliers in exp["outliers"]:
                    for vname in exp_variants:
                        for seed in seeds:
                            run = Run(dataset, cls, loss, outliers, recipes[vname], int(seed))
                            needs = runs.setdefault(run, RunNeeds())
                            needs.scores.update(exp["scores"])
                            needs.ks.update(exp["k"])
                            needs.experiments.add(exp_name)
                            needs.evalsets.update(evalsets)
                            members.append(run)
        experiments[exp_name] = members
    result = Plan(cfg, runs, experiments, variants)
    for recipe in {r.recipe for r in runs}:  # every variant's overrides resolve to a valid run config
        example = next(r for r in runs if r.recipe == recipe)
        run_config(result, example)
    return result


def run_overrides(p: Plan, run: Run) -> list[str]:
    """``section.key=value`` overrides that turn the preset into this run's config.

    Scores are not part of it: they are chosen by the score jobs, so adding a
    score to an experiment never retrains a run.
    """
    cfg = p.config
    pairs: dict[str, Any] = _levels(run)  # dataset.cls "all": unlabeled multiclass
    if cfg["data_root"] is not None:
        pairs["dataset.root"] = cfg["data_root"]
    if cfg["oe_path"] is not None:
        pairs["outliers.oe_path"] = cfg["oe_path"]
    pairs.update(cfg["run_overrides"])
    pairs.update(p.variants[run.recipe])
    return _pairs(pairs)


def _pairs(keys: Mapping[str, Any]) -> list[str]:
    """``{dotted key: value}`` as ``--set`` pairs."""
    return [f"{k}={_yaml_value(v)}" for k, v in keys.items()]


_BARE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}


def _yaml_value(v: Any) -> str:
    """A value as ``--set`` parses it back (JSON is YAML's flow syntax; plain words stay bare)."""
    if isinstance(v, str) and _BARE.fullmatch(v) and v.lower() not in _YAML_WORDS:
        return v
    return json.dumps(v)


def run_config(p: Plan, run: Run) -> dict:
    """The resolved, validated run config of ``run`` (what ``firm-bench train`` will use)."""
    cfg = config_mod.resolve(p.config["preset"], overrides=run_overrides(p, run))
    cfg["recipe"] = run.recipe
    return cfg


def _recipe_overrides(p: Plan, run: Run) -> list[str]:
    """:func:`run_overrides` but where the run runs and its data lies (the schema's ``where`` keys: :func:`local_args`)."""
    return [pair for pair in run_overrides(p, run) if pair.split("=", 1)[0] not in config_mod.keys_with("where")]


def local_args(p: Plan) -> str:
    """The ``--set`` arguments of where every run runs and its data lies (``data_root``, ``oe_path``, a
    ``run_overrides`` device): in the training rules' shell commands, not their params, so setting
    ``data_root`` on a finished grid (data moved, grid copied to a cluster) reruns no job."""
    keys = {k: v for k, v in p.config["run_overrides"].items() if k in config_mod.keys_with("where")}
    if p.config["data_root"] is not None:
        keys["dataset.root"] = p.config["data_root"]
    if p.config["oe_path"] is not None:
        keys["outliers.oe_path"] = p.config["oe_path"]
    return " ".join(f"--set {shlex.quote(pair)}" for pair in _pairs(keys))


def cli_args(p: Plan, run: Run) -> str:
    """Shell-quoted ``--preset ... --set ...`` arguments of ``firm-bench train`` for ``run`` (its recipe, not
    :func:`local_args`)."""
    cached = p.args_cache.get(run)
    if cached is not None:
        return cached
    args = ["--preset", p.config["preset"], "--recipe", run.recipe]
    for pair in _recipe_overrides(p, run):
        args += ["--set", pair]
    p.args_cache[run] = " ".join(shlex.quote(a) for a in args)
    return p.args_cache[run]


# The rules' params (Snakemake reruns a job whose params changed): what
# defines the result, never where it runs (GPU slots, threads, the device and
# where the data lies are in the rules' shell commands: local_args, so a grid
# moved to another machine or data directory is not retrained).
def train_args(p: Plan, run: Run) -> str:
    """``firm-bench train`` arguments of the train rule: the run's recipe and directory."""
    return f"{cli_args(p, run)} --run-dir {shlex.quote(run.path(p.config['runs_root']))}"


@dataclass(frozen=True)
class Pack:
    """Runs trained together as one fused model (``firm-bench train-pack``): one job, one GPU.

    ``name`` is the Snakemake rule's (``train_pack_<n>``, numbered in plan order).
    """

    name: str
    runs: tuple[Run, ...]


def _pack_group(p: Plan, run: Run, configs: dict) -> tuple:
    """What the runs of one pack share: :func:`firm_bench.core.packs.pack_key` of their configs (the one rule,
    which the trainer checks again), the step shapes, the recipe and the experiments that need them.

    The step shapes (ID images per epoch, from the registered sizes, and the
    outlier source's multiplicity) are what ``core.packs.check_shapes`` checks
    once the data is loaded. ``firm-bench train-pack`` takes one ``--recipe``,
    so a pack holds one recipe. Grouping also by the set of experiments that use
    a run keeps a single target's jobs to its own runs: every pack a target
    needs holds only runs the target needs.
    """
    overrides = tuple(pair for pair in run_overrides(p, run) if not pair.startswith("seed="))
    if overrides not in configs:  # a seed sets only the seed: one resolution for the seeds of a run
        cfg = run_config(p, run)
        configs[overrides] = (cfg, method.OUTLIERS[run.outliers].multiplicity(cfg["outliers"]))
    cfg, multiplicity = configs[overrides]
    key = pack_key({**cfg, "seed": run.seed})
    entry = datasets.dataset(run.dataset)
    try:
        n_ids = entry.size("train") if run.cls == "all" else entry.size("train_per_class", run.cls)
    except ValueError:  # no registered size: only runs of the same class are known to match
        n_ids = f"class {run.cls}"
    return (key, str(n_ids), multiplicity, run.recipe, tuple(sorted(p.runs[run].experiments)))


def packs(p: Plan) -> list[Pack]:
    """The plan's runs in packs of at most ``pack_runs`` compatible runs (``pack_runs: 1``: one run each).

    Runs are taken in their sorted order (dataset, class, loss, outliers,
    recipe, seed) within each group (:func:`_pack_group`) and cut into packs
    of ``pack_runs``; the last pack of a group may be smaller.
    """
    size = int(p.config["pack_runs"])
    groups: dict[tuple, list[Run]] = {}
    configs: dict = {}
    for run in sorted(p.runs):
        groups.setdefault(_pack_group(p, run, configs) if size > 1 else (run,), []).append(run)
    out = []
    for members in groups.values():
        for i in range(0, len(members), size):
            out.append(Pack(f"train_pack_{len(out)}", tuple(members[i : i + size])))
    return out


def pack_args(p: Plan, pack: Pack) -> str:
    """``firm-bench train-pack`` arguments of a pack: the overrides all its runs share, then each member's own.

    A run's overrides (:func:`run_overrides`) name each key once, so splitting
    them into shared and per-member pairs gives every member its own config.
    """
    per_run = [dict(pair.split("=", 1) for pair in _recipe_overrides(p, run)) for run in pack.runs]
    shared = {k: v for k, v in per_run[0].items() if all(r.get(k) == v for r in per_run[1:])}
    args = ["--preset", p.config["preset"], "--recipe", pack.runs[0].recipe]
    for key, value in shared.items():
        args += ["--set", f"{key}={value}"]
    for run, pairs in zip(pack.runs, per_run):
        args += ["--member", run.path(p.config["runs_root"]), *(f"{k}={v}" for k, v in pairs.items() if k not in shared)]
    return " ".join(shlex.quote(a) for a in args)


def features_args(p: Plan, run: Run, evalset: str) -> str:
    """``firm-bench features`` arguments of the features rule: run directory and evaluation set."""
    return f"{shlex.quote(run.path(p.config['runs_root']))} --evalset {evalset}"


def score_args(p: Plan, run: Run, evalset: str, family: str) -> str:
    """``firm-bench score`` arguments of the score rule: the family's scores this run needs, its k values, and
    ``--refresh``: a stale feature cache (``records.chain``) is extracted again by the job, not refused."""
    return (f"{shlex.quote(run.path(p.config['runs_root']))} --evalset {evalset}"
            f" --scores {' '.join(p.scores_of_family(run, family))}"
            f" --k {' '.join(str(k) for k in sorted(p.runs[run].ks))} --refresh")


def paper_items() -> list[str]:
    """Every paper item we regenerate: the tables, then the figures, in the paper's numbering."""
    def number(name: str) -> tuple[int, str]:
        digits = "".join(ch for ch in name if ch.isdigit())
        return int(digits), name

    return [*sorted(paper.TABLES, key=number), *sorted(paper.FIGURES, key=number)]


def default_items(config: Mapping) -> list[str]:
    """The paper items a workflow config renders by default (``snakemake`` alone, and what its report waits for):
    those some experiment of it feeds, and those drawn without runs (``facts.paper.RUNLESS``). The others would
    show no result of this config; each stays buildable as an explicit target."""
    feeders = paper_item_feeders(config)
    return [item for item in paper_items() if feeders[item] or item in paper.RUNLESS]


def paper_item_feeders(config: Mapping) -> dict[str, list[str]]:
    """Paper item -> the experiments of a workflow config that feed it (every item, possibly none).

    An experiment feeds the items in its ``paper_items`` list; without that
    key (or with null), the item named like the experiment itself, if any
    (``table5`` feeds ``table5``). ValueError names the experiment and the
    unknown item.
    """
    items = paper_items()
    feeders: dict[str, list[str]] = {item: [] for item in items}
    for name, exp in (config.get("experiments") or {}).items():
        wanted = (exp or {}).get("paper_items")
        wanted = [name] if wanted is None and name in feeders else (wanted or [])
        for item in wanted:
            if item not in feeders:
                raise ValueError(f"experiments.{name}.paper_items: unknown paper item {item!r}; valid: {', '.join(items)}")
            feeders[item].append(name)
    return feeders
