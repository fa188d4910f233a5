"""The paper's tables, ours beside the paper's (``TABLES``).

One spec record per paper table (Tables 1a-d, 2-16; :mod:`.specs`), registered
under its target name (``table5``). A table is built in two steps:

1. :func:`compare` (:mod:`.compare`) matches our summary rows with the
   paper's numbers: one row per table cell (:data:`CELL_COLUMNS`), ours
   (mean +/- std over seeds), the paper's, ours - paper, in percent.
2. :func:`render` (:mod:`.render`) lays the cells out as Markdown, LaTeX or
   HTML with the caption and notes; :func:`write_table` writes .md, .tex and
   the cell CSV.

The labels every table states (recipe, loss forms, protocol, k) are
``firm_bench.paper.labels``; the summaries are read by
``firm_bench.records.summary.read_summaries``.
"""

from __future__ import annotations

from firm_bench.paper.tables.compare import (
    CELL_COLUMNS,
    DEFAULT_TOLERANCE,
    UNTRAINED,
    UNTRAINED_DISPLAY,
    Agreement,
    agreement,
    agrees,
    combined_status,
    compare,
)
from firm_bench.paper.tables.render import caption, notes, read_cells, render, write_table
from firm_bench.paper.tables.specs import TABLE_SPECS, TABLES, TableSpec

__all__ = [
    "CELL_COLUMNS",
    "DEFAULT_TOLERANCE",
    "TABLES",
    "TABLE_SPECS",
    "UNTRAINED",
    "UNTRAINED_DISPLAY",
    "Agreement",
    "TableSpec",
    "agreement",
    "agrees",
    "caption",
    "combined_status",
    "compare",
    "notes",
    "read_cells",
    "render",
    "write_table",
]
