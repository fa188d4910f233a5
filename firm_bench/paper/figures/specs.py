"""The paper's figures as data: one :class:`FigureSpec` record per figure (:data:`FIGURE_SPECS`), in ``FIGURES``.

A spec names the paper item (``title``, ``Figure 4: ...``, from
``firm_bench/core/facts/paper.py``), says what else a
reader should know (``doc``), and gives the drawing kind and that kind's
parameters. The kind selects the drawing function (``figures.DRAW``: one
module per kind, :mod:`.curves`, :mod:`.landscape`, :mod:`.tsne`,
:mod:`.sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from firm_bench.core.facts import paper
from firm_bench.core.registry import Registry

__all__ = ["FIGURES", "FIGURE_SPECS", "KINDS", "FigureSpec", "Kind"]

Kind = Literal["curves", "landscape", "tsne", "sweep"]
KINDS: tuple[str, ...] = get_args(Kind)


@dataclass(frozen=True)
class FigureSpec:
    """One paper figure.

    name:   target name (``fig4`` -> figures/fig4.{png,pdf}).
    doc:    what else a reader of the report should know (may be empty; plain text, no reST markup).
    kind:   the drawing kind (:data:`KINDS`), which selects the drawing function.
    params: that function's parameters (a dict: tests coarsen a grid in place).
    """

    name: str
    kind: Kind
    doc: str = ""
    params: dict[str, object] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The paper item and what it shows (``Figure 4: ...``; core/facts/paper.py); its part before the colon
        heads the drawn figure."""
        return paper.FIGURES[self.name]

    def __post_init__(self) -> None:
        if self.name not in paper.FIGURES:
            raise ValueError(f"figure spec {self.name!r} has no title: add one to firm_bench/core/facts/paper.py")
        if self.kind not in KINDS:
            raise ValueError(f"figure spec {self.name!r}: unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        number = self.name.removeprefix("fig")
        if not self.title.startswith(f"Figure {number}:"):
            raise ValueError(f"figure spec {self.name!r}: the title must name the paper item "
                             f"('Figure {number}: ...'), got {self.title!r}")


#: the panels of Figures 1 and 4, as the paper draws them
_CURVE_DATASETS = ("cifar10", "cifar100", "fashion_mnist", "cats_vs_dogs")
#: t-SNE figures: the losses (columns) and dataset; the classes (rows) are named, or a class group of the dataset's facts
_TSNE = {"losses": ("ntxent", "supcon", "firm"), "dataset": "mvtec", "max_points": 1000}

FIGURE_SPECS: list[FigureSpec] = [
    FigureSpec(
        "fig1", kind="curves",
        doc=("Four panels, as Figure 4: CIFAR-10, CIFAR-100, Fashion-MNIST, Cats-vs-Dogs. SupCon's collapse after "
             "some epochs is the point (Appendix D.1)."),
        params={"losses": ("supcon", "supcon_star"), "outliers": ("rot",), "datasets": _CURVE_DATASETS}),
    FigureSpec(
        "fig4", kind="curves",
        params={"losses": ("ntxent", "supcon", "supcon_star", "firm"), "outliers": ("rot",),
                "datasets": _CURVE_DATASETS}),
    FigureSpec(
        "fig2", kind="landscape",
        doc=("Computed by evaluating firm_bench.method.losses.get_loss on constructed batches (constructed_batch), "
             "not from a second formula, each loss in the form the reference code ran it (NT-Xent and FIRM "
             "pairwise, SupCon concat). NT-Xent is lowest where inliers are dissimilar, SupCon where both groups "
             "collapse, FIRM where inliers align and outliers stay diverse (paper Sec. 2.1)."),
        params={"losses": ("ntxent", "supcon", "firm"), "n_id": 4, "n_out": 4, "steps": 41}),
    FigureSpec(
        "fig3", kind="tsne",
        params={"classes": ("metal_nut", "screw"), **_TSNE}),
    FigureSpec(
        "fig6", kind="tsne",
        params={"class_group": "objects", **_TSNE}),
    FigureSpec(
        "fig7", kind="tsne",
        params={"class_group": "textures", **_TSNE}),
    FigureSpec(
        "fig5", kind="sweep",
        doc=('The paper\'s CIFAR-10 classes are 0, 2, 3 and "5" (deer is 4); its swept values were lost in '
             "extraction, so the grid is the config's. tau and batch size are read from the summaries' columns."),
        params={"scores": ("cos", "cos_norm"), "dataset": "cifar10"}),
]

FIGURES: Registry[FigureSpec] = Registry("paper figure", facts=paper.FIGURES)
for _spec in FIGURE_SPECS:
    FIGURES.add(_spec.name, _spec)
del _spec
