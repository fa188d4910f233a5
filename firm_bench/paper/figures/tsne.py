"""t-SNE of test embeddings (Figures 3, 6, 7): a panel per class (rows) and loss (columns).

Each panel embeds the encoder features of one run's test images (the run's
feature cache, ``core.rundir.cache_path``, unrotated view) in 2-D
(:func:`tsne_embedding`: scikit-learn TSNE, seeded, ``n_jobs`` = ``--threads``),
normal images blue and anomalous ones red, as the paper's plots. The run of a
panel is the base recipe's lowest seed. The classes are the spec's
``classes``, or a class group of the dataset's catalog entry
(``class_group``: MVTec ``objects`` for Figure 6, ``textures`` for Figure 7);
in miniature (no run on the spec's dataset) the classes the config ran on its
stand-in. Panels name each class by its name (``common.class_name``).
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
    new_figure,
)
from firm_bench.paper.figures.specs import FigureSpec

__all__ = ["draw_tsne", "panel_classes", "tsne_embedding"]

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
    """The paper's classes of a t-SNE figure: its ``classes``, or its ``class_group`` of the dataset's catalog entry."""
    if "classes" in spec.params:
        return list(spec.params["classes"])
    from firm_bench.core import catalog

    dataset, group = str(spec.params["dataset"]), str(spec.params["class_group"])
    groups = catalog.dataset(dataset).class_groups or {}
    if group not in groups:
        raise ValueError(f"figure {spec.name}: dataset {dataset!r} has no class group {group!r}; "
                         f"valid: {', '.join(groups) or 'none'}")
    return list(groups[group])


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
    fig, axes = new_figure(len(classes) * len(losses), height=1.45, ncols=len(losses))
    for n, (cls, loss) in enumerate((c, x) for c in classes for x in losses):
        ax = axes[n]
        run = runs.get((cls, loss))
        dataset = run["dataset"] if run is not None else (ran[0] if len(ran) == 1 else spec.params["dataset"])
        path = cache_path(run["run_dir"]) if run is not None else None
        title = f"{class_name(dataset, cls)}: {loss_label(loss)}"
        if path is None or not Path(path).is_file():
            empty_panel(ax, data.absent if run is None else ("pending" if data.partial else "features missing"))
            ax.set_title(title)
            continue
        try:
            cache = FeatureCache.load(path)
        except DamagedFile:  # one damaged cache is one marked panel
            empty_panel(ax, "damaged")
            ax.set_title(title)
            continue
        targets = cache.targets.numpy()
        emb, idx = tsne_embedding(cache.test[0].numpy(), seed=int(run["seed"]), threads=data.threads,
                                  max_points=spec.params["max_points"], targets=targets)
        t = targets[idx]
        ax.scatter(emb[t == 1, 0], emb[t == 1, 1], s=1.5, c=_NORMAL, label="normal", linewidths=0, rasterized=True)
        ax.scatter(emb[t == 0, 0], emb[t == 0, 1], s=1.5, c=_ANOMALY, label="anomalous", linewidths=0, rasterized=True)
        ax.set_title(title + f" (seed {int(run['seed'])})")
        ax.set_xticks([])
        ax.set_yticks([])
    figure_legend(fig, axes)
    footer(fig, rows, f"t-SNE of encoder features, unrotated test images; dataset {', '.join(map(dataset_title, ran)) or '-'}")
    return fig
