"""The paper's figures, regenerated from our runs (``FIGURES``).

One spec per paper figure, registered under its target name (``fig4`` ->
``figures/fig4.png`` and ``figures/fig4.pdf``), with a docstring naming the
paper item and a drawing function of one of four kinds:

- learning curves (Figures 1, 4): AUROC vs epoch from the runs' ``curve.csv``
  (the summaries' ``*_curves.csv``), the mean over classes per seed, drawn as
  the mean over seeds with a band of +/- one std, one panel per paper dataset
  (a stand-in dataset of ours in the panel of the dataset it stands in for);
- loss landscapes (Figure 2): :func:`landscape` evaluates our own losses
  (``firm_bench.method.losses.get_loss``), each in the form the reference code ran it,
  on constructed batches (:func:`constructed_batch`);
- t-SNE (Figures 3, 6, 7): test embeddings (the encoder features of the
  run's feature cache, unrotated view) of normal vs anomalous images, per
  class and loss (scikit-learn TSNE, seeded, ``n_jobs`` = ``--threads``);
- sweeps (Figure 5): AUROC vs temperature and vs batch size, without and
  with the feature norm in the score (``cos`` vs ``cos_norm``).

Figures are drawn on ``matplotlib.figure.Figure`` objects (the Agg canvas; no
pyplot state, no display) at the paper's text width (6.9 in, 7-8 pt text), so
they are legible without scaling. Every figure states its recipe in a footer
line (schedule, checkpoint choice, BN momentum, loss forms) and says "pending" /
"not run" in panels with no data.
"""

from __future__ import annotations

import inspect
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from firm_bench.core.registry import Registry
from firm_bench.paper import reported as rep

__all__ = [
    "FIGURES",
    "FigureData",
    "FigureSpec",
    "constructed_batch",
    "curve_panels",
    "draw",
    "landscape",
    "read_curves",
    "tsne_embedding",
    "write_figure",
]

TEXT_WIDTH_IN = 6.9  # two-column paper text width
COLUMN_WIDTH_IN = 3.3
_RC = {
    "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5, "lines.linewidth": 1.0, "axes.linewidth": 0.6, "pdf.fonttype": 42, "savefig.dpi": 300,
}
_NORMAL, _ANOMALY = "#1f5fbf", "#d62728"  # blue normal, red anomalous (as the paper's t-SNE plots)


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


Draw = Callable[["FigureSpec", FigureData], "object"]


@dataclass(frozen=True)
class FigureSpec:
    """One paper figure: its drawing function and that function's parameters."""

    name: str
    doc: str
    kind: Literal["curves", "landscape", "tsne", "sweep"]
    draw: Draw
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.doc.splitlines()[0]


FIGURES: Registry[FigureSpec] = Registry("paper figure", catalog="figures", facts=lambda name, spec: {"title": spec.title})


def _figure(name: str, kind: str, draw_fn: Draw, **params) -> Callable[[Callable[[], None]], FigureSpec]:
    """Register the decorated docstring-only function as figure ``name``."""

    def deco(fn: Callable[[], None]) -> FigureSpec:
        doc = inspect.getdoc(fn)
        if not doc:
            raise ValueError(f"figure spec {name!r} needs a docstring naming the paper item")
        return FIGURES.add(name, FigureSpec(name=name, doc=doc, kind=kind, draw=draw_fn, params=params))

    return deco


# --------------------------------------------------------------------------- #
# shared helpers
# --------------------------------------------------------------------------- #
def _new_figure(n_panels: int, width: float = TEXT_WIDTH_IN, height: float = 1.9, ncols: int | None = None):
    from matplotlib.figure import Figure

    ncols = ncols or n_panels
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    return fig, list(axes[:n_panels])


