"""Run configuration: one schema with every default, presets, overrides.

A run config is built in three layers, each validated against
``firm_bench/schema/run.schema.yaml`` (the only place defaults live):

1. the schema's defaults;
2. a preset, ``firm_bench/presets/<name>.yaml``, holding only what differs;
3. user overrides: a YAML file and/or ``--set section.key=value`` pairs.

Names of registered things (dataset, loss, outliers, encoder, schedule,
scores) are checked against their registries, so ``loss.name: frim`` fails
before any work with ``loss.name: unknown loss 'frim'; valid: ...``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import jsonschema
import yaml

from firm_bench.core import catalog
from firm_bench.core.errors import ConfigError

TIMM_PREFIX = "timm/"  # model.encoder: timm/<name> (firm_bench.method.models.timm_encoder)

PRESETS_PACKAGE = "firm_bench.presets"


def load_schema() -> dict:
    """The run-config JSON schema (draft 7) as a dict (a fresh copy; parsed once)."""
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("firm_bench.schema").joinpath("run.schema.yaml").read_text()
    return yaml.safe_load(text)


def _fill_defaults(schema: Mapping, instance: dict) -> None:
    """Recursively insert ``default`` values of ``properties`` missing in ``instance``."""
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(sub, instance[key])


def schema_defaults() -> dict:
    """Every default of the schema, as a nested dict."""
    cfg: dict = {}
    _fill_defaults(load_schema(), cfg)
    return cfg


def list_presets() -> list[str]:
    """Names of the bundled presets."""
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files(PRESETS_PACKAGE).iterdir()
        if p.name.endswith(".yaml")
    )


def load_preset(name: str) -> dict:
    """The overrides of preset ``name`` (without the schema defaults)."""
    if name not in list_presets():
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(list_presets())}")
    text = resources.files(PRESETS_PACKAGE).joinpath(f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {name!r} must be a YAML mapping")
    return data


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """A new dict: ``base`` with ``override`` merged in (nested dicts merged, others replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(pairs: Iterable[str]) -> dict:
    """Turn ``["optim.lr=0.1", "loss.name=ntxent"]`` into a nested dict.

    Values are parsed as YAML, so numbers, booleans, ``null`` and lists
    (``features.angles=[0,90]``) work as expected.
    """
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form section.key=value")
        dotted, raw = pair.split("=", 1)
        keys = [k for k in dotted.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"override {pair!r} has an empty key")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {pair!r}: value is not valid YAML ({exc})") from None
        value = _yaml11_float(value)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


def _yaml11_float(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``1e-3`` as a string; read it as the number users mean."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_yaml11_float(v) for v in value]
    return value


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(cfg: dict) -> dict:
    """Validate ``cfg`` (schema + registries), fill defaults, return it.

    Raises ConfigError naming the offending key, the bad value and what is allowed.
    """
    schema = load_schema()
    cfg = copy.deepcopy(cfg)
    _fill_defaults(schema, cfg)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    lines = non_finite(cfg)
    if errors or lines:
        for err in errors:
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                lines.append(f"{_path(err)}: {err.message}; allowed keys: {', '.join(allowed)}")
            else:
                lines.append(f"{_path(err)}: {err.message}")
        raise ConfigError("invalid run config:\n  " + "\n  ".join(lines))
    _check_names(cfg)
    if cfg["recipe"] is None:
        cfg["recipe"] = cfg["preset"]
    from firm_bench.core.rundir import check_name  # the run directory's naming rule, one place

    check_name("recipe", cfg["recipe"])
    return cfg


def non_finite(node: Any, path: str = "") -> list[str]:
    """A problem line for every NaN or infinite number in ``node`` (nested dicts and lists), naming its key.

    JSON-schema bounds do not catch them (every comparison with NaN is false,
    so ``minimum: 0`` lets NaN through), and YAML reads ``.nan`` / ``.inf``
    (and ``--set`` reads ``nan`` / ``inf``) as floats.
    """
    if isinstance(node, dict):
        return [line for key, value in node.items() for line in non_finite(value, f"{path}.{key}" if path else str(key))]
    if isinstance(node, list):
        return [line for i, value in enumerate(node) for line in non_finite(value, f"{path}[{i}]")]
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path or '<top level>'}: {node} is not a finite number (NaN and infinity are refused for every "
                "numeric key; give a finite value)"]
    return []


def _default(section: str, key: str) -> Any:
    """The schema default of ``section.key``."""
    return _schema()["properties"][section]["properties"][key]["default"]


def _check_momentum(optim: Mapping) -> list[str]:
    """The momentum keys that would do nothing under the configured schedule (``catalog.schedule_momentum``).

    A ``cycle`` schedule (onecycle) overwrites the SGD momentum every step with
    its cycle ``optim.momentum_cycle`` (the reference's OneCycleLR), so a
    non-default ``optim.momentum`` there changed nothing: refused. A
    ``constant`` schedule (warmup_cosine) holds ``optim.momentum``, so a
    non-default ``optim.momentum_cycle`` changes nothing: refused.
    """
    if optim["schedule"] not in catalog.names("optim.schedule", optim["schedule"]):
        return []  # reported as an unknown name
    cycles = catalog.schedule_momentum(optim["schedule"]) == "cycle"
    momentum, cycle = optim["momentum"], optim["momentum_cycle"]
    if cycles and cycle is not None and momentum != _default("optim", "momentum"):
        return [f"optim.momentum: {momentum} has no effect under optim.schedule: {optim['schedule']}, which cycles the "
                f"momentum between optim.momentum_cycle {list(cycle)} every step (as the reference's OneCycleLR did); "
                "set optim.momentum_cycle instead, or optim.momentum_cycle: null to hold optim.momentum constant"]
    if not cycles and cycle != _default("optim", "momentum_cycle"):
        return [f"optim.momentum_cycle: {cycle} has no effect under optim.schedule: {optim['schedule']}, which holds "
                f"optim.momentum ({momentum}) constant; remove it (only a cycling schedule such as onecycle uses it)"]
    return []


def momentum_label(cfg: Mapping) -> str:
    """The momentum a validated run config trains with, as its outputs label it.

    ``cycled 0.95-0.85-0.95`` (OneCycleLR: max at the start, base at the peak
    learning rate, max at the end) or the held value, e.g. ``0.9``.
    """
    optim = cfg["optim"]
    cycle = optim.get("momentum_cycle")
    if catalog.schedule_momentum(optim["schedule"]) == "cycle" and cycle is not None:
        base, peak = cycle
        return f"cycled {peak:g}-{base:g}-{peak:g}"
    return f"{optim['momentum']:g}"


def _check_names(cfg: dict) -> None:
    problems = _check_momentum(cfg["optim"])
    for dotted in catalog.CONFIG_KEYS:
        section, key = dotted.split(".")
        value = cfg[section][key]
        values = value if isinstance(value, list) else [value]
        if dotted == "model.encoder":  # timm/<name>: any timm backbone, checked by timm when the model is built
            values = [v for v in values if not (str(v).startswith(TIMM_PREFIX) and len(str(v)) > len(TIMM_PREFIX))]
        valid = catalog.names(dotted, *values)
        for v in values:
            if v not in valid:
                extra = f", or {TIMM_PREFIX}<name> for a timm backbone" if dotted == "model.encoder" else ""
                problems.append(f"{dotted}: unknown value {v!r}; valid: {', '.join(valid)}{extra}")
    ds = cfg["dataset"]
    datasets = catalog.names("dataset.name", ds["name"], *([ds["ood"]] if ds["ood"] is not None else []))
    if ds["name"] in datasets and catalog.dataset(ds["name"]).role != "one_class":
        problems.append(f"dataset.name: {ds['name']!r} is a test-only set (role {catalog.dataset(ds['name']).role!r}), not a training set; "
                        "use it as dataset.ood (OOD test sets) or outliers.oe_path (outlier exposure)")
    if ds["ood"] is not None and ds["cls"] != "all":
        problems.append(f"dataset.ood={ds['ood']!r} needs dataset.cls: all (the whole training set is in-distribution)")
    if ds["ood"] is not None and ds["ood"] not in datasets:
        problems.append(f"dataset.ood: unknown value {ds['ood']!r}; valid: {', '.join(datasets)}")
    if ds["name"] in datasets and ds["cls"] != "all":
        try:  # one class, one name: "bottle" and 0 are the same MVTec run (the dataset's class_ids)
            ds["cls"] = catalog.dataset(ds["name"]).class_id(ds["cls"], ds["name"])
        except ValueError as exc:
            problems.append(f"dataset.cls: {exc}")
    loss = cfg["loss"]
    if loss["name"] in catalog.names("loss.name", loss["name"]):
        try:
            catalog.loss_form(loss["name"], loss["form"])
        except ValueError as exc:
            problems.append(f"loss.form: {exc}")
        if loss["id_labels"] and not catalog.loss_takes_id_classes(loss["name"]):
            takes = [n for n in catalog.names("loss.name") if catalog.loss_takes_id_classes(n)]
            problems.append(f"loss.id_labels: true needs loss.name: {' or '.join(takes)} (in-distribution class "
                            f"labels are FIRM's option), got loss.name: {loss['name']!r}; set loss.id_labels: false")
    if loss["id_labels"] and ds["cls"] != "all":
        problems.append(f"loss.id_labels: true needs dataset.cls: all (several in-distribution classes), got "
                        f"dataset.cls: {ds['cls']!r}; set loss.id_labels: false for the one-class protocol")
    angles = cfg["features"]["angles"]
    if angles[0] != 0:
        problems.append(f"features.angles: must start with 0 (the unrotated view), got {angles}")
    if problems:
        raise ConfigError("invalid run config:\n  " + "\n  ".join(problems))


class Protocol(NamedTuple):
    """What a run's null / auto protocol keys resolve to (the dataset's defaults; ``catalog.DatasetEntry``)."""

    image_size: int  # training images (dataset.image_size)
    eval_size: int  # bank and test images of the scores and the learning curve (features.image_size)
    eval_zoom: float  # test transform Resize(zoom * eval_size) -> CenterCrop(eval_size) (features.zoom)
    batching: str  # "pool" | "paired" (optim.batching)

    def labels(self) -> dict:
        return {"image_size": self.image_size, "eval_size": self.eval_size, "eval_zoom": self.eval_zoom,
                "batching": self.batching}


def protocol(cfg: Mapping) -> Protocol:
    """The resolved image sizes, test-transform zoom and batching of a validated run config (no torch)."""
    entry = catalog.dataset(cfg["dataset"]["name"])
    size = int(cfg["dataset"]["image_size"] or entry.image_size)
    f = cfg["features"]
    batching = cfg["optim"]["batching"]
    return Protocol(
        image_size=size,
        eval_size=int(f["image_size"] or entry.eval_size or size),
        eval_zoom=float(f["zoom"] if f["zoom"] is not None else entry.eval_zoom),
        batching=entry.batching if batching == "auto" else batching,
    )


#: keys that never name a recipe: bookkeeping, where a run runs, what is scored afterwards, and the run
#: directory's other levels (dataset, class, loss, outliers, seed)
NOT_RECIPE = ("preset", "recipe", "recipe_overrides", "device", "threads", "scores", "seed", "dataset.name",
              "dataset.cls", "dataset.root", "outliers.oe_path", "loss.name", "outliers.name")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._-]+")
