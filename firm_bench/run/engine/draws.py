"""An epoch's augmentation parameters drawn up front, and the augmentation that takes them.

``draw_epoch`` draws, on the CPU, every random number the two-view
augmentation (``TwoViewAugment``, kept in ``tests/helpers/reference.py``) would draw during an
epoch, in the same order; ``DeviceAugment`` then augments on the device
with no host input. Together they equal ``TwoViewAugment`` driven by the
same generator, bit for bit (tests/run/test_engine.py).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from firm_bench.method.augment import (
    AugmentConfig,
    CropParams,
    _blur,
    _grayscale,
    _rgb_to_hsv,
    crop_boxes,
    resized_crop,
    to_float,
)
from firm_bench.run.engine.options import to_device

N_TRIES = 10  # RandomResizedCrop tries per sample, as augment.sample_crop_params


class EpochDraws(NamedTuple):
    """Every random parameter of the two views of every step of one epoch.

    S steps, B samples; the two views side by side, view v of sample b at
    column v * B + b (the batch of both views is augmented at once):
    crop: int64 (S, 4, 2B) top, left, height, width of the crop box;
    factors: float32 (S, 2B, 4) brightness, contrast, saturation factors, hue shift;
    order: int64 (S, 2B, 4) the jitter ops' order per sample (a permutation of 0..3);
    sigma: float32 (S, 2B) blur sigma;
    apply: bool (S, 2, 2B) [jitter applied, blur applied].
    A step's slice (``at``) has the same fields without the leading S.
    """

    crop: Tensor
    factors: Tensor
    order: Tensor
    sigma: Tensor
    apply: Tensor

    def at(self, step: int) -> "EpochDraws":
        return EpochDraws(*(t[step] for t in self))

    def select(self, step: Tensor) -> "EpochDraws":
        """The slice of a step given as a device tensor of shape (1,) (no host read)."""
        return EpochDraws(*(t.index_select(0, step)[0] for t in self))

    @staticmethod
    def concat(parts: Sequence["EpochDraws"]) -> "EpochDraws":
        """Several runs' draws side by side on the sample axis (run r's 2B columns after run r-1's).

        Works for whole epochs and for one step's slices alike (the sample
        axis is the last but for ``factors`` and ``order``).
        """
        axes = (-1, -2, -2, -1, -1)  # crop, factors, order, sigma, apply
        return EpochDraws(*(torch.cat([p[i] for p in parts], dim=axis) for i, axis in enumerate(axes)))

    def to(self, device: torch.device, non_blocking: bool = False) -> "EpochDraws":
        return EpochDraws(*(to_device(t, device, non_blocking) for t in self))


def draw_epoch(
    generator: torch.Generator, steps: int, batch: int, cfg: AugmentConfig, height: int, width: int
) -> EpochDraws:
    """All augmentation parameters of an epoch, drawn on the CPU from ``generator``.

    The uniforms are drawn step by step and view by view in the order and
    dtypes of ``TwoViewAugment`` (crop: tries then location, float64; jitter:
    factors, order keys, coin, float32; blur: sigma, coin), so the parameters
    equal those of the per-step augmentation driven by the same generator.
    The arithmetic is then done once for the whole epoch.
    """
    if generator.device.type != "cpu":
        raise ValueError("draw_epoch needs a CPU generator (its draws must not depend on the device)")
    f64 = torch.float64
    u_crop = torch.empty((steps, 2, N_TRIES, batch, 2), dtype=f64)
    u_loc = torch.empty((steps, 2, batch, 2), dtype=f64)
    u_jit = torch.empty((steps, 2, batch, 4))
    u_ord = torch.empty((steps, 2, batch, 4))
    u_coin = torch.empty((steps, 2, 3, batch))  # jitter coin, blur sigma, blur coin
    for s in range(steps):
        for v in range(2):
            u_crop[s, v].uniform_(generator=generator)
            u_loc[s, v].uniform_(generator=generator)
            u_jit[s, v].uniform_(generator=generator)
            u_ord[s, v].uniform_(generator=generator)
            for j in range(3):
                u_coin[s, v, j].uniform_(generator=generator)
    b, c, sat, hue = cfg.jitter
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - sat), -hue])
    hi = torch.tensor([1 + b, 1 + c, 1 + sat, hue])
    s_lo, s_hi = cfg.blur_sigma
    both = (steps, 2 * batch)  # (S, 2, B) -> (S, 2B): view 1's samples, then view 2's
    crop = torch.stack(crop_boxes(u_crop, u_loc, height, width, cfg.crop_scale, cfg.crop_ratio), dim=-2)  # (S, 2, 4, B)
    return EpochDraws(
        crop=crop.transpose(1, 2).reshape(steps, 4, 2 * batch),
        factors=(lo + (hi - lo) * u_jit).reshape(*both, 4),
        order=torch.argsort(u_ord, dim=-1).reshape(*both, 4),
        sigma=(s_lo + (s_hi - s_lo) * u_coin[:, :, 1]).reshape(both),
        apply=torch.stack((u_coin[:, :, 0].reshape(both) < cfg.jitter_p, u_coin[:, :, 2].reshape(both) < cfg.blur_p), dim=1),
    )


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV (each (B, H, W) in [0, 1]) -> RGB (B, 3, H, W), torchvision's sextant formulas.

    The same values as ``augment._hsv_to_rgb`` (which gathers from a table it
    builds with ``torch.tensor(..., device)``: a host-to-device copy each call);
    here the sextant picks v, p, q or t by ``torch.where``.
    """
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i - 6 * torch.floor(i / 6)  # sextant 0..5 (h = 1 wraps to 0)
    p = (v * (1 - s)).clamp_(0, 1)
    q = (v * (1 - s * f)).clamp_(0, 1)
    t = (v * (1 - s * (1 - f))).clamp_(0, 1)
    i0, i1, i2, i3, i4, i5 = (i == k for k in range(6))
    r = torch.where(i0 | i5, v, torch.where(i1, q, torch.where(i4, t, p)))  # v q p p t v
    g = torch.where(i1 | i2, v, torch.where(i0, t, torch.where(i3, q, p)))  # t v v q p p
    b = torch.where(i3 | i4, v, torch.where(i2, t, torch.where(i5, q, p)))  # p p t v v q
    return torch.stack((r, g, b), dim=1)


