"""Batched two-view augmentation, the test transform and the test crop ensemble.

docs/METHOD.md "Training recipe": each training sample gets two views, each made by
  RandomResizedCrop(size, scale (0.25, 1), ratio (1, 1))
  -> ColorJitter(0.4, 0.4, 0.4, 0.4) (always)
  -> GaussianBlur(kernel 3, sigma 0.1-2.0) with p = 0.75
  -> per-dataset normalisation (no flip, no grayscale).
docs/METHOD.md "Scores": bank and test features use Resize(int(1.125 * size)) ->
CenterCrop(size); the ``ens`` score adds RandomResizedCrop(size, scale
(0.55, 1), ratio 1) crops of each test image.

Everything here works on whole batches of tensors (B, C, H, W) on any device:
no PIL and no per-image Python loop, so the same code is the GPU fast path.
Every random draw uses an explicit ``torch.Generator``: parameters are drawn
on the generator's device (use a CPU generator for results that do not depend
on the device) and then moved to the data's device.

Differences from torchvision, all deliberate and small:
- crops are resampled with one batched bilinear ``grid_sample`` (an
  affine grid per sample) without antialiasing. torchvision's RandomResizedCrop antialiases, which only
  matters when a crop is *larger* than ``size`` (downsampling); the training
  images arrive already resized to the run's image size, so the crops of the
  paper recipe are only ever upsampled and the two agree.
- the colour jitter works on float images in [0, 1] (torchvision's recipe
  jitters uint8 PIL images, rounding after every op).
The per-step training augmentation (``TwoViewAugment``, drawing from a
generator as it goes) and the slow per-image torchvision version live with
the tests that compare against them (``tests/helpers/reference.py``); the
training loop augments with ``run.engine.draws.DeviceAugment``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AugmentConfig",
    "CropParams",
    "crop_boxes",
    "ensemble_crops",
    "normalize",
    "random_resized_crop",
    "sample_crop_params",
    "test_transform",
    "to_float",
]

# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale.
_GRAY = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """The ``augment`` config section (defaults = the paper recipe, docs/METHOD.md).

    crop_scale: RandomResizedCrop area fraction range.
    crop_ratio: RandomResizedCrop aspect-ratio range (w / h); (1, 1) = square.
    jitter: ColorJitter strengths (brightness, contrast, saturation, hue).
    jitter_p: probability that a view is colour-jittered.
    blur_kernel: odd Gaussian-blur kernel size (1 = no blur).
    blur_sigma: blur sigma range.
    blur_p: probability that a view is blurred.
    """

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
    jitter_p: float = 1.0
    blur_kernel: int = 3
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.75

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"augment.{key}={getattr(self, key)!r}: {why}")

        for key, n in (("crop_scale", 2), ("crop_ratio", 2), ("jitter", 4), ("blur_sigma", 2)):
            if len(getattr(self, key)) != n:
                raise bad(key, f"expected {n} numbers")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise bad("crop_scale", "expected 0 < min <= max <= 1")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise bad("crop_ratio", "expected 0 < min <= max")
        if any(v < 0 for v in self.jitter) or self.jitter[3] > 0.5:
            raise bad("jitter", "expected non-negative strengths and hue <= 0.5")
        for key in ("jitter_p", "blur_p"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "expected a probability in [0, 1]")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise bad("blur_kernel", "expected an odd positive kernel size")
        lo, hi = self.blur_sigma
        if not 0 < lo <= hi:
            raise bad("blur_sigma", "expected 0 < min <= max")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentConfig":
        """Build from the config's ``augment`` dict (lists become tuples).

        Missing keys keep the defaults; an unknown key raises ``ValueError``.
        """
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown augment key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
            )
        kw = {k: tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v for k, v in d.items()}
        return cls(**kw)


class CropParams(NamedTuple):
    """Per-sample crop boxes in pixels, int64 tensors of shape (B,) (``crop_boxes``: (..., B))."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor


