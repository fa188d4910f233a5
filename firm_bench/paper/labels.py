"""The labels every paper table and figure states: recipe, loss forms, protocol, k.

One home for how results are labelled in the paper outputs. The tables put
the long forms in their captions (:func:`recipe_label`), the figures the
compact ones in their footers (``compact=True``). Each label reads the recipe
columns of summary (or cell) rows (``records.summary.RECIPE_LABELS``, written
by ``records.metrics.recipe_labels``); a column a summary written before it
existed lacks reads as unknown / not recorded. Where a label differs from the
reference code it says so (docs/FAITHFULNESS.md).
"""

from __future__ import annotations

import pandas as pd

from firm_bench.paper import reported as rep
from firm_bench.records.summary import RECIPE_LABELS

__all__ = [
    "CHECKPOINT_LABELS",
    "FORM_LABELS",
    "REFERENCE_PROTOCOL",
    "default_k",
    "loss_form_label",
    "protocol_label",
    "recipe_label",
    "recipe_of",
]

#: how each checkpoint choice is labelled in every output (docs/REFERENCE.md "Faithful vs honest: the recipe options")
CHECKPOINT_LABELS = {
    "last": "last epoch (the paper's reference code selected the best test-set epoch)",
    "best_test": "best TEST-set epoch, as the reference code (selection on the test set)",
}
#: how each loss form is named in captions (``loss_form_label``)
FORM_LABELS = {"pairwise": "pairwise (N×N)", "concat": "concat (2N×2N)"}
#: how the reference code ran each protocol label (docs/FAITHFULNESS.md); a value of ours that differs is marked
REFERENCE_PROTOCOL = {"precision": "fp32", "normalization": "reference", "head_init": "kaiming"}


def default_k() -> int:
    """The k of the k-NN scores shown in tables and figures: the run schema's ``eval.k`` (the learning-curve k)."""
    from firm_bench.core.config import schema_defaults

    return int(schema_defaults()["eval"]["k"])


def recipe_of(rows: pd.DataFrame) -> dict:
    """The recipe labels (``RECIPE_LABELS``) of some summary rows, '/'-joined where they differ; None where absent."""
    out = {}
    for col in RECIPE_LABELS:
        vals = sorted({str(v) for v in rows[col].dropna()}) if col in rows else []
        out[col] = "/".join(vals) if vals else None
    return out


def _truthy(value: object) -> bool:
    """A bool label as written by pandas (True, "True", 1) or read back from a CSV."""
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def loss_form_label(rows: pd.DataFrame, compact: bool = False) -> str:
    """The form each loss of some summary (or cell) rows trained in, against the reference's.

    Reads the ``loss_form`` label (``records.metrics.recipe_labels``) per loss and
    compares it with the form the FIRM reference code ran that loss in
    (``catalog.loss_form``). E.g. ``loss forms: NT-Xent pairwise (N×N), SupCon
    concat (2N×2N) — as the reference ran them``, or ``loss forms: all pairwise
    (N×N) — override; the reference ran SupCon in concat (2N×2N)``. A loss
    without the label (a summary written before it existed) is named unknown.
    ``compact``: shorter, for figure footers.
    """
    from firm_bench.core import catalog

    if "loss" not in rows or rows["loss"].dropna().empty:
        return "loss forms: unknown"
    rank = {n: i for i, n in enumerate(catalog.names("loss.name"))}
    losses = sorted({str(v) for v in rows["loss"].dropna()}, key=lambda n: (rank.get(n, len(rank)), n))
    name = lambda n: rep.LOSS_DISPLAY.get(n, n)  # noqa: E731
    text = (lambda f: f) if compact else (lambda f: FORM_LABELS.get(f, f))

    def reference(loss: str) -> str | None:
        try:
            return catalog.loss_form(loss)
        except (KeyError, ValueError):
            return None

    forms = {}
    for loss in losses:
        vals = rows.loc[rows["loss"] == loss, "loss_form"].dropna() if "loss_form" in rows else []
        forms[loss] = sorted({f for v in vals for f in str(v).split("/")})
    unknown = [n for n in losses if not forms[n]]
    if len(unknown) == len(losses):
        return "loss forms: not recorded (results from before the label)"
    deviating = [n for n in losses if forms[n] and any(f != reference(n) for f in forms[n])]
    parts = ", ".join(f"{name(n)} {'/'.join(text(f) for f in forms[n]) or 'unknown'}" for n in losses)
    one = {f for n in losses for f in forms[n]}
    if deviating and not unknown and len(losses) > 1 and len(one) == 1:
        parts = f"all {text(one.pop())}"
    notes = []
    if deviating:
        refs = sorted({str(reference(n)) for n in deviating})
        notes.append(f"override; the reference ran {'/'.join(map(name, deviating))} in {'/'.join(map(text, refs))}")
    if unknown:
        notes.append(f"{'/'.join(map(name, unknown))}: form not recorded (older results)")
    if not notes:
        notes.append("as the reference" if compact else "as the reference ran them")
    return f"loss forms: {parts} — {'; '.join(notes)}"


