"""The paper's claims, checked: paired statistics with the seed as the unit, a verdict per claim.

A replication is judged by whether the paper's conclusions hold, not only by
cell-by-cell differences (``firm_bench.paper.tables``). ``firm_bench/paper/claims.yaml``
lists every claim of the paper's text that our runs can test, each as a
comparison between two sides (cells of our summaries, learning-curve
statistics, or a constant the paper prints); its header documents every key.
This module reads and validates that file (:func:`load_claims`), tests each
claim on our summaries and learning curves (:func:`evaluate_claims`) and
renders ``results/claims.md`` / ``.csv``, a forest plot and the replication
report's section (:func:`write_claims`, :func:`claims_html`; the command
``firm-bench claims`` is in ``firm_bench.cli``). Modules: ``spec`` (the file),
``stats`` (the statistics), ``evaluate`` (selection, pairing, verdicts),
``render`` (the outputs); everything public is re-exported here. Reading
results needs no torch: summaries come from ``records.summary``, the paper's
numbers from ``paper.reported``, names from ``core/facts``.

The method (unit of analysis, effect, interval, tests, Holm, power, coverage,
verdicts) is described once, in docs/CLAIMS.md; the header of
``results/claims.md`` summarises it. Modules: ``spec`` (the file), ``inputs``
(summaries validated on read), ``stats`` (the statistics), ``evaluate``
(selection, pairing by seed, verdicts), ``render`` (the outputs).
"""

from __future__ import annotations

from firm_bench.paper.claims.evaluate import (
    MIN_PAIRS,
    PAPER_SEEDS,
    VERDICTS,
    ClaimResult,
    check_claims,
    evaluate_claims,
    family_of,
    paper_cell,
    paper_cell_std,
    paper_effect,
    paper_spread,
    read_claims,
    stated_size,
)
from firm_bench.paper.claims.inputs import (
    SummaryError,
    check_curves,
    check_summary,
    read_curve_files,
    read_summary_files,
)
from firm_bench.paper.claims.render import (
    CLAIM_COLUMNS,
    STAND_IN_LABEL,
    claims_html,
    claims_markdown,
    claims_table,
    forest_figure,
    read_claims_table,
    stand_in_only,
    verdict_counts,
    write_claims,
    write_forest,
)
from firm_bench.paper.claims.spec import (
    CLAIMS_PATH,
    DIRECTIONS,
    EFFECTS,
    KINDS,
    SIDE_DEFAULTS,
    STATISTICS,
    UNITS,
    UNTRAINED,
    Claim,
    ClaimsError,
    Side,
    StatisticSpec,
    load_claims,
    parse_claims,
)
from firm_bench.paper.claims.stats import (
    ALPHA,
    BOOTSTRAP_SEED,
    EXACT_FLIPS,
    LEVEL,
    N_FLIPS,
    N_RESAMPLES,
    EffectStats,
    bootstrap_interval,
    effect_stats,
    holm,
    one_sided_t_p,
    paired_t_interval,
    ratio_t_interval,
    sign_flip_p,
    t_test,
    within_seed_correlation,
)

__all__ = [
    "ALPHA", "BOOTSTRAP_SEED", "CLAIMS_PATH", "CLAIM_COLUMNS", "DIRECTIONS", "EFFECTS", "EXACT_FLIPS", "KINDS", "LEVEL",
    "MIN_PAIRS", "N_FLIPS", "N_RESAMPLES", "PAPER_SEEDS", "SIDE_DEFAULTS", "STAND_IN_LABEL", "STATISTICS", "UNITS",
    "UNTRAINED", "VERDICTS", "Claim", "ClaimResult", "ClaimsError", "EffectStats", "Side", "StatisticSpec",
    "SummaryError", "bootstrap_interval", "check_claims", "check_curves", "check_summary", "claims_html", "claims_markdown",
    "claims_table", "effect_stats", "evaluate_claims", "family_of", "forest_figure", "holm", "load_claims",
    "one_sided_t_p", "paired_t_interval", "paper_cell", "paper_cell_std", "paper_effect", "paper_spread",
    "parse_claims", "ratio_t_interval", "read_claims", "read_claims_table", "read_curve_files", "read_summary_files",
    "sign_flip_p", "stand_in_only", "stated_size", "t_test", "verdict_counts", "within_seed_correlation",
    "write_claims", "write_forest",
]
