"""The paper's claims, checked: paired statistics over seeds and classes, a verdict per claim.

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
numbers from ``paper.reported``, names from the catalog snapshot.

Design (two losses' runs share seeds and classes, so they are compared paired):

- **Units and pairs.** A unit is one (class, seed) of the one-class protocol, or
  one (OOD set, seed) of Table 4, plus every identity field both sides select
  alike (MVTec: its two outlier generators). A side with ``mean_over`` is the
  mean over its classes (OOD sets) per seed, and its units are seeds. A pair is
  a unit where both sides (all four for a difference of differences) are ok.
- **Effect.** ``difference``: mean over pairs of a - b (AUROC / AULC points, or
  epochs); with ``vs``: of (a - b) - (vs.a - vs.b). ``relative``: mean(a) /
  mean(b) - 1 in %, as the paper's "Relative Improvement" (ratio of the means).
  Against a constant b (a literature number, a threshold) the effect is
  mean(a) - b, "vs reported": the constant has no uncertainty of its own here.
- **Intervals (95 %), both always in the CSV.** Paired t: d_bar +/- t(n-1) s/sqrt(n);
  for a relative effect the delta method, r +/- t(n-1) sd(a - r b) / (sqrt(n) b_bar).
  Paired bootstrap: :data:`N_RESAMPLES` resamples of the pairs with replacement
  (seeded, :data:`BOOTSTRAP_SEED`), percentile interval. The one *used* is t
  when n >= :data:`CLT_PAIRS` or the differences pass a Shapiro-Wilk normality
  check (p >= :data:`NORMALITY_ALPHA`), else the bootstrap.
- **Tests (one-sided, paired).** Each claim has a boundary theta0 (0; +margin for
  "a does not exceed b", -margin for "a is not below b") and a claimed side of
  it (``direction``). The test is the one-sided paired t test of the
  differences against theta0 where the t interval is used, else the Wilcoxon
  signed-rank test; both are in the CSV (Wilcoxon as the check). p_for tests
  the claimed side, p_against the other.
- **Multiplicity.** Holm's step-down correction over every claim that has a
  test, separately for p_for and p_against (family-wise alpha = :data:`ALPHA`).
  Claims evaluated on stand-in data form their own family, so a miniature
  never dilutes, nor counts towards, the paper's claims.
- **Verdicts.** ``supported``: Holm-adjusted p_for < alpha. ``contradicted``:
  Holm-adjusted p_against < alpha. ``not significant``: neither. ``too few``:
  fewer than :data:`MIN_PAIRS` pairs (no verdict is ever drawn from fewer).
  ``not run``: a side has no runs (``pending`` with ``partial`` while runs are
  going), naming what is missing and how many pairs were found of how many.
  The 95 % intervals are unadjusted; the verdict follows the adjusted test.
- **Stand-ins.** A dataset the config did not run is replaced by its stand-in
  (``reported.STAND_INS``: ``fmnist_mini`` for ``fashion_mnist``). Such
  claims are labelled "stand-in, not evidence about the paper" everywhere.
- **Learning vs the untrained encoder.** Where a claim says a loss learns
  (``untrained`` in the file), a derived claim ``learns.<loss>.<dataset>...``
  checks that side's AUROC above the untrained encoder of the same runs
  (the summaries' ``untrained_auroc``).

Learning-curve statistics (``claims.yaml`` header, :data:`STATISTICS`) leave
out epoch 0 (the untrained encoder), as AULC does (``metrics.aulc``).
"""

from __future__ import annotations

from firm_bench.paper.claims.evaluate import (
    MIN_PAIRS,
    VERDICTS,
    ClaimResult,
    evaluate_claims,
    paper_cell,
    paper_effect,
    stated_size,
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
    CLT_PAIRS,
    LEVEL,
    N_RESAMPLES,
    NORMALITY_ALPHA,
    EffectStats,
    bootstrap_interval,
    effect_stats,
    holm,
    paired_t_interval,
    ratio_t_interval,
)

__all__ = [
    "ALPHA", "BOOTSTRAP_SEED", "CLAIMS_PATH", "CLAIM_COLUMNS", "CLT_PAIRS", "DIRECTIONS", "EFFECTS", "KINDS", "LEVEL",
    "MIN_PAIRS", "NORMALITY_ALPHA", "N_RESAMPLES", "SIDE_DEFAULTS", "STAND_IN_LABEL", "STATISTICS", "UNITS",
    "UNTRAINED", "VERDICTS", "Claim", "ClaimResult", "ClaimsError", "EffectStats", "Side", "StatisticSpec",
    "bootstrap_interval", "claims_html", "claims_markdown", "claims_table", "effect_stats", "evaluate_claims",
    "forest_figure", "holm", "load_claims", "paired_t_interval", "paper_cell", "paper_effect", "parse_claims",
    "ratio_t_interval", "read_claims_table", "stand_in_only", "stated_size", "write_claims", "write_forest",
]
