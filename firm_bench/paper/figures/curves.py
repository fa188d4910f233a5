"""Learning curves (Figures 1 and 4): AUROC vs epoch, one panel per paper dataset.

From the runs' ``curve.csv`` (the summaries' ``*_curves.csv``): the mean over
classes per seed (:func:`class_mean_curves`), drawn as the mean over seeds with
a band of +/- one std where there are two seeds or more, a line per loss. Each panel is a paper dataset (the
spec's ``datasets``); a stand-in dataset of ours is drawn in the panel of the
dataset it stands in for (:func:`curve_panels`). The epoch-0 point (the
untrained encoder, ``eval.at_start``) is drawn with a dotted baseline at its
mean; AULC leaves it out.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from firm_bench.paper import reported as rep
from firm_bench.paper.figures.common import (
    COLUMN_WIDTH_IN,
    TEXT_WIDTH_IN,
    FigureData,
    base_recipe,
    empty_panel,
    figure_legend,
    footer,
    loss_label,
    mark_stand_in,
    new_figure,
    panel_data,
    spread,
)
from firm_bench.paper.figures.specs import FigureSpec

__all__ = ["class_mean_curves", "curve_panels", "draw_curves"]


def class_mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """AUROC (%) per dataset, loss, seed and epoch: the mean over the classes that every one reached."""
    if curves.empty:
        return curves.assign(auroc_pct=[])
    key = ["dataset", "loss", "outliers", "recipe", "seed", "epoch"]
    n_classes = curves.groupby(["dataset", "loss", "outliers", "recipe"])["cls"].nunique().rename("n_classes")
    per = curves.groupby(key).agg(auroc=("auroc", "mean"), n=("cls", "nunique")).reset_index()
    per = per.merge(n_classes.reset_index(), on=["dataset", "loss", "outliers", "recipe"])
    per = per[per["n"] == per["n_classes"]]
    return per.assign(auroc_pct=per["auroc"] * rep.PERCENT)


def curve_panels(panels: Sequence[str], datasets: Iterable[str]) -> dict[str, tuple[str | None, bool]]:
    """Which of our datasets each panel draws: panel -> (dataset or None, stand-in?).

    A panel draws its own dataset when we ran it; else the dataset of ours
    that stands in for it (``reported.STAND_INS``, e.g. ``fmnist_mini`` in
    the Fashion-MNIST panel), labelled as a stand-in; else nothing (the panel
    says "not run" / "pending"). Datasets of ours that are no panel's are not
    drawn.
    """
    ran = set(datasets)
    out: dict[str, tuple[str | None, bool]] = {}
    for panel in panels:
        stand_ins = sorted(d for d in ran if rep.STAND_INS.get(d) == panel)
        out[panel] = (panel, False) if panel in ran else ((stand_ins[0], True) if stand_ins else (None, False))
    return out


def draw_curves(spec: FigureSpec, data: FigureData):
    """Mean over seeds of the class-mean AUROC vs epoch, band = +/- 1 std over seeds; one panel per paper dataset.

    The panels are the figure's ``datasets`` parameter, in order, each titled by
    its dataset (:func:`curve_panels` says what each draws).
    """
    import seaborn as sns

    losses = list(spec.params["losses"])
    curves = data.curves
    curves = curves[curves["loss"].isin(losses) & curves["outliers"].isin(spec.params["outliers"])]
    curves = curves[curves["recipe"] == base_recipe(curves)] if not curves.empty else curves
    per = class_mean_curves(curves)
    panels = list(spec.params["datasets"])
    drawn = curve_panels(panels, per["dataset"])
    fig, axes = new_figure(len(panels), width=TEXT_WIDTH_IN if len(panels) > 1 else COLUMN_WIDTH_IN, height=2.0,
                           ncols=min(len(panels), 4))
    palette = dict(zip([loss_label(x) for x in losses], sns.color_palette("colorblind", len(losses))))
    n_seeds = int(per[per["dataset"].isin({d for d, _ in drawn.values() if d})]
                  .groupby(["dataset", "loss", "epoch"])["seed"].nunique().min()) if not per.empty else 0
    errorbar, spread_words = spread(n_seeds)
    for ax, panel in zip(axes, panels):
        dataset, stand_in = drawn[panel]
        ax.set_title(f"{panel}\n(stand-in: {dataset})" if stand_in else panel_data(dataset, panel))
        d = per[per["dataset"] == dataset].assign(loss=lambda f: f["loss"].map(loss_label))
        if d.empty:
            empty_panel(ax, data.absent)
            continue
        sns.lineplot(data=d, x="epoch", y="auroc_pct", hue="loss", hue_order=[h for h in palette if h in set(d["loss"])],
                     palette=palette, errorbar=errorbar, estimator="mean", ax=ax)
        if (d["epoch"] == 0).any():  # the untrained encoder (eval.at_start): the same weights for every loss
            ax.axhline(d.loc[d["epoch"] == 0, "auroc_pct"].mean(), color="0.55", linewidth=0.6, linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC (%)")
    figure_legend(fig, axes)
    used = {d for d, _ in drawn.values() if d}
    curves = curves[curves["dataset"].isin(used)]
    extra = f"mean over classes per seed; {spread_words}"
    if (curves["epoch"] == 0).any():
        extra += ("; epoch 0 = the untrained encoder (dotted: its mean), a baseline shown here but left out of "
                  "AULC, whose points start at the first evaluated epoch as in the reference")
    stand_ins = [f"{d} stands in for {p}" for p, (d, s) in drawn.items() if s]
    mark_stand_in(fig, {d: p for p, (d, s) in drawn.items() if s})
    if stand_ins:
        extra += f"; {', '.join(stand_ins)} (a miniature, not the paper's data)"
    runs = data.summary[data.summary["run_dir"].isin(set(curves["run_dir"]))] if not data.summary.empty else curves
    footer(fig, runs if not runs.empty else curves, extra)
    return fig