_MAX_SUFFIX = 60


def leaves(cfg: Mapping, prefix: str = "") -> dict:
    """A nested config as ``{dotted key: value}`` (lists and empty mappings are values)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and value and key != "recipe_overrides":
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


#: run-local knobs (sections and dotted keys): a checkpoint is resumed (and its features extracted) whatever
#: their values; where the data lies (``dataset.root``, ``outliers.oe_path``) is one: a grid whose data moved is
#: the same recipe
RUN_LOCAL = ("device", "threads", "scores", "features", "speed", "dataset.root", "outliers.oe_path")


#: where a run runs and where its data lies: never a rerun trigger of the workflow (its jobs' params), never
#: another recipe (:data:`NOT_RECIPE`, :data:`RUN_LOCAL`)
WHERE_KEYS = ("device", "threads", "dataset.root", "outliers.oe_path")


#: names of a recipe, not its values: two configs that differ only in them train the same numbers
RECIPE_NAMES = ("preset", "recipe", "recipe_overrides")


def _under(key: str, names: Iterable[str]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or inside one of them."""
    return any(key == n or key.startswith(n + ".") for n in names)


def resume_view(cfg: Mapping) -> dict:
    """The part of a config that must match to resume a checkpoint: every leaf (dotted key) but those under
    :data:`RUN_LOCAL` and :data:`RECIPE_NAMES` (the differing values themselves are compared)."""
    return {k: v for k, v in leaves(cfg).items() if not _under(k, RUN_LOCAL + RECIPE_NAMES)}


