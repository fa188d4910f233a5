"""Every registered name and its facts, declared once as torch-free records (as timm keeps ``default_cfgs``).

``datasets.py`` (each dataset's classes, sizes, statistics and protocol),
``method.py`` (losses, outlier sources, scores, schedules, encoders) and
``paper.py`` (the tables' and figures' titles) hold the records. The torch
half registers its code under these names (``core.registry.Registry(kind,
facts)`` refuses a name without a record), and the torch-free half (config
validation, planning, records, tables) reads them here: nothing to generate.
"""

from __future__ import annotations

from firm_bench.core.facts import datasets, method, paper
from firm_bench.core.facts.method import lookup

#: run-config keys whose values are registered names -> (what an entry is, its records by name)
CONFIG_NAMES: dict[str, tuple[str, dict]] = {
    "dataset.name": ("dataset", datasets.DATASETS), "loss.name": ("loss", method.LOSSES),
    "outliers.name": ("outlier source", method.OUTLIERS), "model.encoder": ("encoder", method.ENCODERS),
    "optim.schedule": ("schedule", method.SCHEDULES), "scores.names": ("score", method.SCORES),
}


def config_names() -> dict[str, list[str]]:
    """Run-config key (``loss.name``, ...) -> the registered names it accepts (what ``firm-bench list`` prints)."""
    return {key: list(table) for key, (_, table) in CONFIG_NAMES.items()}


__all__ = ["CONFIG_NAMES", "config_names", "datasets", "lookup", "method", "paper"]
