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

#: run-config keys whose values are registered names -> their records by name (``firm-bench list``)
CONFIG_NAMES: dict[str, dict] = {
    "dataset.name": datasets.DATASETS, "loss.name": method.LOSSES, "outliers.name": method.OUTLIERS,
    "model.encoder": method.ENCODERS, "optim.schedule": method.SCHEDULES, "scores.names": method.SCORES,
}

__all__ = ["CONFIG_NAMES", "datasets", "method", "paper"]
