"""Synthetic outliers: the training set of one epoch, ID images plus outliers.

METHOD.md "Training recipe": the paper's synthetic outliers are the rotated
copies of every ID image (``rot``), or, with outlier exposure, random images of
the 300K random-images set (``oe``, ``oe_rot``); for MVTec AD, CutPaste and
CutPaste-scar copies (``cutpaste``, ``scar``, ``cutpaste_scar``) or NSA
Poisson-blended patches (``nsa``).

Every entry of ``OUTLIERS`` is a class built as ``Cls(cfg, image_size)``, with
``cfg`` the config's ``outliers`` section (keys each class reads: ``oe_path``,
``oe_ratio``; other keys are ignored), and a method

    epoch(ids: uint8 (N, 3, S, S), generator) -> (images uint8 (M, 3, S, S),
                                                  labels int64 (M,))

that returns the whole training set of one epoch: the N ID images first
(label 0), then the outliers (label k >= 1 = outlier kind k; docs/DESIGN.md).
Class attributes: ``deterministic`` (every epoch yields the same set, so the
trainer builds it once), ``kinds`` (the outlier labels produced) and
``n_kinds = len(kinds)``.

Random draws use the explicit generator (drawn on its device, results moved to
the images' device). cutpaste / scar / nsa loop over images in Python (MVTec
training sets are a few hundred images); all random parameters are drawn in
one vectorised call first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from firm_bench.augment import _apply_jitter
from firm_bench.registry import Registry

__all__ = ["OUTLIERS", "OutlierSource", "load_oe_array", "poisson_blend", "OE_URL", "OE_ENV"]

OUTLIERS: Registry[type["OutlierSource"]] = Registry("outliers")

OE_URL = "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"
OE_ENV = "FIRM_BENCH_OE_PATH"
DEFAULT_OE_RATIO = 3  # = the schema's outliers.oe_ratio default

# CutPaste (Li et al. 2021) patch geometry and patch colour jitter.
CUTPASTE_AREA = (0.02, 0.15)
CUTPASTE_ASPECT = (0.3, 3.3)
CUTPASTE_JITTER = 0.1
# CutPaste-scar geometry, in pixels at 256 x 256 (scaled to the image size).
SCAR_WIDTH = (2.0, 16.0)
SCAR_HEIGHT = (10.0, 25.0)
SCAR_ANGLE = (-45.0, 45.0)


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """U(0, 1) float64 drawn on the generator's device, returned on the CPU."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).cpu()


