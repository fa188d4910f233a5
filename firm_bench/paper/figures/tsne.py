"""t-SNE of test embeddings (Figures 3, 6, 7): a panel per class (rows) and loss (columns).

Each panel embeds the encoder features of one run's test images (the run's
feature cache, ``core.rundir.cache_path``, unrotated view) in 2-D
(:func:`tsne_embedding`: scikit-learn TSNE, seeded, ``n_jobs`` = ``--threads``),
normal images blue and anomalous ones red, as the paper's plots. The run of a
panel is the base recipe's lowest seed. The classes are the spec's
``classes``, or a class group of the dataset's facts
(``class_group``: MVTec ``objects`` for Figure 6, ``textures`` for Figure 7);
in miniature (no run on the spec's dataset) the classes the config ran on its
stand-in, each panel naming the paper's class it stands in for. Panels name
each class by its name (``common.class_name``) and the data they show.

A stand-in cannot show what the paper's t-SNE figures of one dataset show
(three MVTec figures from one Fashion-MNIST run would be three copies of
one picture under three titles): the stand-in is drawn once, in the first
t-SNE figure of that dataset (:func:`stand_in_figure`, Figure 3 for MVTec),
marked as a stand-in; the others say "not run" on the paper's dataset and
where the stand-in is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from firm_bench.core.errors import DamagedFile
from firm_bench.core.rundir import cache_path
from firm_bench.paper.figures.common import (
    FigureData,
    base_recipe,
    class_name,
    dataset_title,
    empty_panel,
    figure_legend,
    footer,
    loss_label,
    mark_stand_in,
    new_figure,
    panel_data,
)
from firm_bench.paper.figures.specs import FIGURES, FigureSpec

__all__ = ["draw_tsne", "panel_classes", "stand_in_figure", "tsne_embedding"]

_NORMAL, _ANOMALY = "#1f5fbf", "#d62728"  # blue normal, red anomalous (as the paper's t-SNE plots)


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


def panel_classes(spec: FigureSpec) -> list[str]:
    """The paper's classes of a t-SNE figure: its ``classes``, or its ``class_group`` of the dataset's facts."""
    if "classes" in spec.params:
        return list(spec.params["classes"])
    from firm_bench.core.facts.datasets import dataset as dataset_facts

    dataset, group = str(spec.params["dataset"]), str(spec.params["class_group"])
    groups = dataset_facts(dataset).class_groups or {}
    if group not in groups:
        raise ValueError(f"figure {spec.name}: dataset {dataset!r} has no class group {group!r}; "
                         f"valid: {', '.join(groups) or 'none'}")
    return list(groups[group])


def stand_in_figure(dataset: str) -> FigureSpec:
    """The one t-SNE figure of the paper's ``dataset`` that draws a stand-in for it: the first registered."""
    return next(FIGURES.get(n) for n in FIGURES.names()
                if FIGURES.get(n).kind == "tsne" and FIGURES.get(n).params["dataset"] == dataset)


def _what_the_paper_shows(spec: FigureSpec) -> str:
    """The paper's panels of a t-SNE figure in words: ``mvtec objects (bottle, cable, ...) × NT-Xent, SupCon, FIRM``."""
    classes = ", ".join(panel_classes(spec))
    group = f" {spec.params['class_group']}" if "class_group" in spec.params else ""
    return f"{spec.params['dataset']}{group} ({classes}) × {', '.join(map(loss_label, spec.params['losses']))}"


def _drawn_elsewhere(spec: FigureSpec, rows: pd.DataFrame, ran: list[str]):
    """A stand-in figure that is not its dataset's :func:`stand_in_figure`: one panel saying where the stand-in is."""
    import textwrap

    paper, first = spec.params["dataset"], stand_in_figure(spec.params["dataset"])
    fig, (ax,) = new_figure(1, height=1.2)
    empty_panel(ax, textwrap.fill(
        f"not run on {paper}. The {', '.join(ran)} stand-in cannot show {paper}'s classes; its t-SNE is drawn once, "
        f"in {first.title.split(':')[0]}.", 80))
    ax.set_title("\n".join(textwrap.wrap(f"The paper's panels: {_what_the_paper_shows(spec)}", 110)))
    mark_stand_in(fig, {d: paper for d in ran})
    footer(fig, rows, f"no t-SNE drawn here: no {paper} run in these results")
    return fig