def _hue(x: Tensor, shift: Tensor) -> Tensor:
    """Hue rotation by ``shift`` (B,) turns: RGB -> HSV, h <- (h + shift) mod 1, -> RGB."""
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, hsv[:, 1], hsv[:, 2])


class DeviceAugment:
    """``TwoViewAugment`` with its random parameters given (:class:`EpochDraws`).

    Every op runs on the images' device with no host input, so a step can be
    captured in a CUDA graph; both views are one batch. The result equals
    ``TwoViewAugment`` driven by the generator the draws came from. The colour jitter applies, at each of
    its four positions, one blend f x + (1 - f) b (b = 0, mean gray or gray:
    brightness, contrast, saturation) and the hue rotation only where the
    sample's order puts it; on the CPU the hue is computed on those samples
    only (exact, elementwise), on a GPU on all of them (no host read of the
    selection).
    """

    def __init__(
        self, cfg: AugmentConfig, size: int, mean: Sequence[float], std: Sequence[float], device: torch.device
    ) -> None:
        self.cfg, self.size = cfg, int(size)
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.active = tuple(bool(s > 0) for s in cfg.jitter)
        self.hue_on_subset = torch.device(device).type == "cpu"

    def both(self, x_uint8: Tensor, d: EpochDraws) -> Tensor:
        """Both views as one batch (2B, 3, size, size): view 1 of every image, then view 2.

        The two views go through each op together: half the kernel launches
        of two separate passes, each op per sample as before (same numbers).
        """
        return self.views(torch.cat([x_uint8, x_uint8]), d)

    def views(self, x2_uint8: Tensor, d: EpochDraws) -> Tensor:
        """The augmented views (N, 3, size, size) of uint8 images already laid out as the draws' columns.

        Column n of the draws augments row n of ``x2_uint8``; every op works
        per sample, so a batch of several runs' [view 1; view 2] blocks with
        their draws concatenated column-wise (a fused pack) gives each run's
        views exactly as :meth:`both` gives them run by run. ``mean`` and
        ``std`` may be per sample, (N, 3, 1, 1) (runs with their own
        normalisation).
        """
        x = to_float(x2_uint8)
        x = resized_crop(x, CropParams(*d.crop), self.size)
        if any(self.active):
            x = torch.where(d.apply[0].view(-1, 1, 1, 1), self._jitter(x, d.factors, d.order), x)
        x = torch.where(d.apply[1].view(-1, 1, 1, 1), _blur(x, self.cfg.blur_kernel, d.sigma), x)
        return (x - self.mean) / self.std

    def _jitter(self, x: Tensor, factors: Tensor, order: Tensor) -> Tensor:
        """ColorJitter with per-sample factors (B, 4) and op order (B, 4), as augment._apply_jitter."""
        on_b, on_c, on_s, on_h = self.active
        zero = x.new_zeros(())
        for pos in range(4):
            o = order[:, pos]
            sel = [(o == k) & on for k, on in enumerate(self.active)]
            out = x
            if on_b or on_c or on_s:
                gray = _grayscale(x)
                base = torch.where(
                    sel[1].view(-1, 1, 1, 1),
                    gray.mean(dim=(1, 2, 3), keepdim=True),
                    torch.where(sel[2].view(-1, 1, 1, 1), gray, zero),
                )
                f = factors.gather(1, o[:, None]).view(-1, 1, 1, 1)
                blended = (f * x + (1 - f) * base).clamp_(0.0, 1.0)
                out = torch.where((sel[0] | sel[1] | sel[2]).view(-1, 1, 1, 1), blended, x)
            if on_h:
                if self.hue_on_subset:
                    idx = sel[3].nonzero().squeeze(1)
                    if idx.numel():
                        out = out.index_copy(0, idx, _hue(x.index_select(0, idx), factors[idx, 3]))
                else:
                    out = torch.where(sel[3].view(-1, 1, 1, 1), _hue(x, factors[:, 3]), out)
            x = out
        return x
