"""Which runs can be trained together as one fused model (a pack), torch-free.

A pack (``firm_bench.run.train.train_pack``) trains K runs as one horizontally
fused model (``firm_bench.run.engine.fused``): every tensor of a step holds
the K runs side by side, so they need the same tensor shapes and the same
step schedule. Everything else is per run: each run has its own data, draws,
loss, optimiser state and schedule, and its own run directory.

:data:`PACK_VARYING` lists the config keys (dotted; a section name means all
of its keys) that may differ between the runs of one pack, the schema's
``pack-varying`` keys (``x-roles`` in run.schema.yaml); every other key must
be equal. It is the one rule: the planner groups runs by
:func:`pack_key` (``firm_bench.planning.grid.packs``) and the trainer checks
a pack with :func:`check_packable`, so the two cannot disagree. Why each may
differ:

- ``seed``, ``recipe``: initial weights, draws, names; no shapes.
- ``resolved``: the settings resolved keys came from (the values are compared).
- ``dataset.cls``, ``dataset.normalization``: each run reads its own class
  and normalises with its own mean and std (per sample). The training-set
  sizes must still match: :func:`check_shapes` checks them once the data is
  loaded, the planner groups by the registered sizes.
- ``loss``: each run's loss is computed on its own slice of the projections.
- ``outliers``: each run draws its own outliers (the number of rows per epoch
  must match; as above).
- ``optim.lr``, ``momentum``, ``momentum_cycle``, ``weight_decay``, ``schedule`` and its
  parameters: the fused SGD applies each run's own values per slice, and each
  run's own scheduler gives its values step by step.
- ``eval.k``, ``checkpoint.select``, ``checkpoint.select_score``: per-run
  bookkeeping of the learning curve and model selection.
- ``features.angles`` / ``crops`` / ``crop_scale`` / ``untrained``,
  ``scores``: used after training only.

Not in the list, so equal across a pack: ``model`` (one fused network),
``optim.epochs`` / ``batch_size`` / ``batching`` (one step schedule),
``augment`` (one augmentation op sequence), ``dataset.name`` /
``image_size`` / ``ood`` / ``root``, ``eval.every`` / ``at_start``,
``checkpoint.every``, ``features.image_size`` / ``zoom`` / ``batch_size``
(the batched learning-curve evaluation), ``speed``, ``device``, ``threads``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from firm_bench.core.config import keys_with, without
from firm_bench.core.errors import ConfigError

#: config keys that may differ between the runs of a pack (a section: all its keys): the schema's pack-varying
PACK_VARYING: tuple[str, ...] = keys_with("pack-varying")


def shared_part(cfg: Mapping[str, Any]) -> dict:
    """The config without the :data:`PACK_VARYING` keys: what every run of a pack must share."""
    return without(cfg, PACK_VARYING)


def pack_key(cfg: Mapping[str, Any]) -> str:
    """A string equal for two configs exactly when they may share a pack (up to data shapes)."""
    return json.dumps(shared_part(cfg), sort_keys=True, default=str)


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return where
            found = _first_difference(a[key], b[key], where)
            if found:
                return found
        return None
    return None if a == b else (path or "<config>")


def check_packable(cfgs: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> None:
    """Raise ConfigError naming the first key that differs where it may not (see the module docstring)."""
    if not cfgs:
        raise ConfigError("a pack needs at least one run")
    names = list(names) if names is not None else [f"run {i}" for i in range(len(cfgs))]
    ref = shared_part(cfgs[0])
    for cfg, name in zip(cfgs[1:], names[1:]):
        key = _first_difference(ref, shared_part(cfg))
        if key is not None:
            raise ConfigError(
                f"{name} cannot share a pack with {names[0]}: {key} differs "
                f"({_get(cfgs[0], key)!r} vs {_get(cfg, key)!r}); runs of a pack may differ only in "
                f"{', '.join(PACK_VARYING)}: train it in another pack or alone (pack_runs: 1)")


def check_shapes(shapes: Sequence[Mapping[str, int]], names: Sequence[str]) -> None:
    """The per-run step shapes (e.g. rows per epoch, steps per epoch, rows per step) must be equal."""
    for shape, name in zip(shapes[1:], names[1:]):
        for key, value in shape.items():
            if value != shapes[0][key]:
                raise ConfigError(
                    f"{name} cannot share a pack with {names[0]}: its {key} is {value}, not {shapes[0][key]} "
                    "(a fused step needs equal shapes: same training-set size and outlier copies); "
                    "train it in another pack or alone (pack_runs: 1)")


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
