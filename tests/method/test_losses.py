"""Tests for firm_bench/method/losses.py.

The vectorised losses are checked against a slow per-anchor loop written
directly from the positive-set table of METHOD.md "Losses" (not from the mask
builders), in float64 Python arithmetic, for both forms and every registered
loss; plus hand-checkable values, identities between the losses, explicit
small masks, gradients, numerical stability and input errors.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from firm_bench.core import config
from firm_bench.core.errors import UnknownNameError
from firm_bench.method.losses import (
    FORM_SETTINGS,
    FORMS,
    LOSSES,
    ContrastiveLoss,
    build_loss,
    check_label_values,
    get_loss,
    id_class_labels,
    list_losses,
    masked_multi_positive_loss,
    resolve_form,
)

NAMES = LOSSES.names()
TAUS = [0.07, 0.2, 1.0]

LABEL_MIXES = {
    "single_id": [0],
    "single_outlier": [3],
    "all_id": [0, 0, 0, 0, 0, 0],
    "one_outlier": [0, 0, 0, 1, 0, 0],
    "one_id": [1, 2, 0, 3, 1],
    "mixed_rotations": [0, 1, 2, 3, 0, 0, 2, 1, 3, 0],
    "outliers_one_kind": [2, 2, 2, 2, 2],
    "outliers_mixed_kinds": [1, 2, 3, 1],
    "id_and_one_kind": [0, 1, 0, 1, 1, 0, 0],
    "random": torch.randint(0, 4, (12,), generator=torch.Generator().manual_seed(7)).tolist(),
}


def random_views(n: int, d: int = 8, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z1 = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    z2 = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    return z1, z2


# --------------------------------------------------------------------------- #
# slow reference, straight from the positive-set definitions
# --------------------------------------------------------------------------- #
def ref_sample_positives(name: str, y: list[int], i: int) -> list[int]:
    """P(i) over samples (METHOD.md table): which samples attract anchor i."""
    n = len(y)
    if name == "ntxent":
        return [i]
    if name == "supcon":  # same binary label: ID (0) vs outlier (>= 1)
        return [j for j in range(n) if (y[j] >= 1) == (y[i] >= 1)]
    if name == "supcon_star":  # same class
        return [j for j in range(n) if y[j] == y[i]]
    if name == "firm":  # ID: every ID sample; outlier: only itself
        return [j for j in range(n) if y[j] == 0] if y[i] == 0 else [i]
    raise NotImplementedError(f"no reference for loss {name!r}; add one to this test")


def dot(u: list[float], v: list[float]) -> float:
    return math.fsum(a * b for a, b in zip(u, v))


def logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(math.fsum(math.exp(x - m) for x in xs))


def ref_loss(name: str, z1: torch.Tensor, z2: torch.Tensor, y: list[int], tau: float, form: str):
    """-1/|A| sum_a 1/|P(a)| sum_{p in P(a)} log( e^{s_ap/tau} / sum_{k in K(a)} e^{s_ak/tau} )."""
    return ref_loss_of_sets(lambda i: ref_sample_positives(name, y, i), z1, z2, len(y), tau, form)


def ref_loss_of_sets(positives, z1: torch.Tensor, z2: torch.Tensor, n: int, tau: float, form: str):
    """The loss of ``ref_loss`` for any sample positive sets: ``positives(i)`` = P(i) over samples."""
    v1, v2 = z1.double().tolist(), z2.double().tolist()
    total = []
    if form == "pairwise":
        # anchors: view-1 rows; keys: all view-2 rows; positives: view-2 rows of P(i)
        for i in range(n):
            logits = [dot(v1[i], v2[k]) / tau for k in range(n)]
            lse = logsumexp(logits)
            pos = positives(i)
            total.append(-math.fsum(logits[p] - lse for p in pos) / len(pos))
    elif form == "concat":
        # rows 0..N-1 = view 1, N..2N-1 = view 2; anchors: every row; keys and
        # positives: every row except the anchor itself, positives being both
        # views of the samples in P(anchor's sample)
        rows = v1 + v2
        for a in range(2 * n):
            keys = [k for k in range(2 * n) if k != a]
            logit = {k: dot(rows[a], rows[k]) / tau for k in keys}
            lse = logsumexp(list(logit.values()))
            samples = positives(a % n)
            pos = [k for k in keys if k % n in samples]
            total.append(-math.fsum(logit[p] - lse for p in pos) / len(pos))
    else:
        raise AssertionError(form)
    return math.fsum(total) / len(total)


# --------------------------------------------------------------------------- #
# registry / API
# --------------------------------------------------------------------------- #
def test_registered_names_and_forms():
    assert list_losses() == ["ntxent", "supcon", "supcon_star", "firm"]
    assert NAMES == list_losses()
    assert FORMS == ("pairwise", "concat")
    assert FORM_SETTINGS == ("reference", "pairwise", "concat")


def test_default_tau_and_form():
    loss = get_loss("firm")
    assert isinstance(loss, ContrastiveLoss)
    assert loss.tau == 0.2 and loss.form == "pairwise" and loss.name == "firm"
    assert loss.form_setting == "reference"


def test_reference_forms_are_what_the_reference_code_ran():
    # Willtl/firm losses.py @b26a3ce8: NTXentLoss and FIRMLoss over f1 @ f2.T (N x N);
    # SupCon (SupContrast L_out, contrast_mode='all') over both views stacked (2N x 2N)
    expected = {"ntxent": "pairwise", "supcon": "concat", "supcon_star": "concat", "firm": "pairwise"}
    assert set(expected) == set(NAMES)  # every registered loss has one
    for name in NAMES:
        assert get_loss(name).form == resolve_form(name) == expected[name]
        for form in FORMS:  # a forced form is that form, for every loss
            assert get_loss(name, form=form).form == resolve_form(name, form) == form
            assert get_loss(name, form=form).form_setting == form
    with pytest.raises(ValueError, match="reference, pairwise, concat"):
        resolve_form("firm", "both")


# --------------------------------------------------------------------------- #
# against the slow reference
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("mix", list(LABEL_MIXES))
@pytest.mark.parametrize("tau", TAUS)
def test_matches_reference_float64(name, form, mix, tau):
    y = LABEL_MIXES[mix]
    z1, z2 = random_views(len(y), seed=len(y) + int(100 * tau))
    got = get_loss(name, tau=tau, form=form)(z1, z2, torch.tensor(y))
    assert got.dtype == torch.float64 and got.shape == ()
    assert got.item() == pytest.approx(ref_loss(name, z1, z2, y, tau, form), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS)
def test_matches_reference_float32(name, form):
    y = LABEL_MIXES["mixed_rotations"]
    z1, z2 = random_views(len(y), d=32, seed=3, dtype=torch.float32)
    got = get_loss(name, tau=0.2, form=form)(z1, z2, torch.tensor(y))
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_loss(name, z1, z2, y, 0.2, form), rel=1e-5)


# --------------------------------------------------------------------------- #
# hand-checkable values and identities
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("n", [1, 2, 5])
def test_ntxent_orthonormal_closed_form(tau, n):
    # z1 == z2 == e_1..e_n: s_ii = 1, s_ik = 0 otherwise (and for concat, the
    # same sample's other view is the only key with similarity 1).
    z = torch.eye(n, 8, dtype=torch.float64)
    labels = torch.zeros(n, dtype=torch.long)
    pairwise = math.log(1 + (n - 1) * math.exp(-1 / tau))  # -log e^{1/t} / (e^{1/t} + n-1)
    concat = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert get_loss("ntxent", tau, "pairwise")(z, z, labels).item() == pytest.approx(pairwise)
    assert get_loss("ntxent", tau, "concat")(z, z, labels).item() == pytest.approx(concat)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mix", ["all_id", "mixed_rotations", "single_id"])
def test_identical_embeddings_give_log_of_key_count(name, mix):
    # All similarities equal -> every log-softmax entry is -log(#keys).
    y = torch.tensor(LABEL_MIXES[mix])
    n = len(y)
    z = F.normalize(torch.ones(n, 4, dtype=torch.float64), dim=1)
    assert get_loss(name, 0.3, "pairwise")(z, z, y).item() == pytest.approx(math.log(n))
    assert get_loss(name, 0.3, "concat")(z, z, y).item() == pytest.approx(math.log(2 * n - 1))


def _loss(name, form, z1, z2, y, tau=0.2):
    return get_loss(name, tau=tau, form=form)(z1, z2, torch.tensor(y)).item()


@pytest.mark.parametrize("form", FORMS)
def test_firm_equals_supcon_when_all_id(form):
    y = LABEL_MIXES["all_id"]
    z1, z2 = random_views(len(y), seed=11)
    firm = _loss("firm", form, z1, z2, y)
    assert firm == pytest.approx(_loss("supcon", form, z1, z2, y), rel=1e-12)
    assert firm == pytest.approx(_loss("supcon_star", form, z1, z2, y), rel=1e-12)
    assert firm != pytest.approx(_loss("ntxent", form, z1, z2, y), rel=1e-6)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("mix", ["outliers_one_kind", "outliers_mixed_kinds", "one_id", "single_id"])
def test_firm_equals_ntxent_with_at_most_one_id(form, mix):
    # All outliers, or exactly one ID sample: every FIRM P(i) is {i}.
    y = LABEL_MIXES[mix]
    z1, z2 = random_views(len(y), seed=12)
    assert _loss("firm", form, z1, z2, y) == pytest.approx(
        _loss("ntxent", form, z1, z2, y), rel=1e-12
    )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("mix", ["all_id", "one_outlier", "outliers_one_kind", "id_and_one_kind"])
def test_supcon_equals_supcon_star_with_one_outlier_kind(form, mix):
    y = LABEL_MIXES[mix]
    z1, z2 = random_views(len(y), seed=13)
    assert _loss("supcon", form, z1, z2, y) == pytest.approx(
        _loss("supcon_star", form, z1, z2, y), rel=1e-12
    )


@pytest.mark.parametrize("form", FORMS)
def test_supcon_star_equals_ntxent_with_distinct_labels(form):
    y = [0, 1, 2, 3]
    z1, z2 = random_views(len(y), seed=14)
    assert _loss("supcon_star", form, z1, z2, y) == pytest.approx(
        _loss("ntxent", form, z1, z2, y), rel=1e-12
    )
    # ...while FIRM (one ID sample) is NT-Xent too, and binary SupCon is not
    assert _loss("firm", form, z1, z2, y) == pytest.approx(_loss("ntxent", form, z1, z2, y))
    assert _loss("supcon", form, z1, z2, y) != pytest.approx(_loss("ntxent", form, z1, z2, y))


def test_no_base_temperature_factor():
    # SupContrast multiplies by tau / 0.07; we do not. With all similarities
    # equal the loss is exactly log(#keys), independent of tau.
    z = F.normalize(torch.ones(4, 3, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 0, 1, 1])
    for tau in (0.07, 0.2, 5.0):
        assert get_loss("supcon", tau, "concat")(z, z, y).item() == pytest.approx(math.log(7))


# --------------------------------------------------------------------------- #
# masks written out by hand
# --------------------------------------------------------------------------- #
def _mask(name, labels, form):
    m = LOSSES.get(name)(torch.tensor(labels), form)
    assert m.dtype == torch.bool
    return m.int().tolist()


def test_masks_pairwise_by_hand():
    y = [0, 0, 1]
    assert _mask("ntxent", y, "pairwise") == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert _mask("firm", y, "pairwise") == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert _mask("supcon", y, "pairwise") == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert _mask("supcon_star", y, "pairwise") == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    y = [0, 1, 2, 0]
    assert _mask("firm", y, "pairwise") == [
        [1, 0, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 1],
    ]
    assert _mask("supcon", y, "pairwise") == [
        [1, 0, 0, 1],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 1],
    ]
    assert _mask("supcon_star", y, "pairwise") == [
        [1, 0, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 1],
    ]


def test_masks_concat_by_hand():
    # rows/cols: view-1 samples 0, 1, 2, then view-2 samples 0, 1, 2
    y = [0, 0, 1]
    assert _mask("ntxent", y, "concat") == [
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
    ]
    firm = [
        [0, 1, 0, 1, 1, 0],
        [1, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
        [1, 1, 0, 0, 1, 0],
        [1, 1, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 0],
    ]
    assert _mask("firm", y, "concat") == firm
    assert _mask("supcon", y, "concat") == firm  # one outlier: same sets
    y = [0, 1, 2]
    assert _mask("supcon", y, "concat") == [
        [0, 0, 0, 1, 0, 0],
        [0, 0, 1, 0, 1, 1],
        [0, 1, 0, 0, 1, 1],
        [1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 1],
        [0, 1, 1, 0, 1, 0],
    ]
    assert _mask("supcon_star", y, "concat") == _mask("ntxent", y, "concat")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mix", list(LABEL_MIXES))
def test_mask_properties(name, mix):
    y = torch.tensor(LABEL_MIXES[mix])
    n = len(y)
    pair = LOSSES.get(name)(y, "pairwise")
    cat = LOSSES.get(name)(y, "concat")
    assert pair.shape == (n, n) and cat.shape == (2 * n, 2 * n)
    assert pair.device == y.device and cat.device == y.device
    assert pair.diagonal().all()  # own pair always a positive
    assert not cat.diagonal().any()  # self never a positive in concat
    assert cat[torch.arange(n), torch.arange(n) + n].all()  # other view always positive
    assert torch.equal(pair, pair.T) and torch.equal(cat, cat.T)


def test_mask_unknown_form():
    with pytest.raises(ValueError, match="pairwise, concat"):
        LOSSES.get("firm")(torch.tensor([0, 1]), "both")


# --------------------------------------------------------------------------- #
# masked_multi_positive_loss directly
# --------------------------------------------------------------------------- #
def test_generic_loss_valid_equals_submatrix():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, generator=g, dtype=torch.float64)
    pos = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    valid = torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]], dtype=torch.bool)
    logits_masked_out = logits.clone()
    logits_masked_out[~valid] = 1e4  # must not matter
    got = masked_multi_positive_loss(logits_masked_out, pos, valid)
    want = []
    for a in range(3):
        keys = valid[a].nonzero().flatten()
        lp = torch.log_softmax(logits[a, keys], dim=0)
        want.append(-lp[pos[a, keys]].mean())
    assert got.item() == pytest.approx(torch.stack(want).mean().item(), rel=1e-12)
    # a 0/1 float mask gives the same as bool
    assert masked_multi_positive_loss(logits, pos.double()).item() == pytest.approx(
        masked_multi_positive_loss(logits, pos).item()
    )


def test_generic_loss_errors():
    logits = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="no positive"):
        masked_multi_positive_loss(logits, torch.tensor([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="valid excludes"):
        masked_multi_positive_loss(
            logits, torch.eye(2, dtype=torch.bool), ~torch.eye(2, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="shape"):
        masked_multi_positive_loss(logits, torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="2-D"):
        masked_multi_positive_loss(torch.zeros(4), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        masked_multi_positive_loss(logits, torch.full((2, 2), 0.5))


# --------------------------------------------------------------------------- #
# gradients and numerical stability
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tau", [0.2, 0.01])
def test_gradients_finite_and_nonzero(name, form, tau):
    g = torch.Generator().manual_seed(9)
    y = torch.tensor(LABEL_MIXES["mixed_rotations"])
    raw1 = torch.randn(len(y), 16, generator=g, requires_grad=True)
    raw2 = torch.randn(len(y), 16, generator=g, requires_grad=True)
    loss = get_loss(name, tau=tau, form=form)(F.normalize(raw1, dim=1), F.normalize(raw2, dim=1), y)
    assert torch.isfinite(loss)
    loss.backward()
    for grad in (raw1.grad, raw2.grad):
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS)
def test_small_tau_float32_no_overflow(name, form):
    # z2 = -z1 with orthonormal rows: at tau = 0.01 the masked self-similarity
    # (100) exceeds every valid logit (<= 0) by 100 > log(float32 max) ~ 88.7,
    # so exp() without masking first would overflow to inf and give NaN.
    y = [0, 0, 1, 2]
    z1 = torch.eye(4, 6, requires_grad=True)
    z2 = -torch.eye(4, 6)
    loss = get_loss(name, tau=0.01, form=form)(z1, z2, torch.tensor(y))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()
    assert loss.item() == pytest.approx(ref_loss(name, z1.detach(), z2, y, 0.01, form), rel=1e-5)


# --------------------------------------------------------------------------- #
# invariance
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS)
def test_batch_permutation_invariance(name, form):
    y = torch.tensor(LABEL_MIXES["random"])
    z1, z2 = random_views(len(y), seed=21)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(4))
    loss = get_loss(name, tau=0.2, form=form)
    assert loss(z1[perm], z2[perm], y[perm]).item() == pytest.approx(
        loss(z1, z2, y).item(), rel=1e-12
    )


# --------------------------------------------------------------------------- #
# bad inputs
# --------------------------------------------------------------------------- #
def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        get_loss("frim")
    msg = str(err.value)
    assert "frim" in msg
    for name in NAMES:
        assert name in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_unknown_form_lists_valid_forms():
    with pytest.raises(ValueError, match="pairwise, concat"):
        get_loss("firm", form="symmetric")


@pytest.mark.parametrize("tau", [0, -0.1, float("nan"), float("inf"), "0.2", None, True])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        get_loss("firm", tau=tau)


def test_bad_shapes_dtypes_devices():
    loss = get_loss("firm")
    z1, z2 = random_views(4, dtype=torch.float32)
    y = torch.tensor([0, 1, 0, 2])
    with pytest.raises(ValueError, match="same shape"):
        loss(z1, z2[:3], y)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        loss(z1[0], z2[0], y)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        loss(z1[None], z2[None], y)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        loss(z1, z2, y[:3])
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\)"):
        loss(z1, z2, y[:, None])
    with pytest.raises(ValueError, match="integer"):
        loss(z1, z2, y.float())
    with pytest.raises(ValueError, match="integer"):
        loss(z1, z2, y.bool())
    with pytest.raises(ValueError, match=">= 0"):
        loss(z1, z2, torch.tensor([0, -1, 0, -1]))
    with pytest.raises(ValueError, match="floating"):
        loss(z1.long(), z2.long(), y)
    with pytest.raises(ValueError, match="same dtype"):
        loss(z1, z2.double(), y)
    with pytest.raises(ValueError, match="empty"):
        loss(z1[:0], z2[:0], y[:0])
    with pytest.raises(ValueError, match="device"):
        loss(z1, z2.to("meta"), y)
    with pytest.raises(ValueError, match="device"):
        loss(z1.to("meta"), z2.to("meta"), y)


# --------------------------------------------------------------------------- #
# the training loss of the paper preset = what the reference code computed
# --------------------------------------------------------------------------- #
def supcontrast_l_out(z1: torch.Tensor, z2: torch.Tensor, y: list[int], tau: float) -> float:
    """SupContrast's L_out (contrast_mode='all') written out per anchor, without temperature/base_temperature.

    features [bsz, 2, d] -> contrast = cat(unbind(features, 1)) = [view 1 rows; view 2 rows];
    every one of the 2N rows is an anchor; its logits are over the other 2N - 1 rows;
    positives: the other rows with the same label; loss = mean over anchors of
    -(sum over positives of log_prob) / #positives.
    """
    rows = z1.double().tolist() + z2.double().tolist()
    labels = y + y
    total = []
    for a in range(len(rows)):
        others = [b for b in range(len(rows)) if b != a]
        log_den = logsumexp([dot(rows[a], rows[b]) / tau for b in others])
        pos = [b for b in others if labels[b] == labels[a]]
        total.append(-math.fsum(dot(rows[a], rows[b]) / tau - log_den for b in pos) / len(pos))
    return math.fsum(total) / len(total)


def reference_ntxent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """NTXentLoss: cross_entropy(f1 @ f2.T / tau, arange(N)), one anchor at a time."""
    v1, v2 = z1.double().tolist(), z2.double().tolist()
    n = len(v1)
    return math.fsum(
        -(dot(v1[i], v2[i]) / tau - logsumexp([dot(v1[i], v2[k]) / tau for k in range(n)])) for i in range(n)
    ) / n


def reference_firm(z1: torch.Tensor, z2: torch.Tensor, y: list[int], tau: float) -> float:
    """FIRMLoss: q = log_softmax(f1 @ f2.T / tau), target p = mask / row sum with
    mask = inliers x inliers + eye on outlier rows; loss = -sum(p * q) / N."""
    v1, v2 = z1.double().tolist(), z2.double().tolist()
    n = len(y)
    total = []
    for i in range(n):
        logits = [dot(v1[i], v2[k]) / tau for k in range(n)]
        lse = logsumexp(logits)
        mask = [float(y[i] == 0 and y[k] == 0) + float(y[i] != 0 and k == i) for k in range(n)]
        total.append(-math.fsum(m / sum(mask) * (logits[k] - lse) for k, m in enumerate(mask)))
    return math.fsum(total) / n


def reference_code_loss(name: str, z1, z2, y: list[int], tau: float) -> float:
    if name == "ntxent":
        return reference_ntxent(z1, z2, tau)
    if name == "firm":
        return reference_firm(z1, z2, y, tau)
    if name == "supcon":  # binary labels: ID vs any outlier
        return supcontrast_l_out(z1, z2, [int(v >= 1) for v in y], tau)
    if name == "supcon_star":  # the rotation labels themselves
        return supcontrast_l_out(z1, z2, list(y), tau)
    raise NotImplementedError(f"no reference-code loss for {name!r}; add one to this test")


PAPER_MIXES = ["all_id", "one_outlier", "mixed_rotations", "id_and_one_kind", "random"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mix", PAPER_MIXES)
@pytest.mark.parametrize("tau", [0.2, 0.5, 0.07])
def test_paper_training_loss_equals_the_reference_code(name, mix, tau):
    """The loss as the paper preset builds it for training is what the reference code computed."""
    cfg = config.resolve("paper", overrides=[f"loss.name={name}", f"loss.tau={tau}"])
    loss = build_loss(cfg)
    assert loss.form == resolve_form(name) and config.setting(cfg, "loss.form") == "reference"  # resolved once
    y = LABEL_MIXES[mix]
    z1, z2 = random_views(len(y), d=6, seed=len(y) + int(100 * tau))
    got = loss(z1, z2, torch.tensor(y)).item()
    assert got == pytest.approx(reference_code_loss(name, z1, z2, y, tau), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", ["supcon", "supcon_star"])
def test_supcon_pairwise_and_concat_differ_with_outliers(name):
    """The old all-pairwise SupCon is another number: the paper test above would catch it."""
    y = LABEL_MIXES["mixed_rotations"]
    z1, z2 = random_views(len(y), seed=31)
    labels = torch.tensor(y)
    pairwise = get_loss(name, form="pairwise")(z1, z2, labels).item()
    concat = get_loss(name, form="concat")(z1, z2, labels).item()
    assert abs(pairwise - concat) > 1e-3
    trained = build_loss(config.resolve("paper", overrides=[f"loss.name={name}"]))(z1, z2, labels).item()
    assert trained == pytest.approx(concat, rel=1e-12) and trained == pytest.approx(
        reference_code_loss(name, z1, z2, y, 0.2), rel=1e-12)
    assert trained != pytest.approx(pairwise, rel=1e-6)
    # the labelled variant loss.form=pairwise forces the pairwise form
    forced = build_loss(config.resolve("paper", overrides=[f"loss.name={name}", "loss.form=pairwise"]))
    assert forced.form == "pairwise" and forced(z1, z2, labels).item() == pytest.approx(pairwise, rel=1e-12)


def test_build_loss_rejects_id_labels_for_other_losses():
    cfg = config.resolve("paper", overrides=["loss.name=firm", "dataset.cls=all", "loss.id_labels=true"])
    assert build_loss(cfg).name == "firm"
    cfg["loss"]["name"] = "supcon"  # bypassing the config validation
    with pytest.raises(ValueError, match="loss.id_labels"):
        build_loss(cfg)


# --------------------------------------------------------------------------- #
# multi-class FIRM: labels (N, 2) = [kind, id_class]
# --------------------------------------------------------------------------- #
def ref_firm_classes(kinds: list[int], classes: list[int], i: int) -> list[int]:
    """Multi-class FIRM P(i): an ID anchor's ID samples of its own class; an outlier only itself."""
    if kinds[i] != 0:
        return [i]
    return [j for j in range(len(kinds)) if kinds[j] == 0 and classes[j] == classes[i]]


