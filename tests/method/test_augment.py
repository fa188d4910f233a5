"""Tests of firm_bench/method/augment.py against torchvision's functional ops."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from firm_bench.method import augment as A
from tests.helpers import reference as R
from tests.helpers.reference import reference_two_view

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def x01() -> torch.Tensor:
    return torch.rand(6, 3, 32, 32, generator=gen(1))


@pytest.fixture
def x_u8() -> torch.Tensor:
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=gen(2))


# ---------------------------------------------------------------- config


def test_config_defaults_are_the_paper_recipe():
    c = A.AugmentConfig()
    assert c.crop_scale == (0.25, 1.0) and c.crop_ratio == (1.0, 1.0)
    assert c.jitter == (0.4, 0.4, 0.4, 0.4) and c.jitter_p == 1.0
    assert (c.blur_kernel, c.blur_sigma, c.blur_p) == (3, (0.1, 2.0), 0.75)


def test_config_from_dict():
    c = A.AugmentConfig.from_dict({"crop_scale": [0.5, 1.0], "blur_p": 0.0})
    assert c.crop_scale == (0.5, 1.0) and c.blur_p == 0.0 and c.jitter == (0.4,) * 4
    with pytest.raises(ValueError, match="crop_scal"):
        A.AugmentConfig.from_dict({"crop_scal": [0.5, 1.0]})
    with pytest.raises(ValueError, match="blur_kernel"):
        A.AugmentConfig(blur_kernel=4)


# ---------------------------------------------------------------- basics


def test_to_float_and_normalize(x_u8):
    f = A.to_float(x_u8)
    assert f.dtype == torch.float32 and 0 <= f.min() and f.max() <= 1
    assert torch.allclose(f * 255, x_u8.float())
    n = A.normalize(f, MEAN, STD)
    assert torch.allclose(n, TF.normalize(f, list(MEAN), list(STD)), atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        A.to_float(f)


# ---------------------------------------------------------------- crops


def test_crop_params_distribution():
    p = A.sample_crop_params(20000, 32, 32, (0.25, 1.0), (1.0, 1.0), gen())
    assert torch.equal(p.height, p.width)  # ratio (1, 1): square crops
    frac = (p.height * p.width).double() / (32 * 32)
    # rounding the side to an integer barely moves the mean of U(0.25, 1) = 0.625
    assert abs(frac.mean().item() - 0.625) < 0.01
    assert frac.min() >= 0.2 and frac.max() <= 1.0
    assert (p.top >= 0).all() and (p.top + p.height <= 32).all()
    assert (p.left >= 0).all() and (p.left + p.width <= 32).all()
    # locations cover the whole admissible range
    small = p.height == 16
    assert p.top[small].min() == 0 and p.top[small].max() == 16


def test_crop_params_fallback_to_center():
    # ratio 10: no try fits a 32 x 32 image -> central crop of ratio 10 clipped to the image
    p = A.sample_crop_params(50, 32, 32, (0.9, 1.0), (10.0, 10.0), gen())
    assert (p.width == 32).all() and (p.height == 3).all() and (p.top == 14).all() and (p.left == 0).all()


def test_full_crop_is_identity(x01):
    y = A.random_resized_crop(x01, 32, (1.0, 1.0), (1.0, 1.0), gen())
    assert torch.allclose(y, x01, atol=1e-5)


def test_resized_crop_matches_torchvision(x01):
    p = A.sample_crop_params(6, 32, 32, (0.25, 1.0), (0.5, 2.0), gen(3))
    ours = A.resized_crop(x01, p, 32)
    ref = torch.stack(
        [TF.resized_crop(x01[i], *(int(t[i]) for t in p), [32, 32], antialias=True) for i in range(6)]
    )
    assert torch.allclose(ours, ref, atol=1e-5)


# ---------------------------------------------------------------- colour jitter


def test_jitter_all_zero_is_identity(x01):
    assert torch.equal(R.color_jitter(x01, 0, 0, 0, 0, gen()), x01)


@pytest.mark.parametrize(
    "k, fn, factor",
    [
        (0, TF.adjust_brightness, 1.3),
        (1, TF.adjust_contrast, 0.7),
        (2, TF.adjust_saturation, 1.35),
        (3, TF.adjust_hue, -0.3),
        (3, TF.adjust_hue, 0.25),
    ],
)
def test_each_jitter_op_matches_torchvision(x01, k, fn, factor):
    factors = torch.tensor([1.0, 1.0, 1.0, 0.0]).repeat(6, 1)
    factors[:, k] = factor
    order = torch.tensor([0, 1, 2, 3]).repeat(6, 1)
    active = tuple(i == k for i in range(4))
    ours = A._apply_jitter(x01, factors, order, active)
    ref = torch.stack([fn(xi, factor) for xi in x01])
    assert torch.allclose(ours, ref, atol=1e-5)


def test_jitter_per_sample_factors_and_order(x01):
    g = gen(5)
    factors = torch.stack(
        [torch.empty(6).uniform_(0.6, 1.4, generator=g) for _ in range(3)] + [torch.empty(6).uniform_(-0.4, 0.4, generator=g)],
        dim=1,
    )
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(6)])
    ours = A._apply_jitter(x01, factors, order)
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(6):
        ref = x01[i]
        for k in order[i].tolist():
            ref = fns[k](ref, factors[i, k].item())
        assert torch.allclose(ours[i], ref, atol=1e-5), i
    # brightness alone, per-sample factor, against adjust_brightness
    only_b = A._apply_jitter(x01, factors, order, (True, False, False, False))
    for i in range(6):
        assert torch.allclose(only_b[i], TF.adjust_brightness(x01[i], factors[i, 0].item()), atol=1e-6)


def test_jitter_probability(x01):
    y = R.color_jitter(x01, 0.4, 0.4, 0.4, 0.4, gen(), p=0.0)
    assert torch.equal(y, x01)
    y = R.color_jitter(x01, 0.4, 0.4, 0.4, 0.4, gen(), p=1.0)
    assert all(not torch.equal(y[i], x01[i]) for i in range(6))
    assert 0 <= y.min() and y.max() <= 1


# ---------------------------------------------------------------- blur


@pytest.mark.parametrize("kernel, sigma", [(3, 0.7), (3, 2.0), (5, 1.1)])
def test_blur_matches_torchvision(x01, kernel, sigma):
    ours = A._blur(x01, kernel, torch.full((6,), sigma))
    ref = TF.gaussian_blur(x01, [kernel, kernel], [sigma, sigma])
    assert torch.allclose(ours, ref, atol=1e-6)


def test_blur_per_sample_sigma_and_probability(x01):
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.3])
    ours = A._blur(x01, 3, sigma)
    for i in range(6):
        ref = TF.gaussian_blur(x01[i], [3, 3], [sigma[i].item()] * 2)
        assert torch.allclose(ours[i], ref, atol=1e-6)
    assert torch.equal(R.gaussian_blur(x01, 3, (0.1, 2.0), 0.0, gen()), x01)
    y = R.gaussian_blur(x01, 3, (0.1, 2.0), 0.5, gen())
    changed = [not torch.equal(y[i], x01[i]) for i in range(6)]
    assert y.shape == x01.shape and 0 < sum(changed) < 6  # seed 0: a strict subset


# ---------------------------------------------------------------- pipelines


def test_two_view_shapes_determinism(x_u8):
    aug = R.TwoViewAugment(A.AugmentConfig(), 28, MEAN, STD)
    v1, v2_ = aug(x_u8, gen(0))
    assert v1.shape == v2_.shape == (6, 3, 28, 28)
    assert v1.dtype == torch.float32 and v1.device == x_u8.device
    assert not torch.equal(v1, v2_)  # two independent views
    # values are normalised [0, 1] images
    lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert (v1 >= lo.view(1, 3, 1, 1) - 1e-5).all() and (v1 <= hi.view(1, 3, 1, 1) + 1e-5).all()
    w1, w2 = aug(x_u8, gen(0))
    assert torch.equal(v1, w1) and torch.equal(v2_, w2)
    u1, _ = aug(x_u8, gen(1))
    assert not torch.equal(v1, u1)


def test_two_view_identity_recipe(x_u8):
    cfg = A.AugmentConfig(crop_scale=(1.0, 1.0), jitter=(0, 0, 0, 0), blur_p=0.0)
    v1, v2_ = R.TwoViewAugment(cfg, 32, MEAN, STD)(x_u8, gen())
    expect = A.normalize(A.to_float(x_u8), MEAN, STD)
    assert torch.allclose(v1, expect, atol=1e-4) and torch.allclose(v2_, expect, atol=1e-4)


def test_test_transform_matches_torchvision(x01, x_u8):
    ref = v2.Compose([v2.Resize(36, antialias=True), v2.CenterCrop(32)])
    # exact on float input (torchvision resizes floats the same way) ...
    ours = A._resize_center_crop(x01, 32)
    assert torch.allclose(ours, ref(x01), atol=1e-6)
    # ... and within uint8 rounding of torchvision's uint8 path
    y = A.test_transform(x_u8, 32, MEAN, STD)
    expect = TF.normalize(ref(x_u8).float() / 255, list(MEAN), list(STD))
    assert y.shape == (6, 3, 32, 32) and y.dtype == torch.float32
    assert (y - expect).abs().max() <= 1.01 / 255 / min(STD)
    # non-square input resizes the shorter side, as torchvision
    z = torch.rand(2, 3, 40, 60, generator=gen())
    ref2 = v2.Compose([v2.Resize(36, antialias=True), v2.CenterCrop(32)])(z)
    assert torch.allclose(A._resize_center_crop(z, 32), ref2, atol=1e-6)


def test_ensemble_crops(x_u8):
    c = A.ensemble_crops(x_u8, 32, 4, (0.55, 1.0), gen(), MEAN, STD)
    assert c.shape == (4, 6, 3, 32, 32) and c.dtype == torch.float32
    assert torch.equal(c, A.ensemble_crops(x_u8, 32, 4, generator=gen(), mean=MEAN, std=STD))
    assert not torch.equal(c[0], c[1])
    # scale (1, 1): every crop is the test transform
    full = A.ensemble_crops(x_u8, 32, 2, (1.0, 1.0), gen(), MEAN, STD)
    assert torch.allclose(full[1], A.test_transform(x_u8, 32, MEAN, STD), atol=1e-4)


@pytest.mark.slow  # the reference pipeline image by image: the longest unit test (25-135 s on 2 cores)
def test_reference_two_view_runs(x_u8):
    cfg = A.AugmentConfig()
    r1, r2 = reference_two_view(x_u8[:3], cfg, 32, MEAN, STD, seed=0)
    assert r1.shape == r2.shape == (3, 3, 32, 32) and r1.dtype == torch.float32
    s1, _ = reference_two_view(x_u8[:3], cfg, 32, MEAN, STD, seed=0)
    assert torch.equal(r1, s1)
    # the batched and the reference pipelines agree in distribution (loosely:
    # the per-image brightness factor makes the batch mean noisy, sd ~0.04 here)
    xs = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=gen(9))
    b1, _ = R.TwoViewAugment(cfg, 32, MEAN, STD)(xs, gen())
    q1, _ = reference_two_view(xs, cfg, 32, MEAN, STD)
    assert abs(b1.mean() - q1.mean()) < 0.15 and abs(b1.std() - q1.std()) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_two_view_cuda_matches_cpu(x_u8):
    aug = R.TwoViewAugment(A.AugmentConfig(), 32, MEAN, STD)
    c1, c2 = aug(x_u8, gen())
    g1, g2 = aug(x_u8.cuda(), gen())
    assert g1.device.type == "cuda"
    assert torch.allclose(g1.cpu(), c1, atol=1e-4) and torch.allclose(g2.cpu(), c2, atol=1e-4)
