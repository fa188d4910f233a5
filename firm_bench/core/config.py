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

from firm_bench.core.errors import ConfigError, DamagedFile
from firm_bench.core.facts import CONFIG_NAMES, datasets, method

TIMM_PREFIX = "timm/"  # model.encoder: timm/<name> (firm_bench.method.models.timm_encoder)

PRESETS_PACKAGE = "firm_bench.presets"


def load_schema() -> dict:
    """The run-config JSON schema (draft 7) as a dict (a fresh copy; parsed once)."""
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("firm_bench.schema").joinpath("run.schema.yaml").read_text()
    return yaml.safe_load(text)


#: what a key's ``x-roles`` in the schema may say (run.schema.yaml's header: what each means)
ROLES = ("not-recipe", "local", "pack-varying", "where")


@functools.lru_cache(maxsize=None)
def keys_with(role: str) -> tuple[str, ...]:
    """The dotted keys the schema gives ``role`` (a section: all its keys), in schema order: the one place
    config (recipe names, resume), packs and the planner read which keys are recipe, local or pack-varying."""
    if role not in ROLES:
        raise ValueError(f"unknown config key role {role!r}; valid: {', '.join(ROLES)}")

    def walk(node: Mapping, prefix: str) -> Iterable[str]:
        for key, sub in node.get("properties", {}).items():
            bad = set(sub.get("x-roles", ())) - set(ROLES)
            if bad:
                raise ValueError(f"run.schema.yaml: {prefix}{key}: unknown x-roles {sorted(bad)}; "
                                 f"valid: {', '.join(ROLES)}")
            if role in sub.get("x-roles", ()):
                yield prefix + key
            elif key != "recipe_overrides":
                yield from walk(sub, f"{prefix}{key}.")

    return tuple(walk(_schema(), ""))


def without(cfg: Mapping, keys: Iterable[str]) -> dict:
    """A deep copy of ``cfg`` without the dotted ``keys`` (a section: all of it)."""
    out = copy.deepcopy(dict(cfg))
    for key in keys:
        *parents, last = key.split(".")
        node: Any = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


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
    lines = non_finite(cfg) + _removed(cfg)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors or lines:
        for err in errors:
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                lines.append(f"{_path(err)}: {err.message}; allowed keys: {', '.join(allowed)}")
            else:
                lines.append(f"{_path(err)}: {err.message}")
        raise ConfigError("invalid run config:\n  " + "\n  ".join(lines))
    _check_names(cfg)
    _resolve_settings(cfg)
    if cfg["recipe"] is None:
        cfg["recipe"] = cfg["preset"]
    from firm_bench.core.rundir import check_name  # the run directory's naming rule, one place

    check_name("recipe", cfg["recipe"])
    return cfg


#: keys taken out of the schema: a config that still sets one is refused, naming it
REMOVED_KEYS = tuple(f"speed.{k}" for k in ("resident_data", "predraw", "fast_loss", "check_loss_every", "fast_eval"))


def _removed(cfg: dict) -> list[str]:
    """A problem line for every :data:`REMOVED_KEYS` key set in ``cfg``, taken out of it (the schema names no other)."""
    out = []
    for dotted in REMOVED_KEYS:
        section, key = dotted.split(".")
        if isinstance(cfg.get(section), dict) and key in cfg[section]:
            del cfg[section][key]
            out.append(f"{dotted}: this option was removed; the exact fast path it switched (bit for bit the same "
                       "numbers) is always on now: delete the key from the config or --set")
    return out


#: the format of the run records this firm-bench writes and reads (``format`` in the schema)
FORMAT: int = _schema()["properties"]["format"]["const"]


