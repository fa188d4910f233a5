"""Tests of firm_bench/run/engine/fused.py: K fused runs equal K runs trained alone (CPU).

The references are the plain models (``models.create_model``) trained one by
one with ``torch.optim.SGD``, exactly as ``train.py``'s eager loop steps a run.

Tolerances, and why. A fused model computes the same sums of products as the
separate models in another order (a grouped convolution and a batched matrix
product are other kernels than a dense convolution and a Linear), so in
float32 the results differ by rounding, not bit for bit:

- forward (h, z; O(1) values): FWD_TOL, 2e-5 absolute (observed <= 7e-6: ~1e-6
  relative per operator through ~20 convolutions and BatchNorms).
- one training step: each tensor's difference <= 1e-3 of that tensor's update
  (parameters; observed <= 4e-5) or of its magnitude (BN running statistics,
  momentum buffers; observed <= 2e-5).
- several steps: at these tiny widths float32 rounding is amplified from step
  to step (BatchNorms divide by small batch standard deviations, ReLUs flip):
  a separate float32 run is ~3e-5 (normwise, of its update) away from the same
  run in float64 after 2 steps, but 1e-4..6e-2 after 3 (the fused runs alike,
  sometimes closer, sometimes farther). So exactness over several steps is
  tested in float64 (fused vs alone, 3 steps: <= 1e-9 of the update; observed
  ~5e-13), and in float32 over 2 steps both the fused and the separate runs
  must be within 1e-3 of the float64 result (observed <= 4e-5 for both).

Each check is against an update far larger than its tolerance, so a wrong lr,
momentum, loss, label or run order fails. What fusion must not change at all
is compared exactly (``torch.equal``): fuse/unfuse round trips, a frozen run's
tensors, and the other runs' arithmetic when one run is frozen or fails.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from firm_bench.run.engine.fused import FusedLoss, FusedSGD, fuse, masked_total
from firm_bench.method.losses import get_loss
from firm_bench.method.models import create_model

FWD_TOL = dict(rtol=0.0, atol=2e-5)
ONE_STEP_REL = 1e-3  # float32, one step: difference / (update or magnitude)
FLOAT64_REL = 1e-9  # float64, several steps
FLOAT32_STEPS_REL = 1e-3  # float32, two steps: normwise distance from the float64 result / update
MODEL = dict(encoder="resnet18_cifar", width=0.0625, head_layers=3, head_hidden=16, proj_dim=8,
             bn_momentum=0.9, head_init="kaiming")
B, S, WD = 8, 16, 5e-3  # samples per run (2B rows with both views), image side, weight decay
F32, F64 = torch.float32, torch.float64

#: one pack of runs: seeds, losses (pairwise and concat forms), temperatures, labels, lr, momentum differ
RUNS = [
    dict(seed=0, loss="firm", tau=0.2, id_labels=True, lr=0.1, momentum=0.9),
    dict(seed=1, loss="supcon", tau=0.5, id_labels=False, lr=0.05, momentum=0.85),
    dict(seed=2, loss="ntxent", tau=0.1, id_labels=False, lr=0.2, momentum=0.95),
    dict(seed=3, loss="supcon_star", tau=0.3, id_labels=False, lr=0.02, momentum=0.9),
]
KS = (1, 2, 3, 4)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def models(k: int, dtype: torch.dtype = F32) -> list[nn.Module]:
    out = []
    for r in RUNS[:k]:
        torch.manual_seed(r["seed"])  # as train.initial_model (float32 draws, then cast)
        out.append(create_model(MODEL).to(dtype))
    return out


def losses(k: int) -> list:
    return [get_loss(r["loss"], tau=r["tau"]) for r in RUNS[:k]]  # form "reference": each its own


def batch(k: int, step: int, dtype: torch.dtype = F32) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Each run's own two views (K, 2B, 3, S, S) and labels (kinds 0..3; FIRM's with ID classes)."""
    xs, labels = [], []
    for i, r in enumerate(RUNS[:k]):
        g = torch.Generator().manual_seed(1000 * step + i)
        xs.append(torch.randn(2 * B, 3, S, S, generator=g))
        kinds = torch.randint(0, 4, (B,), generator=g)
        if r["id_labels"]:
            cls = torch.where(kinds == 0, torch.randint(0, 2, (B,), generator=g), torch.full_like(kinds, -1))
            labels.append(torch.stack([kinds, cls], dim=1))
        else:
            labels.append(kinds)
    return torch.stack(xs).to(dtype), labels


