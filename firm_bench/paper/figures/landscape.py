"""Loss landscapes (Figure 2): each loss of ours over (inlier, synthetic-outlier) cosine similarity.

:func:`landscape` evaluates our own losses (``firm_bench.method.losses.get_loss``),
each in the form the reference code ran it, on constructed batches
(:func:`constructed_batch`) whose embeddings have the prescribed similarities:
the figure is the implementation, not a second formula. torch is imported
when a landscape is computed, not when the module is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from firm_bench.paper.figures.common import FigureData, loss_label, new_figure, note
from firm_bench.paper.figures.specs import FigureSpec

__all__ = ["constructed_batch", "draw_landscape", "landscape"]


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


def draw_landscape(spec: FigureSpec, data: FigureData):
    """One heat map per loss over (inlier similarity, synthetic-outlier similarity), minimum marked.

    Each loss in the form the reference code ran it (``core.facts.method.resolve_form``), named in its title and the note.
    """
    from firm_bench.core.facts.method import resolve_form
    from firm_bench.core.config import schema_defaults
    from firm_bench.paper.labels import FORM_LABELS

    n_id, n_out, steps = spec.params["n_id"], spec.params["n_out"], spec.params["steps"]
    s_in = np.linspace(-1.0 / (n_id - 1), 1.0, steps)
    s_out = np.linspace(-1.0 / (n_out - 1), 1.0, steps)
    losses = spec.params["losses"]
    fig, axes = new_figure(len(losses), height=2.1)
    for ax, loss in zip(axes, losses):
        values = landscape(loss, s_in, s_out, form="reference", n_id=n_id, n_out=n_out)
        mesh = ax.pcolormesh(s_in, s_out, values.T, shading="auto", cmap="viridis")
        ax.contour(s_in, s_out, values.T, levels=8, colors="white", linewidths=0.4, alpha=0.6)
        i, j = np.unravel_index(np.argmin(values), values.shape)
        ax.plot(s_in[i], s_out[j], marker="*", color="red", markersize=7, label="minimum")
        ax.set_title(f"{loss_label(loss)} ({resolve_form(loss)})")
        ax.set_xlabel("inlier similarity")
        ax.set_ylabel("syn. outlier similarity")
        fig.colorbar(mesh, ax=ax, shrink=0.85, label="loss")
    forms = ", ".join(f"{loss_label(loss)} {FORM_LABELS[resolve_form(loss)]}" for loss in losses)
    note(fig, f"our losses, each in the form the reference code ran it ({forms}), tau = "
              f"{schema_defaults()['loss']['tau']}, on constructed batches of {n_id} ID + {n_out} outlier unit "
              "vectors; both views equal; ID-outlier similarity 0")
    return fig