# ---------------------------------------------------------------- helpers


def _rand(shape: Sequence[int], generator: torch.Generator, device: torch.device | str, dtype=torch.float32) -> Tensor:
    """U(0, 1) drawn with ``generator`` on its own device, then moved to ``device``."""
    return torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


def _check_images(x: Tensor, name: str = "x") -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a batch of RGB images (B, 3, H, W); got shape {tuple(x.shape)}")


def to_float(x_uint8: Tensor) -> Tensor:
    """uint8 images (B, 3, H, W) in [0, 255] -> float32 in [0, 1] (x / 255)."""
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {x_uint8.dtype}; images travel as uint8 (docs/DESIGN.md)")
    return x_uint8.to(torch.float32).div_(255.0)


def normalize(x_float01: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean[c]) / std[c] per channel; x float (B, C, H, W) in [0, 1]."""
    m = torch.as_tensor(mean, dtype=x_float01.dtype, device=x_float01.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x_float01.dtype, device=x_float01.device).view(1, -1, 1, 1)
    return (x_float01 - m) / s


# ---------------------------------------------------------------- crops


def sample_crop_params(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float],
    ratio: Sequence[float],
    generator: torch.Generator,
    device: torch.device | str | None = None,
    n_tries: int = 10,
) -> CropParams:
    """RandomResizedCrop boxes for ``n`` samples, as torchvision's get_params.

    Per try: area = H * W * U(scale), aspect r = exp(U(log ratio)),
    w = round(sqrt(area * r)), h = round(sqrt(area / r)); a try is valid when
    0 < w <= W and 0 < h <= H, and then top ~ U{0..H-h}, left ~ U{0..W-w}.
    Vectorised: ``n_tries`` candidates per sample are drawn at once and the
    first valid one is kept; a sample with none falls back to torchvision's
    central crop (the whole image clipped to the ratio range).
    """
    device = generator.device if device is None else device
    g_dev = generator.device
    u = _rand((n_tries, n, 2), generator, g_dev, torch.float64)
    loc = _rand((n, 2), generator, g_dev, torch.float64)
    return CropParams(*(t.to(device) for t in crop_boxes(u, loc, height, width, scale, ratio)))


def crop_boxes(
    u: Tensor, loc: Tensor, height: int, width: int, scale: Sequence[float], ratio: Sequence[float]
) -> CropParams:
    """The boxes of :func:`sample_crop_params` from its uniforms, for any leading batch dimensions.

    u: float64 (..., n_tries, n, 2), per try U(0, 1) for the area and the log
    aspect; loc: float64 (..., n, 2), U(0, 1) for top and left. Returns
    int64 (..., n) top, left, height, width. ``speed.draw_epoch`` passes a
    whole epoch's uniforms at once (leading dimensions: steps, views).
    """
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[..., 1])
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.int8).argmax(dim=-2, keepdim=True)  # first valid try (0 when none); tries: dim -2
    w = w.gather(-2, first).squeeze(-2)
    h = h.gather(-2, first).squeeze(-2)
    ok = valid.any(dim=-2)
    # torchvision's fallback: central crop with the ratio clipped to the range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))
    top = torch.floor(loc[..., 0] * (height - h + 1)).long().clamp_max_(height - h)
    left = torch.floor(loc[..., 1] * (width - w + 1)).long().clamp_max_(width - w)
    top = torch.where(ok, top, (height - h) // 2)
    left = torch.where(ok, left, (width - w) // 2)
    return CropParams(top, left, h, w)


def resized_crop(x: Tensor, params: CropParams, size: int) -> Tensor:
    """Crop box b of each sample and resample it to size x size, bilinear.

    Same result as torchvision's ``resized_crop`` (crop, then bilinear
    ``interpolate(align_corners=False)``) when upsampling: output pixel k
    samples input index left - 0.5 + w (k + 0.5) / size, clamped to the crop
    [left, left + w - 1] (so no pixel outside the box leaks in). Done as one
    batched ``grid_sample`` (align_corners=False) over a per-sample affine
    grid; no antialiasing when a crop is downsampled.
    """
    _, _, H, W = x.shape
    top, left, h, w = (t.to(device=x.device, dtype=x.dtype)[:, None] for t in params)
    k = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size

    def axis(start: Tensor, extent: Tensor, n: int) -> Tensor:
        s = start + k * extent - 0.5  # source index, pixel centres at integers
        s = torch.minimum(torch.maximum(s, start), start + extent - 1)
        return (2 * s + 1) / n - 1  # normalised coordinate (align_corners=False)

    gx, gy = axis(left, w, W), axis(top, h, H)  # (B, size) each
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(
    x: Tensor,
    size: int,
    scale: Sequence[float],
    ratio: Sequence[float],
    generator: torch.Generator,
) -> Tensor:
    """RandomResizedCrop on a float batch (B, C, H, W) -> (B, C, size, size).

    Boxes from ``sample_crop_params`` (one per sample), resampled by
    ``resized_crop``.
    """
    _check_images(x)
    params = sample_crop_params(x.shape[0], x.shape[2], x.shape[3], scale, ratio, generator, x.device)
    return resized_crop(x, params, size)


# ---------------------------------------------------------------- colour


def _grayscale(x: Tensor) -> Tensor:
    """Luma (B, 1, H, W) = 0.2989 R + 0.587 G + 0.114 B."""
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """clamp(f * a + (1 - f) * b, 0, 1) with a per-sample factor f (B,)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0.0, 1.0)


