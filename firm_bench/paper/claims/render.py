"""Rendering the verdicts: ``results/claims.md`` / ``.csv``, the report's HTML section, the forest plot.

The CSV (:func:`claims_table`, :data:`CLAIM_COLUMNS`) is the record: one row
per claim with every statistic. The Markdown (:func:`claims_markdown`) and the
replication report's section (:func:`claims_html`) are views of that table,
so the report can render the section from ``results/claims.csv`` as the
workflow wrote it. The command (``firm-bench claims``) is in ``firm_bench.cli``;
it calls :func:`write_claims`.
"""

from __future__ import annotations

import html as html_mod
import io
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from firm_bench.core import rundir
from firm_bench.paper.claims.evaluate import (MIN_PAIRS, PAPER_SEEDS, VERDICTS, ClaimResult, evaluate_claims,
                                              read_claims)
from firm_bench.paper.claims.inputs import read_curve_files, read_summary_files
from firm_bench.paper.claims.spec import UNITS, Claim
from firm_bench.paper.claims.stats import ALPHA, EXACT_FLIPS
from firm_bench.records.summary import CURVE_COLUMNS

STAND_IN_LABEL = "stand-in, not evidence about the paper"
CLAIM_COLUMNS = [
    "id", "group", "kind", "source", "quote", "claim", "statistic", "effect", "unit", "direction", "margin",
    "side_a", "side_b", "vs", "verdict", "evidence", "stand_in", "stand_in_of", "detail", "coverage", "n_classes",
    "n_classes_paper", "n_seeds", "n_seeds_paper", "seeds", "n_pairs", "n_units", "n_cells", "estimate", "ci_low",
    "ci_high", "boot_low", "boot_high", "sd", "p_t", "p_t_against", "p_flip", "p_flip_against", "p_for",
    "p_against", "p_holm", "p_holm_against", "family", "family_size", "within_seed_corr", "p_pooled", "mean_a",
    "mean_b", "paper_effect", "paper_a", "paper_b", "paper_scope", "paper_sd", "paper_p", "power_n", "power",
    "stated", "paper_in_ci", "note", "derived_from",
]
#: the header table's columns (Markdown and HTML)
_HEAD = ["claim", "the paper says", "paper", "ours [95% CI]", "n seeds", "coverage", "p (Holm) for / against",
         "sign-flip p", "verdict"]


def _claim_text(c: Claim) -> str:
    """The comparison in words: 'A > B (auroc relative). A = ...; B = ...'."""
    sym = {">": ">", "<": "<", "<=": "≤ (within margin)", ">=": "≥ (within margin)"}[c.direction]
    what = f"{c.statistic} {c.effect}" + (f", margin {c.margin:g} points" if c.margin is not None else "")
    text = f"A {sym} B ({what}). A = {c.describe('a')}; B = {c.describe('b')}"
    if c.vs:
        text += f"; minus ({c.vs[0].describe()} - {c.vs[1].describe()})"
    return text