def schedule(k: int, step: int) -> tuple[list[float], list[float]]:
    """Per-run lr and momentum at ``step`` (changing per step, as OneCycleLR's)."""
    return ([r["lr"] * (1 + 0.5 * step) for r in RUNS[:k]], [r["momentum"] - 0.02 * step for r in RUNS[:k]])


def train_alone(k: int, steps: int, dtype: torch.dtype = F32) -> list[tuple[nn.Module, torch.optim.SGD]]:
    """The reference: each run by itself, torch.optim.SGD, the step of train.py's eager loop."""
    out = []
    for i, (model, loss) in enumerate(zip(models(k, dtype), losses(k))):
        opt = torch.optim.SGD(model.parameters(), lr=RUNS[i]["lr"], momentum=RUNS[i]["momentum"], weight_decay=WD)
        for step in range(steps):
            x, labels = batch(k, step, dtype)
            lrs, moms = schedule(k, step)
            opt.param_groups[0].update(lr=lrs[i], momentum=moms[i])
            z1, z2 = model(x[i]).z.chunk(2)
            opt.zero_grad(set_to_none=True)
            loss(z1, z2, labels[i]).backward()
            opt.step()
        out.append((model, opt))
    return out


def train_fused(k: int, steps: int, live: list[bool] | None = None, loss_fns=None, freeze_non_finite=True,
                dtype: torch.dtype = F32):
    fused = fuse(models(k, dtype))
    if live is not None:
        fused.live.copy_(torch.tensor(live))
    sgd = FusedSGD.of(fused, weight_decay=WD)
    loss = FusedLoss(loss_fns or losses(k))
    per_step = []
    for step in range(steps):
        x, labels = batch(k, step, dtype)
        lrs, moms = schedule(k, step)  # as device tensors (what a CUDA graph reads)
        per_step.append(train_step(fused, sgd, loss, x, labels, torch.tensor(lrs, dtype=dtype),
                                   torch.tensor(moms, dtype=dtype), freeze_non_finite=freeze_non_finite))
    return fused, sgd, per_step


def train_step(fused, sgd, loss, x, labels, lr, momentum, freeze_non_finite=True):
    """One fused step as ``PackEngine``'s grouped step makes it: forward, per-run losses, masked_total, backward,
    ``FusedSGD.step`` with ``fused.live``; returns the per-run losses (K,), detached."""
    fused.zero_grad(set_to_none=True)
    per_run = loss.per_run(fused(x).z, labels)
    masked_total(per_run, fused.live, freeze_non_finite).backward()
    sgd.step(lr, momentum, fused.live)
    return per_run.detach()


def unfuse(fused) -> list[nn.Module]:
    """The K runs as separate models (MODEL) holding copies of their tensors, in the fused model's mode."""
    out = []
    for k in range(fused.runs):
        model = create_model(MODEL).to(next(fused.parameters()).dtype)
        model.load_state_dict(fused.state_dict_of(k))
        out.append(model.train(fused.training))
    return out


def rel_diff(got: dict, want: dict, start: dict, params: set[str]) -> float:
    """max over tensors of max|got - want| / scale; scale = the update (want - start) for parameters,
    max|want| for buffers. Counts (int64) must be equal."""
    assert set(got) == set(want)
    worst = 0.0
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape and g.dtype == w.dtype, name
        if w.dtype == torch.long:
            assert torch.equal(g, w), name
            continue
        scale = (w - start[name]).abs().max() if name in params else w.abs().max()
        worst = max(worst, float((g.double() - w.double()).abs().max() / scale.double()))
    return worst


