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
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from firm_bench.core import rundir
from firm_bench.paper.claims.evaluate import MIN_PAIRS, VERDICTS, ClaimResult, evaluate_claims
from firm_bench.paper.claims.spec import UNITS, Claim, load_claims
from firm_bench.paper.claims.stats import ALPHA, BOOTSTRAP_SEED, CLT_PAIRS, N_RESAMPLES, NORMALITY_ALPHA
from firm_bench.records.summary import CURVE_COLUMNS, read_curves, read_summaries

STAND_IN_LABEL = "stand-in, not evidence about the paper"
CLAIM_COLUMNS = [
    "id", "group", "kind", "source", "quote", "claim", "statistic", "effect", "unit", "direction", "margin",
    "side_a", "side_b", "vs", "verdict", "evidence", "stand_in", "stand_in_of", "detail", "coverage", "n_pairs",
    "n_units", "estimate", "ci_method", "ci_low", "ci_high", "t_low", "t_high", "boot_low", "boot_high",
    "normality_p", "test", "p_t", "p_wilcoxon", "p_t_against", "p_wilcoxon_against", "p_for", "p_against",
    "p_holm", "p_holm_against", "family", "family_size", "mean_a", "mean_b", "paper_effect", "paper_a",
    "paper_b", "stated", "paper_in_ci", "note", "derived_from",
]
#: the header table's columns (Markdown and HTML)
_HEAD = ["claim", "the paper says", "paper", "ours [95% CI]", "n", "p (Holm)", "verdict"]


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
        if s is not None:
            lo, hi = s.ci
            row.update(estimate=s.estimate, ci_method=s.ci_method, ci_low=lo, ci_high=hi, t_low=s.t_low,
                       t_high=s.t_high, boot_low=s.boot_low, boot_high=s.boot_high, normality_p=s.normality_p,
                       test=s.test, p_t=s.p_t, p_wilcoxon=s.p_wilcoxon, p_t_against=s.p_t_against,
                       p_wilcoxon_against=s.p_wilcoxon_against, p_for=s.p_for, p_against=s.p_against,
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


def _verdict_text(row: Mapping) -> str:
    text = _str(row["verdict"])
    if text in ("not run", "pending", "too few"):
        text += f": {_str(row['detail'])}"
    if row["stand_in"]:
        text += f" ({STAND_IN_LABEL}: {_str(row['stand_in_of'])})"
    return text


def _ours_text(row: Mapping) -> str:
    if not math.isfinite(_float(row["estimate"])):
        return ""
    unit = row["unit"]
    method = "t" if row["ci_method"] == "t" else "bootstrap"
    return f"{_num(row['estimate'], unit)} [{_num(row['ci_low'], unit)}, {_num(row['ci_high'], unit)}] ({method})"


def _paper_text(row: Mapping) -> str:
    parts = []
    if math.isfinite(_float(row["paper_effect"])):
        parts.append(_num(row["paper_effect"], row["unit"]))
    if math.isfinite(_float(row["stated"])):
        parts.append(f"stated {_num(row['stated'], row['unit'])}")
    return "; ".join(parts)


def _says_text(row: Mapping) -> str:
    note = _str(row["note"])
    return f"“{_str(row['quote'])}” ({_str(row['source'])})" + (f" *{note}*" if note else "")


def _n_text(row: Mapping) -> str:
    n = _float(row["n_pairs"])
    return str(int(n)) if math.isfinite(n) and n > 0 else ""


def _counts(table: pd.DataFrame) -> list[tuple[str, int]]:
    counts = table["verdict"].value_counts()
    return [(v, int(counts[v])) for v in VERDICTS if counts.get(v, 0)]


def _family_size(table: pd.DataFrame, family: str) -> int:
    sizes = pd.to_numeric(table.loc[table["family"] == family, "family_size"], errors="coerce").dropna()
    return int(sizes.iloc[0]) if len(sizes) else 0


def stand_in_only(table: pd.DataFrame) -> bool:
    """Whether every claim with results was evaluated on a stand-in (then nothing is evidence about the paper)."""
    has = pd.to_numeric(table["estimate"], errors="coerce").notna()
    return bool(table["stand_in"].any()) and not bool((has & ~table["stand_in"]).any())


# --------------------------------------------------------------------------- #
# Markdown
# --------------------------------------------------------------------------- #
def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _header(table: pd.DataFrame, summary_note: str, partial: bool) -> list[str]:
    paper_m, stand_m = _family_size(table, "paper"), _family_size(table, "stand-in")
    stand = int(table["stand_in"].sum())
    lines = ["# The paper's claims, checked", ""]
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
        "- **Effect**: the mean over pairs of A − B in AUROC (AULC) points, or in epochs; *relative* effects are "
        "mean(A) / mean(B) − 1 in %, as the paper's \"Relative Improvement\". A pair is one class × seed "
        "(Table 4: OOD set × seed; MVTec also per outlier generator) where both sides ran; a side that is a "
        "mean over classes (OOD sets) is one value per seed. *Vs reported*: our values against the number the "
        "paper prints, taken as a constant.",
        f"- **95 % interval** (unadjusted): the paired t interval (delta method for relative effects) when "
        f"n ≥ {CLT_PAIRS} pairs or the differences pass a Shapiro–Wilk check (p ≥ {NORMALITY_ALPHA}), else the "
        f"paired bootstrap ({N_RESAMPLES:,} resamples of the pairs, percentile, seed {BOOTSTRAP_SEED}); which one "
        "is shown after the interval. The CSV has both.",
        "- **Test**: one-sided and paired, on the claimed side of the boundary (0, or the margin for \"does not "
        "outperform\" / \"approaching\" claims): the paired t test where the t interval is used, else the Wilcoxon "
        "signed-rank test (the CSV has both; Wilcoxon is the check).",
        f"- **Holm** correction over every tested claim, family-wise α = {ALPHA} for each direction: "
        f"{paper_m} claim{'s' if paper_m != 1 else ''} on the paper's data"
        + (f", and {stand_m} stand-in claim{'s' if stand_m != 1 else ''} as a family of their own" if stand_m else "")
        + ". *supported*: Holm-adjusted p < α for the claim; *contradicted*: for the opposite; *not significant*: "
        "neither.",
        f"- **No verdict from fewer than {MIN_PAIRS} pairs** (*too few*); *not run* names what is missing.",
        "- **Paper** column: the paper's own effect from the numbers it prints (reported_results.csv), and the size "
        "its text states, where it does.",
    ]
    if stand:
        lines.append(f"- **Stand-ins**: {stand} claim{'s are' if stand != 1 else ' is'} evaluated on a miniature "
                     f"standing in for a paper dataset (`fmnist_mini` for Fashion-MNIST); marked "
                     f"*{STAND_IN_LABEL}*. They exercise the path, they say nothing about the paper.")
    lines += ["", "| verdict | claims |", "|---|---|"]
    lines += [f"| {v} | {n} |" for v, n in _counts(table)]
    lines.append("")
    return lines