def _check_ids(ids: Tensor, image_size: int) -> None:
    if ids.dtype != torch.uint8 or ids.ndim != 4 or ids.shape[1] != 3:
        raise ValueError(
            f"ids must be uint8 images (N, 3, S, S); got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if ids.shape[2] != image_size or ids.shape[3] != image_size:
        raise ValueError(
            f"ids are {ids.shape[2]}x{ids.shape[3]} but the outlier source was built for "
            f"image_size={image_size}; resize the dataset to the run's image size"
        )


def _labels(counts: list[tuple[int, int]], device: torch.device) -> Tensor:
    """[(label, count), ...] -> int64 label vector."""
    return torch.cat([torch.full((n,), lab, dtype=torch.int64, device=device) for lab, n in counts])


class OutlierSource:
    """Base class; see the module docstring for the contract."""

    deterministic: ClassVar[bool] = False
    kinds: ClassVar[tuple[int, ...]] = (1,)
    n_kinds: ClassVar[int] = 1

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.n_kinds = len(cls.kinds)

    def __init__(self, cfg: Mapping[str, Any], image_size: int) -> None:
        self.cfg = dict(cfg)
        self.image_size = int(image_size)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The outliers only: uint8 (M - N, 3, S, S) and int64 labels >= 1."""
        raise NotImplementedError

    def epoch(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """ID images (label 0) followed by this epoch's outliers."""
        _check_ids(ids, self.image_size)
        out, labels = self.outliers(ids, generator)
        return torch.cat([ids, out.to(ids.device)]), torch.cat(
            [torch.zeros(ids.shape[0], dtype=torch.int64, device=ids.device), labels.to(ids.device)]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"


@OUTLIERS.register("none")
class NoOutliers(OutlierSource):
    """ID images only (e.g. NT-Xent without synthetic outliers)."""

    deterministic = True
    kinds = ()

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return ids[:0], torch.zeros(0, dtype=torch.int64)


@OUTLIERS.register("rot")
class Rotations(OutlierSource):
    """The paper's synthetic outliers: rot90 / rot180 / rot270 copies, labels 1 / 2 / 3.

    ``torch.rot90(x, k, dims=(2, 3))``: k quarter turns counter-clockwise, the
    same as the reference's ``np.rot90`` on (H, W). The set is 4N images and
    identical every epoch.
    """

    deterministic = True
    kinds = (1, 2, 3)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        n = ids.shape[0]
        rots = [torch.rot90(ids, k, dims=(2, 3)) for k in (1, 2, 3)]
        return torch.cat(rots), _labels([(1, n), (2, n), (3, n)], ids.device)


# ---------------------------------------------------------------- outlier exposure


def load_oe_array(path: str | os.PathLike | None) -> np.ndarray:
    """Open the OE set (``300K_random_images.npy``) as a read-only memmap.

    ``path`` None falls back to $FIRM_BENCH_OE_PATH. Expected: uint8 of shape
    (N_oe, 32, 32, 3) (any N_oe >= 1 and square side accepted: (N, H, W, 3)).
    """
    if path is None:
        path = os.environ.get(OE_ENV)
    if not path:
        raise FileNotFoundError(
            f"outlier exposure needs the 300K random images: download {OE_URL} and set the config "
            f"key outliers.oe_path or the environment variable {OE_ENV} to the file"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"OE file {str(p)!r} (outliers.oe_path / ${OE_ENV}) not found; download it from {OE_URL}"
        )
    try:
        arr = np.load(p, mmap_mode="r")
    except Exception as e:  # not an .npy, pickled object array, ...
        raise ValueError(f"cannot read OE file {str(p)!r} as a .npy array ({e}); expected uint8 (N, 32, 32, 3)") from e
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[1] != arr.shape[2] or arr.shape[0] < 1:
        raise ValueError(
            f"OE file {str(p)!r} has shape {arr.shape}; expected (N, 32, 32, 3) uint8 images (channels last)"
        )
    if arr.dtype != np.uint8:
        raise ValueError(f"OE file {str(p)!r} has dtype {arr.dtype}; expected uint8 of shape (N, 32, 32, 3)")
    return arr


def _resize_uint8(x: Tensor, size: int) -> Tensor:
    """uint8 (B, 3, H, W) -> (B, 3, size, size), bilinear with antialias, rounded."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


@OUTLIERS.register("oe")
class OutlierExposure(OutlierSource):
    """Outlier exposure (Hendrycks et al. 2018): OE images instead of rotated copies.

    Each epoch draws ``oe_ratio`` * N images (default 3 = one per rotated copy
    it replaces) uniformly with replacement from the OE set, label 1. The file
    is memory-mapped; rows are read in sorted order and put back in draw order.
    Images are resized (bilinear, antialias) when ``image_size`` is not the
    file's side (32).
    cfg keys: ``oe_path`` (None -> $FIRM_BENCH_OE_PATH), ``oe_ratio``.
    """

    def __init__(self, cfg: Mapping[str, Any], image_size: int) -> None:
        super().__init__(cfg, image_size)
        self.path = self.cfg.get("oe_path")
        self.ratio = int(self.cfg.get("oe_ratio", DEFAULT_OE_RATIO) or DEFAULT_OE_RATIO)
        if self.ratio < 1:
            raise ValueError(f"outliers.oe_ratio={self.ratio}; expected an integer >= 1")
        self.array = load_oe_array(self.path)

    def _draw(self, n: int, generator: torch.Generator) -> Tensor:
        m = self.ratio * n
        idx = torch.floor(_rand((m,), generator) * self.array.shape[0]).long().clamp_max_(self.array.shape[0] - 1)
        order = torch.argsort(idx)
        rows = np.ascontiguousarray(self.array[idx[order].numpy()])  # sorted reads from the memmap
        imgs = torch.empty((m, *rows.shape[1:]), dtype=torch.uint8)
        imgs[order] = torch.from_numpy(rows)
        return _resize_uint8(imgs.permute(0, 3, 1, 2).contiguous(), self.image_size)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = self._draw(ids.shape[0], generator)
        return out, torch.ones(out.shape[0], dtype=torch.int64)


@OUTLIERS.register("oe_rot")
class OutlierExposureRotated(OutlierExposure):
    """The paper's "FIRM w/ OE (rot.)": OE images, each also rotated.

    Our reading of "rotations are applied to synthetic outliers during
    training": every drawn OE image is rotated by a random multiple of 90
    degrees (0, 90, 180 or 270, uniform; counter-clockwise), label 1.
    """

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = self._draw(ids.shape[0], generator)
        k = torch.floor(_rand((out.shape[0],), generator) * 4).long().clamp_max_(3)
        for q in (1, 2, 3):
            sel = k == q
            if sel.any():
                out[sel] = torch.rot90(out[sel], q, dims=(2, 3))
        return out, torch.ones(out.shape[0], dtype=torch.int64)


# ---------------------------------------------------------------- CutPaste


def _patch_sizes(u_area: Tensor, u_aspect: Tensor, size: int, min_side: int = 1) -> tuple[Tensor, Tensor]:
    """CutPaste patch (h, w): area ~ U(0.02, 0.15) * S^2, aspect w/h log-uniform in (0.3, 3.3)."""
    area = size * size * (CUTPASTE_AREA[0] + (CUTPASTE_AREA[1] - CUTPASTE_AREA[0]) * u_area)
    lo, hi = math.log(CUTPASTE_ASPECT[0]), math.log(CUTPASTE_ASPECT[1])
    aspect = torch.exp(lo + (hi - lo) * u_aspect)
    w = torch.round(torch.sqrt(area * aspect)).long().clamp_(min_side, size)
    h = torch.round(torch.sqrt(area / aspect)).long().clamp_(min_side, size)
    return h, w


def _offset(u: Tensor, room: Tensor | int) -> Tensor:
    """Uniform integer in 0..room (room >= 0)."""
    room = torch.as_tensor(room)
    return torch.minimum(torch.floor(u * (room + 1)).long(), room)


def _jitter_params(n: int, strength: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """ColorJitter(strength, strength, strength, strength) factors and orders, (n, 4) each."""
    u = _rand((n, 4), generator)
    lo = torch.tensor([max(0.0, 1 - strength)] * 3 + [-strength], dtype=torch.float64)
    hi = torch.tensor([1 + strength] * 3 + [strength], dtype=torch.float64)
    order = torch.argsort(_rand((n, 4), generator), dim=1)
    return (lo + (hi - lo) * u).float(), order


def _jitter_patch(patch: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """Colour-jitter one uint8 patch (3, h, w) with given factors (4,) and order (4,)."""
    x = patch.float().div_(255.0)[None]
    y = _apply_jitter(x, factors[None], order[None])[0]
    return y.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def cutpaste(ids: Tensor, generator: torch.Generator) -> Tensor:
    """One CutPaste copy per image (Li et al. 2021, "CutPaste").

    A rectangle of area U(0.02, 0.15) * S^2 and aspect ratio log-uniform in
    (0.3, 3.3) is cut at a random location, colour-jittered (ColorJitter 0.1,
    as CutPaste's code) and pasted at another random location of the same
    image. Only the pasted rectangle changes.
    """
    n, _, S, _ = ids.shape
    u = _rand((n, 6), generator)
    h, w = _patch_sizes(u[:, 0], u[:, 1], S)
    sy, sx = _offset(u[:, 2], S - h), _offset(u[:, 3], S - w)
    dy, dx = _offset(u[:, 4], S - h), _offset(u[:, 5], S - w)
    factors, order = _jitter_params(n, CUTPASTE_JITTER, generator)
    out = ids.clone()
    for i, (hh, ww, a, b, c, d) in enumerate(zip(*(t.tolist() for t in (h, w, sy, sx, dy, dx)))):
        patch = ids[i, :, a : a + hh, b : b + ww]
        out[i, :, c : c + hh, d : d + ww] = _jitter_patch(patch, factors[i], order[i])
    return out


def _rotated_patch(patch: Tensor, angle_deg: float) -> tuple[Tensor, Tensor]:
    """Rotate a (3, h, w) patch about its centre with an expanded canvas.

    Nearest-neighbour (PIL's ``rotate(expand=True)`` default). Returns the
    rotated patch (3, Hc, Wc) and the mask (Hc, Wc) of canvas pixels that came
    from the patch.
    """
    _, h, w = patch.shape
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    wc = max(1, math.ceil(abs(w * c) + abs(h * s) - 1e-6))
    hc = max(1, math.ceil(abs(w * s) + abs(h * c) - 1e-6))
    v, u = torch.meshgrid(
        torch.arange(hc, dtype=torch.float64) + 0.5 - hc / 2,
        torch.arange(wc, dtype=torch.float64) + 0.5 - wc / 2,
        indexing="ij",
    )
    x = c * u + s * v + w / 2  # inverse rotation into patch coordinates
    y = -s * u + c * v + h / 2
    mask = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    ix = x.floor().long().clamp_(0, w - 1).to(patch.device)
    iy = y.floor().long().clamp_(0, h - 1).to(patch.device)
    return patch[:, iy, ix], mask.to(patch.device)


def scar(ids: Tensor, generator: torch.Generator) -> Tensor:
    """One CutPaste-scar copy per image (Li et al. 2021).

    A thin patch, width U(2, 16) and height U(10, 25) pixels at 256 x 256
    (scaled by S / 256, at least 1 pixel: at 32 x 32 a scar is only 1-2 x 1-3
    pixels), colour-jittered (0.1), rotated by U(-45, 45) degrees (nearest,
    expanded canvas) and pasted through its rotation mask at a random location.
    Only pixels inside the pasted canvas change.
    """
    n, _, S, _ = ids.shape
    u = _rand((n, 7), generator)
    f = S / 256.0
    w = torch.round((SCAR_WIDTH[0] + (SCAR_WIDTH[1] - SCAR_WIDTH[0]) * u[:, 0]) * f).long().clamp_(1, S)
    h = torch.round((SCAR_HEIGHT[0] + (SCAR_HEIGHT[1] - SCAR_HEIGHT[0]) * u[:, 1]) * f).long().clamp_(1, S)
    angle = SCAR_ANGLE[0] + (SCAR_ANGLE[1] - SCAR_ANGLE[0]) * u[:, 2]
    sy, sx = _offset(u[:, 3], S - h), _offset(u[:, 4], S - w)
    factors, order = _jitter_params(n, CUTPASTE_JITTER, generator)
    out = ids.clone()
    for i in range(n):
        hh, ww, a, b = int(h[i]), int(w[i]), int(sy[i]), int(sx[i])
        patch = _jitter_patch(ids[i, :, a : a + hh, b : b + ww], factors[i], order[i])
        rot, mask = _rotated_patch(patch, float(angle[i]))
        hc, wc = min(rot.shape[1], S), min(rot.shape[2], S)
        rot, mask = rot[:, :hc, :wc], mask[:hc, :wc]
        dy, dx = int(_offset(u[i, 5], S - hc)), int(_offset(u[i, 6], S - wc))
        region = out[i, :, dy : dy + hc, dx : dx + wc]
        out[i, :, dy : dy + hc, dx : dx + wc] = torch.where(mask, rot, region)
    return out


@OUTLIERS.register("cutpaste")
class CutPaste(OutlierSource):
    """One CutPaste copy per ID image, label 1 (see ``cutpaste``)."""

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return cutpaste(ids, generator), torch.ones(ids.shape[0], dtype=torch.int64)


@OUTLIERS.register("scar")
class Scar(OutlierSource):
    """One CutPaste-scar copy per ID image, label 2 (see ``scar``)."""

    kinds = (2,)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return scar(ids, generator), torch.full((ids.shape[0],), 2, dtype=torch.int64)


@OUTLIERS.register("cutpaste_scar")
class CutPasteScar(OutlierSource):
    """METHOD.md's MVTec recipe: per ID image one CutPaste copy (label 1) and
    one CutPaste-scar copy (label 2); 3N images."""

    kinds = (1, 2)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        n = ids.shape[0]
        out = torch.cat([cutpaste(ids, generator), scar(ids, generator)])
        return out, _labels([(1, n), (2, n)], out.device)


# ---------------------------------------------------------------- NSA


def _dst1_matrix(m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Orthonormal DST-I matrix (m, m): sqrt(2/(m+1)) sin(pi (j+1)(k+1) / (m+1)); S @ S = I."""
    j = torch.arange(1, m + 1, dtype=dtype, device=device)
    return math.sqrt(2.0 / (m + 1)) * torch.sin(math.pi * j[:, None] * j[None, :] / (m + 1))


def poisson_blend(dst: Tensor, src: Tensor, mixed: bool = False) -> Tensor:
    """Poisson image editing (Perez et al. 2003) on a rectangle.

    dst, src: float (C, h, w), h, w >= 3. The outer ring of the rectangle is
    the Dirichlet boundary (kept from ``dst``); the interior f solves the
    discrete Poisson equation with the guidance field v:
        4 f_p - sum_{q ~ p} f_q = sum_{q ~ p} v_pq   (q on the ring: f_q = dst_q)
    v_pq = src_p - src_q (seamless cloning) or, with ``mixed``, whichever of
    src_p - src_q and dst_p - dst_q is larger in magnitude (mixed gradients).
    Solved exactly with the discrete sine transform (the 5-point Laplacian
    with zero Dirichlet boundary is diagonal in the DST-I basis).
    Returns float (C, h, w), not clamped.
    """
    C, h, w = dst.shape
    if h < 3 or w < 3:
        raise ValueError(f"poisson_blend needs a patch of at least 3x3 pixels, got {h}x{w}")
    m, n = h - 2, w - 2
    inner = (slice(None), slice(1, -1), slice(1, -1))
    shifts = (
        (slice(None), slice(0, -2), slice(1, -1)),
        (slice(None), slice(2, None), slice(1, -1)),
        (slice(None), slice(1, -1), slice(0, -2)),
        (slice(None), slice(1, -1), slice(2, None)),
    )
    guide = torch.zeros((C, m, n), dtype=dst.dtype, device=dst.device)
    for q in shifts:
        gs = src[inner] - src[q]
        if mixed:
            gd = dst[inner] - dst[q]
            gs = torch.where(gd.abs() > gs.abs(), gd, gs)
        guide += gs
    ring = dst.clone()
    ring[inner] = 0
    b = guide + sum(ring[q] for q in shifts)
    Sm, Sn = _dst1_matrix(m, dst.dtype, dst.device), _dst1_matrix(n, dst.dtype, dst.device)
    jm = torch.arange(1, m + 1, dtype=dst.dtype, device=dst.device)
    jn = torch.arange(1, n + 1, dtype=dst.dtype, device=dst.device)
    lam = (4 - 2 * torch.cos(math.pi * jm / (m + 1)))[:, None] - 2 * torch.cos(math.pi * jn / (n + 1))[None, :]
    f = Sm @ ((Sm @ b @ Sn) / lam) @ Sn
    out = dst.clone()
    out[inner] = f
    return out


def nsa(ids: Tensor, generator: torch.Generator, mixed: bool = False) -> Tensor:
    """One NSA-style copy per image (after Schlüter et al. 2022, "Natural
    Synthetic Anomalies").

    For image i: a source image j != i (uniform; i itself when N = 1), a patch
    of CutPaste geometry (area U(0.02, 0.15) S^2, aspect log-uniform (0.3,
    3.3), at least 3x3) cut at a random location of j, and Poisson-blended
    (``poisson_blend``, seamless cloning; ``mixed`` for mixed gradients) at a
    random location of i. Only the interior of the destination rectangle
    changes.
    Simplifications against NSA's code: no patch rescaling, no object masks
    or minimum-overlap rules, no intensity-change labelling/rejection, one
    rectangular patch per image.
    """
    n, _, S, _ = ids.shape
    u = _rand((n, 7), generator)
    h, w = _patch_sizes(u[:, 0], u[:, 1], S, min_side=min(3, S))
    sy, sx = _offset(u[:, 2], S - h), _offset(u[:, 3], S - w)
    dy, dx = _offset(u[:, 4], S - h), _offset(u[:, 5], S - w)
    src = (torch.arange(n) + 1 + torch.floor(u[:, 6] * max(n - 1, 0)).long().clamp_max_(max(n - 2, 0))) % n
    if n == 1:
        src = torch.zeros(1, dtype=torch.long)
    out = ids.clone()
    for i in range(n):
        hh, ww = int(h[i]), int(w[i])
        if hh < 3 or ww < 3:
            continue
        a, b, c, d, j = int(sy[i]), int(sx[i]), int(dy[i]), int(dx[i]), int(src[i])
        patch = ids[j, :, a : a + hh, b : b + ww].float()
        region = ids[i, :, c : c + hh, d : d + ww].float()
        blended = poisson_blend(region, patch, mixed=mixed)
        out[i, :, c : c + hh, d : d + ww] = blended.round_().clamp_(0, 255).to(torch.uint8)
    return out


@OUTLIERS.register("nsa")
class NSA(OutlierSource):
    """One NSA Poisson-blended copy per ID image, label 1 (see ``nsa``)."""

    mixed: ClassVar[bool] = False

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return nsa(ids, generator, mixed=self.mixed), torch.ones(ids.shape[0], dtype=torch.int64)