def buffers_rel(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want))


def param_names(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters()}


def states_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)


# ---------------------------------------------------------------- (a) forward


@pytest.mark.parametrize("k", KS)
def test_forward_equals_the_separate_models(k):
    ms = models(k)
    fused = fuse(copy.deepcopy(ms))
    x, _ = batch(k, 0)
    out = fused(x)
    assert out.h.shape == (k, 2 * B, ms[0].feature_dim) and out.z.shape == (k, 2 * B, MODEL["proj_dim"])
    for i, m in enumerate(ms):
        ref = m(x[i])  # train mode: batch statistics, running statistics updated
        torch.testing.assert_close(out.h[i], ref.h, **FWD_TOL)
        torch.testing.assert_close(out.z[i], ref.z, **FWD_TOL)
        # the forward pass moved each run's running statistics (and counts) as the separate model's
        got, want = fused.state_dict_of(i), m.state_dict()
        assert set(got) == set(want)
        for name, w in want.items():
            torch.testing.assert_close(got[name], w, **FWD_TOL, msg=lambda m_, n=name: f"{n}: {m_}")
    fused.eval()
    for m in ms:
        m.eval()
    out = fused(x)
    for i, m in enumerate(ms):  # eval: running statistics
        torch.testing.assert_close(out.h[i], m(x[i]).h, **FWD_TOL)
        torch.testing.assert_close(out.z[i], m(x[i]).z, **FWD_TOL)
        torch.testing.assert_close(fused.features(x)[i], m.features(x[i]), **FWD_TOL)


def test_runs_are_not_interchangeable():
    """The forward check can fail: run 1's input through run 0's slice is far from run 1's output."""
    ms = models(2)
    x, _ = batch(2, 0)
    out = fuse(ms).eval()(x.flip(0))  # the batches swapped between the runs
    ref = ms[1].eval()(x[1])
    assert (out.z[0] - ref.z).abs().max() > 100 * FWD_TOL["atol"]


def test_imagenet_stem_encoder_fuses():
    """torchvision's ResNet-18 (resnet18_imagenet) splits by run too (forward, eval and train mode)."""
    cfg = {**MODEL, "encoder": "resnet18_imagenet", "width": 1.0}
    ms = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ms.append(create_model(cfg))
    fused = fuse(copy.deepcopy(ms))
    x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = fused(x)
    for i, m in enumerate(ms):
        torch.testing.assert_close(out.h[i], m(x[i]).h, rtol=1e-4, atol=1e-4)


def test_channels_last_models_give_a_channels_last_fused_model():
    """speed.channels_last: the fused convolutions keep the models' memory format; same numbers."""
    ms = [m.to(memory_format=torch.channels_last) for m in models(2)]
    fused = fuse(copy.deepcopy(ms))
    assert fused.encoder.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x, _ = batch(2, 0)
    out = fused(x)
    for i, m in enumerate(ms):
        torch.testing.assert_close(out.z[i], m(x[i].contiguous(memory_format=torch.channels_last)).z, **FWD_TOL)
    for m, back in zip(ms, unfuse(fused)):
        assert torch.equal(back.encoder.stem[0].weight, m.encoder.stem[0].weight)


# ---------------------------------------------------------------- (b) training steps


@pytest.mark.parametrize("k", KS)
def test_one_training_step_equals_each_run_alone(k):
    alone = train_alone(k, 1)
    fused, sgd, per_step = train_fused(k, 1)
    assert fused.live.all() and per_step[0].shape == (k,)
    x, labels = batch(k, 0)
    for i, ((model, opt), start, loss) in enumerate(zip(alone, models(k), losses(k))):
        assert rel_diff(fused.state_dict_of(i), model.state_dict(), start.state_dict(), param_names(model)) < ONE_STEP_REL
        assert buffers_rel(sgd.momentum_buffers_of(i), [opt.state[p]["momentum_buffer"] for p in model.parameters()]) < ONE_STEP_REL
        # the per-run loss is the run's own loss of its own batch
        torch.testing.assert_close(per_step[0][i], loss(*start(x[i]).z.chunk(2), labels[i]).detach(), **FWD_TOL)


