"""The facts of the method's registered names, declared once as data (no torch).

``firm_bench.method`` registers the code under these names (each registry
refuses a name that has no record here); config validation, planning and the
tables read the records directly. One table per registry: :data:`LOSSES`,
:data:`OUTLIERS`, :data:`SCORES`, :data:`SCHEDULES`, :data:`ENCODERS`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from firm_bench.core.errors import UnknownNameError

Form = Literal["pairwise", "concat"]
FORMS: tuple[str, ...] = ("pairwise", "concat")
#: values of the run config's ``loss.form``: each loss's reference form, or one form for all
FORM_SETTINGS: tuple[str, ...] = ("reference", *FORMS)


class LossFacts(NamedTuple):
    """``reference_form``: the form the FIRM reference code trained the loss in (Willtl/firm ``losses.py``
    @b26a3ce8; docs/METHOD.md "Losses"), the run config's ``loss.form: reference``; None = none.
    ``id_classes``: it takes (N, 2) labels [kind, id_class] (several ID classes; ``loss.id_labels``)."""

    reference_form: Form | None
    id_classes: bool = False


LOSSES: dict[str, LossFacts] = {
    "ntxent": LossFacts("pairwise"),  # NTXentLoss: cross-entropy over f1 @ f2.T, the diagonal as target
    "supcon": LossFacts("concat"),  # SupCon (SupContrast L_out, contrast_mode='all'), binary labels
    "supcon_star": LossFacts("concat"),  # the same SupCon class, with the rotation labels
    "firm": LossFacts("pairwise", id_classes=True),  # FIRMLoss: f1 @ f2.T, the form the paper ran
}


class OutlierFacts(NamedTuple):
    """``copies``: outliers per ID image ("oe_ratio": the config's ``outliers.oe_ratio``); ``paired``: outlier
    t N + j is made from ID image j; ``differences``: where it knowingly differs from the reference code it
    follows (stated in every table that uses it)."""

    copies: int | str
    paired: bool = True
    differences: tuple[str, ...] = ()

    def multiplicity(self, outliers_cfg: dict) -> int:
        """Training images per ID image (the ID image plus its outliers) under the config's ``outliers`` section."""
        return 1 + int(outliers_cfg["oe_ratio"] if self.copies == "oe_ratio" else self.copies)


_JITTER = "colour jitter uses torchvision's tensor formulas in float, rounded once (reference: PIL on uint8)"
OUTLIERS: dict[str, OutlierFacts] = {
    "none": OutlierFacts(0, paired=False),
    "rot": OutlierFacts(3),
    "oe": OutlierFacts("oe_ratio", paired=False),
    "oe_rot": OutlierFacts("oe_ratio", paired=False),
    "cutpaste": OutlierFacts(1),
    "scar": OutlierFacts(1),
    "cutpaste_scar": OutlierFacts(2),
    "nsa": OutlierFacts(1),
    "ref_cutpaste_scar": OutlierFacts(2, differences=(
        f"scar {_JITTER}",
        "scar sizes scaled by S/256 (rounded, >= 1 px) at image sizes other than 256 (reference: 256 px only)",
    )),
    "ref_nsa": OutlierFacts(1, differences=(
        "Poisson solve: exact float64 DST solve of the system cv2.seamlessClone(NORMAL_CLONE) sets up "
        "(its ROI placement and 3-px mask erosion reproduced), not OpenCV's float32 solver (within 1 grey level)",
        "patch resize: torch bilinear (half-pixel centres), rounded, not cv2.resize INTER_LINEAR fixed point "
        "(within 1 grey level)",
        _JITTER,
        "at image sizes other than 256 the 50-px minimum mask area scales by (S/256)^2 and cv2's 3-px mask "
        "erosion by S/256, rounded (reference: 256 px only)",
    )),
}

#: score name -> family (knn, center, kde, ocsvm, locsvm); one workflow job per family. The k-NN cosine
#: scores the paper names cos / rot / ens (+ _norm); every other family in the single, rot and ens views.
SCORES: dict[str, str] = {
    **{f"{view}{norm}": "knn" for view in ("cos", "rot", "ens") for norm in ("", "_norm")},
    "center": "center",
    **{f"{family}{view}": family for family in ("kde", "ocsvm", "locsvm") for view in ("", "_rot", "_ens")},
}

#: schedule -> what it does with the SGD momentum: ``cycle`` (it sets every step's momentum from
#: ``optim.momentum_cycle``) or ``constant`` (``optim.momentum`` is held through training)
SCHEDULES: dict[str, str] = {"onecycle": "cycle", "warmup_cosine": "constant"}

#: the registered encoders (``model.encoder``; ``timm/<name>`` besides, not a registry entry)
ENCODERS: dict[str, None] = {"resnet18_cifar": None, "resnet18_imagenet": None}


def lookup(table: dict, kind: str, name: str):  # noqa: ANN201 (the table's record type)
    """``table[name]``; UnknownNameError naming ``kind`` and listing the valid names."""
    if name not in table:
        raise UnknownNameError(f"unknown {kind} {name!r}; valid: {', '.join(table)}")
    return table[name]


def resolve_form(name: str, setting: str = "reference") -> Form:
    """The form (``pairwise`` | ``concat``) loss ``name`` trains in under ``loss.form = setting``.

    ``reference``: the form the FIRM reference code ran it in (its
    ``reference_form``); ``pairwise`` / ``concat``: that form. Raises
    ValueError for another setting or a loss without a reference form,
    UnknownNameError for an unknown loss.
    """
    facts = lookup(LOSSES, "loss", name)
    if setting in FORMS:
        return setting  # type: ignore[return-value]
    if setting != "reference":
        raise ValueError(f"unknown loss form {setting!r}; valid: {', '.join(FORM_SETTINGS)}")
    if facts.reference_form is None:
        raise ValueError(f"loss {name!r} has no reference form in firm_bench/core/facts/method.py; "
                         f"set loss.form to one of {', '.join(FORMS)}")
    return facts.reference_form


def uses_k(score: str) -> bool:
    """Whether score ``score`` takes a k (the k-NN family): the one rule for which scores get ``_k<k>``."""
    return lookup(SCORES, "score", score) == "knn"


def score_family(score: str) -> str:
    """The family (knn, center, kde, ocsvm, locsvm) of score ``score``; UnknownNameError lists the valid ones."""
    return lookup(SCORES, "score", score)