def check_format(recorded: Mapping, path: str | Path) -> None:
    """Refuse a config a run recorded (``path``: its config.yaml or checkpoint) in another format than :data:`FORMAT`."""
    found = recorded.get("format")
    if found != FORMAT:
        from firm_bench.core.rundir import describe

        what, _ = describe(path)
        path = Path(path)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        was = f"format {found}" if found is not None else "a format before run records were numbered"
        raise DamagedFile(path, f"was written in {was}; this firm-bench reads format {FORMAT} only", what,
                          f"delete {run_dir} and rerun the command that made it (the run trains again)")


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
    """The momentum keys that would do nothing under the configured schedule (``core/facts/method.py`` SCHEDULES).

    A ``cycle`` schedule (onecycle) overwrites the SGD momentum every step with
    its cycle ``optim.momentum_cycle`` (the reference's OneCycleLR), so a
    non-default ``optim.momentum`` there changed nothing: refused. A
    ``constant`` schedule (warmup_cosine) holds ``optim.momentum``, so a
    non-default ``optim.momentum_cycle`` changes nothing: refused.
    """
    if optim["schedule"] not in method.SCHEDULES:
        return []  # reported as an unknown name
    cycles = method.SCHEDULES[optim["schedule"]] == "cycle"
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
    if method.SCHEDULES.get(optim["schedule"]) == "cycle" and cycle is not None:
        base, peak = cycle
        return f"cycled {peak:g}-{base:g}-{peak:g}"
    return f"{optim['momentum']:g}"


def _check_names(cfg: dict) -> None:
    problems = _check_momentum(cfg["optim"])
    for dotted, table in CONFIG_NAMES.items():
        section, key = dotted.split(".")
        value = cfg[section][key]
        values = value if isinstance(value, list) else [value]
        if dotted == "model.encoder":  # timm/<name>: any timm backbone, checked by timm when the model is built
            values = [v for v in values if not (str(v).startswith(TIMM_PREFIX) and len(str(v)) > len(TIMM_PREFIX))]
        valid = list(table)
        for v in values:
            if v not in table:
                extra = f", or {TIMM_PREFIX}<name> for a timm backbone" if dotted == "model.encoder" else ""
                problems.append(f"{dotted}: unknown value {v!r}; valid: {', '.join(valid)}{extra}")
    ds = cfg["dataset"]
    known = datasets.DATASETS
    if ds["name"] in known and known[ds["name"]].role != "one_class":
        problems.append(f"dataset.name: {ds['name']!r} is a test-only set (role {known[ds['name']].role!r}), not a training set; "
                        "use it as dataset.ood (OOD test sets) or outliers.oe_path (outlier exposure)")
    if ds["ood"] is not None and ds["cls"] != "all":
        problems.append(f"dataset.ood={ds['ood']!r} needs dataset.cls: all (the whole training set is in-distribution)")
    if ds["ood"] is not None and ds["ood"] not in known:
        problems.append(f"dataset.ood: unknown value {ds['ood']!r}; valid: {', '.join(known)}")
    if ds["name"] in known and ds["cls"] != "all":
        try:  # one class, one name: "bottle" and 0 are the same MVTec run (the dataset's class_ids)
            ds["cls"] = known[ds["name"]].class_id(ds["cls"])
        except ValueError as exc:
            problems.append(f"dataset.cls: {exc}")
    loss = cfg["loss"]
    if loss["name"] in method.LOSSES:
        try:
            method.resolve_form(loss["name"], loss["form"])
        except ValueError as exc:
            problems.append(f"loss.form: {exc}")
        if loss["id_labels"] and not method.LOSSES[loss["name"]].id_classes:
            takes = [n for n, f in method.LOSSES.items() if f.id_classes]
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


def _resolve_settings(cfg: dict) -> None:
    """Make every setting of :data:`RESOLVED_KEYS` concrete, in place, once, when the config is built.

    null / auto take the dataset's protocol (``core/facts/datasets.py``: image
    sizes, test-transform zoom, batching), ``loss.form: reference`` the form
    the reference ran the loss in (``facts.method.resolve_form``). Each key that
    changes records its setting in ``cfg["resolved"]``; a config resolved
    already (a recorded one) stays as it is.
    """
    entry = datasets.dataset(cfg["dataset"]["name"])
    d, f, loss = cfg["dataset"], cfg["features"], cfg["loss"]
    size = int(d["image_size"] or entry.image_size)
    values = {
        "dataset.image_size": size,
        "features.image_size": int(f["image_size"] or entry.eval_size or size),
        "features.zoom": float(f["zoom"] if f["zoom"] is not None else entry.eval_zoom),
        "optim.batching": entry.batching if cfg["optim"]["batching"] == "auto" else cfg["optim"]["batching"],
        "loss.form": method.resolve_form(loss["name"], loss["form"]),
    }
    for dotted, value in values.items():
        section, key = dotted.split(".")
        if cfg[section][key] is None or isinstance(cfg[section][key], str) and cfg[section][key] != value:
            cfg["resolved"][dotted] = cfg[section][key]
            cfg[section][key] = value