def resume_differences(recorded: Mapping, cfg: Mapping) -> list[str]:
    """``key: recorded -> now`` for every key of :func:`resume_view` where two validated configs differ."""
    a, b = resume_view(recorded), resume_view(cfg)
    return [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def recorded_differences(recorded: Mapping, cfg: Mapping) -> list[str]:
    """:func:`resume_differences` of a config a run recorded (a checkpoint's, a ``config.yaml``) and validated ``cfg``.

    The recorded one is read as what ran then: keys added to the schema since
    it was written take the values of that time (:func:`with_added_keys`), then it is validated.
    """
    return resume_differences(validate(with_added_keys(recorded)), cfg)


def plan_differences(recorded: Mapping, cfg: Mapping) -> list[str]:
    """``key: recorded -> planned`` for every key where a run's recorded config is another recipe than validated
    ``cfg`` (the workflow plan's): :func:`recorded_differences` and the ``features`` section too (the run's
    results are extracted with it), but where it runs and its data lies (:data:`WHERE_KEYS`) and ``scores``."""
    a, b = leaves(validate(with_added_keys(recorded))), leaves(cfg)
    skip = WHERE_KEYS + RECIPE_NAMES + ("scores", "speed")
    return [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
            if not _under(k, skip) and a.get(k) != b.get(k)]


def recipe_differences(cfg: Mapping, base: Mapping) -> dict:
    """The recipe keys (dotted) whose value in validated ``cfg`` differs from validated ``base``, sorted.

    Leaves out :data:`NOT_RECIPE` (the run directory's other levels already
    name the dataset, class, loss, outliers and seed).
    """
    a, b = leaves(cfg), leaves(base)
    return {k: a.get(k) for k in sorted(set(a) | set(b)) if not _under(k, NOT_RECIPE) and a.get(k) != b.get(k)}


#: a recipe name: ``<preset>[-<variant>][+<what the overrides change>]`` (:func:`recipe_name`)
VARIANT_SEP, OVERRIDES_SEP = "-", "+"


def recipe_name(preset: str, differences: Mapping, variant: str | None = None) -> str:
    """The one rule naming a recipe (the command line, packs and the workflow): its preset, the workflow
    variant's name if any, and every recipe key it changes from the preset.

    ``<preset>`` (a variant: ``<preset>-<variant>``) when ``differences``
    (:func:`recipe_differences`) is empty, else that plus ``+`` and the
    differences, ``smoke+optim.lr=0.2+loss.tau=0.5`` when short and path-safe,
    else ``smoke+<sha256 of the differences, 10 hex digits>``. So two configs
    that train different numbers never share a run directory: the workflow's
    ``run_overrides`` and variants are named as ``--set`` is. The name is
    checked as a run directory level (``rundir.check_name``).
    """
    from firm_bench.core.rundir import check_name  # the run directory's naming rule, one place

    if variant not in (None, "", "base"):
        if OVERRIDES_SEP in str(variant):
            raise ConfigError(f"variant {variant!r}: a variant name may not contain {OVERRIDES_SEP!r} (it separates "
                              "the overrides in a recipe name); rename the variant")
        preset = f"{preset}{VARIANT_SEP}{variant}"
    if not differences:
        return check_name("recipe", preset)

    def text(v: Any) -> str:
        return json.dumps(v) if isinstance(v, (bool, type(None))) else str(v)

    pairs = [f"{k}={text(v)}" for k, v in differences.items()]
    suffix = OVERRIDES_SEP.join(pairs)
    if not (len(suffix) <= _MAX_SUFFIX and all(_SAFE_VALUE.fullmatch(text(v)) for v in differences.values())):
        suffix = hashlib.sha256(json.dumps(dict(differences), sort_keys=True, default=str).encode()).hexdigest()[:10]
    return check_name("recipe", f"{preset}{OVERRIDES_SEP}{suffix}")


def recipe_variant(recipe: str) -> str:
    """The workflow variant a :func:`recipe_name` carries: ``base`` for ``<preset>[+...]``, else its ``-<variant>``."""
    head = str(recipe).split(OVERRIDES_SEP, 1)[0]
    return head.split(VARIANT_SEP, 1)[1] if VARIANT_SEP in head else "base"


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    extra: Mapping | None = None,
    name_recipe: bool = False,
) -> dict:
    """Build and validate a run config: schema defaults < preset < file < extra < overrides.

    ``name_recipe`` (the command line without ``--recipe``): when no layer
    names the recipe, it is the preset's name plus what the other layers change
    (:func:`recipe_name`), recorded as ``recipe_overrides``, so runs of
    one preset with different overrides get different run directories.
    """
    cfg: dict = {}
    if preset is not None:
        cfg = deep_merge(cfg, load_preset(preset))
        cfg["preset"] = preset
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ConfigError(f"config file {str(config_file)!r} does not exist")
        cfg = deep_merge(cfg, load_yaml(config_file))
    if extra:
        cfg = deep_merge(cfg, extra)
    cfg = deep_merge(cfg, parse_overrides(overrides))
    if name_recipe and cfg.get("recipe") is None:
        full = validate(cfg)
        differences = recipe_differences(full, resolve(preset))
        cfg = deep_merge(cfg, {"recipe": recipe_name(full["recipe"], differences),
                               "recipe_overrides": differences})
    return validate(cfg)


