"""Rendering a paper table's cells: Markdown, LaTeX, HTML, the caption and notes, and the files.

:func:`render` lays the cells of :func:`compare.compare` out as Markdown
(tabulate ``github``), LaTeX (booktabs) or HTML (the report), each row as
three lines: ours, paper, difference (a literature row: the paper only).
Columns of classes are headed by the class names (the CSV keeps the index).
Below the title, a short lead sentence (:func:`caption`: what the numbers are
and the agreement, or "no runs yet") and a list of notes (:func:`notes`: the
marks, the recipe (``labels.recipe_label``), the spec's NOTES.md caveat, the
outlier sources' known differences, the untrained baseline, how class-subset
means were compared, and the footnotes that long cell explanations became):
a Markdown list, an HTML list, LaTeX table notes. The CSV is the cell frame
itself (:func:`write_table`, read back by :func:`read_cells`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import pandas as pd

from firm_bench.paper.labels import NO_RUNS, class_name, recipe_label, recorded_rows, unmatched_combinations
from firm_bench.paper.tables.compare import (
    CELL_COLUMNS,
    DEFAULT_TOLERANCE,
    METRIC_NAMES,
    UNTRAINED,
    UNTRAINED_DISPLAY,
    agreement,
    compare,
)
from firm_bench.paper.tables.specs import TABLES, TableSpec
from firm_bench.records.summary import read_summaries, write_csv

__all__ = ["Format", "caption", "notes", "read_cells", "render", "write_table"]

Format = Literal["md", "tex", "html"]


def _latex_escape(text: str) -> str:
    """Text as LaTeX (booktabs tables, captions)."""
    text = "".join({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}.get(ch, ch) for ch in text)
    for a, b in [("*", r"$^*$"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("−", "-"), ("†", r"\textsuperscript{\dag}"),
                 ("×", r"$\times$"), ("—", "---"), ("✓", ""), ("✗", "")]:
        text = text.replace(a, b)
    return text


@dataclass(frozen=True)
class _Style:
    """How one output format writes text, marks a difference and explains the marks."""

    escape: Callable[[str], str]
    marks: dict[str, str]  # state -> template with {t}; states: agree, disagree, stand_in (else plain)
    legend: str
    tablefmt: str

    def mark(self, text: str, state: str) -> str:
        return self.marks.get(state, "{t}").format(t=text)


_STYLES: dict[str, _Style] = {
    "md": _Style(lambda s: s.replace("|", "\\|"), {"agree": "{t} ✓", "disagree": "{t} ✗"},
                 "✓ within {tol:.1f} point(s) of the paper, ✗ outside", "github"),
    "tex": _Style(_latex_escape, {"disagree": r"\textbf{{{t}}}"},
                  "bold: more than {tol:.1f} point(s) from the paper", "latex_raw"),
    "html": _Style(html.escape, {"agree": '<span class="agree">{t}</span>', "disagree": '<span class="disagree">{t}</span>',
                                 "stand_in_diff": '<span class="stand_in">{t}</span>'},
                   "green: within {tol:.1f} point(s) of the paper, red: outside", "unsafehtml"),
}


def _num(value: float, signed: bool = False) -> str:
    value = round(float(value), 1) + 0.0  # no "-0.0"
    return (f"{value:+.1f}" if signed else f"{value:.1f}").replace("-", "−")


def _ours_text(c: dict) -> str:
    if c["reported_only"]:
        return "not rerun"
    if c["ours_status"] != "ok":
        return str(c["ours_status"])
    text = _num(c["ours_mean"]) + (f" ± {_num(c['ours_std'])}" if pd.notna(c["ours_std"]) else "")
    if c["kind"] == "value" and c["n_ok"] < c["n_runs"]:
        text += f" ({int(c['n_ok'])}/{int(c['n_runs'])} seeds)"
    n = c["n_classes"]
    if isinstance(n, str) and n.split("/")[0] != n.split("/")[1]:
        text += f" (mean of {n} {'OOD sets' if pd.notna(c['ood']) else 'classes'})"
    return text


class _Footnotes:
    """Long cell explanations as footnote marks ([a], [b], ...): each distinct text once, listed in the notes."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self.texts:
            n = len(self.texts)
            self.texts[text] = chr(ord("a") + n) if n < 26 else str(n + 1)
        return f"[{self.texts[text]}]"

    def notes(self) -> list[str]:
        return [f"[{m}] {t[0].upper()}{t[1:]}." for t, m in self.texts.items()]


