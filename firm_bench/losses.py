"""Contrastive losses: NT-Xent, SupCon, SupCon* and FIRM as one masked loss.

All four losses are the same masked multi-positive contrastive loss; only the
positive mask differs (METHOD.md "Losses"; paper Eq. 2). For anchor i with
positive set P(i) and key set K(i)::

    l_i  = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / tau) / sum_{k in K(i)} exp(s_ik / tau) )
    loss = mean_i l_i

where s_ik is the cosine similarity of two L2-normalised projections.

Two forms build the similarities from the two views z1, z2 (N, d) of a batch:

- ``pairwise`` (the form the paper ran): logits = z1 @ z2.T / tau, (N, N).
  The anchors are the N rows of view 1, the keys all N rows of view 2
  (positives stay in the denominator). Not symmetrised.
- ``concat`` (SimCLR / SupCon style): Z = [z1; z2], logits = Z @ Z.T / tau,
  (2N, 2N). Row r < N is view 1 of sample r, row r >= N is view 2 of sample
  r - N. Every row is an anchor; its own row is excluded from both the
  numerator and the denominator.

Labels are int64 (N,): 0 = in-distribution (ID), k >= 1 = synthetic outlier of
kind k (rot90/180/270 -> 1/2/3). Each registered mask builder maps
``(labels, form)`` to a bool mask M with M[a, p] = True iff key p is a positive
of anchor a. A builder only defines a relation R (N, N) between samples; the
concat mask is R lifted to both views (``R.repeat(2, 2)``) with self removed.

Deliberate difference from SupContrast (HobbitLong/SupContrast ``losses.py``):
there is no ``temperature / base_temperature`` factor. It rescales SupCon's
gradients (by ~2.9 at tau = 0.2 with base 0.07) and the FIRM reference code
drops it, so keeping it would make the loss comparison unfair (METHOD.md).

References:
  [0] FIRM, arXiv 2501.05130, Eq. 2 (formula recovered from Willtl/firm).
  [1] SimCLR (NT-Xent): Chen et al., 2020, arXiv 2002.05709.
  [2] SupCon (L_out): Khosla et al., 2020, arXiv 2004.11362.

Example::

    >>> import torch
    >>> z1 = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    >>> z2 = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    >>> labels = torch.tensor([0, 1, 2, 3, 0, 0, 2, 1])
    >>> loss = get_loss("firm", tau=0.2)(z1, z2, labels)  # scalar tensor
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Literal, get_args

import torch
from torch import Tensor, nn

from firm_bench.registry import Registry

__all__ = [
    "FORMS",
    "LOSSES",
    "ContrastiveLoss",
    "Form",
    "MaskFn",
    "get_loss",
    "list_losses",
    "masked_multi_positive_loss",
]

Form = Literal["pairwise", "concat"]
FORMS: tuple[str, ...] = get_args(Form)  # ("pairwise", "concat")

MaskFn = Callable[[Tensor, Form], Tensor]
LOSSES: Registry[MaskFn] = Registry("loss")


# --------------------------------------------------------------------------- #
# input checks
# --------------------------------------------------------------------------- #
def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown loss form {form!r}; valid: {', '.join(FORMS)}")


def _check_labels(labels: Tensor) -> None:
    if not isinstance(labels, Tensor):
        raise ValueError(
            f"labels must be a torch.Tensor of shape (N,), got {type(labels).__name__}"
        )
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (N,), got {tuple(labels.shape)}")
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


def _check_label_values(labels: Tensor) -> None:
    # A separate check because it reads the values (a device sync on CUDA).
    if labels.numel() and bool((labels < 0).any()):
        raise ValueError(
            "labels must be >= 0 (0 = ID, k >= 1 = outlier of kind k); got a negative "
            "label. The reference code's -1 for outliers must be mapped to k >= 1."
        )


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


@LOSSES.register("ntxent")
def ntxent_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """NT-Xent / SimCLR [1] positives: P(i) = {i}, the other view of sample i.

    labels: (N,) int (ignored apart from N and device).
    Returns bool (N, N) = eye for ``pairwise``; bool (2N, 2N) for ``concat``,
    where anchor a's only positive is the other view (a + N) mod 2N.
    """
    _check_labels(labels)
    n = labels.shape[0]
    return _to_form(torch.eye(n, dtype=torch.bool, device=labels.device), form)


@LOSSES.register("supcon")
def supcon_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """SupCon L_out [2] with binary labels: P(i) = {p : [y_p >= 1] == [y_i >= 1]}.

    Every sample with the same binary label (ID vs any outlier), both views;
    the anchor's own pair is included in ``pairwise`` (diagonal set), its own
    row excluded in ``concat``.
    labels: (N,) int. Returns bool (N, N) or (2N, 2N).
    """
    _check_labels(labels)
    is_outlier = labels > 0
    return _to_form(is_outlier[:, None] == is_outlier[None, :], form)


@LOSSES.register("supcon_star")
def supcon_star_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """SupCon* (multiclass SupCon [2]): P(i) = {p : y_p == y_i}.

    Every sample of the same class (ID, rot90, rot180, rot270, ...), both
    views; own pair included in ``pairwise``, own row excluded in ``concat``.
    labels: (N,) int. Returns bool (N, N) or (2N, 2N).
    """
    _check_labels(labels)
    return _to_form(labels[:, None] == labels[None, :], form)


@LOSSES.register("firm")
def firm_mask(labels: Tensor, form: Form = "pairwise") -> Tensor:
    """FIRM positives (paper Eq. 2; METHOD.md "Losses").

    P(i) = {p : y_p = 0} if y_i = 0 (every ID sample, its own pair included),
    P(i) = {i}           if y_i >= 1 (an outlier only attracts its other view).
    pairwise: M = outer(isID, isID) + eye * isOutlier, bool (N, N).
    concat:   ID anchors -> every other ID row (both views, self excluded);
              outlier anchors -> the other view only; bool (2N, 2N).
    labels: (N,) int.
    """
    _check_labels(labels)
    is_id = labels == 0
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    relation = (is_id[:, None] & is_id[None, :]) | (eye & ~is_id[:, None])
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
    tau:  temperature > 0. form: "pairwise" (paper) or "concat" (see module doc).

    forward(z1, z2, labels):
      z1, z2: (N, d) float, L2-normalised projections of the two views (same
              dtype and device); labels: (N,) int, 0 = ID, k >= 1 = outlier.
      pairwise: masked_multi_positive_loss(z1 @ z2.T / tau, M (N, N))
      concat:   masked_multi_positive_loss(Z @ Z.T / tau, M (2N, 2N),
                valid = not self), Z = [z1; z2].
    The mask is built on z1.device. Raises ValueError on bad inputs.

    check_values: also check the values of the labels (>= 0) and of the mask
    each call. These reads synchronise host and device every step on a GPU;
    the registered masks cannot fail them (pairwise keeps the diagonal, concat
    the other view; both exclude no positive), so the training loop's fast path
    (``speed.fast_loss``) turns them off and checks its labels once per epoch.
    The loss value is the same either way.
    """

    def __init__(self, name: str, tau: float, form: Form = "pairwise", check_values: bool = True) -> None:
        super().__init__()
        self.mask_fn = LOSSES.get(name)  # UnknownNameError lists valid names
        _check_form(form)
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
            raise ValueError(f"tau must be a positive float, got {tau!r}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite float > 0, got {tau!r}")
        self.name = name
        self.tau = float(tau)
        self.form = form
        self.check_values = bool(check_values)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, tau={self.tau}, form={self.form!r}"

    def forward(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        _check_views(z1, z2)
        _check_labels(labels)
        if labels.shape[0] != z1.shape[0]:
            raise ValueError(
                f"labels must have shape ({z1.shape[0]},) to match z1 {tuple(z1.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        if labels.device != z1.device:
            raise ValueError(
                f"labels are on device {labels.device} but z1 is on device {z1.device}; "
                f"move labels to z1.device"
            )
        if self.check_values:
            _check_label_values(labels)

        pos_mask = self.mask_fn(labels, self.form)
        if self.form == "pairwise":
            return masked_multi_positive_loss(z1 @ z2.T / self.tau, pos_mask, check_values=self.check_values)
        z = torch.cat([z1, z2], dim=0)
        not_self = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
        return masked_multi_positive_loss(z @ z.T / self.tau, pos_mask, not_self, check_values=self.check_values)


def get_loss(name: str, tau: float = 0.2, form: Form = "pairwise", check_values: bool = True) -> ContrastiveLoss:
    """The loss ``name`` (one of ``list_losses()``) at temperature ``tau``.

    tau = 0.2 is the paper's anomaly-detection value (METHOD.md) and must equal
    the schema default (a test checks it). form: "pairwise" (as the paper ran
    it) or "concat". Raises UnknownNameError for an unknown name (listing the
    valid ones) and ValueError for a bad form or tau. ``check_values=False``:
    see ``ContrastiveLoss`` (same value, no per-call reads of device values).
    """
    return ContrastiveLoss(name, tau=tau, form=form, check_values=check_values)