def _tsne_runs(spec: FigureSpec, summary: pd.DataFrame) -> tuple[list[str], list[str], dict, pd.DataFrame]:
    """Classes (rows), losses (columns) and the run of each panel: base recipe, lowest seed."""
    rows = summary[summary["loss"].isin(spec.params["losses"])]
    if "evalset" in rows:
        rows = rows[rows["evalset"].fillna("test") == "test"]
    rows = rows[rows["recipe"] == base_recipe(rows)] if not rows.empty else rows
    paper_classes = panel_classes(spec)
    if rows.empty or spec.params["dataset"] in set(rows["dataset"]):
        classes = paper_classes  # the paper's panels; those without a run say so
    else:  # in miniature: the classes the config ran on its stand-in dataset
        classes = sorted(rows["cls"].unique(), key=lambda c: (not c.isdigit(), c.zfill(8)))[:len(paper_classes)]
    losses = list(spec.params["losses"])
    runs = {}
    for (cls, loss), g in rows.groupby(["cls", "loss"]):
        runs[(cls, loss)] = g.sort_values("seed").iloc[0]
    return classes, losses, runs, rows


def draw_tsne(spec: FigureSpec, data: FigureData):
    """A t-SNE panel per class (rows) and loss (columns): normal (blue) vs anomalous (red) test images."""
    from firm_bench.method.scores import FeatureCache  # lazy: reading results needs no torch

    classes, losses, runs, rows = _tsne_runs(spec, data.summary)
    ran = sorted(rows["dataset"].dropna().unique()) if not rows.empty else []
    paper = spec.params["dataset"]
    stand_in = bool(ran) and paper not in ran
    if stand_in and stand_in_figure(paper).name != spec.name:
        return _drawn_elsewhere(spec, rows, ran)
    paper_classes = panel_classes(spec)
    fig, axes = new_figure(len(classes) * len(losses), height=1.6, ncols=len(losses))
    for n, (cls, loss) in enumerate((c, x) for c in classes for x in losses):
        ax = axes[n]
        run = runs.get((cls, loss))
        dataset = run["dataset"] if run is not None else (ran[0] if len(ran) == 1 else paper)
        path = cache_path(run["run_dir"]) if run is not None else None
        for_class = f" {paper_classes[classes.index(cls)]}" if dataset != paper else ""
        title = f"{class_name(dataset, cls)}: {loss_label(loss)}"
        shows = f"\n{panel_data(dataset, paper)}{for_class}"
        if path is None or not Path(path).is_file():
            empty_panel(ax, data.absent if run is None else ("pending" if data.partial else "features missing"))
            ax.set_title(title + shows)
            continue
        try:
            cache = FeatureCache.load(path)
        except DamagedFile:  # one damaged cache is one marked panel
            empty_panel(ax, "damaged")
            ax.set_title(title + shows)
            continue
        targets = cache.targets.numpy()
        emb, idx = tsne_embedding(cache.test[0].numpy(), seed=int(run["seed"]), threads=data.threads,
                                  max_points=spec.params["max_points"], targets=targets)
        t = targets[idx]
        ax.scatter(emb[t == 1, 0], emb[t == 1, 1], s=1.5, c=_NORMAL, label="normal", linewidths=0, rasterized=True)
        ax.scatter(emb[t == 0, 0], emb[t == 0, 1], s=1.5, c=_ANOMALY, label="anomalous", linewidths=0, rasterized=True)
        ax.set_title(title + f" (seed {int(run['seed'])})" + shows)
        ax.set_xticks([])
        ax.set_yticks([])
    figure_legend(fig, axes)
    mark_stand_in(fig, {d: paper for d in ran if d != paper})
    data_words = (f"dataset {', '.join(ran)} standing in for {paper} (each panel names the {paper} class it "
                  f"stands in for; the paper's panels: {_what_the_paper_shows(spec)})" if stand_in
                  else f"dataset {', '.join(map(dataset_title, ran)) or '-'}")
    footer(fig, rows, f"t-SNE of encoder features, unrotated test images; {data_words}")
    return fig