CLASS_MIXES = {  # (kinds, id_class); outliers carry -1 (or any value: ignored)
    "two_classes": ([0, 0, 0, 0, 1, 2, 0, 3], [0, 1, 0, 1, -1, -1, 1, -1]),
    "three_classes": ([0, 1, 0, 0, 2, 0, 0, 3, 0, 1], [2, -1, 0, 1, -1, 2, 0, -1, 1, -1]),
    "lonely_class": ([0, 0, 0, 1, 0], [0, 0, 4, -1, 0]),  # class 4 has one sample: only its own pair
    "outlier_class_ignored": ([0, 1, 0, 2], [0, 0, 0, 0]),
    "no_outliers": ([0, 0, 0, 0, 0, 0], [1, 2, 1, 2, 3, 3]),
}


def class_labels(kinds, classes) -> torch.Tensor:
    return torch.stack([torch.tensor(kinds), torch.tensor(classes)], dim=1)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("mix", list(CLASS_MIXES))
@pytest.mark.parametrize("tau", [0.1, 0.2, 1.0])
def test_multiclass_firm_matches_reference(form, mix, tau):
    kinds, classes = CLASS_MIXES[mix]
    z1, z2 = random_views(len(kinds), seed=40 + len(kinds))
    got = get_loss("firm", tau=tau, form=form)(z1, z2, class_labels(kinds, classes)).item()
    want = ref_loss_of_sets(lambda i: ref_firm_classes(kinds, classes, i), z1, z2, len(kinds), tau, form)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_multiclass_firm_with_one_class_is_one_class_firm(form):
    y = LABEL_MIXES["mixed_rotations"]
    z1, z2 = random_views(len(y), seed=41)
    one = get_loss("firm", form=form)(z1, z2, torch.tensor(y)).item()
    for cls in (0, 7):
        labels = class_labels(y, [cls if k == 0 else -1 for k in y])
        assert get_loss("firm", form=form)(z1, z2, labels).item() == pytest.approx(one, rel=1e-12)
    # two classes: another loss (the class structure is used)
    two = class_labels(y, [i % 2 if k == 0 else -1 for i, k in enumerate(y)])
    assert get_loss("firm", form=form)(z1, z2, two).item() != pytest.approx(one, rel=1e-6)


