"""Shared test helpers, not tests: paths, data-fixture writers (``data``), summary builders
(``summaries``) and the Snakemake driver (``snakemake``). Test modules import these, never each other."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
CONFIGS = ROOT / "workflow" / "config"
SNAKEFILE = ROOT / "Snakefile"
