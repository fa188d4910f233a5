"""The paper's figures, regenerated from our runs (``FIGURES``).

One spec record per paper figure (:mod:`.specs`), registered under its target
name (``fig4`` -> ``figures/fig4.png`` and ``figures/fig4.pdf``). Its kind
selects the drawing function (:data:`DRAW`), one module per kind:

- :mod:`.curves`, learning curves (Figures 1, 4): AUROC vs epoch, mean over
  seeds of the class mean, one panel per paper dataset (a stand-in dataset of
  ours in the panel of the dataset it stands in for);
- :mod:`.landscape`, loss landscapes (Figure 2): our own losses evaluated on
  constructed batches (``landscape.landscape``; the package's ``landscape`` is
  that module);
- :mod:`.tsne`, t-SNE (Figures 3, 6, 7): test embeddings of normal vs
  anomalous images, per class and loss;
- :mod:`.sweep`, sweeps (Figure 5): AUROC vs temperature and vs batch size,
  without and with the feature norm in the score.

What they share (style, footer, the one figure-level legend right of the
panels, class and dataset names) is :mod:`.common`. Every figure states its
recipe in a footer line and says "pending" / "not run" in panels with no
data; each panel names the data it shows, and a figure drawn from stand-in
data says so next to its number. The inputs are read by ``firm_bench.records.summary`` (``read_summaries``,
``read_curves``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from firm_bench.paper.figures.common import RC, FigureData, stand_in_mark
from firm_bench.paper.figures.curves import curve_panels, draw_curves
from firm_bench.paper.figures.landscape import constructed_batch, draw_landscape
from firm_bench.paper.figures.specs import FIGURE_SPECS, FIGURES, KINDS, FigureSpec
from firm_bench.paper.figures.sweep import draw_sweep
from firm_bench.paper.figures.tsne import draw_tsne, tsne_embedding
from firm_bench.records.summary import read_curves, read_summaries

__all__ = [
    "DRAW",
    "FIGURES",
    "FIGURE_SPECS",
    "FigureData",
    "FigureSpec",
    "constructed_batch",
    "curve_panels",
    "draw",
    "read_curves",
    "tsne_embedding",
    "write_figure",
]

#: drawing kind -> the function that draws a figure of that kind from its spec and data
DRAW: dict[str, Callable[[FigureSpec, FigureData], object]] = {
    "curves": draw_curves,
    "landscape": draw_landscape,
    "tsne": draw_tsne,
    "sweep": draw_sweep,
}
if set(DRAW) != set(KINDS):
    raise RuntimeError(f"figure kinds {sorted(KINDS)} and drawing functions {sorted(DRAW)} differ")


def draw(name: str, data: FigureData):
    """The matplotlib Figure of paper figure ``name``, headed by its paper item (``Figure 4``)."""
    import matplotlib

    spec = FIGURES.get(name)
    with matplotlib.rc_context(RC):
        fig = DRAW[spec.kind](spec, data)
        mark = stand_in_mark(fig)
        fig.suptitle(spec.title.split(":")[0] + (f" — {mark}" if mark else ""), fontsize=8, x=0.0, ha="left",
                     color="#a60" if mark else "black")
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

    summary = read_summaries(summaries)
    curve_rows = read_curves(curves)
    fig = draw(name, FigureData(summary, curve_rows, partial=partial, threads=threads, k=k))
    out_dir = Path(out_dir)
    paths = []
    with matplotlib.rc_context(RC):
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext)
            paths.append(runs.atomic_write_bytes(out_dir / f"{name}.{ext}", buf.getvalue()))
    return paths