def _empty_panel(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _footer(fig, rows: pd.DataFrame, extra: str = "") -> None:
    """The recipe line every figure carries (``tables.recipe_label``, compact)."""
    from firm_bench.paper.tables import recipe_label

    _note(fig, recipe_label(rows, compact=True) + (f"; {extra}" if extra else ""))


def _note(fig, text: str) -> None:
    """A small wrapped line under the panels (constrained layout keeps it clear of the axes labels)."""
    import textwrap

    chars = int(fig.get_figwidth() * 27)  # characters of 5 pt text per line at the figure's width
    fig.supxlabel("\n".join(textwrap.wrap(text, chars)), fontsize=5, color="0.35", x=0.0, ha="left")


def _move_legend(fig, ax, title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels (from ``ax``), instead of one per panel."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles and not fig.legends:
        fig.legend(handles, labels, title=title, loc="outside right upper", frameon=False)


def _loss_label(loss: str) -> str:
    return rep.LOSS_DISPLAY.get(loss, loss)


def _base_recipe(rows: pd.DataFrame) -> str | None:
    """The preset's own recipe (no ``-variant`` suffix; workflow.recipe_name), else the first."""
    recipes = sorted(rows["recipe"].dropna().unique())
    base = [r for r in recipes if "-" not in r]
    return (base or recipes or [None])[0]


def _dataset_title(dataset: str) -> str:
    stand_in = rep.STAND_INS.get(dataset)
    return f"{dataset} (stands in for {stand_in})" if stand_in else dataset


# --------------------------------------------------------------------------- #
# Figures 1 and 4: learning curves
# --------------------------------------------------------------------------- #
def _class_mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
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


def _draw_curves(spec: FigureSpec, data: FigureData):
    """Mean over seeds of the class-mean AUROC vs epoch, band = +/- 1 std over seeds; one panel per paper dataset.

    The panels are the figure's ``datasets`` parameter, in order, each titled by
    its dataset (:func:`curve_panels` says what each draws).
    """
    import seaborn as sns

    losses = list(spec.params["losses"])
    curves = data.curves
    curves = curves[curves["loss"].isin(losses) & curves["outliers"].isin(spec.params["outliers"])]
    curves = curves[curves["recipe"] == _base_recipe(curves)] if not curves.empty else curves
    per = _class_mean_curves(curves)
    panels = list(spec.params["datasets"])
    drawn = curve_panels(panels, per["dataset"])
    fig, axes = _new_figure(len(panels), width=TEXT_WIDTH_IN if len(panels) > 1 else COLUMN_WIDTH_IN, height=2.0,
                            ncols=min(len(panels), 4))
    palette = dict(zip([_loss_label(x) for x in losses], sns.color_palette("colorblind", len(losses))))
    for ax, panel in zip(axes, panels):
        dataset, stand_in = drawn[panel]
        ax.set_title(f"{panel}\n(stand-in: {dataset})" if stand_in else panel)
        d = per[per["dataset"] == dataset].assign(loss=lambda f: f["loss"].map(_loss_label))
        if d.empty:
            _empty_panel(ax, data.absent)
            continue
        sns.lineplot(data=d, x="epoch", y="auroc_pct", hue="loss", hue_order=[h for h in palette if h in set(d["loss"])],
                     palette=palette, errorbar="sd", estimator="mean", ax=ax)
        if (d["epoch"] == 0).any():  # the untrained encoder (eval.at_start): the same weights for every loss
            ax.axhline(d.loc[d["epoch"] == 0, "auroc_pct"].mean(), color="0.55", linewidth=0.6, linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC (%)")
        _move_legend(fig, ax)
    used = {d for d, _ in drawn.values() if d}
    curves = curves[curves["dataset"].isin(used)]
    extra = "mean over classes per seed; line = mean, band = ±1 std over seeds"
    if (curves["epoch"] == 0).any():
        extra += ("; epoch 0 = the untrained encoder (dotted: its mean), a baseline shown here but left out of "
                  "AULC, whose points start at the first evaluated epoch as in the reference")
    stand_ins = [f"{d} stands in for {p}" for p, (d, s) in drawn.items() if s]
    if stand_ins:
        extra += f"; {', '.join(stand_ins)} (a miniature, not the paper's data)"
    runs = data.summary[data.summary["run_dir"].isin(set(curves["run_dir"]))] if not data.summary.empty else curves
    _footer(fig, runs if not runs.empty else curves, extra)
    return fig


#: the panels of Figures 1 and 4, as the paper draws them
_CURVE_DATASETS = ("cifar10", "cifar100", "fashion_mnist", "cats_vs_dogs")


@_figure("fig1", "curves", _draw_curves, losses=("supcon", "supcon_star"), outliers=("rot",), datasets=_CURVE_DATASETS)
def _fig1() -> None:
    """Figure 1: learning curves of SupCon (binary) vs SupCon* (rotation classes), AUROC vs epoch.

    Four panels, as Figure 4: CIFAR-10, CIFAR-100, Fashion-MNIST, Cats-vs-Dogs.
    SupCon's collapse after some epochs is the point (Appendix D.1).
    """


@_figure("fig4", "curves", _draw_curves, losses=("ntxent", "supcon", "supcon_star", "firm"), outliers=("rot",),
         datasets=_CURVE_DATASETS)
def _fig4() -> None:
    """Figure 4: learning curves of NT-Xent, SupCon, SupCon* and FIRM per dataset (mean and spread over seeds)."""


# --------------------------------------------------------------------------- #
# Figure 2: loss landscapes
# --------------------------------------------------------------------------- #
def constructed_batch(
    s_in: float, s_out: float, n_id: int = 4, n_out: int = 4, dtype=None
):
    """A batch whose embeddings have prescribed cosine similarities (Figure 2's axes).

    Returns (z (n_id + n_out, n_id + n_out), labels (n_id + n_out,)): labels 0
    for the n_id in-distribution samples, 1 for the n_out synthetic outliers.
    The rows of z are unit vectors with Gram matrix
      G = blockdiag((1 - s_in) I + s_in 11^T, (1 - s_out) I + s_out 11^T):
    cosine similarity s_in between two ID samples, s_out between two
    outliers, 0 between an ID sample and an outlier. z = V sqrt(W) from the
    eigendecomposition G = V W V^T, so z z^T = G (any embedding with this Gram
    matrix gives the same loss: the losses only see dot products). G is
    positive semi-definite iff s >= -1 / (n - 1) for each block. Both views
    are z itself (perfectly invariant augmentations), so the positive pair of
    every anchor has similarity 1.
    """
    import torch

    dtype = dtype or torch.float64
    for s, n, name in ((s_in, n_id, "s_in"), (s_out, n_out, "s_out")):
        low = -1.0 / (n - 1) if n > 1 else -1.0
        if not low - 1e-12 <= s <= 1.0 + 1e-12:
            raise ValueError(f"{name}={s} is not a possible pairwise cosine similarity of {n} vectors: [{low:.3f}, 1]")

    def block(s: float, n: int) -> torch.Tensor:
        return (1 - s) * torch.eye(n, dtype=dtype) + s * torch.ones(n, n, dtype=dtype)

    gram = torch.block_diag(block(s_in, n_id), block(s_out, n_out))
    w, v = torch.linalg.eigh(gram)
    z = v * w.clamp_min(0).sqrt()
    z = z / z.norm(dim=1, keepdim=True)  # exact unit norm despite round-off
    labels = torch.cat([torch.zeros(n_id, dtype=torch.long), torch.ones(n_out, dtype=torch.long)])
    return z, labels


def landscape(
    loss: str,
    s_in: Sequence[float],
    s_out: Sequence[float],
    *,
    tau: float | None = None,
    form: str = "reference",
    n_id: int = 4,
    n_out: int = 4,
) -> np.ndarray:
    """L[i, j] = get_loss(loss, tau, form)(z, z, labels) on ``constructed_batch(s_in[i], s_out[j])``.

    form: a ``loss.form`` setting; ``reference`` (default) = the form the FIRM
    reference code ran the loss in (NT-Xent and FIRM pairwise, SupCon concat).
    """
    from firm_bench.method.losses import get_loss

    fn = get_loss(loss, form=form) if tau is None else get_loss(loss, tau=tau, form=form)
    out = np.empty((len(s_in), len(s_out)))
    for i, a in enumerate(s_in):
        for j, b in enumerate(s_out):
            z, labels = constructed_batch(float(a), float(b), n_id, n_out)
            out[i, j] = float(fn(z, z, labels))
    return out


def _draw_landscape(spec: FigureSpec, data: FigureData):
    """One heat map per loss over (inlier similarity, synthetic-outlier similarity), minimum marked.

    Each loss in the form the reference code ran it (``catalog.loss_form``), named in its title and the note.
    """
    from firm_bench.core import catalog
    from firm_bench.paper.tables import FORM_LABELS

    n_id, n_out, steps = spec.params["n_id"], spec.params["n_out"], spec.params["steps"]
    s_in = np.linspace(-1.0 / (n_id - 1), 1.0, steps)
    s_out = np.linspace(-1.0 / (n_out - 1), 1.0, steps)
    losses = spec.params["losses"]
    fig, axes = _new_figure(len(losses), height=2.1)
    for ax, loss in zip(axes, losses):
        values = landscape(loss, s_in, s_out, form="reference", n_id=n_id, n_out=n_out)
        mesh = ax.pcolormesh(s_in, s_out, values.T, shading="auto", cmap="viridis")
        ax.contour(s_in, s_out, values.T, levels=8, colors="white", linewidths=0.4, alpha=0.6)
        i, j = np.unravel_index(np.argmin(values), values.shape)
        ax.plot(s_in[i], s_out[j], marker="*", color="red", markersize=7, label="minimum")
        ax.set_title(f"{_loss_label(loss)} ({catalog.loss_form(loss)})")
        ax.set_xlabel("inlier similarity")
        ax.set_ylabel("syn. outlier similarity")
        fig.colorbar(mesh, ax=ax, shrink=0.85, label="loss")
    from firm_bench.core.config import schema_defaults

    forms = ", ".join(f"{_loss_label(loss)} {FORM_LABELS[catalog.loss_form(loss)]}" for loss in losses)
    _note(fig, f"our losses, each in the form the reference code ran it ({forms}), tau = "
               f"{schema_defaults()['loss']['tau']}, on constructed batches of {n_id} ID + {n_out} outlier unit "
               "vectors; both views equal; ID-outlier similarity 0")
    return fig


@_figure("fig2", "landscape", _draw_landscape, losses=("ntxent", "supcon", "firm"), n_id=4, n_out=4, steps=41)
def _fig2() -> None:
    """Figure 2: loss landscapes of NT-Xent, SupCon and FIRM over (inlier, synthetic-outlier) cosine similarity.

    Computed by evaluating firm_bench.method.losses.get_loss on constructed batches
    (constructed_batch), not from a second formula, each loss in the form the
    reference code ran it (NT-Xent and FIRM pairwise, SupCon concat). NT-Xent is lowest where
    inliers are dissimilar, SupCon where both groups collapse, FIRM where
    inliers align and outliers stay diverse (paper Sec. 2.1).
    """


# --------------------------------------------------------------------------- #
# Figures 3, 6, 7: t-SNE
# --------------------------------------------------------------------------- #
def tsne_embedding(features: np.ndarray, *, seed: int = 0, threads: int = 1, max_points: int | None = None,
                   targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of L2-normalised features (scikit-learn, PCA init, seeded).

    features: (N, D). A seeded, stratified subsample of at most ``max_points``
    (by ``targets``) keeps large test sets fast. Returns (embedding (n, 2),
    indices (n,) of the points used). Perplexity min(30, (n - 1) / 3).
    ``threads`` bounds scikit-learn's n_jobs and the native thread pools.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    idx = np.arange(len(x))
    if max_points is not None and len(x) > max_points:
        rng = np.random.default_rng(seed)
        groups = [idx] if targets is None else [idx[targets == t] for t in np.unique(targets)]
        idx = np.sort(np.concatenate([rng.choice(g, size=max(1, round(max_points * len(g) / len(x))), replace=False)
                                      for g in groups]))
    if len(idx) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(idx)}")
    perplexity = min(30.0, (len(idx) - 1) / 3)
    with threadpool_limits(threads):  # BLAS / OpenMP pools too, not only n_jobs: no oversubscription
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                   n_jobs=threads).fit_transform(x[idx])
    return emb, idx


def _tsne_runs(spec: FigureSpec, summary: pd.DataFrame) -> tuple[list[str], list[str], dict, pd.DataFrame]:
    """Classes (rows), losses (columns) and the run of each panel: base recipe, lowest seed."""
    rows = summary[summary["loss"].isin(spec.params["losses"])]
    if "evalset" in rows:
        rows = rows[rows["evalset"].fillna("test") == "test"]
    rows = rows[rows["recipe"] == _base_recipe(rows)] if not rows.empty else rows
    if rows.empty or spec.params["dataset"] in set(rows["dataset"]):
        classes = list(spec.params["classes"])  # the paper's panels; those without a run say so
    else:  # in miniature: the classes the config ran on its stand-in dataset
        classes = sorted(rows["cls"].unique(), key=lambda c: (not c.isdigit(), c.zfill(8)))[:len(spec.params["classes"])]
    losses = list(spec.params["losses"])
    runs = {}
    for (cls, loss), g in rows.groupby(["cls", "loss"]):
        runs[(cls, loss)] = g.sort_values("seed").iloc[0]
    return classes, losses, runs, rows


def _draw_tsne(spec: FigureSpec, data: FigureData):
    """A t-SNE panel per class (rows) and loss (columns): normal (blue) vs anomalous (red) test images."""
    from firm_bench.core.rundir import cache_path
    from firm_bench.method.scores import FeatureCache

    classes, losses, runs, rows = _tsne_runs(spec, data.summary)
    fig, axes = _new_figure(len(classes) * len(losses), height=1.45, ncols=len(losses))
    for n, (cls, loss) in enumerate((c, x) for c in classes for x in losses):
        ax = axes[n]
        run = runs.get((cls, loss))
        path = cache_path(run["run_dir"]) if run is not None else None
        title = f"{cls}: {_loss_label(loss)}"
        if path is None or not Path(path).is_file():
            _empty_panel(ax, data.absent if run is None else ("pending" if data.partial else "features missing"))
            ax.set_title(title)
            continue
        cache = FeatureCache.load(path)
        targets = cache.targets.numpy()
        emb, idx = tsne_embedding(cache.test[0].numpy(), seed=int(run["seed"]), threads=data.threads,
                                  max_points=spec.params["max_points"], targets=targets)
        t = targets[idx]
        ax.scatter(emb[t == 1, 0], emb[t == 1, 1], s=1.5, c=_NORMAL, label="normal", linewidths=0, rasterized=True)
        ax.scatter(emb[t == 0, 0], emb[t == 0, 1], s=1.5, c=_ANOMALY, label="anomalous", linewidths=0, rasterized=True)
        ax.set_title(title + f" (seed {int(run['seed'])})")
        ax.set_xticks([])
        ax.set_yticks([])
        _move_legend(fig, ax)
    datasets = sorted(rows["dataset"].dropna().unique()) if not rows.empty else []
    _footer(fig, rows, f"t-SNE of encoder features, unrotated test images; dataset {', '.join(map(_dataset_title, datasets)) or '-'}")
    return fig


_OBJECTS = ("bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor", "zipper")
_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
_TSNE = {"losses": ("ntxent", "supcon", "firm"), "dataset": "mvtec", "max_points": 1000}


@_figure("fig3", "tsne", _draw_tsne, classes=("metal_nut", "screw"), **_TSNE)
def _fig3() -> None:
    """Figure 3: t-SNE of MVTec test embeddings (metal nut, screw) for NT-Xent, SupCon and FIRM."""


@_figure("fig6", "tsne", _draw_tsne, classes=_OBJECTS, **_TSNE)
def _fig6() -> None:
    """Figure 6: t-SNE of MVTec test embeddings, object classes, for NT-Xent, SupCon and FIRM (Appendix E)."""


@_figure("fig7", "tsne", _draw_tsne, classes=_TEXTURES, **_TSNE)
def _fig7() -> None:
    """Figure 7: t-SNE of MVTec test embeddings, texture classes, for NT-Xent, SupCon and FIRM (Appendix E)."""


# --------------------------------------------------------------------------- #
# Figure 5: temperature and batch-size sweeps
# --------------------------------------------------------------------------- #
def _sweep_rows(summary: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(tau sweep rows, batch-size sweep rows, note): the base recipe's batch size / tau held fixed.

    tau and batch_size come from the summary columns (the runs' resolved
    configs), not from recipe names; the base is the preset's own recipe.
    """
    rows = summary[summary["status"].notna()]
    rows = rows[(rows["k"].isna()) | (rows["k"] == k)]
    base = rows[rows["recipe"] == _base_recipe(rows)] if not rows.empty else rows
    if base.empty:
        return rows.iloc[0:0], rows.iloc[0:0], "no runs"
    taus, sizes = base["tau"].dropna().unique(), base["batch_size"].dropna().unique()
    if len(taus) != 1 or len(sizes) != 1:
        raise ValueError(f"sweep: the base recipe {base['recipe'].iloc[0]!r} has several tau {list(taus)} or batch "
                         f"sizes {list(sizes)} in the summary; one value each is expected")
    note = f"base: tau {taus[0]:g}, batch size {int(sizes[0])}"
    return rows[rows["batch_size"] == sizes[0]], rows[rows["tau"] == taus[0]], note


def _draw_sweep(spec: FigureSpec, data: FigureData):
    """Four panels: AUROC vs tau and vs batch size, score without and with the norm; a line per class + mean."""
    import seaborn as sns

    from firm_bench.paper.tables import default_k

    k = data.k or default_k()
    tau_rows, bs_rows, note = _sweep_rows(data.summary, k)
    fig, axes = _new_figure(4, height=1.9)
    panels = [(tau_rows, "tau", "temperature τ"), (bs_rows, "batch_size", "batch size")]
    for n, ((rows, x, xlabel), score) in enumerate((p, s) for p in panels for s in spec.params["scores"]):
        ax = axes[n]
        d = rows[(rows["score"] == score) & (rows["status"] == "ok")]
        d = d.assign(auroc_pct=pd.to_numeric(d["auroc"]) * rep.PERCENT, x=pd.to_numeric(d[x]),
                     cls=d["cls"].astype(str))
        ax.set_title(f"({'abcd'[n]}) {score} vs {xlabel}")
        if d[x].nunique() < 1:
            _empty_panel(ax, data.absent)
            continue
        sns.lineplot(data=d, x="x", y="auroc_pct", hue="cls", errorbar="sd", marker="o", markersize=3,
                     palette="colorblind", ax=ax)
        mean = d.groupby(["x", "seed"])["auroc_pct"].mean().groupby("x").mean()
        ax.plot(mean.index, mean.to_numpy(), color="black", linewidth=1.4, label="mean")
        ax.set_xscale("log")
        ax.set_xticks(sorted(d["x"].unique()), [f"{v:g}" for v in sorted(d["x"].unique())])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("AUROC (%)")
        _move_legend(fig, ax, title="class")
    _footer(fig, data.summary, f"{note}; k = {k}; line = mean over seeds, band = ±1 std")
    return fig


@_figure("fig5", "sweep", _draw_sweep, scores=("cos", "cos_norm"))
def _fig5() -> None:
    """Figure 5: AUROC vs temperature and vs batch size, without (cos) and with (cos_norm) the feature norm.

    The paper's CIFAR-10 classes are 0, 2, 3 and "5" (deer is 4); its swept
    values were lost in extraction, so the grid is the config's. tau and batch
    size are read from the summaries' columns.
    """


# --------------------------------------------------------------------------- #
# files and CLI
# --------------------------------------------------------------------------- #
def read_curves(paths: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """Learning curves (``results/summary/<experiment>_curves.csv``) as one frame, each run's curve once."""
    from firm_bench.records.summary import CURVE_COLUMNS

    if isinstance(paths, pd.DataFrame):
        frames = [paths]
    else:
        frames = []
        for p in map(Path, paths):
            if not p.is_file():
                raise FileNotFoundError(f"learning curves {p} do not exist; build them with `snakemake {p}`")
            frames.append(pd.read_csv(p, dtype={"cls": str}))
    frames = [f for f in frames if not f.empty]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)
    df = df.reindex(columns=list(dict.fromkeys([*CURVE_COLUMNS, *df.columns])))
    df["cls"] = df["cls"].astype(str)
    return df.drop_duplicates(["run_dir", "epoch"]).reset_index(drop=True)


def draw(name: str, data: FigureData):
    """The matplotlib Figure of paper figure ``name``."""
    import matplotlib

    spec = FIGURES.get(name)
    with matplotlib.rc_context(_RC):
        fig = spec.draw(spec, data)
        fig.suptitle(spec.title.split(":")[0], fontsize=8, x=0.0, ha="left")
    return fig


def write_figure(
    name: str,
    summaries: Sequence[str | Path] | pd.DataFrame = (),
    curves: Sequence[str | Path] | pd.DataFrame = (),
    out_dir: str | Path = "figures",
    *,
    threads: int = 1,
    partial: bool = False,
    k: int | None = None,
) -> list[Path]:
    """Draw paper figure ``name`` from the summaries / curves of the experiments feeding it: PNG and PDF."""
    import matplotlib

    from firm_bench.core import rundir as runs
    from firm_bench.paper.tables import read_summaries

    summary = read_summaries(summaries)
    curve_rows = read_curves(curves)
    fig = draw(name, FigureData(summary, curve_rows, partial=partial, threads=threads, k=k))
    out_dir = Path(out_dir)
    paths = []
    with matplotlib.rc_context(_RC):
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext)
            paths.append(runs.atomic_write_bytes(out_dir / f"{name}.{ext}", buf.getvalue()))
    return paths