#: what a stand-in cell's Δ line says: no difference between two datasets is printed
STAND_IN_DIFF = "†"


def _paper_text(c: dict, footnotes: _Footnotes) -> str:
    if pd.isna(c["paper_value"]):
        return "not reported"
    text = _num(c["paper_value"]) + (f" ± {_num(c['paper_std'])}" if pd.notna(c["paper_std"]) else "")
    basis = c.get("paper_basis")
    return text + (f" {footnotes.mark(basis)}" if isinstance(basis, str) and basis else "")


def _diff_text(c: dict, style: _Style, tolerance: float) -> str:
    if c["stand_in"] and c["ours_status"] == "ok" and pd.notna(c["paper_value"]):
        return style.mark(style.escape(STAND_IN_DIFF), "stand_in_diff")
    if pd.isna(c["diff"]):
        return "–"
    if c["comparable"]:
        state = "agree" if abs(c["diff"]) <= tolerance + 1e-9 else "disagree"
    else:
        state = "plain"
    return style.mark(style.escape(_num(c["diff"], signed=True)), state)


def _class_names(spec: TableSpec, recs: list[dict]) -> dict[str, str]:
    """How each class column (or, transposed, row) is headed: the class's name in every dataset of its cells
    (``labels.class_name``; "airplane / T-shirt/top" where a stand-in's class sits under the paper's), the rest
    as they are."""
    if spec.columns != "cls":
        return {}
    names: dict[str, dict[str, None]] = {}
    for c in recs:
        if isinstance(c["cls"], str) and c["cls"] != "mean":
            for dataset in dict.fromkeys(d for d in (c["paper_dataset"], c["dataset"]) if isinstance(d, str)):
                label = c["column"]
                names.setdefault(label, {})[label.replace(c["cls"], class_name(dataset, c["cls"]), 1)] = None
    return {label: " / ".join(n) for label, n in names.items()}


def _grid(spec: TableSpec, cells: pd.DataFrame, style: _Style, tolerance: float,
          footnotes: _Footnotes) -> tuple[list[str], list[list[str]]]:
    """Headers and body: each row group as the lines ours / paper / Δ (a reported row: paper only)."""
    recs = cells.to_dict("records")
    shown = _class_names(spec, recs)
    name = lambda label: style.escape(shown.get(label, label))  # noqa: E731
    group_of, col_of = ("column", "row") if spec.transpose else ("row", "column")
    cols = sorted({(c[f"{col_of}_order"], c[col_of]) for c in recs})
    groups = sorted({(c[f"{group_of}_order"], c[group_of]) for c in recs})
    by = {(c[group_of], c[col_of]): c for c in recs}
    reported_rows = {c["row"] for c in recs if c["reported_only"]}
    lines = []
    for _, group in groups:
        kinds = ["paper"] if not spec.transpose and group in reported_rows else ["ours", "paper", "Δ"]
        for i, kind in enumerate(kinds):
            line = [name(group) if i == 0 else "", style.escape(kind)]
            for _, col in cols:
                c = by.get((group, col))
                if c is None:
                    line.append("–")
                elif kind == "Δ":
                    line.append(_diff_text(c, style, tolerance))
                else:
                    line.append(style.escape(_ours_text(c) if kind == "ours" else _paper_text(c, footnotes)))
            lines.append(line)
    corner = {"cls": "class", "ood": "OOD set", "dataset": "dataset", "score": "score"}[spec.columns] if spec.transpose else ""
    return [style.escape(corner), "", *(name(c) for _, c in cols)], lines