@pytest.mark.parametrize("k", KS)
def test_several_steps_are_exact_in_float64(k):
    """Three steps, per-run lr and momentum changing each step: fused = alone up to float64 rounding."""
    steps = 3
    alone = train_alone(k, steps, F64)
    fused, sgd, _ = train_fused(k, steps, dtype=F64)
    for i, ((model, opt), start) in enumerate(zip(alone, models(k, F64))):
        assert rel_diff(fused.state_dict_of(i), model.state_dict(), start.state_dict(), param_names(model)) < FLOAT64_REL
        assert buffers_rel(sgd.momentum_buffers_of(i), [opt.state[p]["momentum_buffer"] for p in model.parameters()]) < FLOAT64_REL


def global_rel(got: dict, want: dict, start: dict, params: set[str]) -> float:
    """||got - want|| / ||want - start|| over all parameters together (normwise, float64)."""
    num = sum(float(((got[n].double() - want[n].double()) ** 2).sum()) for n in params)
    den = sum(float(((want[n].double() - start[n].double()) ** 2).sum()) for n in params)
    return (num / den) ** 0.5


def test_several_float32_steps_are_as_accurate_as_separate_runs():
    """Float32, two steps (lr and momentum change between them): each fused run is as close to the
    float64 result as the separate float32 run (both ~3e-5 of the update)."""
    k, steps = 4, 2
    exact = train_alone(k, steps, F64)
    alone = train_alone(k, steps)
    fused, _, _ = train_fused(k, steps)
    for i, ((ref, _), (model, _), start) in enumerate(zip(exact, alone, models(k, F64))):
        want, first, names = ref.state_dict(), start.state_dict(), param_names(ref)
        err_alone = global_rel(model.state_dict(), want, first, names)
        err_fused = global_rel(fused.state_dict_of(i), want, first, names)
        assert err_alone < FLOAT32_STEPS_REL and err_fused < FLOAT32_STEPS_REL, (i, err_fused, err_alone)


def test_per_run_weight_decay():
    """weight_decay as K values: each run decays with its own (here: run 1 without any)."""
    k, wds = 2, [WD, 0.0]
    fused = fuse(models(k))
    sgd = FusedSGD.of(fused, weight_decay=torch.tensor(wds))
    x, labels = batch(k, 0)
    lrs, moms = schedule(k, 0)
    train_step(fused, sgd, FusedLoss(losses(k)), x, labels, lrs, moms)
    for i, (model, loss) in enumerate(zip(models(k), losses(k))):
        opt = torch.optim.SGD(model.parameters(), lr=lrs[i], momentum=moms[i], weight_decay=wds[i])
        loss(*model(x[i]).z.chunk(2), labels[i]).backward()
        opt.step()
        start = models(k)[i].state_dict()
        assert rel_diff(fused.state_dict_of(i), model.state_dict(), start, param_names(model)) < ONE_STEP_REL


def test_sgd_update_is_torchs_bit_for_bit():
    """With given gradients the fused update is torch.optim.SGD's exactly (no model rounding involved)."""
    k = 3
    g = torch.Generator().manual_seed(0)
    runs = [[torch.randn(4, 3, generator=g), torch.randn(5, generator=g)] for _ in range(k)]
    grads = [[[torch.randn_like(p) for p in ps] for ps in runs] for _ in range(3)]
    lrs, moms = [0.1, 0.03, 0.7], [0.9, 0.0, 0.95]
    fused = [torch.cat([runs[i][j] for i in range(k)]).clone().requires_grad_() for j in range(2)]
    sgd = FusedSGD(fused, k, weight_decay=WD)
    for step in range(3):
        for j, p in enumerate(fused):
            p.grad = torch.cat([grads[step][i][j] for i in range(k)])
        sgd.step(torch.tensor(lrs), torch.tensor(moms))
    for i in range(k):
        ps = [p.clone().requires_grad_() for p in runs[i]]
        opt = torch.optim.SGD(ps, lr=lrs[i], momentum=moms[i], weight_decay=WD)
        for step in range(3):
            for p, gr in zip(ps, grads[step][i]):
                p.grad = gr.clone()
            opt.step()
        for p, f in zip(ps, fused):
            assert torch.equal(f.detach().unflatten(0, (k, -1))[i], p.detach().unflatten(0, (1, -1))[0])


