"""What every paper figure shares: the figure and its style, the footer, the legend, panel names.

Figures are drawn on ``matplotlib.figure.Figure`` objects (the Agg canvas; no
pyplot state, no display) with constrained layout at the paper's text width
(6.9 in, 7-8 pt text, :data:`RC`), so they are legible without scaling.
Every figure states its recipe in a footer line (:func:`footer`), and a panel
with no data says "pending" / "not run" (:func:`empty_panel`). Every panel
names the data it shows and, for a stand-in, what it stands in for
(:func:`panel_data`); a figure drawn from stand-in data says so next to its
number (:func:`mark_stand_in`, read by ``figures.draw``). A band of ±1 std is
drawn only where there are seeds to make one (:func:`spread`). A figure has at
most one legend, a figure-level one right of the panels (:func:`figure_legend`),
so that no legend covers a panel, its title or its labels. Classes are named
by name (:func:`class_name`), datasets by their name with the dataset they
stand in for (:func:`dataset_title`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from firm_bench.core.config import recipe_variant
from firm_bench.paper import reported as rep
from firm_bench.paper.labels import class_name

__all__ = [
    "COLUMN_WIDTH_IN",
    "RC",
    "TEXT_WIDTH_IN",
    "FigureData",
    "base_recipe",
    "class_name",
    "dataset_title",
    "empty_panel",
    "figure_legend",
    "footer",
    "loss_label",
    "new_figure",
    "mark_stand_in",
    "note",
    "panel_data",
    "spread",
    "stand_in_mark",
]

TEXT_WIDTH_IN = 6.9  # two-column paper text width
COLUMN_WIDTH_IN = 3.3
RC = {
    "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5, "lines.linewidth": 1.0, "axes.linewidth": 0.6, "pdf.fonttype": 42, "savefig.dpi": 300,
}


@dataclass(frozen=True)
class FigureData:
    """What a figure is drawn from: summary rows, learning curves, and options."""

    summary: pd.DataFrame
    curves: pd.DataFrame
    partial: bool = False
    threads: int = 1
    k: int | None = None

    @property
    def absent(self) -> str:
        """How a panel without data is labelled."""
        return "pending" if self.partial else "not run"


def new_figure(n_panels: int, width: float = TEXT_WIDTH_IN, height: float = 1.9, ncols: int | None = None):
    """A constrained-layout figure with ``n_panels`` axes on a grid of ``ncols`` columns (spare cells hidden)."""
    from matplotlib.figure import Figure

    ncols = ncols or n_panels
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    return fig, list(axes[:n_panels])


def empty_panel(ax, text: str) -> None:
    """A panel without data: ``text`` ("pending", "not run", ...) in its middle, no ticks."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def footer(fig, rows: pd.DataFrame, extra: str = "") -> None:
    """The recipe line every figure carries (``labels.recipe_label``, compact), with ``extra`` and the
    (loss, outliers) pairs of ``rows`` that no reference commit ran (``labels.unmatched_combinations``)."""
    from firm_bench.paper.labels import recipe_label, unmatched_combinations

    ran = rows[rows["status"].notna()] if "status" in rows else rows
    notes = [extra] if extra else []
    note(fig, "; ".join([recipe_label(rows, compact=True), *notes, *(t.rstrip(".") for t in unmatched_combinations(ran))]))


def note(fig, text: str) -> None:
    """A small wrapped line under the panels (constrained layout keeps it clear of the axes labels)."""
    import textwrap

    chars = int(fig.get_figwidth() * 27)  # characters of 5 pt text per line at the figure's width
    fig.supxlabel("\n".join(textwrap.wrap(text, chars)), fontsize=5, color="0.35", x=0.0, ha="left")


def figure_legend(fig, axes, title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels, in place of the panels' own.

    Gathers the labelled artists of every panel (each label once, in the
    order first drawn; seaborn's per-panel legends are removed) and places
    them outside the axes area (``loc="outside right upper"``: constrained
    layout makes room for it). Constrained layout does not make room for a
    panel title wider than its panel, so titles are kept to the panel's width
    (two lines where needed): then the legend covers no panel, title or tick
    label. (Below the panels it would meet the footer, :func:`note`.)
    """
    entries: dict[str, object] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if entries:
        fig.legend(list(entries.values()), list(entries), title=title, loc="outside right upper", frameon=False)


def loss_label(loss: str) -> str:
    """How a loss is named in figures (``reported.LOSS_DISPLAY``: NT-Xent, SupCon, SupCon*, FIRM)."""
    return rep.LOSS_DISPLAY.get(loss, loss)


def base_recipe(rows: pd.DataFrame) -> str | None:
    """The preset's own recipe (no ``-variant``: ``config.recipe_variant``), else the first."""
    recipes = sorted(rows["recipe"].dropna().unique())
    base = [r for r in recipes if recipe_variant(r) == "base"]
    return (base or recipes or [None])[0]


def dataset_title(dataset: str) -> str:
    """A dataset's name, with the paper dataset it stands in for (``reported.STAND_INS``)."""
    stand_in = rep.STAND_INS.get(dataset)
    return f"{dataset} (stands in for {stand_in})" if stand_in else dataset


def panel_data(ours: str | None, paper: str) -> str:
    """What a panel shows, one short line: the paper's dataset itself, or ``fmnist_mini for cifar10``."""
    return paper if ours in (None, paper) else f"{ours} for {paper}"


#: a figure's attribute holding its stand-in statement (set by the drawing function, shown by ``figures.draw``)
_STAND_IN_ATTR = "_firm_bench_stand_in"


def mark_stand_in(fig, pairs: dict[str, str]) -> None:
    """Mark a figure as drawn from stand-in data: ``pairs`` maps each dataset of ours to the paper's it stands in for."""
    if pairs:
        text = ", ".join(f"{ours} in place of {paper}" for ours, paper in pairs.items())
        setattr(fig, _STAND_IN_ATTR, f"STAND-IN DATA ({text}): not the paper's experiment")


def stand_in_mark(fig) -> str:
    """The stand-in statement of a figure (:func:`mark_stand_in`), or ""."""
    return getattr(fig, _STAND_IN_ATTR, "")


def spread(n_seeds: int) -> tuple[object, str]:
    """seaborn's ``errorbar`` and the footer's words for a line over ``n_seeds`` seeds: a ±1 std band needs two."""
    if n_seeds >= 2:
        return "sd", f"line = mean over {n_seeds} seeds, band = ±1 std"
    return None, "one seed: line = that seed, no band"