def caption(spec: TableSpec, cells: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE, fmt: Format = "md") -> str:
    """The lead sentence: what the numbers are and the agreement, or that no run has results yet."""
    metric = (f"{'/'.join(METRIC_NAMES[m] for m in spec.metrics)} in %"
              f"{' (relative improvements: % of the baseline)' if spec.improvement else ''}")
    if recorded_rows(_ran(cells)).empty:
        return f"{metric}: the paper's Table {spec.paper}; ours: {NO_RUNS}."
    return f"{metric}, ours beside the paper's Table {spec.paper}. Agreement: {agreement(cells, tolerance)}."


def _ran(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells of runs of ours (not the not-run and literature rows)."""
    return cells[~cells["ours_status"].isin(["not run", "not rerun"])]


def _reading_notes(spec: TableSpec, cells: pd.DataFrame, tolerance: float, fmt: Format) -> list[str]:
    """How to read the numbers: seeds and k, the paper's side, Δ and its marks, stand-ins, the recipe."""
    ran = _ran(cells)
    if recorded_rows(ran).empty:
        return []
    ks = cells["k"].dropna()
    k = f"k = {int(ks.iloc[0])} for k-NN scores" if len(ks) else "k not recorded"
    out = [f"Ours: mean ± std over seeds, {k}. Paper: Table {spec.paper} of reported_results.csv.",
           f"Δ = ours − paper; {_STYLES[fmt].legend.format(tol=tolerance)}."]
    stand_ins = sorted({f"{d} for {p}" for d, p in ran.loc[ran["stand_in"], ["dataset", "paper_dataset"]]
                        .itertuples(index=False)})
    if stand_ins:
        out.append(f"{STAND_IN_DIFF} ours on a stand-in dataset ({', '.join(stand_ins)}): shown beside the paper's "
                   "number, but no Δ is printed between two different datasets and nothing is counted.")
    out.append(f"Recipe: {recipe_label(ran)}.")
    return out


def _outlier_notes(cells: pd.DataFrame) -> list[str]:
    """Where each outlier source of our rows knowingly differs from the reference code it follows."""
    from firm_bench.core.facts.method import OUTLIERS

    ran = cells.loc[cells["ours_status"].isin(["ok", "failed", "damaged", "missing", "pending"]), "outliers"].dropna()
    out = []
    for name in dict.fromkeys(ran):
        diffs = OUTLIERS[str(name)].differences if str(name) in OUTLIERS else ()
        if diffs:
            out.append(f"Outliers {name} differ from the reference code in: {'; '.join(diffs)}.")
    return out


def notes(spec: TableSpec, cells: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE, fmt: Format = "md") -> list[str]:
    """The notes under the lead sentence: how to read the numbers and the recipe, the spec's ``note`` (NOTES.md
    caveats), the outlier sources' known differences, the untrained baseline, how class-subset means were
    compared, and the cell footnotes ([a], ...; :func:`render` adds those it marked)."""
    out = _reading_notes(spec, cells, tolerance, fmt)
    out += [spec.note] if spec.note else []
    out += _outlier_notes(_ran(cells))
    out += unmatched_combinations(_ran(cells))
    if (cells["loss"] == UNTRAINED).any():
        out.append(f"{UNTRAINED_DISPLAY}: the same scores of each run's encoder at initialisation (its seed's "
                   "weights, the same for every loss), a baseline of ours, not a paper row: an easy class scores "
                   "high even with random weights, so what training added is the difference to it.")
    basis = cells["paper_basis"] if "paper_basis" in cells else pd.Series(dtype=object)
    if basis.map(lambda b: isinstance(b, str) and bool(b)).any():
        sources = ", ".join(f"Table {t}" for t in ([spec.paper] if spec.per_class else []) + list(spec.per_class_from))
        noun, per = ("OOD sets", "per-OOD-set") if spec.mean_over == "ood" else ("classes", "per-class")
        out.append(f"Subsets: where our mean covers only some {noun}, the paper's side is its mean over the same "
                   f"{noun}, from its {per} numbers of the same runs ({sources or 'none for this table'}), "
                   f"compared and counted like a full mean; without "
                   f"them, the paper's printed mean of all {noun} is shown without Δ and not counted.")
    return out


def render(spec: TableSpec, cells: pd.DataFrame, fmt: Format, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The table as Markdown (``md``), LaTeX booktabs (``tex``) or an HTML fragment (``html``).

    Title, lead sentence, the table, then the notes as a list (Markdown / HTML) or table notes (LaTeX)."""
    from tabulate import tabulate

    if fmt not in _STYLES:
        raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(_STYLES)}")
    style = _STYLES[fmt]
    footnotes = _Footnotes()
    headers, lines = _grid(spec, cells, style, tolerance, footnotes)
    body = tabulate(lines, headers=headers, tablefmt=style.tablefmt, disable_numparse=True)
    lead, items = caption(spec, cells, tolerance, fmt), [*notes(spec, cells, tolerance, fmt), *footnotes.notes()]
    if fmt == "md":
        listed = "".join(f"- {n}\n" for n in items)
        return f"# {spec.title}\n\n{lead}\n\n{body}\n\n{listed}"
    if fmt == "html":
        listed = "".join(f"<li>{html.escape(n)}</li>" for n in items)
        return f'<p class="caption">{html.escape(lead)}</p>\n{body}\n<ul class="notes">{listed}</ul>\n'
    rules = iter(["\\toprule", "\\midrule", "\\bottomrule"])
    body = "\n".join(next(rules, ln) if ln.strip() == "\\hline" else ln for ln in body.splitlines())
    listed = "".join(f"\\item{{}} {_latex_escape(n)}\n" for n in items)  # {}: a note's "[a]" is text, not a label
    table_notes = (f"\\par\\smallskip{{\\footnotesize\\begin{{itemize}}\\setlength{{\\itemsep}}{{0pt}}\n{listed}"
                   "\\end{itemize}}\n") if items else ""
    return ("% firm-bench paper-table; needs \\usepackage{booktabs} and \\usepackage{graphicx}\n"
            "\\begin{table}[t]\n\\centering\n"
            f"\\caption{{{_latex_escape(spec.title + '. ' + lead)}}}\n\\label{{tab:{spec.name}}}\n"
            f"\\resizebox{{\\linewidth}}{{!}}{{%\n{body}\n}}\n{table_notes}\\end{{table}}\n")


# --------------------------------------------------------------------------- #
# files
# --------------------------------------------------------------------------- #
def read_cells(path: str | Path) -> pd.DataFrame:
    """A table's cell CSV (as :func:`write_table` writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table cells {path} do not exist; build them with `snakemake {path}`")
    df = pd.read_csv(path, dtype={"cls": str, "ood": str, "row": str, "column": str, "n_classes": str, "mean_of": str,
                                  "paper_basis": str})
    missing = [c for c in CELL_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; rebuild it with `firm-bench paper-table`")
    for col in ("stand_in", "comparable", "reported_only"):
        df[col] = df[col].map(lambda v: v is True or str(v) == "True")
    return df


def write_table(
    name: str,
    summaries: Sequence[str | Path] | pd.DataFrame,
    out_dir: str | Path = "results/tables",
    *,
    k: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    partial: bool = False,
) -> list[Path]:
    """Render paper table ``name`` from the summaries of the experiments feeding it: .md, .tex, .csv."""
    from firm_bench.core import rundir as runs

    spec = TABLES.get(name)
    summary = read_summaries(summaries)
    cells = compare(spec, summary, k=k, partial=partial)
    out_dir = Path(out_dir)
    paths = [runs.atomic_write_text(out_dir / f"{name}.{fmt}", render(spec, cells, fmt, tolerance))
             for fmt in ("md", "tex")]
    paths.append(write_csv(cells, out_dir / f"{name}.csv"))
    return paths
