"""Build the catalog snapshot (``firm_bench/schema/catalog.json``) from every registry.

The top of the package: it imports every module that fills a registry (the
method, the datasets, the schedules, the paper tables and figures; torch and
pandas), then writes what ``firm_bench.core.catalog`` reads without them.
Run it after adding or renaming a registered name:

    firm-bench catalog --write     # or --check (exit 1 while stale)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firm_bench.core import catalog
from firm_bench.core.rundir import atomic_write_text

__all__ = ["build", "is_stale", "load_registries", "write"]


def load_registries() -> None:
    """Import every module that registers names (each registry fills once, at import)."""
    import firm_bench.datasets  # noqa: F401
    import firm_bench.method.losses  # noqa: F401
    import firm_bench.method.models  # noqa: F401
    import firm_bench.method.outliers  # noqa: F401
    import firm_bench.method.schedules  # noqa: F401
    import firm_bench.method.scores  # noqa: F401
    import firm_bench.paper.figures  # noqa: F401
    import firm_bench.paper.tables  # noqa: F401


def build() -> dict[str, Any]:
    """The catalog of every registry (imports them all)."""
    load_registries()
    return catalog.from_registries()


def write(path: Path = catalog.SNAPSHOT) -> Path:
    """Write :func:`build` to the snapshot file (sorted, one key per line)."""
    return atomic_write_text(path, json.dumps(build(), indent=1, sort_keys=True) + "\n")


def is_stale(path: Path = catalog.SNAPSHOT) -> bool:
    """Whether the stored snapshot differs from the registries (or is missing)."""
    return json.loads(path.read_text()) != build() if path.is_file() else True