def claims_table(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """One row per claim (:data:`CLAIM_COLUMNS`): our effect with both intervals and tests, the paper's, the verdict."""
    rows = []
    for r in results:
        c, s = r.claim, r.stats
        row = {
            "id": c.id, "group": c.group, "kind": c.kind, "source": c.source, "quote": c.quote,
            "claim": _claim_text(c), "statistic": c.statistic, "effect": c.effect, "unit": c.unit,
            "direction": c.direction, "margin": c.margin, "side_a": c.describe("a"), "side_b": c.describe("b"),
            "vs": f"{c.vs[0].describe()} - {c.vs[1].describe()}" if c.vs else "",
            "verdict": r.verdict, "evidence": STAND_IN_LABEL if r.stand_in else "the paper's datasets",
            "stand_in": r.stand_in, "stand_in_of": r.stand_in_of, "detail": r.detail,
            "coverage": r.coverage, "n_pairs": r.n_pairs, "n_units": r.n_units,
            "p_holm": r.p_holm, "p_holm_against": r.p_holm_against, "family": r.family,
            "family_size": r.family_size, "paper_effect": r.paper_effect,
            "paper_a": r.paper_numbers.get("a", math.nan), "paper_b": r.paper_numbers.get("b", math.nan),
            "stated": r.stated, "paper_in_ci": r.paper_in_ci, "note": c.note, "derived_from": ", ".join(c.derived_from),
        }
        row.update(n_classes=r.n_classes if r.n_pairs else math.nan, n_classes_paper=r.n_classes_paper,
                   n_seeds=len(r.seeds) if r.n_pairs else math.nan, n_seeds_paper=PAPER_SEEDS,
                   seeds=",".join(map(str, r.seeds)), n_cells=r.n_cells, within_seed_corr=r.within_seed_corr,
                   p_pooled=r.p_pooled, paper_scope=r.paper_scope, paper_sd=r.paper_sd, paper_p=r.paper_p,
                   power_n=r.power_n, power=r.power)
        if s is not None:
            lo, hi = s.ci
            row.update(estimate=s.estimate, ci_low=lo, ci_high=hi, boot_low=s.boot_low, boot_high=s.boot_high,
                       sd=s.sd, p_t=s.p_t, p_t_against=s.p_t_against, p_flip=s.p_flip,
                       p_flip_against=s.p_flip_against, p_for=s.p_for, p_against=s.p_against,
                       mean_a=s.mean_a, mean_b=s.mean_b)
        rows.append(row)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def read_claims_table(path: str | Path) -> pd.DataFrame:
    """``results/claims.csv`` read back (as :func:`claims_table` wrote it); FileNotFoundError names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"claims table {path} does not exist; build it with `snakemake {path.with_suffix('.md')}`"
                                " or `firm-bench claims`")
    df = pd.read_csv(path, dtype={"id": str, "verdict": str})
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a claims table (columns {missing} absent); rebuild it with `firm-bench claims`")
    df["stand_in"] = df["stand_in"].map(lambda v: v is True or str(v).strip().lower() == "true")
    return df


# --------------------------------------------------------------------------- #
# one row in words (both views)
# --------------------------------------------------------------------------- #
def _str(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _num(v: Any, unit: str, signed: bool = True) -> str:
    v = _float(v)
    if not math.isfinite(v):
        return ""
    text = f"{v:+.2f}" if signed else f"{v:.2f}"
    return text + ("%" if unit == "relative_pct" else (" ep" if unit == "epochs" else ""))


def _p(v: Any) -> str:
    v = _float(v)
    if not math.isfinite(v):
        return ""
    return f"{v:.2g}" if v >= 1e-4 else "<1e-4"


def _holm_text(row: Mapping) -> str:
    """Both Holm-adjusted p's, the verdict's side first named: 'for 0.003 / against 1' (a contradicted row leads
    with its p against, so a '1' never reads as the evidence)."""
    pf, pa = _p(row["p_holm"]), _p(row["p_holm_against"])
    if not pf:
        return ""
    if _str(row["verdict"]) == "contradicted":
        return f"against {pa} / for {pf}"
    return f"for {pf} / against {pa}"


def _flip_text(row: Mapping) -> str:
    pf = _p(row["p_flip"])
    if not pf:
        return ""
    return f"against {_p(row['p_flip_against'])}" if _str(row["verdict"]) == "contradicted" else pf


def _power_text(row: Mapping) -> str:
    power = _str(row["power"])
    return power if power and not power.startswith("reproducible") else ""


def _verdict_text(row: Mapping) -> str:
    text = _str(row["verdict"])
    if text in ("not run", "pending", "too few", "withheld"):
        text += f": {_str(row['detail'])}"
    if text != "supported" and _power_text(row):
        text += f" ({_power_text(row)}: the paper's own effect and spread would not pass)"
    if row["stand_in"]:
        text += f" ({STAND_IN_LABEL}: {_str(row['stand_in_of'])})"
    return text


def _ours_text(row: Mapping) -> str:
    if not math.isfinite(_float(row["estimate"])):
        return ""
    unit = row["unit"]
    return f"{_num(row['estimate'], unit)} [{_num(row['ci_low'], unit)}, {_num(row['ci_high'], unit)}]"


def _paper_text(row: Mapping) -> str:
    parts = []
    if math.isfinite(_float(row["paper_effect"])):
        parts.append(_num(row["paper_effect"], row["unit"]))
    if math.isfinite(_float(row["stated"])):
        parts.append(f"stated {_num(row['stated'], row['unit'])}")
    if _str(row["paper_scope"]):
        parts.append(f"({_str(row['paper_scope'])})")
    return "; ".join(parts)


def _coverage_text(row: Mapping, bold: tuple[str, str] = ("**", "**")) -> str:
    text = _str(row["coverage"])
    full = (_float(row["n_classes"]) == _float(row["n_classes_paper"])
            and _float(row["n_seeds"]) == _float(row["n_seeds_paper"]))
    if text and math.isfinite(_float(row["n_seeds"])) and not full:
        text = f"{bold[0]}partial{bold[1]}: {text}"
    rho = _float(row["within_seed_corr"])
    if math.isfinite(rho):
        text += f"; within-seed ρ {rho:+.2f}"
    return text


def _says_text(row: Mapping, italic: tuple[str, str] = ("*", "*")) -> str:
    note = _str(row["note"])
    return f"“{_str(row['quote'])}” ({_str(row['source'])})" + (f" {italic[0]}{note}{italic[1]}" if note else "")


def _n_text(row: Mapping) -> str:
    n = _float(row["n_pairs"])
    return str(int(n)) if math.isfinite(n) and n > 0 else ""


def _is_check(table: pd.DataFrame) -> pd.Series:
    return table["kind"] == "learns"


def _counts(table: pd.DataFrame) -> list[tuple[str, int]]:
    counts = table["verdict"].value_counts()
    return [(v, int(counts[v])) for v in VERDICTS if counts.get(v, 0)]


def verdict_counts(table: pd.DataFrame) -> str:
    """'paper's claims: supported 3, ...; our learning checks: supported 2, ...' (the two never mixed)."""
    parts = []
    for label, rows in (("paper's claims", table[~_is_check(table)]), ("our learning checks", table[_is_check(table)])):
        if len(rows):
            parts.append(f"{label} ({len(rows)}): " + ", ".join(f"{v} {n}" for v, n in _counts(rows)))
    return "; ".join(parts)


def _family_size(table: pd.DataFrame, family: str) -> int:
    sizes = pd.to_numeric(table.loc[table["family"] == family, "family_size"], errors="coerce").dropna()
    return int(sizes.iloc[0]) if len(sizes) else 0


def _correlation_text(table: pd.DataFrame) -> str:
    rho = pd.to_numeric(table["within_seed_corr"], errors="coerce").dropna()
    if rho.empty:
        return "not measured yet (no claim has two cells and two seeds paired)"
    return (f"median {rho.median():+.2f} over {len(rho)} claims (range {rho.min():+.2f} to {rho.max():+.2f}; "
            "per claim in the coverage column and the CSV's `within_seed_corr`)")


def stand_in_only(table: pd.DataFrame) -> bool:
    """Whether every claim with results was evaluated on a stand-in (then nothing is evidence about the paper)."""
    has = pd.to_numeric(table["estimate"], errors="coerce").notna()
    return bool(table["stand_in"].any()) and not bool((has & ~table["stand_in"]).any())


# --------------------------------------------------------------------------- #
# Markdown
# --------------------------------------------------------------------------- #
def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _method_lines(table: pd.DataFrame) -> list[str]:
    """How to read the verdicts (both views; docs/CLAIMS.md has the full description)."""
    fams = [(f, _family_size(table, f)) for f in ("paper", "learns", "stand-in", "stand-in learns")]
    fams = ", ".join(f"{f} {m} claim{'s' if m != 1 else ''} ({2 * m} hypotheses)" for f, m in fams if m)
    return [
        "**Unit: the seed.** A claim about a mean over classes (OOD sets, MVTec generators) is tested on the "
        "per-seed means over its cells, paired by seed (n = seeds, as the paper's \"mean ± std over five runs\"); a "
        "per-class claim on that class's per-seed values. One seed gives every class and loss the same "
        "initial weights, so the cells of a seed are not independent; the pooled class × seed t test (cells as if "
        "independent) is in the CSV (`p_pooled`) as a secondary, labelled column, never the verdict. Measured "
        f"within-seed correlation of the differences: {_correlation_text(table)}.",
        "**Effect** (our A − B, or mean(A)/mean(B) − 1 in % for *relative* claims as the paper's \"Relative "
        "Improvement\") with its **95 % paired t interval** (delta method for relative effects; unadjusted). "
        "*Vs reported*: our per-seed means against the printed number, taken as exact.",
        "**Test**: the one-sided paired t test of that mean (against 0, or the margin of \"does not outperform\" / "
        "\"approaching\" claims). Beside it the **sign-flip permutation p** of the same mean (exact over all 2ⁿ "
        f"sign patterns up to n = {EXACT_FLIPS}; its smallest value is 2⁻ⁿ, 1/32 at n = 5) as the robustness "
        "check: it assumes symmetry, not normality. No normality pretest; no rank test.",
        f"**Holm**, one family over both directions of every tested claim, family-wise α = {ALPHA} in all "
        f"(so at most α of wrong verdicts, *supported* and *contradicted* together): {fams or 'no tested claim'}. "
        "Our learning checks and stand-in claims are families of their own. *supported*: Holm-adjusted p for the "
        "claim < α; *contradicted*: for the opposite; *not significant*: neither.",
        f"**Power in the open**: *underpowered at n = N* marks a claim that could not be supported even if the "
        "paper's numbers were reproduced exactly (its effect and printed spread, at our n, or the paper's "
        f"{PAPER_SEEDS} seeds before runs exist, and Holm step).",
        f"**Coverage**: classes and seeds used out of the paper's ({PAPER_SEEDS} seeds); *partial* where fewer. A "
        "*vs reported* verdict on a subset of classes compares with the paper's mean over the same classes where "
        "its table prints them, and is *withheld* otherwise.",
        f"**No verdict from fewer than {MIN_PAIRS} seeds** (*too few*); *not run* names what is missing.",
    ]


def _header(table: pd.DataFrame, summary_note: str, partial: bool, problems: Sequence[str] = ()) -> list[str]:
    stand = int(table["stand_in"].sum())
    lines = ["# The paper's claims, checked", ""]
    if problems:
        lines += [f"**The claims file has {len(problems)} problem{'s' if len(problems) != 1 else ''}; the claims "
                  "concerned are left out below (`--partial`):**", "", *[f"- {_esc(p)}" for p in problems], ""]
    if stand_in_only(table):
        lines += [f"**Stand-in data only: nothing here is evidence about the paper.** Every claim with results was "
                  f"evaluated on a miniature standing in for a paper dataset ({STAND_IN_LABEL}); the file exercises "
                  "the path from runs to verdicts.", ""]
    lines += [
        "Every testable claim of the paper's text (`firm_bench/paper/claims.yaml`), tested on our runs"
        + (f" ({summary_note})" if summary_note else "") + "."
        + (" **Interim**: runs are still going; claims without results read *pending*." if partial else ""),
        "",
        "How to read it (docs/CLAIMS.md):",
        "",
        *[f"- {x}" for x in _method_lines(table)],
    ]
    if stand:
        lines.append(f"- **Stand-ins**: {stand} claim{'s are' if stand != 1 else ' is'} evaluated on a miniature "
                     f"standing in for a paper dataset (`fmnist_mini` for Fashion-MNIST); marked "
                     f"*{STAND_IN_LABEL}*. They exercise the path, they say nothing about the paper.")
    lines.append("")
    for label, rows in (("the paper's claims", table[~_is_check(table)]),
                        ("our learning checks (not the paper's claims)", table[_is_check(table)])):
        if len(rows):
            lines += [f"| verdict, {label} | claims |", "|---|---|"]
            lines += [f"| {v} | {n} |" for v, n in _counts(rows)] + [""]
    return lines


def _cells(row: Mapping, html: bool = False) -> list[str]:
    """One claim's cells of :data:`_HEAD`: Markdown, or HTML (escaped, the note in italics)."""
    if html:
        esc = html_mod.escape
        return [esc(_str(row["claim"])), _says_text({k: esc(_str(v)) for k, v in row.items()}, ("<i>", "</i>")),
                *[esc(x) for x in (_paper_text(row), _ours_text(row), _n_text(row))],
                esc(_coverage_text(row, ("", ""))).replace("partial:", "<b>partial</b>:", 1),
                *[esc(x) for x in (_holm_text(row), _flip_text(row), _verdict_text(row))]]
    return [_str(row["claim"]), _says_text(row), _paper_text(row), _ours_text(row), _n_text(row),
            _coverage_text(row), _holm_text(row), _flip_text(row), _verdict_text(row)]


def claims_markdown(results: Sequence[ClaimResult] | pd.DataFrame, *, summary_note: str = "", partial: bool = False,
                    forest: str | None = None, problems: Sequence[str] = ()) -> str:
    """``results/claims.md``: the header on the statistics, then one table per group, a verdict per claim.

    ``problems``: the claims file's problems (``--partial`` left those claims out), listed at the top.
    """
    table = results if isinstance(results, pd.DataFrame) else claims_table(results)
    lines = _header(table, summary_note, partial, problems)
    if forest:
        lines += [f"![Forest plot of our effects]({forest})", ""]
    for group, rows in table.groupby("group", sort=False):
        lines += [f"## {group}", "", "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
        for row in rows.to_dict("records"):
            cells = _cells(row)
            cells[0] = f"**{row['id']}**: {cells[0]}"
            lines.append("| " + " | ".join(_esc(x) for x in cells) + " |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# the replication report's section
# --------------------------------------------------------------------------- #
def claims_html(results: Sequence[ClaimResult] | pd.DataFrame, *, forest_href: str | None = None,
                links: Sequence[tuple[str, str]] = ()) -> str:
    """The report's section (``<section id="claims">``): verdict counts, the forest plot, a row per claim.

    Each row (columns :data:`_HEAD`): the claim, the paper's statement (quote
    and source), the paper's own effect, ours with its 95 % interval, the
    seeds, the coverage (with the within-seed correlation), both Holm-adjusted
    p's, the sign-flip p and the verdict (with what is missing, the power and
    the stand-in label). ``links``: (label, href) of the Markdown / CSV.
    """
    esc = html_mod.escape
    table = results if isinstance(results, pd.DataFrame) else claims_table(results)
    link_text = " · ".join(f"<a href='{esc(href)}'>{esc(label)}</a>" for label, href in links)
    out = ['<section id="claims"><h2>The paper\'s claims, checked</h2>']
    if stand_in_only(table):
        out.append("<p class='missing'><b>Stand-in data only: nothing here is evidence about the paper.</b> Every "
                   "claim with results was evaluated on a miniature standing in for a paper dataset.</p>")
    method = "".join(f"<li>{re.sub(r'[*`]', '', esc(x))}</li>" for x in _method_lines(table))
    out += [f"<p class='caption'>Every testable claim of the paper's text (firm_bench/paper/claims.yaml). "
            f"Stand-in claims are {esc(STAND_IN_LABEL)}. docs/CLAIMS.md. {link_text}</p>",
            f"<details><summary>How to read it</summary><ul>{method}</ul></details>",
            f"<p>{esc(verdict_counts(table))}</p>"]
    if forest_href:
        out.append(f'<img src="{esc(forest_href)}" alt="forest plot of the claims\' effects">')
    waiting = table["verdict"].isin(["not run", "pending"])
    if (~waiting).any():
        out.append(_html_rows(table[~waiting]))
    if waiting.any():
        out.append(f"<details><summary>{int(waiting.sum())} claims without results (not run / pending), "
                   "each with what is missing</summary>" + _html_rows(table[waiting]) + "</details>")
    out.append("</section>")
    return "\n".join(out)


def _html_rows(table: pd.DataFrame) -> str:
    """The claims of ``table`` as an HTML table (columns :data:`_HEAD`; long cells wrap)."""
    esc = html_mod.escape
    out = ["<table class='claims'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in _HEAD) + "</tr></thead><tbody>"]
    for row in table.to_dict("records"):
        cls = _str(row["verdict"]).replace(" ", "-")
        cells = _cells(row, html=True)
        cells[0] = f"<b>{esc(_str(row['id']))}</b><br>{cells[0]}"
        out.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# --------------------------------------------------------------------------- #
# the forest plot
# --------------------------------------------------------------------------- #
_VERDICT_COLORS = {"supported": "#1a9850", "contradicted": "#d73027", "not significant": "#7f7f7f",
                   "withheld": "#9e9ac8", "too few": "#bdbdbd"}


def forest_figure(results: Sequence[ClaimResult]):
    """Forest plot (a ``matplotlib.figure.Figure``, no pyplot state): each claim's effect and 95 % interval.

    One panel per unit (points, %, epochs), claims in file order; the colour is
    the verdict, a hollow marker a stand-in, an x the paper's own effect, a
    grey tick the claim's boundary where it is not 0 (margins). One
    figure-level legend above the panels.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from firm_bench.paper.figures.common import RC, TEXT_WIDTH_IN, note

    shown = [r for r in results if r.stats is not None and math.isfinite(r.stats.estimate)]
    units = [u for u in UNITS if any(r.claim.unit == u for r in shown)]
    with matplotlib.rc_context(RC):
        if not shown:
            fig = Figure(figsize=(TEXT_WIDTH_IN, 1.2), layout="constrained")
            ax = fig.subplots()
            ax.text(0.5, 0.5, "no claim has results yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        sizes = [sum(r.claim.unit == u for r in shown) for u in units]
        fig = Figure(figsize=(TEXT_WIDTH_IN, 0.6 + 0.14 * sum(sizes) + 0.4 * len(units)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(len(units), 1, gridspec_kw={"height_ratios": [max(s, 1) for s in sizes]}))
        for ax, unit in zip(axes, units):
            rs = [r for r in shown if r.claim.unit == unit]
            y = np.arange(len(rs))[::-1]
            for yi, r in zip(y, rs):
                color = _VERDICT_COLORS.get(r.verdict, "#7f7f7f")
                lo, hi = r.stats.ci
                if math.isfinite(lo) and math.isfinite(hi):
                    ax.plot([lo, hi], [yi, yi], color=color, linewidth=1.0)
                ax.plot([r.stats.estimate], [yi], marker="o", markersize=3.2, color=color,
                        markerfacecolor="white" if r.stand_in else color)
                if math.isfinite(r.paper_effect):
                    ax.plot([r.paper_effect], [yi], marker="x", markersize=3.2, color="black", linewidth=0)
                if r.claim.boundary != 0:
                    ax.plot([r.claim.boundary], [yi], marker="|", markersize=5, color="0.5", linewidth=0)
            ax.axvline(0, color="0.6", linewidth=0.6, linestyle=":")
            ax.set_yticks(y)
            ax.set_yticklabels([r.claim.id + (" (stand-in)" if r.stand_in else "") for r in rs], fontsize=5)
            ax.set_ylim(-0.7, len(rs) - 0.3)
            ax.set_xlabel({"points": "effect, A − B (AUROC / AULC points)", "relative_pct": "effect, A / B − 1 (%)",
                           "epochs": "effect, A − B (epochs)"}[unit])
        handles = [Line2D([], [], color=c, marker="o", markersize=3.2, label=v) for v, c in _VERDICT_COLORS.items()]
        handles += [Line2D([], [], color="black", marker="x", linewidth=0, markersize=3.2, label="paper's effect"),
                    Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linewidth=0, markersize=3.2,
                           label="stand-in (not evidence)")]
        fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False, fontsize=6)
        text = ("95 % paired t intervals over seeds, unadjusted; colour: the verdict after Holm's correction "
                "(results/claims.md)")
        if any(r.stand_in for r in shown):
            text = f"Hollow markers: {STAND_IN_LABEL}. " + text
        note(fig, text)
        return fig


def write_forest(results: Sequence[ClaimResult], png: str | Path) -> list[Path]:
    """The forest plot as PNG and PDF (``png`` with suffix .pdf), written atomically."""
    import matplotlib

    from firm_bench.paper.figures.common import RC

    fig = forest_figure(results)
    paths = []
    png = Path(png)
    with matplotlib.rc_context(RC):
        for path, fmt in ((png, "png"), (png.with_suffix(".pdf"), "pdf")):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt)
            paths.append(rundir.atomic_write_bytes(path, buf.getvalue()))
    return paths


# --------------------------------------------------------------------------- #
# files
# --------------------------------------------------------------------------- #
def _frames(summaries: Sequence[str | Path] | pd.DataFrame, curves: Sequence[str | Path] | pd.DataFrame,
            partial: bool) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """Summary rows and curves from paths (or frames); with ``partial``, absent files are skipped (and returned)."""
    absent: list[Path] = []

    def paths(items):
        items = [Path(p) for p in items]
        if partial:
            absent.extend(p for p in items if not p.is_file())
            items = [p for p in items if p.is_file()]
        return items

    if isinstance(summaries, pd.DataFrame):
        summary = summaries
    else:
        s_paths = paths(summaries)
        summary = read_summary_files(s_paths) if s_paths else pd.DataFrame()
    if isinstance(curves, pd.DataFrame):
        crv = curves
    else:
        c_paths = paths(curves)
        crv = read_curve_files(c_paths) if c_paths else pd.DataFrame(columns=CURVE_COLUMNS)
    return summary, crv, absent


def write_claims(summaries: Sequence[str | Path] | pd.DataFrame, curves: Sequence[str | Path] | pd.DataFrame,
                 out_md: str | Path, out_csv: str | Path, forest_png: str | Path | None = None,
                 partial: bool = False, *, claims_file: str | Path | None = None, plan=None,
                 missing: Sequence[str] = (), config_label: str = "") -> list[Path]:
    """``results/claims.md`` and ``.csv`` (and the forest plot, PNG + PDF) from summaries and learning curves.

    ``summaries`` / ``curves``: experiment summary files (or their rows read
    already). With ``partial``, files that do not exist yet are skipped
    (their claims read *pending*); otherwise a missing file is an error.
    ``plan`` (``planning.grid.Plan``): the config in effect, so that a claim
    without runs names the experiment that plans them (or says none does).
    ``missing``: summaries the caller knows are absent (named in the header);
    ``config_label``: the workflow config the runs come from (named there too).
    The claims file is validated whole first (``evaluate.read_claims``): every
    problem at once, or, with ``partial``, its bad claims left out and named
    at the top. Returns the paths written.
    """
    claims, problems = read_claims(claims_file, partial=partial)
    summary, crv, absent = _frames(summaries, curves, partial)
    results = evaluate_claims(summary, crv, claims, partial=partial, plan=plan)
    out_md, out_csv = Path(out_md), Path(out_csv)
    written = []
    forest_rel = None
    if forest_png is not None:
        written += write_forest(results, forest_png)
        forest_rel = Path(os.path.relpath(Path(forest_png), out_md.parent)).as_posix()
    n_runs = summary["run_dir"].nunique() if not summary.empty else 0
    n_files = len(summaries) - len(absent) if not isinstance(summaries, pd.DataFrame) else None
    note = (f"{n_files} summar{'y' if n_files == 1 else 'ies'}, " if n_files is not None else "") + f"{n_runs} runs"
    gone = [*missing, *(str(p) for p in absent)]
    if gone:
        note += f"; not built yet: {', '.join(gone)}"
    if config_label:
        note = f"config {config_label}: {note}"
    table = claims_table(results)
    written.append(rundir.atomic_write_text(out_md, claims_markdown(table, summary_note=note, partial=partial,
                                                                    forest=forest_rel, problems=problems)))
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    written.append(rundir.atomic_write_text(out_csv, buf.getvalue()))
    return written