def test_multiclass_firm_masks_by_hand():
    labels = class_labels([0, 0, 1, 0], [0, 1, -1, 0])
    firm = LOSSES.get("firm")
    kinds, cls = labels[:, 0], labels[:, 1]
    assert firm(kinds, "pairwise", id_class=cls).int().tolist() == [
        [1, 0, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 1],
    ]
    # rows/cols: view-1 samples 0..3, then view-2 samples 0..3
    assert firm(kinds, "concat", id_class=cls).int().tolist() == [
        [0, 0, 0, 1, 1, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],
        [1, 0, 0, 0, 1, 0, 0, 1],
        [1, 0, 0, 1, 0, 0, 0, 1],
        [0, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0, 0],
        [1, 0, 0, 1, 1, 0, 0, 0],
    ]


@pytest.mark.parametrize("form", FORMS)
def test_multiclass_firm_permutation_invariant_and_checked_once(form):
    kinds, classes = CLASS_MIXES["three_classes"]
    labels = class_labels(kinds, classes)
    z1, z2 = random_views(len(kinds), seed=42)
    perm = torch.randperm(len(kinds), generator=torch.Generator().manual_seed(5))
    checked, unchecked = get_loss("firm", form=form), get_loss("firm", form=form, check_values=False)
    assert checked(z1[perm], z2[perm], labels[perm]).item() == pytest.approx(checked(z1, z2, labels).item(), rel=1e-12)
    assert torch.equal(checked(z1, z2, labels), unchecked(z1, z2, labels))