def recipe_label(rows: pd.DataFrame, compact: bool = False) -> str:
    """The recipe options of some summary (or cell) rows, as every table and figure states them.

    Per recipe: schedule (with the momentum that ran, where recorded), checkpoint choice (with how it differs from the
    paper's), BN momentum, the form of each loss (``loss_form_label``), ID
    class labels where used, tau, batch size, epochs. ``compact``: one line
    over all rows (the recipes, schedule, checkpoint, BN momentum, loss forms),
    for figures.
    """
    rows = rows.dropna(subset=["recipe"]) if "recipe" in rows else rows.iloc[0:0]
    if rows.empty:
        return "no runs yet"

    def checkpoint(values: str | None) -> str:
        return "; ".join(CHECKPOINT_LABELS.get(c, c) for c in (values or "unknown").split("/"))

    def id_labels(g: pd.DataFrame) -> str:
        used = "id_labels" in g and any(_truthy(v) for v in g["id_labels"].dropna())
        return ", in-distribution class labels used (multi-class FIRM; our addition)" if used else ""

    def selection(rec: dict) -> str:
        score = rec.get("select_score")
        return f" by {score} (k = eval.k)" if score and "best_test" in str(rec["checkpoint"]) else ""

    def momentum(rec: dict) -> str:  # the SGD momentum that ran (records.metrics.recipe_labels)
        return f" (momentum {rec['momentum']})" if rec.get("momentum") else ""

    if compact:
        rec = recipe_of(rows)
        return (f"recipe {'/'.join(sorted(rows['recipe'].unique()))}; schedule {rec['schedule']}; "
                f"checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}; BN momentum {rec['bn_momentum']}; "
                f"{loss_form_label(rows, compact=True)}{id_labels(rows)}; {protocol_label(rec, compact=True)}")
    return " | ".join(
        f"{recipe}: schedule {rec['schedule']}{momentum(rec)}, checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}, BN momentum "
        f"{rec['bn_momentum']}, tau {rec['tau']}, batch size {rec['batch_size']}, {rec['epochs']} epochs"
        f"{id_labels(g)}; {loss_form_label(g)}; {protocol_label(rec)}"
        for recipe, g, rec in ((r, g, recipe_of(g)) for r, g in rows.groupby("recipe", sort=True)))


def protocol_label(rec: dict, compact: bool = False) -> str:
    """Precision, normalisation, head init, evaluation size / zoom and batching of a recipe ('/'-joined values).

    A value that differs from the reference code's (:data:`REFERENCE_PROTOCOL`) says so; the
    evaluation size and zoom and the batching are the dataset's protocol unless a run set them.
    """
    def field(key: str, text: str) -> str:
        value = rec.get(key)
        if value is None:
            return f"{text} not recorded"
        ref = REFERENCE_PROTOCOL.get(key)
        differs = ref is not None and any(v != ref for v in str(value).split("/"))
        return f"{text} {value}" + (f" (the reference: {ref})" if differs and not compact else "")

    parts = [field("precision", "precision"), field("normalization", "normalisation")]
    if not compact:
        parts.append(field("head_init", "head init"))
    size, zoom, batching = rec.get("eval_size"), rec.get("eval_zoom"), rec.get("batching")
    if size is not None or zoom is not None:
        parts.append(f"evaluated at {size} px, zoom {zoom}" + ("" if compact else f" (training at {rec.get('image_size')} px)"))
    if batching is not None and not compact:
        parts.append(f"{batching} batches")
    return ", ".join(parts)