def claims_markdown(results: Sequence[ClaimResult] | pd.DataFrame, *, summary_note: str = "", partial: bool = False,
                    forest: str | None = None) -> str:
    """``results/claims.md``: the header on the statistics, then one table per group, a verdict per claim."""
    table = results if isinstance(results, pd.DataFrame) else claims_table(results)
    lines = _header(table, summary_note, partial)
    if forest:
        lines += [f"![Forest plot of our effects]({forest})", ""]
    for group, rows in table.groupby("group", sort=False):
        lines += [f"## {group}", "", "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
        for row in rows.to_dict("records"):
            lines.append("| " + " | ".join(_esc(x) for x in [
                f"**{row['id']}**: {_str(row['claim'])}", _says_text(row), _paper_text(row), _ours_text(row),
                _n_text(row), _p(row["p_holm"]), _verdict_text(row)]) + " |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# the replication report's section
# --------------------------------------------------------------------------- #
def claims_html(results: Sequence[ClaimResult] | pd.DataFrame, *, forest_href: str | None = None,
                links: Sequence[tuple[str, str]] = ()) -> str:
    """The report's section (``<section id="claims">``): verdict counts, the forest plot, a row per claim.

    Each row: the claim (its comparison), the paper's statement (quote and
    source), the paper's own effect, ours with its 95 % interval, the pairs,
    the Holm-adjusted p and the verdict (with what is missing, and the
    stand-in label). ``links``: (label, href) of the Markdown / CSV.
    """
    esc = html_mod.escape
    table = results if isinstance(results, pd.DataFrame) else claims_table(results)
    link_text = " · ".join(f"<a href='{esc(href)}'>{esc(label)}</a>" for label, href in links)
    out = ['<section id="claims"><h2>The paper\'s claims, checked</h2>']
    if stand_in_only(table):
        out.append("<p class='missing'><b>Stand-in data only: nothing here is evidence about the paper.</b> Every "
                   "claim with results was evaluated on a miniature standing in for a paper dataset.</p>")
    out += [f"<p class='caption'>Every testable claim of the paper's text (firm_bench/paper/claims.yaml). Paired "
            f"tests over classes × seeds, one-sided; Holm over the tested claims (α = {ALPHA}); 95 % intervals "
            f"unadjusted (t, or the paired bootstrap where the differences are not normal); no verdict from fewer "
            f"than {MIN_PAIRS} pairs. Stand-in claims are {esc(STAND_IN_LABEL)}. docs/CLAIMS.md. {link_text}</p>",
            "<p>" + ", ".join(f"{esc(v)}: {n}" for v, n in _counts(table)) + "</p>"]
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
        says = f"“{esc(_str(row['quote']))}” ({esc(_str(row['source']))})"
        out.append(f'<tr class="{cls}"><td><b>{esc(_str(row["id"]))}</b><br>{esc(_str(row["claim"]))}</td>'
                   f"<td>{says}</td><td>{esc(_paper_text(row))}</td>"
                   f"<td>{esc(_ours_text(row))}</td><td>{_n_text(row)}</td><td>{esc(_p(row['p_holm']))}</td>"
                   f"<td>{esc(_verdict_text(row))}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# --------------------------------------------------------------------------- #
# the forest plot
# --------------------------------------------------------------------------- #
_VERDICT_COLORS = {"supported": "#1a9850", "contradicted": "#d73027", "not significant": "#7f7f7f",
                   "too few": "#bdbdbd"}


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
        text = "95 % intervals unadjusted; colour: the verdict after Holm's correction (results/claims.md)"
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
        summary = read_summaries(s_paths) if s_paths else pd.DataFrame()
    if isinstance(curves, pd.DataFrame):
        crv = curves
    else:
        c_paths = paths(curves)
        crv = read_curves(c_paths) if c_paths else pd.DataFrame(columns=CURVE_COLUMNS)
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
    Returns the paths written.
    """
    summary, crv, absent = _frames(summaries, curves, partial)
    results = evaluate_claims(summary, crv, load_claims(claims_file), partial=partial, plan=plan)
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
                                                                    forest=forest_rel)))
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    written.append(rundir.atomic_write_text(out_csv, buf.getvalue()))
    return written
