"""Temperature and batch-size sweeps (Figure 5): AUROC vs tau and vs batch size, cos and cos_norm.

Four panels: (a, b) AUROC vs the temperature tau, (c, d) vs the batch size,
each without (``cos``) and with (``cos_norm``) the feature norm in the score;
a line per class (named by its name, ``common.class_name``) and, with more than
one class, their mean (with one, the mean would be the class's line drawn over
it). Each panel names its data (the spec's ``dataset``, the paper's, or the
stand-in that ran for it); a band of ±1 std only where every point has two
seeds or more.
tau and batch size come from the summaries' columns (the runs' resolved
configs), not from recipe names; each sweep holds the other value at the base
recipe's (:func:`sweep_rows`).
"""

from __future__ import annotations

import pandas as pd

from firm_bench.paper import reported as rep
from firm_bench.paper.figures.common import (
    FigureData,
    base_recipe,
    class_name,
    empty_panel,
    figure_legend,
    footer,
    mark_stand_in,
    new_figure,
    panel_data,
    spread,
)
from firm_bench.paper.figures.specs import FigureSpec

__all__ = ["draw_sweep", "sweep_rows"]


def sweep_rows(summary: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(tau sweep rows, batch-size sweep rows, note): the base recipe's batch size / tau held fixed.

    tau and batch_size come from the summary columns (the runs' resolved
    configs), not from recipe names; the base is the preset's own recipe.
    """
    rows = summary[summary["status"].notna()]
    rows = rows[(rows["k"].isna()) | (rows["k"] == k)]
    base = rows[rows["recipe"] == base_recipe(rows)] if not rows.empty else rows
    if base.empty:
        return rows.iloc[0:0], rows.iloc[0:0], "no runs"
    taus, sizes = base["tau"].dropna().unique(), base["batch_size"].dropna().unique()
    if not len(taus) or not len(sizes):  # no base run has finished (the labels come with its results)
        return rows.iloc[0:0], rows.iloc[0:0], "no finished runs"
    if len(taus) != 1 or len(sizes) != 1:
        raise ValueError(f"sweep: the base recipe {base['recipe'].iloc[0]!r} has several tau {list(taus)} or batch "
                         f"sizes {list(sizes)} in the summary; one value each is expected")
    note = f"base: tau {taus[0]:g}, batch size {int(sizes[0])}"
    return rows[rows["batch_size"] == sizes[0]], rows[rows["tau"] == taus[0]], note


def _class_order(d: pd.DataFrame) -> list[str]:
    """The class names of some rows, in the order of the classes' ids (indices numerically, then names)."""
    ids = d.drop_duplicates("cls").assign(_digit=lambda f: ~f["cls"].str.isdigit(),
                                          _n=lambda f: pd.to_numeric(f["cls"], errors="coerce"))
    return list(dict.fromkeys(ids.sort_values(["_digit", "_n", "cls"])["name"]))


def draw_sweep(spec: FigureSpec, data: FigureData):
    """Four panels: AUROC vs tau and vs batch size, score without and with the norm; a line per class + mean."""
    import seaborn as sns

    from firm_bench.paper.labels import default_k

    k = data.k or default_k()
    tau_rows, bs_rows, note = sweep_rows(data.summary, k)
    fig, axes = new_figure(4, height=1.9)
    paper = str(spec.params["dataset"])
    ran = sorted(set(tau_rows["dataset"].dropna()) | set(bs_rows["dataset"].dropna()))
    mark_stand_in(fig, {d: paper for d in ran if d != paper})
    done = pd.concat([tau_rows, bs_rows])
    done = done[done["status"] == "ok"]
    n_seeds = int(done.groupby(["recipe", "cls", "score"])["seed"].nunique().min()) if not done.empty else 0
    errorbar, spread_words = spread(n_seeds)
    panels = [(tau_rows, "tau", "temperature τ"), (bs_rows, "batch_size", "batch size")]
    for n, ((rows, x, xlabel), score) in enumerate((p, s) for p in panels for s in spec.params["scores"]):
        ax = axes[n]
        d = rows[(rows["score"] == score) & (rows["status"] == "ok")]
        d = d.assign(auroc_pct=pd.to_numeric(d["auroc"]) * rep.PERCENT, x=pd.to_numeric(d[x]),
                     cls=d["cls"].astype(str))
        d = d.assign(name=[class_name(ds, c) for ds, c in zip(d["dataset"], d["cls"])])
        shows = ", ".join(panel_data(x_, paper) for x_ in sorted(set(d["dataset"]))) or panel_data(None, paper)
        ax.set_title(f"({'abcd'[n]}) {score}\nvs {xlabel}\n{shows}")  # short lines: no wider than the panel
        if d[x].nunique() < 1:
            empty_panel(ax, data.absent)
            continue
        sns.lineplot(data=d, x="x", y="auroc_pct", hue="name", hue_order=_class_order(d), errorbar=errorbar,
                     marker="o", markersize=3, palette="colorblind", ax=ax)
        if d["cls"].nunique() > 1:  # with one class the mean is that class's line, and would hide it
            mean = d.groupby(["x", "seed"])["auroc_pct"].mean().groupby("x").mean()
            ax.plot(mean.index, mean.to_numpy(), color="black", linewidth=1.4, label="mean")
        ax.set_xscale("log")
        ax.set_xticks(sorted(d["x"].unique()), [f"{v:g}" for v in sorted(d["x"].unique())])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("AUROC (%)")
    figure_legend(fig, axes, title="class")
    footer(fig, data.summary, f"{note}; k = {k}; {spread_words}")
    return fig