@pytest.mark.parametrize("name", sorted(set(NAMES) - {"firm"}))
def test_other_losses_reject_class_labels(name):
    z1, z2 = random_views(4)
    with pytest.raises(ValueError, match=r"\(N, 2\).*firm.*loss.id_labels"):
        get_loss(name)(z1, z2, class_labels([0, 0, 1, 0], [0, 1, -1, 0]))


def test_class_label_checks():
    z1, z2 = random_views(4)
    loss = get_loss("firm")
    with pytest.raises(ValueError, match="id_class >= 0"):
        loss(z1, z2, class_labels([0, 0, 1, 0], [0, -1, -1, 0]))  # an ID row without a class
    with pytest.raises(ValueError, match=">= 0"):
        loss(z1, z2, class_labels([0, -1, 1, 0], [0, 0, -1, 0]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        loss(z1, z2, torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(4,\) or \(4, 2\)"):
        loss(z1, z2, class_labels([0, 0, 1], [0, 1, -1]))
    check_label_values(class_labels([0, 2, 1, 0], [0, -1, -1, 3]))  # outliers may carry -1


def test_id_class_labels_builds_the_training_labels():
    kinds = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    got = id_class_labels(kinds, torch.tensor([4, 0, 4]))
    assert got.dtype == torch.int64 and got.tolist() == [
        [0, 4], [0, 0], [0, 4], [1, -1], [1, -1], [1, -1], [2, -1], [2, -1], [2, -1]]
    assert id_class_labels(kinds[:0], torch.zeros(0, dtype=torch.long)).shape == (0, 2)
    with pytest.raises(ValueError, match="first N rows"):
        id_class_labels(torch.tensor([0, 1, 0]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="cover"):
        id_class_labels(torch.tensor([0]), torch.tensor([1, 2]))
