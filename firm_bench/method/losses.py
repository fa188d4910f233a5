"""Contrastive losses: NT-Xent, SupCon, SupCon* and FIRM as one masked loss.

All four losses are the same masked multi-positive contrastive loss; only the
positive mask differs (docs/METHOD.md "Losses"; paper Eq. 2). For anchor i with
positive set P(i) and key set K(i)::

    l_i  = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / tau) / sum_{k in K(i)} exp(s_ik / tau) )
    loss = mean_i l_i

where s_ik is the cosine similarity of two L2-normalised projections.

Two forms build the similarities from the two views z1, z2 (N, d) of a batch:

- ``pairwise``: logits = z1 @ z2.T / tau, (N, N). The anchors are the N rows
  of view 1, the keys all N rows of view 2 (positives stay in the
  denominator). Not symmetrised.
- ``concat`` (SimCLR / SupCon style): Z = [z1; z2], logits = Z @ Z.T / tau,
  (2N, 2N). Row r < N is view 1 of sample r, row r >= N is view 2 of sample
  r - N. Every row is an anchor; its own row is excluded from both the
  numerator and the denominator.

Each loss trains by default in the form the FIRM reference code ran it
(its ``reference_form`` in ``core/facts/method.py``; Willtl/firm ``losses.py`` @b26a3ce8): NT-Xent
(``NTXentLoss``: cross-entropy over f1 @ f2.T with the diagonal as target) and
FIRM (``FIRMLoss``) pairwise; SupCon and SupCon* with SupContrast's L_out
(``SupCon``, contrast_mode='all': both views stacked, self excluded), i.e.
concat. The run config's ``loss.form`` is ``reference`` (that table) or
``pairwise`` / ``concat`` (one form forced on every loss, a labelled variant);
:func:`resolve_form` turns the setting into the form.

Labels (one row per sample), int64:

- (N,): the outlier kind: 0 = in-distribution (ID), k >= 1 = synthetic
  outlier of kind k (rot90/180/270 -> 1/2/3). One ID class.
- (N, 2): columns [kind, id_class]; id_class is the in-distribution class of
  an ID sample (>= 0), ignored for outliers (the trainer writes -1). Several
  ID classes: FIRM's option only (its facts' ``id_classes``; run config
  ``loss.id_labels``), as the reference's current ``firm/loss.py``
  (@d39fde8c) takes class labels plus an ``outlier_label``. An ID anchor's
  positives are then the ID samples of its own class, an outlier's only its
  paired view. With one ID class it is the (N,) case exactly.

Each registered mask builder maps ``(kinds, form)`` (FIRM also
``id_class=``) to a bool mask M with M[a, p] = True iff key p is a positive of
anchor a. A builder only defines a relation R (N, N) between samples; the
concat mask is R lifted to both views (``R.repeat(2, 2)``) with self removed.

Deliberate difference from SupContrast (HobbitLong/SupContrast ``losses.py``):
there is no ``temperature / base_temperature`` factor. It rescales SupCon's
gradients (by ~2.9 at tau = 0.2 with base 0.07) and the FIRM reference code
drops it, so keeping it would make the loss comparison unfair (docs/METHOD.md).

References:
  [0] FIRM, arXiv 2501.05130, Eq. 2 (formula recovered from Willtl/firm).
  [1] SimCLR (NT-Xent): Chen et al., 2020, arXiv 2002.05709.
  [2] SupCon (L_out): Khosla et al., 2020, arXiv 2004.11362.

Example::

    >>> import torch
    >>> z1 = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    >>> z2 = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    >>> labels = torch.tensor([0, 1, 2, 3, 0, 0, 2, 1])
    >>> loss = get_loss("firm", tau=0.2)(z1, z2, labels)  # scalar tensor, pairwise (reference form)
    >>> classes = torch.tensor([[0, 3], [1, -1], [2, -1], [3, -1], [0, 3], [0, 5], [2, -1], [1, -1]])
    >>> loss = get_loss("firm")(z1, z2, classes)  # two ID classes (3 and 5)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from firm_bench.core.facts.method import FORM_SETTINGS, FORMS, LOSSES as FACTS, Form, resolve_form
from firm_bench.core.registry import Registry

__all__ = [
    "FORMS",
    "FORM_SETTINGS",
    "LOSSES",
    "ContrastiveLoss",
    "Form",
    "MaskFn",
    "build_loss",
    "check_label_values",
    "get_loss",
    "id_class_labels",
    "list_losses",
    "masked_multi_positive_loss",
    "resolve_form",
]

#: ``builder(kinds (N,), form) -> bool mask``; builders of losses with ``id_classes`` also take ``id_class=`` (N,)
MaskFn = Callable[..., Tensor]
LOSSES: Registry[MaskFn] = Registry("loss", facts=FACTS)


# --------------------------------------------------------------------------- #
# input checks
# --------------------------------------------------------------------------- #
def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown loss form {form!r}; valid: {', '.join(FORMS)}")


def _check_labels(labels: Tensor) -> None:
    if not isinstance(labels, Tensor):
        raise ValueError(
            f"labels must be a torch.Tensor of shape (N,) or (N, 2), got {type(labels).__name__}"
        )
    if labels.dim() not in (1, 2) or (labels.dim() == 2 and labels.shape[1] != 2):
        raise ValueError(
            f"labels must have shape (N,) (outlier kind) or (N, 2) ([kind, id_class]), "
            f"got {tuple(labels.shape)}"
        )
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be an integer tensor (int64: 0 = ID, k >= 1 = outlier kind k), "
            f"got dtype {labels.dtype}"
        )


def _check_views(z1: Tensor, z2: Tensor) -> None:
    for nm, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, Tensor):
            raise ValueError(f"{nm} must be a torch.Tensor of shape (N, d), got {type(z).__name__}")
        if z.dim() != 2:
            raise ValueError(f"{nm} must have shape (N, d), got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{nm} must be a floating-point tensor, got dtype {z.dtype}")
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape (N, d), "
            f"got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] == 0:
        raise ValueError("the batch is empty (N = 0)")
    if z1.dtype != z2.dtype:
        raise ValueError(f"z1 and z2 must have the same dtype, got {z1.dtype} and {z2.dtype}")
    if z1.device != z2.device:
        raise ValueError(f"z1 and z2 must be on the same device, got {z1.device} and {z2.device}")


def check_label_values(labels: Tensor) -> None:
    """The values of (N,) or (N, 2) labels: kinds >= 0; with classes, id_class >= 0 for every ID row.

    A separate check because it reads the values (a device sync on CUDA): the
    loss runs it per call unless ``check_values=False``, the training loop's
    fast path once per training set. Raises ValueError.
    """
    _check_labels(labels)
    kinds = labels if labels.dim() == 1 else labels[:, 0]
    if labels.numel() and bool((kinds < 0).any()):
        raise ValueError(
            "labels must be >= 0 (0 = ID, k >= 1 = outlier of kind k); got a negative "
            "label. The reference code's -1 for outliers must be mapped to k >= 1."
        )
    if labels.dim() == 2 and labels.numel() and bool(((kinds == 0) & (labels[:, 1] < 0)).any()):
        raise ValueError(
            "labels (N, 2) = [kind, id_class]: every in-distribution row (kind 0) needs an "
            "id_class >= 0; got a negative id_class on an ID row"
        )


def id_class_labels(kinds: Tensor, id_classes: Tensor) -> Tensor:
    """The (M, 2) labels [kind, id_class] of a training set whose first N rows are its ID images.

    kinds: int64 (M,), an outlier source's labels (the N ID images first, kind 0;
    ``outliers.OutlierSource.epoch``). id_classes: int64 (N,), the ID images'
    classes. Returns int64 (M, 2) on ``kinds.device``: column 0 = kinds, column 1
    = id_classes for rows < N and -1 for the outliers. Raises ValueError when
    fewer than N rows are given or a row < N is not kind 0 (reads the values).
    """
    n = int(id_classes.shape[0])
    if kinds.dim() != 1 or id_classes.dim() != 1 or kinds.shape[0] < n:
        raise ValueError(
            f"id_class_labels: kinds (M,) must cover the N = {n} ID images first; "
            f"got kinds {tuple(kinds.shape)} and id_classes {tuple(id_classes.shape)}"
        )
    if n and bool((kinds[:n] != 0).any()):
        raise ValueError("id_class_labels: the first N rows of the training set must be its ID images (kind 0)")
    classes = torch.full_like(kinds, -1)
    classes[:n] = id_classes.to(device=kinds.device, dtype=kinds.dtype)
    return torch.stack([kinds, classes], dim=1)


# --------------------------------------------------------------------------- #
# masks: each builder defines the positive relation R between samples
# --------------------------------------------------------------------------- #
def _to_form(relation: Tensor, form: Form) -> Tensor:
    """Turn a sample relation R (N, N) into the positive mask of ``form``.

    pairwise: M = R, (N, N), rows = view-1 anchors, columns = view-2 keys.
    concat:   M = [[R, R], [R, R]] with the diagonal cleared, (2N, 2N): anchor
              a (sample a mod N) has as positives both views of every sample in
              R[a mod N], except its own row a.
    """
    _check_form(form)
    if form == "pairwise":
        return relation
    n2 = 2 * relation.shape[0]
    not_self = ~torch.eye(n2, dtype=torch.bool, device=relation.device)
    return relation.repeat(2, 2) & not_self


def _check_kinds(kinds: Tensor) -> None:
    _check_labels(kinds)
    if kinds.dim() != 1:
        raise ValueError(f"a mask builder takes the outlier kinds (N,), got shape {tuple(kinds.shape)}")


@LOSSES.register("ntxent")
def ntxent_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """NT-Xent / SimCLR [1] positives: P(i) = {i}, the other view of sample i.

    labels: (N,) int (ignored apart from N and device).
    Returns bool (N, N) = eye for ``pairwise``; bool (2N, 2N) for ``concat``,
    where anchor a's only positive is the other view (a + N) mod 2N.
    """
    _check_kinds(labels)
    n = labels.shape[0]
    return _to_form(torch.eye(n, dtype=torch.bool, device=labels.device), form)


@LOSSES.register("supcon")
def supcon_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """SupCon L_out [2] with binary labels: P(i) = {p : [y_p >= 1] == [y_i >= 1]}.

    Every sample with the same binary label (ID vs any outlier), both views;
    the anchor's own pair is included in ``pairwise`` (diagonal set), its own
    row excluded in ``concat`` (SupContrast's L_out, the reference's form).
    labels: (N,) int. Returns bool (N, N) or (2N, 2N).
    """
    _check_kinds(labels)
    is_outlier = labels > 0
    return _to_form(is_outlier[:, None] == is_outlier[None, :], form)


@LOSSES.register("supcon_star")
def supcon_star_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """SupCon* (multiclass SupCon [2]): P(i) = {p : y_p == y_i}.

    Every sample of the same class (ID, rot90, rot180, rot270, ...), both
    views; own pair included in ``pairwise``, own row excluded in ``concat``
    (the reference's form).
    labels: (N,) int. Returns bool (N, N) or (2N, 2N).
    """
    _check_kinds(labels)
    return _to_form(labels[:, None] == labels[None, :], form)


@LOSSES.register("firm")
def firm_mask(labels: Tensor, form: Form = "pairwise", id_class: Tensor | None = None) -> Tensor:
    """FIRM positives (paper Eq. 2; docs/METHOD.md "Losses"; Willtl/firm ``firm/loss.py``).

    labels: (N,) int outlier kinds; id_class: (N,) int in-distribution class of
    each ID sample (ignored for outliers), or None = one ID class.

    P(i) = {p : y_p = 0, c_p = c_i} if y_i = 0 (the ID samples of its class, its own pair included),
    P(i) = {i}                      if y_i >= 1 (an outlier only attracts its other view).
    pairwise: M = (isID isID^T & sameClass) + eye * isOutlier, bool (N, N).
    concat:   ID anchors -> every other row of an ID sample of their class (both
              views, self excluded); outlier anchors -> the other view only;
              bool (2N, 2N).
    """
    _check_kinds(labels)
    is_id = labels == 0
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    together = is_id[:, None] & is_id[None, :]
    if id_class is not None:
        _check_kinds(id_class)
        if id_class.shape != labels.shape:
            raise ValueError(f"id_class must have the labels' shape {tuple(labels.shape)}, got {tuple(id_class.shape)}")
        together = together & (id_class[:, None] == id_class[None, :])
    relation = together | (eye & ~is_id[:, None])
    return _to_form(relation, form)


def list_losses() -> list[str]:
    """Registered loss names, in registration order."""
    return LOSSES.names()


# --------------------------------------------------------------------------- #
# the one loss
# --------------------------------------------------------------------------- #
def masked_multi_positive_loss(
    logits: Tensor, pos_mask: Tensor, valid: Tensor | None = None, check_values: bool = True
) -> Tensor:
    """Mean over anchors of the multi-positive contrastive loss.

    logits:   (A, K) float, logits[a, k] = s_ak / tau.
    pos_mask: (A, K) bool (or 0/1), pos_mask[a, p] = True iff p in P(a).
    valid:    (A, K) bool or None (= all True); keys with valid[a, k] = False
              are left out of anchor a's denominator (the concat form's
              self-similarity). Positives must be valid.

    loss = mean_a  -1/|P(a)| sum_{p in P(a)} log_softmax_{k : valid[a, k]}(logits[a])[p]

    The (detached) row maximum over valid keys is subtracted before the
    exponential, and invalid keys are set to -inf *before* it, so a large
    masked self-similarity (1 / tau) can neither overflow nor produce NaN.
    Returns a scalar tensor.

    Raises ValueError on mismatched shapes, a non-binary mask, a positive on
    an invalid key, or an anchor with no positive. The last three read the
    masks' values (a host-device synchronisation per call on a GPU);
    ``check_values=False`` skips them, for masks that satisfy them by
    construction (every registered mask does: see ``ContrastiveLoss``). The
    shape checks always run; the result is the same either way.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (anchors, keys), got shape {tuple(logits.shape)}")
    if pos_mask.shape != logits.shape:
        raise ValueError(
            f"pos_mask must have the logits' shape {tuple(logits.shape)}, "
            f"got {tuple(pos_mask.shape)}"
        )
    if pos_mask.dtype != torch.bool:
        if check_values and bool(((pos_mask != 0) & (pos_mask != 1)).any()):
            raise ValueError("pos_mask must be bool or contain only 0 and 1")
        pos_mask = pos_mask != 0
    if valid is not None and valid.shape != logits.shape:
        raise ValueError(
            f"valid must have the logits' shape {tuple(logits.shape)}, "
            f"got {tuple(valid.shape)}"
        )
    if valid is not None:
        valid = valid.to(torch.bool)
    if check_values and valid is not None and bool((pos_mask & ~valid).any()):
        raise ValueError("pos_mask marks a positive on a key that valid excludes")

    n_pos = pos_mask.sum(dim=1)
    # Guard: an anchor without positives has a 0/0 term. None of the registered
    # masks can produce one (pairwise keeps the diagonal, concat keeps the other
    # view), so this only catches a hand-made mask. Tiny example: a SupCon* mask
    # over ONE view with self excluded and labels [0, 1]; each sample is alone in
    # its class, P = {}, and -(1/0) * 0 = NaN would poison the batch mean.
    if check_values and bool((n_pos == 0).any()):
        rows = torch.nonzero(n_pos == 0).flatten().tolist()
        raise ValueError(f"anchors {rows} have no positive; every row of pos_mask needs one")

    # valid None = every key valid: masked_fill with an all-False mask would be a copy
    masked = logits if valid is None else logits.masked_fill(~valid, float("-inf"))
    row_max = masked.amax(dim=1, keepdim=True).detach()
    shifted = masked - row_max  # valid entries <= 0, invalid ones -inf
    log_prob = shifted - torch.logsumexp(shifted, dim=1, keepdim=True)
    pos_log_prob = torch.where(pos_mask, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(pos_log_prob / n_pos).mean()


class ContrastiveLoss(nn.Module):
    """One of the registered losses in one form: ``loss(z1, z2, labels) -> scalar``.

    name: a name of ``LOSSES`` (ntxent, supcon, supcon_star, firm).
    tau:  temperature > 0.
    form: a ``loss.form`` setting: "reference" (the form the FIRM reference
          code ran this loss in, its facts' ``reference_form``), "pairwise" or
          "concat" (see module doc). ``self.form`` is the resolved form,
          ``self.form_setting`` the setting.

    forward(z1, z2, labels):
      z1, z2: (N, d) float, L2-normalised projections of the two views (same
              dtype and device); labels: (N,) int, 0 = ID, k >= 1 = outlier,
              or, for a loss with ``id_classes``, (N, 2) int [kind, id_class].
      pairwise: masked_multi_positive_loss(z1 @ z2.T / tau, M (N, N))
      concat:   masked_multi_positive_loss(Z @ Z.T / tau, M (2N, 2N),
                valid = not self), Z = [z1; z2].
    The mask is built on z1.device. Raises ValueError on bad inputs, among
    them (N, 2) labels for a loss that has one ID class only.

    check_values: also check the values of the labels (kinds >= 0, ID rows'
    id_class >= 0) and of the mask each call. These reads synchronise host and
    device every step on a GPU; the registered masks cannot fail them
    (pairwise keeps the diagonal, concat the other view; both exclude no
    positive), so the training loop turns
    them off and checks its labels once per epoch. The loss value is the same
    either way.
    """

    def __init__(
        self, name: str, tau: float, form: str = "reference", check_values: bool = True
    ) -> None:
        super().__init__()
        self.mask_fn = LOSSES.get(name)  # UnknownNameError lists valid names
        resolved = resolve_form(name, form)
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
            raise ValueError(f"tau must be a positive float, got {tau!r}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite float > 0, got {tau!r}")
        self.name = name
        self.tau = float(tau)
        self.form: Form = resolved
        self.form_setting = form
        self.check_values = bool(check_values)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, tau={self.tau}, form={self.form!r} (setting {self.form_setting!r})"

    def forward(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        _check_views(z1, z2)
        _check_labels(labels)
        if labels.shape[0] != z1.shape[0]:
            raise ValueError(
                f"labels must have shape ({z1.shape[0]},) or ({z1.shape[0]}, 2) to match z1 "
                f"{tuple(z1.shape)}, got {tuple(labels.shape)}"
            )
        if labels.device != z1.device:
            raise ValueError(
                f"labels are on device {labels.device} but z1 is on device {z1.device}; "
                f"move labels to z1.device"
            )
        if labels.dim() == 2 and not FACTS[self.name].id_classes:
            raise ValueError(
                f"loss {self.name!r} takes labels (N,) (0 = ID, k >= 1 = outlier kind k); labels "
                f"(N, 2) [kind, id_class] with in-distribution classes are an option of "
                f"{', '.join(n for n, f in FACTS.items() if f.id_classes)} only (run config loss.id_labels)"
            )
        if self.check_values:
            check_label_values(labels)

        if labels.dim() == 2:
            pos_mask = self.mask_fn(labels[:, 0], self.form, id_class=labels[:, 1])
        else:
            pos_mask = self.mask_fn(labels, self.form)
        if self.form == "pairwise":
            return masked_multi_positive_loss(z1 @ z2.T / self.tau, pos_mask, check_values=self.check_values)
        z = torch.cat([z1, z2], dim=0)
        not_self = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
        return masked_multi_positive_loss(z @ z.T / self.tau, pos_mask, not_self, check_values=self.check_values)


def get_loss(
    name: str, tau: float = 0.2, form: str = "reference", check_values: bool = True
) -> ContrastiveLoss:
    """The loss ``name`` (one of ``list_losses()``) at temperature ``tau``.

    tau = 0.2 is the paper's anomaly-detection value (docs/METHOD.md) and must equal
    the schema default (a test checks it), as must ``form``: "reference" = the
    form the FIRM reference code ran this loss in (NT-Xent and FIRM pairwise,
    SupCon and SupCon* concat; ``core/facts/method.py``), "pairwise" or
    "concat" = that form. Raises UnknownNameError for an unknown name (listing
    the valid ones) and ValueError for a bad form or tau. ``check_values=False``:
    see ``ContrastiveLoss`` (same value, no per-call reads of device values).
    """
    return ContrastiveLoss(name, tau=tau, form=form, check_values=check_values)


def build_loss(cfg: Mapping[str, Any], check_values: bool = True) -> ContrastiveLoss:
    """The training loss of a validated run config: its ``loss`` section.

    ``loss.name``, ``loss.tau`` and ``loss.form`` (the form, resolved when
    the config was built: ``config.setting`` gives the setting). ``loss.id_labels`` decides the labels the trainer
    feeds it ((N, 2) with ID classes), so it must name a loss with
    ``id_classes`` (ValueError otherwise; the config validation says
    so first). ``check_values``: see ``ContrastiveLoss``.
    """
    section = cfg["loss"]
    if section.get("id_labels") and not FACTS[section["name"]].id_classes:
        takes = ", ".join(n for n, f in FACTS.items() if f.id_classes)
        raise ValueError(f"loss.id_labels: true needs loss.name one of {takes}, "
                         f"got {section['name']!r}")
    return get_loss(section["name"], tau=section["tau"], form=section["form"], check_values=check_values)