# ---------------------------------------------------------------- (c) conversion


def test_fuse_unfuse_round_trip_is_exact():
    ms = models(3)
    fused = fuse(ms)
    assert [n for n, _ in fused.named_parameters()] == [n for n, _ in ms[0].named_parameters()]
    for m, back in zip(ms, unfuse(fused)):
        assert type(back) is type(m) and states_equal(back.state_dict(), m.state_dict())
    fused2, _, _ = train_fused(3, 2)  # trained, running statistics and counts moved
    again = fuse(unfuse(fused2))
    assert states_equal(again.state_dict(), fused2.state_dict())
    # one run loaded into another fused model's slot: that slot only changes
    target = fuse(models(3))
    before = [target.state_dict_of(i) for i in range(3)]
    target.load_run_state(1, fused2.state_dict_of(2))
    assert states_equal(target.state_dict_of(1), fused2.state_dict_of(2))
    assert states_equal(target.state_dict_of(0), before[0]) and states_equal(target.state_dict_of(2), before[2])


def test_optimizer_state_of_a_run_continues_in_torch_sgd():
    """A run's model and momentum buffers, unfused into torch.optim.SGD, continue as the fused run does."""
    k, steps = 2, 2
    fused, sgd, _ = train_fused(k, steps)
    lrs, moms = schedule(k, steps)
    runs = []
    for i, model in enumerate(unfuse(fused)):
        opt = torch.optim.SGD(model.parameters(), lr=lrs[i], momentum=moms[i], weight_decay=WD)
        opt.load_state_dict(sgd.state_dict_of(i, {k_: v for k_, v in opt.param_groups[0].items() if k_ != "params"}))
        runs.append((model, opt))
    x, labels = batch(k, steps)
    start = [copy.deepcopy(m.state_dict()) for m, _ in runs]
    train_step(fused, sgd, FusedLoss(losses(k)), x, labels, lrs, moms)
    for i, ((model, opt), loss) in enumerate(zip(runs, losses(k))):
        opt.zero_grad()
        loss(*model(x[i]).z.chunk(2), labels[i]).backward()
        opt.step()
        assert rel_diff(fused.state_dict_of(i), model.state_dict(), start[i], param_names(model)) < ONE_STEP_REL
    # and back: a torch SGD state loaded into a fresh FusedSGD gives the same buffers exactly
    other = FusedSGD.of(fused, weight_decay=WD)
    for i, (_, opt) in enumerate(runs):
        other.load_run_state(i, opt.state_dict())
        for a, p in zip(other.momentum_buffers_of(i), runs[i][0].parameters()):
            assert torch.equal(a, opt.state[p]["momentum_buffer"])
    assert sgd.state_dict_of(0, {})["param_groups"][0]["params"] == list(range(len(sgd.params)))
    assert FusedSGD.of(fused).state_dict_of(0, {})["state"] == {}  # never stepped: empty, as torch


def test_fuse_rejects_models_of_different_shapes():
    torch.manual_seed(0)
    a = create_model(MODEL)
    b = create_model({**MODEL, "head_hidden": 32})
    with pytest.raises(ValueError, match="model 1 differs from model 0"):
        fuse([a, b])
    c = create_model({**MODEL, "bn_momentum": 0.1})
    with pytest.raises(ValueError, match="bn_momentum"):
        fuse([a, c])
    d = create_model(MODEL)
    d.encoder.stem.append(nn.Dropout())
    with pytest.raises(ValueError, match="Dropout"):
        fuse([d])


def test_fuse_draws_no_random_numbers():
    ms = models(2)
    torch.manual_seed(7)
    fuse(ms)
    after = torch.rand(1)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(1))