def _brightness(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x), f)


def _contrast(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)


def _saturation(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _grayscale(x), f)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> HSV, all channels in [0, 1] (torchvision's formulas)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    crd = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


# vpqt index per sextant i = floor(6 h) for R, G and B
_HSV_SELECT = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(1)
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i.long().remainder_(6)
    p = (v * (1 - s)).clamp_(0, 1)
    q = (v * (1 - s * f)).clamp_(0, 1)
    t = (v * (1 - s * (1 - f))).clamp_(0, 1)
    vpqt = torch.stack((v, p, q, t), dim=1)  # (B, 4, H, W)
    select = torch.tensor(_HSV_SELECT, device=x.device)[:, i]  # (3, B, H, W)
    return vpqt.gather(1, select.movedim(0, 1))


def _hue(x: Tensor, f: Tensor) -> Tensor:
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + f.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1))


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


def _apply_jitter(
    x: Tensor,
    factors: Tensor,
    order: Tensor,
    active: Sequence[bool] = (True, True, True, True),
) -> Tensor:
    """Colour jitter with given per-sample factors and op order.

    x: float (B, 3, H, W) in [0, 1]. factors: (B, 4) = brightness, contrast,
    saturation factors and the hue shift. order: (B, 4) int, a permutation of
    (0 brightness, 1 contrast, 2 saturation, 3 hue) per sample (torchvision's
    ``fn_idx``). ``active[k]`` False skips op k (torchvision skips an op whose
    strength is 0).
    Formulas (torchvision): brightness f x; contrast f x + (1 - f) mean(gray);
    saturation f x + (1 - f) gray; each clamped to [0, 1]; hue: RGB -> HSV,
    h <- (h + shift) mod 1, -> RGB. Vectorised over the random order: at each
    of the 4 positions every active op is computed on the batch and each
    sample keeps the one its order names (torch.where).
    """
    factors = factors.to(device=x.device, dtype=x.dtype)
    order = order.to(x.device)
    for pos in range(4):
        out = x
        for k, op in enumerate(_JITTER_OPS):
            if active[k]:
                sel = (order[:, pos] == k).view(-1, 1, 1, 1)
                out = torch.where(sel, op(x, factors[:, k]), out)
        x = out
    return x


# ---------------------------------------------------------------- blur