#: keys added to the schema after runs were recorded without them -> the value the older firm-bench ran with
#: (not merely today's default): a recorded config that lacks one is read with it
ADDED_KEYS: dict[str, Any] = {
    "optim.momentum_cycle": [0.85, 0.95],  # OneCycleLR's cycle_momentum defaults, always on before the key existed
}


def with_added_keys(recorded: Mapping) -> dict:
    """A recorded run config with each :data:`ADDED_KEYS` key it lacks set to what the older firm-bench ran.

    Only those keys: a recorded config is otherwise taken as it is (so a
    truncated one does not pass for a complete one).
    """
    cfg = copy.deepcopy(dict(recorded))
    for dotted, value in ADDED_KEYS.items():
        section, key = dotted.split(".")
        if isinstance(cfg.get(section), dict) and key not in cfg[section]:
            cfg[section][key] = copy.deepcopy(value)
    return cfg


def differences(before: Mapping, after: Mapping, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs between two configs (absent keys: ``-``)."""
    out = []
    for key in list(dict.fromkeys([*before, *after])):
        a, b = before.get(key, "-"), after.get(key, "-")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping from ``path`` with an error naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {str(path)!r} is not a text (UTF-8 YAML) file: byte {exc.start} is "
                          f"{exc.object[exc.start:exc.start + 1]!r}; give the YAML config file (a binary file, "
                          "a checkpoint or an image, cannot be one)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(path)!r} must hold a YAML mapping")
    return data


def dump(cfg: Mapping) -> str:
    """YAML text of a config (key order kept)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False)
