"""The labels every paper table and figure states: recipe, loss forms, protocol, k.

One home for how results are labelled in the paper outputs. The tables put
the long forms in their captions (:func:`recipe_label`), the figures the
compact ones in their footers (``compact=True``). Each label reads the recipe
columns of summary (or cell) rows (``records.summary.RECIPE_LABELS``, written
by ``records.metrics.recipe_labels``). Where a label differs from the
reference code it says so (docs/FAITHFULNESS.md).
"""

from __future__ import annotations

import pandas as pd

from firm_bench.paper import reported as rep
from firm_bench.records.summary import RECIPE_LABELS

__all__ = [
    "CHECKPOINT_LABELS",
    "FORM_LABELS",
    "NOT_RECORDED",
    "NO_RUNS",
    "REFERENCE_PROTOCOL",
    "class_name",
    "default_k",
    "label_text",
    "loss_form_label",
    "protocol_label",
    "recipe_label",
    "recipe_of",
    "recorded_rows",
    "unmatched_combinations",
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


#: (loss, outlier source) pairs no single commit of the reference code ran, and why (docs/FAITHFULNESS.md)
UNMATCHED_COMBINATIONS = {
    ("supcon", "ref_cutpaste_scar"): (
        "SupCon with ref_cutpaste_scar matches no commit the reference ran: ref_cutpaste_scar follows the MVTec "
        "generator of data.py @cb7556ea (scar colour jitter 0.4), while the commit whose models.py trained SupCon on "
        "binary labels (@2558887f) generated its scars with jitter 0.1 and resized with a bicubic filter"),
}


def unmatched_combinations(rows: pd.DataFrame) -> list[str]:
    """What the outputs say about the (loss, outliers) pairs of some rows that no reference commit ran."""
    if "loss" not in rows or "outliers" not in rows:
        return []
    pairs = set(zip(rows["loss"].astype(str), rows["outliers"].astype(str)))
    return [f"{text}." for pair, text in UNMATCHED_COMBINATIONS.items() if pair in pairs]


def default_k() -> int:
    """The k of the k-NN scores shown in tables and figures: the run schema's ``eval.k`` (the learning-curve k)."""
    from firm_bench.core.config import schema_defaults

    return int(schema_defaults()["eval"]["k"])


#: how a recipe reads where no run has recorded one (a table or figure with nothing run yet)
NO_RUNS = "no runs yet"
#: how a label no run recorded reads (never "None")
NOT_RECORDED = "not recorded"


#: the recipe labels that are counts or sizes: a summary read back from CSV may hold them as floats (64.0)
INTEGER_LABELS = ("batch_size", "epochs", "image_size", "eval_size")


def label_text(value: object) -> str:
    """A count or size label as a reader sees it: a whole number read back from a CSV as a float prints as an
    integer (``64.0`` -> ``64``); anything else as it is."""
    try:
        number = float(str(value))
    except ValueError:
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def recipe_of(rows: pd.DataFrame) -> dict:
    """The recipe labels (``RECIPE_LABELS``) of some summary rows, '/'-joined where they differ; None where absent.

    Counts and sizes (:data:`INTEGER_LABELS`) print as integers (:func:`label_text`)."""
    out = {}
    for col in RECIPE_LABELS:
        text = label_text if col in INTEGER_LABELS else str
        vals = sorted({text(v) for v in rows[col].dropna()}) if col in rows else []
        out[col] = "/".join(vals) if vals else None
    return out


def recorded_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that ran: with a recipe and any recipe label recorded (a pending or not-run summary row
    records none). Rows without label columns at all (learning curves) ran where they exist."""
    if "recipe" not in rows:
        return rows.iloc[0:0]
    rows = rows.dropna(subset=["recipe"])
    labels = [c for c in RECIPE_LABELS if c in rows]
    return rows[rows[labels].notna().any(axis=1)] if labels else rows


def _truthy(value: object) -> bool:
    """A bool label as written by pandas (True, "True", 1) or read back from a CSV."""
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def loss_form_label(rows: pd.DataFrame, compact: bool = False) -> str:
    """The form each loss of some summary (or cell) rows trained in, against the reference's.

    Reads the ``loss_form`` label (``records.metrics.recipe_labels``) per loss and
    compares it with the form the FIRM reference code ran that loss in
    (``core.facts.method.resolve_form``). E.g. ``loss forms: NT-Xent pairwise (N×N), SupCon
    concat (2N×2N) — as the reference ran them``, or ``loss forms: all pairwise
    (N×N) — override; the reference ran SupCon in concat (2N×2N)``. A loss
    no row records a form for (no run of it ran) is left out.
    ``compact``: shorter, for figure footers.
    """
    from firm_bench.core.facts import method

    def reference(loss: str) -> str | None:
        try:
            return method.resolve_form(loss)
        except (KeyError, ValueError):
            return None

    # a row whose "loss" is no registered loss trained no loss (the untrained-encoder baseline): no form
    losses = {str(v) for v in rows["loss"].dropna()} if "loss" in rows else set()
    losses = {n for n in losses if reference(n) is not None}
    if not losses:
        return "loss forms: unknown"
    rank = {n: i for i, n in enumerate(method.LOSSES)}
    losses = sorted(losses, key=lambda n: (rank.get(n, len(rank)), n))
    name = lambda n: rep.LOSS_DISPLAY.get(n, n)  # noqa: E731
    text = (lambda f: f) if compact else (lambda f: FORM_LABELS.get(f, f))

    forms = {}
    for loss in losses:
        vals = rows.loc[rows["loss"] == loss, "loss_form"].dropna() if "loss_form" in rows else []
        forms[loss] = sorted({f for v in vals for f in str(v).split("/")})
    losses = [n for n in losses if forms[n]]
    if not losses:
        return "loss forms: unknown"
    deviating = [n for n in losses if any(f != reference(n) for f in forms[n])]
    parts = ", ".join(f"{name(n)} {'/'.join(text(f) for f in forms[n])}" for n in losses)
    one = {f for n in losses for f in forms[n]}
    if deviating and len(losses) > 1 and len(one) == 1:
        parts = f"all {text(one.pop())}"
    notes = []
    if deviating:
        refs = sorted({str(reference(n)) for n in deviating})
        notes.append(f"override; the reference ran {'/'.join(map(name, deviating))} in {'/'.join(map(text, refs))}")
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
    rows = recorded_rows(rows)
    if rows.empty:
        return NO_RUNS

    def checkpoint(values: str | None) -> str:
        return "; ".join(CHECKPOINT_LABELS.get(c, c) for c in (values or "unknown").split("/"))

    def id_labels(g: pd.DataFrame) -> str:
        used = "id_labels" in g and any(_truthy(v) for v in g["id_labels"].dropna())
        return ", in-distribution class labels used (multi-class FIRM; our addition)" if used else ""

    def selection(rec: dict) -> str:
        score = rec.get("select_score")
        return f" by {score} (k = eval.k)" if score != NOT_RECORDED and "best_test" in str(rec["checkpoint"]) else ""

    def momentum(rec: dict) -> str:  # the SGD momentum that ran (records.metrics.recipe_labels)
        return f" (momentum {rec['momentum']})" if rec.get("momentum") not in (None, NOT_RECORDED) else ""

    def labels_of(g: pd.DataFrame) -> dict:  # a label no run recorded reads "not recorded", never "None"
        return {k: NOT_RECORDED if v is None else v for k, v in recipe_of(g).items()}

    if compact:
        rec = labels_of(rows)
        return (f"recipe {'/'.join(sorted(rows['recipe'].unique()))}; schedule {rec['schedule']}; "
                f"checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}; BN momentum {rec['bn_momentum']}; "
                f"{loss_form_label(rows, compact=True)}{id_labels(rows)}; {protocol_label(rec, compact=True)}")
    return " | ".join(
        f"{recipe}: schedule {rec['schedule']}{momentum(rec)}, checkpoint {checkpoint(rec['checkpoint'])}{selection(rec)}, BN momentum "
        f"{rec['bn_momentum']}, tau {rec['tau']}, batch size {rec['batch_size']}, {rec['epochs']} epochs"
        f"{id_labels(g)}; {loss_form_label(g)}; {protocol_label(rec)}"
        for recipe, g, rec in ((r, g, labels_of(g)) for r, g in rows.groupby("recipe", sort=True)))


def protocol_label(rec: dict, compact: bool = False) -> str:
    """Precision, normalisation, head init, evaluation size / zoom and batching of a recipe ('/'-joined values).

    A value that differs from the reference code's (:data:`REFERENCE_PROTOCOL`) says so; the
    evaluation size and zoom and the batching are the dataset's protocol unless a run set them.
    """
    def field(key: str, text: str) -> str:
        value = rec.get(key)
        if value in (None, NOT_RECORDED):
            return f"{text} {NOT_RECORDED}"
        ref = REFERENCE_PROTOCOL.get(key)
        differs = ref is not None and any(v != ref for v in str(value).split("/"))
        return f"{text} {value}" + (f" (the reference: {ref})" if differs and not compact else "")

    parts = [field("precision", "precision"), field("normalization", "normalisation")]
    if not compact:
        parts.append(field("head_init", "head init"))
    known = lambda key: rec.get(key) not in (None, NOT_RECORDED)  # noqa: E731
    shown = lambda key: rec[key] if known(key) else NOT_RECORDED  # noqa: E731
    if known("eval_size") or known("eval_zoom"):
        parts.append(f"evaluated at {shown('eval_size')} px, zoom {shown('eval_zoom')}"
                     + ("" if compact or not known("image_size") else f" (training at {rec['image_size']} px)"))
    if known("batching") and not compact:
        batching = rec["batching"]
        parts.append(f"{batching} batches")
    return ", ".join(parts)


def class_name(dataset: str | None, cls: object) -> str:
    """The declared name of class ``cls`` of ``dataset``: CIFAR-10 "2" -> "bird", MVTec "screw" -> "screw".

    A run names a class by its index or by its name (the dataset's
    ``class_ids``); figures and table headers show the name (the CSV keeps what the run named). A class the facts do
    not know (an unknown dataset, ``all`` of the multiclass protocol) is shown
    as it is.
    """
    from firm_bench.core.facts.datasets import DATASETS

    text = str(cls)
    if dataset not in DATASETS:
        return text
    try:
        entry = DATASETS[dataset]
        return entry.classes[entry.class_index(text)]
    except ValueError:
        return text