#: the keys a built config holds resolved (their settings: ``resolved``)
RESOLVED_KEYS = ("dataset.image_size", "features.image_size", "features.zoom", "optim.batching", "loss.form")


def setting(cfg: Mapping, dotted: str) -> Any:
    """The setting ``dotted`` (one of :data:`RESOLVED_KEYS`) came from in a built config: ``auto``, null, ... or its value."""
    section, key = dotted.split(".")
    return cfg["resolved"].get(dotted, cfg[section][key])


def settings(cfg: Mapping) -> dict:
    """A built config with each resolved key back at its setting (what recipes are named and compared by)."""
    out = copy.deepcopy(dict(cfg))
    for dotted in out.pop("resolved", {}):
        section, key = dotted.split(".")
        out[section][key] = cfg["resolved"][dotted]
    return out


class Protocol(NamedTuple):
    """A run's protocol keys as resolved when its config was built (:func:`_resolve_settings`)."""

    image_size: int  # training images (dataset.image_size)
    eval_size: int  # bank and test images of the scores and the learning curve (features.image_size)
    eval_zoom: float  # test transform Resize(zoom * eval_size) -> CenterCrop(eval_size) (features.zoom)
    batching: str  # "pool" | "paired" (optim.batching)

    def labels(self) -> dict:
        return {"image_size": self.image_size, "eval_size": self.eval_size, "eval_zoom": self.eval_zoom,
                "batching": self.batching}


def protocol(cfg: Mapping) -> Protocol:
    """The image sizes, test-transform zoom and batching of a built run config (no torch)."""
    return Protocol(int(cfg["dataset"]["image_size"]), int(cfg["features"]["image_size"]),
                    float(cfg["features"]["zoom"]), cfg["optim"]["batching"])



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


def resume_view(cfg: Mapping) -> dict:
    """The part of a config that must match to resume a checkpoint: everything but the schema's ``local``
    keys (run-local knobs and the recipe's names; the differing values themselves are compared)."""
    return without(cfg, keys_with("local"))


def _under(key: str, names: Iterable[str]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or inside one of them."""
    return any(key == n or key.startswith(n + ".") for n in names)


def resume_differences(recorded: Mapping, cfg: Mapping) -> list[str]:
    """``key: recorded -> now`` for every key of :func:`resume_view` where two validated configs differ."""
    a, b = leaves(resume_view(recorded)), leaves(resume_view(cfg))
    return [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def recorded_differences(recorded: Mapping, cfg: Mapping, path: str | Path) -> list[str]:
    """:func:`resume_differences` of a config a run recorded at ``path`` (a checkpoint's, a ``config.yaml``) and
    validated ``cfg``; one of another format is refused (:func:`check_format`)."""
    check_format(recorded, path)
    return resume_differences(validate(recorded), cfg)


def plan_differences(recorded: Mapping, cfg: Mapping) -> list[str]:
    """``key: recorded -> planned`` for every key where a run's recorded config is another recipe than validated
    ``cfg`` (the workflow plan's): :func:`recorded_differences` and the ``features`` section too (the run's
    results are extracted with it), but the other ``local`` keys of the schema (where it runs and its data lies,
    the recipe's names, ``scores``, ``speed``)."""
    a, b = leaves(validate(recorded)), leaves(cfg)
    skip = tuple(k for k in keys_with("local") if k != "features")
    return [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
            if not _under(k, skip) and a.get(k) != b.get(k)]


def recipe_differences(cfg: Mapping, base: Mapping) -> dict:
    """The recipe keys (dotted) whose value in validated ``cfg`` differs from validated ``base``, sorted.

    Leaves out the schema's ``not-recipe`` keys (bookkeeping, where a run
    runs, and the run directory's other levels: dataset, class, loss,
    outliers, seed).
    """
    a, b = leaves(settings(cfg)), leaves(settings(base))
    not_recipe = keys_with("not-recipe")
    return {k: a.get(k) for k in sorted(set(a) | set(b)) if not _under(k, not_recipe) and a.get(k) != b.get(k)}


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