def _gaussian_kernel1d(kernel_size: int, sigma: Tensor) -> Tensor:
    """(B, k) kernels as torchvision: softmax(-(t / sigma)^2),
    t = linspace(-lim, lim, k), lim = (k - 1) / (2 sqrt 2), i.e.
    exp(-d^2 / (2 sigma^2)) over integer offsets d, normalised."""
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    t = torch.linspace(-lim, lim, kernel_size, device=sigma.device, dtype=sigma.dtype)
    return torch.softmax(-((t[None, :] / sigma[:, None]) ** 2), dim=1)


def _blur(x: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with per-sample sigma (B,), reflect padding.

    One grouped conv per direction over (1, B*C, H, W) with per-sample kernels.
    """
    if kernel_size == 1:
        return x
    B, C, H, W = x.shape
    k = _gaussian_kernel1d(kernel_size, sigma.to(device=x.device, dtype=x.dtype))  # (B, k)
    k = k.repeat_interleave(C, dim=0)  # (B*C, k)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, B * C, H, W), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(B * C, 1, 1, kernel_size), groups=B * C)
    y = F.conv2d(y, k.view(B * C, 1, kernel_size, 1), groups=B * C)
    return y.view(B, C, H, W)


# ---------------------------------------------------------------- pipelines


TEST_ZOOM = 1.125  # the reference's test transform: Resize(int(1.125 size)) -> CenterCrop(size)


def _resize_center_crop(x: Tensor, size: int, zoom: float = TEST_ZOOM) -> Tensor:
    """Resize(int(zoom size)) (shorter side, bilinear, antialias) -> CenterCrop(size).

    zoom 1.125 is the reference's test transform; zoom 1 is a plain resize of a
    square image (the reference's MVTec evaluator; ``DatasetInfo.eval_zoom``).
    """
    if zoom < 1:
        raise ValueError(f"zoom must be >= 1 (Resize(zoom * size) then CenterCrop(size)), got {zoom}")
    r = int(zoom * size)
    H, W = x.shape[-2:]
    if H <= W:
        nh, nw = r, int(r * W / H)
    else:
        nh, nw = int(r * H / W), r
    if (nh, nw) != (H, W):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def test_transform(
    x_uint8: Tensor, size: int, mean: Sequence[float], std: Sequence[float], zoom: float = TEST_ZOOM
) -> Tensor:
    """Bank / test transform (docs/METHOD.md "Scores"): Resize(int(zoom size)) ->
    CenterCrop(size) -> normalise (zoom 1.125; MVTec 1). uint8 (B, 3, H, W) ->
    float32 (B, 3, size, size)."""
    _check_images(x_uint8, "x_uint8")
    return normalize(_resize_center_crop(to_float(x_uint8), size, zoom), mean, std)


test_transform.__test__ = False  # not a pytest test despite the name


def ensemble_crops(
    x_uint8: Tensor,
    size: int,
    n_crops: int,
    scale: Sequence[float] = (0.55, 1.0),
    generator: torch.Generator | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    zoom: float = TEST_ZOOM,
) -> Tensor:
    """Test crops of the ``ens`` scores (docs/METHOD.md "Scores").

    Resize(int(zoom size)) -> CenterCrop(size) -> RandomResizedCrop(size,
    scale, ratio (1, 1)), ``n_crops`` independent crops per image, normalised.
    Returns float32 (n_crops, B, 3, size, size). ``generator``, ``mean`` and
    ``std`` are required (keyword or positional).
    """
    if generator is None or mean is None or std is None:
        raise ValueError("ensemble_crops needs generator, mean and std")
    _check_images(x_uint8, "x_uint8")
    base = _resize_center_crop(to_float(x_uint8), size, zoom)
    B = base.shape[0]
    crops = random_resized_crop(base.repeat(n_crops, 1, 1, 1), size, scale, (1.0, 1.0), generator)
    return normalize(crops, mean, std).view(n_crops, B, 3, size, size)