# ---------------------------------------------------------------- (d) frozen runs


def test_a_frozen_run_stays_unchanged_while_the_others_train():
    k, steps = 3, 2
    start = fuse(models(k))
    fused, sgd, _ = train_fused(k, steps, live=[True, False, True])
    assert fused.live.tolist() == [True, False, True]
    # run 1: parameters, running statistics, counts and momentum buffers exactly as at the start
    assert states_equal(fused.state_dict_of(1), start.state_dict_of(1))
    assert all(not b.any() for b in sgd.momentum_buffers_of(1)) and int(sgd.steps[1]) == 0
    # runs 0 and 2: exactly what they are when nobody is frozen (which equals training alone: tests above)
    free, free_sgd, _ = train_fused(k, steps)
    for i in (0, 2):
        assert states_equal(fused.state_dict_of(i), free.state_dict_of(i))
        assert not states_equal(fused.state_dict_of(i), start.state_dict_of(i))
        assert all(torch.equal(a, b) for a, b in zip(sgd.momentum_buffers_of(i), free_sgd.momentum_buffers_of(i)))


# ---------------------------------------------------------------- (e) a failing run


class NaNAt:
    """A run's loss that turns NaN (value and gradient) from step ``at`` on."""

    def __init__(self, loss, at: int) -> None:
        self.loss, self.at, self.calls = loss, at, 0

    def __call__(self, z1, z2, labels):
        value = self.loss(z1, z2, labels)
        self.calls += 1
        return value * float("nan") if self.calls > self.at else value


def test_a_non_finite_loss_freezes_its_run_only():
    k, steps, bad = 3, 3, 1
    fns = losses(k)
    fns[bad] = NaNAt(fns[bad], at=1)  # step 0 fine, NaN from step 1
    fused, sgd, per_step = train_fused(k, steps, loss_fns=fns)
    assert torch.isfinite(per_step[0]).all() and torch.isnan(per_step[1][bad])
    assert fused.live.tolist() == [True, False, True]
    one, one_sgd, _ = train_fused(k, 1)  # everything after exactly one clean step
    clean, clean_sgd, _ = train_fused(k, steps)
    # the failed run keeps its parameters and momentum of before the failing step (no NaN in them) ...
    got, want = fused.state_dict_of(bad), one.state_dict_of(bad)
    for name, p in one.named_parameters():
        assert torch.equal(got[name], want[name])
    assert all(torch.equal(a, b) for a, b in zip(sgd.momentum_buffers_of(bad), one_sgd.momentum_buffers_of(bad)))
    # ... (its BatchNorm statistics moved once more: the forward pass of the failing step ran before the check)
    assert int(got["encoder.stem.1.num_batches_tracked"]) == 2
    # the other runs train exactly as without the failure
    for i in (0, 2):
        assert states_equal(fused.state_dict_of(i), clean.state_dict_of(i))
        assert all(torch.equal(a, b) for a, b in zip(sgd.momentum_buffers_of(i), clean_sgd.momentum_buffers_of(i)))


def test_without_freezing_the_nan_reaches_its_own_run_only():
    """The negative control: unmasked, the failing run's parameters become NaN; the others still do not change."""
    k, bad = 2, 0
    fns = losses(k)
    fns[bad] = NaNAt(fns[bad], at=0)
    fused, _, _ = train_fused(k, 1, loss_fns=fns, freeze_non_finite=False)
    clean, _, _ = train_fused(k, 1)
    params = [n for n, _ in fused.named_parameters()]
    assert any(not torch.isfinite(fused.state_dict_of(bad)[n]).all() for n in params)
    assert states_equal(fused.state_dict_of(1), clean.state_dict_of(1))


def test_masked_total_zeroes_the_frozen_runs_gradient():
    v = torch.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    live = torch.ones(3, dtype=torch.bool)
    total = masked_total(v * 2, live)
    total.backward()
    assert live.tolist() == [True, False, True] and float(total.detach()) == 8.0
    assert v.grad.tolist() == [2.0, 0.0, 2.0]
