"""Synthetic outliers: the training set of one epoch, ID images plus outliers.

docs/METHOD.md "Training recipe": the paper's synthetic outliers are the rotated
copies of every ID image (``rot``), or, with outlier exposure, random images of
the 300K random-images set (``oe``, ``oe_rot``); for MVTec AD, CutPaste and
CutPaste-scar copies (``cutpaste``, ``scar``, ``cutpaste_scar``, after the
CutPaste paper) or NSA Poisson-blended patches (``nsa``, after the NSA paper).
``ref_cutpaste_scar`` and ``ref_nsa`` are the FIRM reference code's own two
MVTec generators (older and later commits of Willtl/firm), reproduced detail by
detail; their facts list where they must differ from that code (``differences``).

Every entry of ``OUTLIERS`` is a class built as ``Cls(cfg, image_size)``, with
``cfg`` the config's ``outliers`` section (keys each class reads: ``oe_path``,
``oe_ratio``; other keys are ignored), and a method

    epoch(ids: uint8 (N, 3, S, S), generator) -> (images uint8 (M, 3, S, S),
                                                  labels int64 (M,))

that returns the whole training set of one epoch: the N ID images first
(label 0), then the outliers (label k >= 1 = outlier kind k; docs/DESIGN.md).

Class attributes (``copies`` and ``paired`` set at registration from the
source's facts, ``core/facts/method.py``, which also hold its ``differences``):

- ``deterministic``: every epoch yields the same set (the trainer builds it once);
- ``kinds``: the outlier labels produced, ``n_kinds = len(kinds)``;
- ``copies``: outliers per ID image, M = N (1 + copies) (``oe`` / ``oe_rot``:
  the class holds the default ratio 3, an instance its ``oe_ratio``);
- ``paired``: the outliers are made from the ID images, with the *pairing
  contract*: they are returned kind-major and aligned with the IDs, i.e. the
  outlier at row N + t N + j (row t N + j of the outliers) is made from ID
  image j (copy index t = 0 .. copies - 1). A "paired batch" of ID rows J is
  then rows J plus rows N + t N + J for every t. True for rot, cutpaste, scar,
  cutpaste_scar, nsa, ref_cutpaste_scar, ref_nsa; False for none, oe, oe_rot
  (their outliers are not made from the IDs);
- ``transforms_ids``: the first N rows are transformed copies of the input IDs
  rather than the inputs themselves (``ref_nsa`` colour-jitters them, as the
  reference does); callers must take the ID images from ``epoch``'s output.

Random draws use the explicit generator (drawn on its device, results moved to
the images' device); the same generator state gives the same epoch. The patch
sources loop over images in Python (MVTec training sets are a few hundred
images); all random parameters are drawn in one vectorised call first.
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

from firm_bench.core.facts.datasets import DATASETS
from firm_bench.core.facts.method import OUTLIERS as FACTS
from firm_bench.core.registry import Registry
from firm_bench.method.augment import _JITTER_OPS, _apply_jitter

__all__ = ["OUTLIERS", "OutlierSource", "load_oe_array", "poisson_blend", "OE_URL", "OE_ENV"]

OUTLIERS: Registry[type["OutlierSource"]] = Registry("outliers", facts=FACTS)


def _source(name: str):  # noqa: ANN202 (a class decorator)
    """Register an outlier source under ``name``, its ``copies`` and ``paired`` its declared ones (core/facts)."""

    def deco(cls: type["OutlierSource"]) -> type["OutlierSource"]:
        facts = FACTS.get(name)
        if facts is not None:  # else the registry refuses it
            cls.paired = facts.paired
            cls.copies = cls.copies if facts.copies == "oe_ratio" else facts.copies  # oe: per instance, the ratio
        return OUTLIERS.register(name)(cls)

    return deco


OE_URL = "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"
OE_ENV = DATASETS["oe"].root_env  # the OE file's own variable (core/facts/datasets.py)
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
    copies: ClassVar[int] = 1
    paired: ClassVar[bool] = True
    transforms_ids: ClassVar[bool] = False

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


@_source("none")
class NoOutliers(OutlierSource):
    """ID images only (e.g. NT-Xent without synthetic outliers)."""

    deterministic = True
    kinds = ()

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return ids[:0], torch.zeros(0, dtype=torch.int64)


@_source("rot")
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


@_source("oe")
class OutlierExposure(OutlierSource):
    """Outlier exposure (Hendrycks et al. 2018): OE images instead of rotated copies.

    Each epoch draws ``oe_ratio`` * N images (default 3 = one per rotated copy
    it replaces) uniformly with replacement from the OE set, label 1. The file
    is memory-mapped; rows are read in sorted order and put back in draw order.
    Images are resized (bilinear, antialias) when ``image_size`` is not the
    file's side (32).
    cfg keys: ``oe_path`` (None -> $FIRM_BENCH_OE_PATH), ``oe_ratio``.
    ``copies`` is ``oe_ratio`` on an instance (the class holds the default);
    not paired: the OE images are not made from the IDs.
    """

    copies = DEFAULT_OE_RATIO

    def __init__(self, cfg: Mapping[str, Any], image_size: int) -> None:
        super().__init__(cfg, image_size)
        self.path = self.cfg.get("oe_path")
        self.ratio = int(self.cfg.get("oe_ratio", DEFAULT_OE_RATIO) or DEFAULT_OE_RATIO)
        if self.ratio < 1:
            raise ValueError(f"outliers.oe_ratio={self.ratio}; expected an integer >= 1")
        self.copies = self.ratio  # type: ignore[misc]  # per instance: the configured ratio
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


@_source("oe_rot")
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


@_source("cutpaste")
class CutPaste(OutlierSource):
    """One CutPaste copy per ID image, label 1 (see ``cutpaste``)."""

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return cutpaste(ids, generator), torch.ones(ids.shape[0], dtype=torch.int64)


@_source("scar")
class Scar(OutlierSource):
    """One CutPaste-scar copy per ID image, label 2 (see ``scar``)."""

    kinds = (2,)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return scar(ids, generator), torch.full((ids.shape[0],), 2, dtype=torch.int64)


@_source("cutpaste_scar")
class CutPasteScar(OutlierSource):
    """docs/METHOD.md's MVTec recipe: per ID image one CutPaste copy (label 1) and
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
    return _solve_dirichlet(dst, guide)


def _solve_dirichlet(dst: Tensor, rhs: Tensor) -> Tensor:
    """Solve 4 f_p - sum_{q ~ p} f_q = rhs_p on the interior of a rectangle.

    dst: float (C, h, w), h, w >= 3, whose outer ring is the Dirichlet boundary
    (neighbours q on the ring take f_q = dst_q); rhs: (C, h - 2, w - 2).
    Exact, by the orthonormal DST-I (the 5-point Laplacian with zero boundary
    is diagonal in that basis). Returns float (C, h, w): the ring of dst and
    the solved interior, not clamped.
    """
    m, n = dst.shape[1] - 2, dst.shape[2] - 2
    ring = dst.clone()
    ring[:, 1:-1, 1:-1] = 0
    b = rhs + ring[:, :-2, 1:-1] + ring[:, 2:, 1:-1] + ring[:, 1:-1, :-2] + ring[:, 1:-1, 2:]
    Sm, Sn = _dst1_matrix(m, dst.dtype, dst.device), _dst1_matrix(n, dst.dtype, dst.device)
    jm = torch.arange(1, m + 1, dtype=dst.dtype, device=dst.device)
    jn = torch.arange(1, n + 1, dtype=dst.dtype, device=dst.device)
    lam = (4 - 2 * torch.cos(math.pi * jm / (m + 1)))[:, None] - 2 * torch.cos(math.pi * jn / (n + 1))[None, :]
    out = dst.clone()
    out[:, 1:-1, 1:-1] = Sm @ ((Sm @ b @ Sn) / lam) @ Sn
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


@_source("nsa")
class NSA(OutlierSource):
    """One NSA Poisson-blended copy per ID image, label 1 (see ``nsa``)."""

    mixed: ClassVar[bool] = False

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return nsa(ids, generator, mixed=self.mixed), torch.ones(ids.shape[0], dtype=torch.int64)


# ---------------------------------------------------------------- FIRM reference generators
#
# The two MVTec generators of the FIRM reference code (Willtl/firm), as its
# SyntheticOutlierDataset.__getitem__ (data.py) ran them: always on 256 x 256
# images (data.py ``_load_mvtec(size=256)``). Pixel-valued parameters below
# are at that size; other sizes scale them by S / 256 (stated per source).

REF_SIZE = 256  # the reference's MVTec training resolution (px)

# Older generator: data.py @ cb7556ea (SyntheticOutlierDataset.__init__ /
# __getitem__, MVTec branch), util.py CutPaste / CutPasteScar (@ 23c6ffbd,
# the stored version with the ``p`` argument that cb7556ea passes).
REF_CP_AREA = (0.02, 0.15)  # patch area / image area, uniform
REF_CP_RATIO = (0.3, 3.3)  # h / w, log-uniform
REF_SCAR_WIDTH = (2, 16)  # px at 256, random.randint (inclusive)
REF_SCAR_HEIGHT = (10, 25)  # px at 256, random.randint (inclusive)
REF_SCAR_ANGLE = (-45.0, 45.0)  # degrees, uniform; PIL rotate (counter-clockwise)
REF_SCAR_JITTER = 0.4  # ColorJitter(0.4, 0.4, 0.4, 0.4) of the scar patch (MVTec path @ cb7556ea)

# Later generator: data.py @ 0ecf0712 (SyntheticOutlierDataset.__getitem__,
# MVTec branch) calling util.py patch_ex / _patch_ex (@ aa8eb760) with its
# defaults (mode cv2.NORMAL_CLONE, num_patches 1, shift True, resize True,
# skip_background None, label_mode 'binary', gamma_params None).
REF_NSA_JITTER = 0.1  # ColorJitter(0.1, 0.1, 0.1, 0.1) of the ID image and of the other-image source
REF_NSA_P_OTHER = 0.5  # P(patch source = another (jittered) training image); else the image itself
REF_NSA_P_CUTPASTE = 0.5  # P(CutPaste patch geometry) in either branch; else NSA geometry
REF_NSA_WIDTH_PCT = ((0.05, 0.2), (0.05, 0.2))  # NSA geometry: half-width bounds / S (rows, columns)
REF_NSA_RESIZE_MEAN, REF_NSA_RESIZE_STD = 1.0, 0.5  # NSA geometry: scale ~ N(1, 0.5) ...
REF_NSA_RESIZE_BOUNDS = (0.7, 1.3)  # ... clipped to these bounds
REF_NSA_CP_AREA = (0.02, 0.15)  # CutPaste geometry: area / image area, uniform (half-widths: / 4)
REF_NSA_CP_ASPECT = ((0.3, 1.0), (1.0, 3.3))  # CutPaste geometry: h / w uniform in one, p 0.5 each
REF_NSA_MIN_MASK_PX = 50  # px at 256: fewer blend-mask pixels -> patch skipped (cv2 would fail)
REF_CV2_ERODE_PX = 3  # px at 256: cv2 seamlessClone erodes the mask (3x3 kernel, 3 iterations)


def _randn(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """N(0, 1) float64 drawn on the generator's device, returned on the CPU."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float64).cpu()


def _randint(u: Tensor | float, lo: int, hi: int) -> int:
    """numpy's randint(lo, hi): uniform integer in lo .. hi - 1 from u ~ U(0, 1)."""
    if hi <= lo:
        raise ValueError(f"empty integer range [{lo}, {hi})")
    return lo + int(_offset(torch.as_tensor(u, dtype=torch.float64), hi - lo - 1))


def _jitter_uint8(x: Tensor, factors: Tensor, order: Tensor, chunk: int = 32) -> Tensor:
    """Colour-jitter uint8 images (B, 3, H, W) with given factors / orders (B, 4), rounded to uint8.

    The same ops as ``_apply_jitter`` (torchvision's formulas), but at each of
    the 4 positions each op runs only on the images whose order names it (4
    ops per image instead of 16); per-image results are identical. In chunks.
    """
    out = torch.empty_like(x)
    factors, order = factors.to(x.device), order.to(x.device)
    for s in range(0, x.shape[0], chunk):
        y = x[s : s + chunk].float().div_(255.0)
        f, o = factors[s : s + chunk].to(y.dtype), order[s : s + chunk]
        for pos in range(4):
            for k, op in enumerate(_JITTER_OPS):
                sel = torch.nonzero(o[:, pos] == k).flatten()
                if sel.numel():
                    y[sel] = op(y[sel], f[sel, k])
        out[s : s + chunk] = y.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out


def _pil_rotate_bilinear(patch: Tensor, angle_deg: float) -> tuple[Tensor, Tensor]:
    """PIL's ``Image.rotate(angle, resample=BILINEAR, expand=True)`` of a (3, h, w) uint8 patch.

    Pillow's geometry: counter-clockwise by ``angle`` about the centre (w/2,
    h/2); inverse matrix [[cos a, sin a], [-sin a, cos a]] with a =
    -radians(angle mod 360), entries rounded to 15 decimals; expanded canvas
    nw = ceil(max x') - floor(min x') (nh alike) over the transformed corners;
    output pixel (x, y) samples the source at M (x + 0.5, y + 0.5) + t. A
    sample outside [0, w) x [0, h) is the fill 0; inside, bilinear between
    pixel centres with edge clamping, truncated to uint8. Returns the rotated
    patch (3, nh, nw) and its footprint (nh, nw) bool: the pixels where a
    rotated all-255 'L' mask is 255 (it is 0 elsewhere: binary).
    """
    _, h, w = patch.shape
    angle = angle_deg % 360.0
    if angle == 0.0:  # PIL returns a copy
        return patch.clone(), torch.ones((h, w), dtype=torch.bool, device=patch.device)
    a = -math.radians(angle)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]

    def tf(x: float, y: float) -> tuple[float, float]:
        return m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]

    m[2], m[5] = tf(-w / 2, -h / 2)
    m[2] += w / 2
    m[5] += h / 2
    xs, ys = zip(*(tf(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))))
    nw = math.ceil(max(xs)) - math.floor(min(xs))
    nh = math.ceil(max(ys)) - math.floor(min(ys))
    m[2], m[5] = tf(-(nw - w) / 2.0, -(nh - h) / 2.0)
    yy, xx = torch.meshgrid(
        torch.arange(nh, dtype=torch.float64) + 0.5, torch.arange(nw, dtype=torch.float64) + 0.5, indexing="ij"
    )
    xin = m[0] * xx + m[1] * yy + m[2]
    yin = m[3] * xx + m[4] * yy + m[5]
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    xs_, ys_ = xin - 0.5, yin - 0.5
    x0, y0 = xs_.floor(), ys_.floor()
    dx, dy = xs_ - x0, ys_ - y0
    x0, y0 = x0.long(), y0.long()
    xa, xb = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    ya, yb = y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    p = patch.cpu().double()
    top = p[:, ya, xa] + (p[:, ya, xb] - p[:, ya, xa]) * dx
    bot = p[:, yb, xa] + (p[:, yb, xb] - p[:, yb, xa]) * dx
    v = (top + (bot - top) * dy).floor_().clamp_(0, 255)
    v = torch.where(inside, v, torch.zeros_like(v))
    return v.to(torch.uint8).to(patch.device), inside.to(patch.device)


def ref_cutpaste(ids: Tensor, generator: torch.Generator) -> Tensor:
    """The older FIRM reference's CutPaste copy, one per image (util.py ``CutPaste``).

    Area A = U(0.02, 0.15) * S^2, ratio r log-uniform in (0.3, 3.3),
    h = round(sqrt(A r)) rows, w = round(sqrt(A / r)) columns (h <= 0.71 S,
    so the reference's first of 10 tries always fits). The h x w rectangle at
    a uniform position (i, j) is copied, unchanged (no colour jitter), to a
    uniform position among all the others (the reference redraws until the
    paste position differs from (i, j)); the patch holds the original pixels
    even where source and destination overlap.
    """
    n, _, S, _ = ids.shape
    u = _rand((n, 5), generator)
    area = S * S * (REF_CP_AREA[0] + (REF_CP_AREA[1] - REF_CP_AREA[0]) * u[:, 0])
    lo, hi = math.log(REF_CP_RATIO[0]), math.log(REF_CP_RATIO[1])
    r = torch.exp(lo + (hi - lo) * u[:, 1])
    h = torch.round(torch.sqrt(area * r)).long().clamp_(1, S)  # >= 1 from S = 7 on without the clamp
    w = torch.round(torch.sqrt(area / r)).long().clamp_(1, S)
    si, sj = _offset(u[:, 2], S - h), _offset(u[:, 3], S - w)
    cols = S - w + 1
    positions = (S - h + 1) * cols
    k = torch.minimum(torch.floor(u[:, 4] * (positions - 1)).long(), (positions - 2).clamp_min(0))
    k = k + (k >= si * cols + sj).long()  # skip the source position
    di, dj = k // cols, k % cols
    out = ids.clone()
    for t in range(n):
        if int(positions[t]) < 2:  # only one position: nothing to move (not reached for S >= 2)
            continue
        hh, ww, a, b, c, d = (int(v[t]) for v in (h, w, si, sj, di, dj))
        out[t, :, c : c + hh, d : d + ww] = ids[t, :, a : a + hh, b : b + ww]
    return out


def _ref_scar_draws(n: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
    """The random draws of ``ref_scar``: patch (h, w, i, j), angle, paste u's, jitter."""
    u = _rand((n, 7), generator)
    f = size / REF_SIZE
    w0 = REF_SCAR_WIDTH[0] + _offset(u[:, 0], REF_SCAR_WIDTH[1] - REF_SCAR_WIDTH[0])
    h0 = REF_SCAR_HEIGHT[0] + _offset(u[:, 1], REF_SCAR_HEIGHT[1] - REF_SCAR_HEIGHT[0])
    w = torch.round(w0 * f).long().clamp_(1, size)
    h = torch.round(h0 * f).long().clamp_(1, size)
    factors, order = _jitter_params(n, REF_SCAR_JITTER, generator)
    return {
        "h": h, "w": w,
        "i": _offset(u[:, 2], size - h), "j": _offset(u[:, 3], size - w),
        "angle": REF_SCAR_ANGLE[0] + (REF_SCAR_ANGLE[1] - REF_SCAR_ANGLE[0]) * u[:, 4],
        "u_paste": u[:, 5:7], "factors": factors, "order": order,
    }


def ref_scar(ids: Tensor, generator: torch.Generator) -> Tensor:
    """The older FIRM reference's CutPaste-scar copy, one per image (util.py ``CutPasteScar``).

    At 256 px: width randint(2, 16) and height randint(10, 25) pixels
    (inclusive), scaled by S / 256 (rounded, >= 1) at other sizes; the w x h
    patch at a uniform position is colour-jittered (ColorJitter 0.4 x 4),
    rotated by U(-45, 45) degrees with PIL's bilinear ``rotate(expand=True)``
    (``_pil_rotate_bilinear``), and pasted through the rotated mask (binary:
    only the rotated footprint changes) at a uniform position where the
    expanded canvas fits (cropped to the image if it is larger, which happens
    only below ~30 px).
    """
    n, _, S, _ = ids.shape
    d = _ref_scar_draws(n, S, generator)
    out = ids.clone()
    for t in range(n):
        hh, ww, a, b = (int(d[k][t]) for k in ("h", "w", "i", "j"))
        patch = _jitter_patch(ids[t, :, a : a + hh, b : b + ww], d["factors"][t], d["order"][t])
        rot, mask = _pil_rotate_bilinear(patch, float(d["angle"][t]))
        hc, wc = min(rot.shape[1], S), min(rot.shape[2], S)
        rot, mask = rot[:, :hc, :wc], mask[:hc, :wc]
        di, dj = int(_offset(d["u_paste"][t, 0], S - hc)), int(_offset(d["u_paste"][t, 1], S - wc))
        region = out[t, :, di : di + hc, dj : dj + wc]
        out[t, :, di : di + hc, dj : dj + wc] = torch.where(mask, rot, region)
    return out


@_source("ref_cutpaste_scar")
class RefCutPasteScar(OutlierSource):
    """The older FIRM reference MVTec generator: per ID image the original
    (label 0), a CutPaste copy (label 1) and a CutPaste-scar copy (label 2).

    Reference: Willtl/firm data.py @ cb7556ea, ``SyntheticOutlierDataset``
    (``__init__``: ``CutPaste(p=1.0, scale=(0.02, 0.15), ratio=(0.3, 3.3))``,
    ``CutPasteScar(p=1.0, width_range=(2, 16), height_range=(10, 25),
    rotation_range=(-45, 45), jitter_params=(0.4, 0.4, 0.4, 0.4))``;
    ``__getitem__`` MVTec branch: [sample, cutpaste(sample),
    scar(sample)], bin labels [1, -1, -1], labels [0, 1, 2]), with util.py
    ``CutPaste.get_params/forward`` and ``CutPasteScar.get_params/forward``
    (@ 23c6ffbd). Copy 1: ``ref_cutpaste`` (no colour jitter); copy 2:
    ``ref_scar``. Both copies are made from the unjittered ID image; the IDs
    are returned unchanged. This is cb7556ea's generator (scar jitter 0.4).
    The commit whose models.py trained SupCon on binary labels, 2558887f,
    made its scars with jitter 0.1 (as the later 0ecf0712's data.py still
    does in ``_expose_samples_with_labels`` and its commented-out MVTec
    transforms) and resized with a bicubic filter: a SupCon run with this
    source matches no commit the reference ran, and every table and figure
    of one says so (``paper.labels.UNMATCHED_COMBINATIONS``).
    """

    kinds = (1, 2)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        n = ids.shape[0]
        out = torch.cat([ref_cutpaste(ids, generator), ref_scar(ids, generator)])
        return out, _labels([(1, n), (2, n)], out.device)


def _cv2_normal_clone(dst: Tensor, src: Tensor, erode: int) -> Tensor:
    """What OpenCV's ``seamlessClone(NORMAL_CLONE)`` computes on a rectangular ROI.

    dst, src: float (C, h, w), the destination ROI and the source under it,
    h, w >= 3; the ROI's mask is all set. OpenCV erodes that mask by ``erode``
    pixels (3x3 kernel, 3 iterations: 3 px, the zero ring around the ROI
    counts), takes forward-difference gradients g(x)_p = x_{p+1} - x_p and the
    guidance G = m g(src) + (1 - m) g(dst) (m = eroded mask at p), and solves
    the Poisson equation sum_{q ~ p} f_q - 4 f_p = div G (backward
    differences) on the interior, the ROI's ring fixed to dst. Returns float
    (C, h, w), not clamped.
    """
    _, h, w = dst.shape
    m = torch.zeros((h, w), dtype=dst.dtype, device=dst.device)
    if h > 2 * erode and w > 2 * erode:
        m[erode : h - erode, erode : w - erode] = 1
    gx = torch.zeros_like(dst)
    gy = torch.zeros_like(dst)
    gx[:, :, :-1] = m[:, :-1] * (src[:, :, 1:] - src[:, :, :-1]) + (1 - m[:, :-1]) * (dst[:, :, 1:] - dst[:, :, :-1])
    gy[:, :-1] = m[:-1] * (src[:, 1:] - src[:, :-1]) + (1 - m[:-1]) * (dst[:, 1:] - dst[:, :-1])
    div = (gx[:, 1:-1, 1:-1] - gx[:, 1:-1, :-2]) + (gy[:, 1:-1, 1:-1] - gy[:, :-2, 1:-1])
    return _solve_dirichlet(dst, -div)


def _ref_nsa_geometry(u: Tensor, z: float, size: int, cutpaste: bool) -> dict[str, int]:
    """Patch geometry of util.py ``_patch_ex`` (@ aa8eb760) for one image.

    u: 7 uniforms (sizes 0-2, source centre 3-4, destination centre 5-6),
    z: one N(0, 1) (the resize scale). Returns the
    source rectangle rows [r0s, r1s) x columns [c0s, c1s), the patch size
    (H, W) after the resize and the destination top-left (r0, c0) (shift=True).

    CutPaste geometry: area_ratio = U(0.02, 0.15) / 4, aspect U(0.3, 1) or
    U(1, 3.3) (p 0.5 each), half-widths p1 = rint(sqrt(area_ratio aspect) S),
    p2 = rint(area_ratio S^2 / p1), centre randint(p, S - p), rectangle
    [c - p, c + p); no resize. NSA geometry: half-width bounds round(0.05 S) ..
    round(0.2 S), half-widths randint(lo, hi), centre randint(lo, S - lo),
    rectangle clipped to the image; resize by scale = clip(N(1, 0.5), 0.7,
    1.3): H = clip(scale h, lo, hi), W = clip(int(H / h w), lo, hi), H =
    clip(int(W / w h), lo, hi) (the half-width bounds bound the full size
    there, as in the code). Destination centre randint(H // 2 + 1, S - H // 2 - 1)
    (columns alike), top-left centre - H // 2.
    """
    S = size
    if cutpaste:
        area_ratio = (REF_NSA_CP_AREA[0] + (REF_NSA_CP_AREA[1] - REF_NSA_CP_AREA[0]) * float(u[0])) / 4.0
        lo_a, hi_a = REF_NSA_CP_ASPECT[0] if float(u[1]) < 0.5 else REF_NSA_CP_ASPECT[1]
        aspect = lo_a + (hi_a - lo_a) * float(u[2])
        p1 = int(round(min(max(math.sqrt(area_ratio * aspect * S * S), 0.0), S)))
        p2 = int(round(min(max(area_ratio * S * S / p1, 0.0), S)))
        c1, c2 = _randint(u[3], p1, S - p1), _randint(u[4], p2, S - p2)
        r0s, r1s, c0s, c1s = c1 - p1, c1 + p1, c2 - p2, c2 + p2
        H, W = r1s - r0s, c1s - c0s
    else:
        (a1, b1), (a2, b2) = REF_NSA_WIDTH_PCT
        lo1, hi1, lo2, hi2 = round(a1 * S), round(b1 * S), round(a2 * S), round(b2 * S)
        p1, p2 = _randint(u[0], lo1, hi1), _randint(u[1], lo2, hi2)
        c1, c2 = _randint(u[3], lo1, S - lo1), _randint(u[4], lo2, S - lo2)
        r0s, r1s = max(c1 - p1, 0), min(c1 + p1, S)
        c0s, c1s = max(c2 - p2, 0), min(c2 + p2, S)
        hs, ws = r1s - r0s, c1s - c0s
        lo_s, hi_s = REF_NSA_RESIZE_BOUNDS
        scale = min(max(REF_NSA_RESIZE_MEAN + REF_NSA_RESIZE_STD * z, lo_s), hi_s)
        Hf = min(max(scale * hs, lo1), hi1)
        W = int(min(max(int(Hf / hs * ws), lo2), hi2))
        H = int(min(max(int(W / ws * hs), lo1), hi1))
    cy, cx = _randint(u[5], H // 2 + 1, S - H // 2 - 1), _randint(u[6], W // 2 + 1, S - W // 2 - 1)
    return {"r0s": r0s, "r1s": r1s, "c0s": c0s, "c1s": c1s, "H": H, "W": W, "r0": cy - H // 2, "c0": cx - W // 2}


REF_NSA_MIN_IMAGE_SIZE = 24  # below ~17 px the reference's integer ranges can be empty (or divide by zero)


def _ref_patch_ex(dest: Tensor, src: Tensor, geo: Mapping[str, int], size: int) -> Tensor:
    """One util.py ``patch_ex`` outlier: ``src``'s patch Poisson-blended into ``dest``.

    dest, src: uint8 (3, S, S). The source rectangle is resized to (H, W)
    (bilinear, half-pixel centres, as cv2.resize INTER_LINEAR) when the NSA
    geometry asks; the blend mask is 255 on the H x W rectangle with its
    border zeroed. If it has fewer than 50 (S/256)^2 pixels the patch is
    skipped (dest returned unchanged). cv2.seamlessClone's placement: the
    mask's bounding box (H - 2) x (W - 2) centred at the point patch_ex passes
    lands at rows r0 + 1 .. r0 + H - 2 and columns c0 + 1 + (W mod 2) ..
    (one column to the right for odd W); that ROI is solved by
    ``_cv2_normal_clone`` with the source pixels patch[1:-1, 1:-1] and the
    mask eroded by round(3 S / 256) px, and truncated to uint8 (as OpenCV's
    result; checked against OpenCV 4.10 and 5.0). Only the ROI's interior,
    (H - 4) x (W - 4) pixels, can change.
    """
    f = size / REF_SIZE
    H, W, r0, c0 = geo["H"], geo["W"], geo["r0"], geo["c0"]
    patch = src[:, geo["r0s"] : geo["r1s"], geo["c0s"] : geo["c1s"]].double()
    if tuple(patch.shape[1:]) != (H, W):
        patch = F.interpolate(patch[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        patch = patch.round_().clamp_(0, 255)
    if (H - 2) * (W - 2) < REF_NSA_MIN_MASK_PX * f * f or H < 5 or W < 5:
        return dest.clone()  # skipped (reference), or a ROI without interior (nothing to solve)
    y0, x0 = r0 + 1, c0 + 1 + W % 2
    roi = dest[:, y0 : y0 + H - 2, x0 : x0 + W - 2].double()
    blended = _cv2_normal_clone(roi, patch[:, 1 : H - 1, 1 : W - 1], round(REF_CV2_ERODE_PX * f))
    out = dest.clone()
    out[:, y0 : y0 + H - 2, x0 : x0 + W - 2] = blended.floor_().clamp_(0, 255).to(torch.uint8)  # cv2 truncates
    return out


def _ref_nsa_draws(n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """The random draws of ``RefNSA`` for n images, in a fixed order.

    u: (n, 10) uniforms: 0 other-image branch (< 0.5), 1 which image, 2
    CutPaste geometry (< 0.5), 3-9 the geometry's (``_ref_nsa_geometry``);
    z: (n,) normals (resize scale); jitter factors / orders (n, 4) of the ID
    images and of the other-image sources.
    """
    u = _rand((n, 10), generator)
    z = _randn((n,), generator)
    id_factors, id_order = _jitter_params(n, REF_NSA_JITTER, generator)
    src_factors, src_order = _jitter_params(n, REF_NSA_JITTER, generator)
    return {
        "other": u[:, 0] < REF_NSA_P_OTHER, "source": _offset(u[:, 1], n - 1),
        "cutpaste": u[:, 2] < REF_NSA_P_CUTPASTE, "u_geo": u[:, 3:], "z": z,
        "id_factors": id_factors, "id_order": id_order, "src_factors": src_factors, "src_order": src_order,
    }


@_source("ref_nsa")
class RefNSA(OutlierSource):
    """The later FIRM reference MVTec generator: per ID image its colour-jittered
    copy (the ID sample, label 0) and one Poisson-blended patch of it (label 1).

    Reference: Willtl/firm data.py @ 0ecf0712, ``SyntheticOutlierDataset.__getitem__``
    MVTec branch: sample = ColorJitter(0.1, 0.1, 0.1, 0.1)(image); with p 0.5
    the patch source is ColorJitter(0.1 x 4)(random.choice(samples)) (uniform
    over all N training images, the image itself included, with its own
    jitter draw) and ``patch_ex(sample, source, cutpaste_patch_generation=c)``,
    else ``patch_ex(sample, cutpaste_patch_generation=c)`` (the source is the
    jittered image itself); c ~ Bernoulli(0.5) in either branch; bin labels
    [1, -1], labels [0, 1]. util.py ``patch_ex`` / ``_patch_ex`` @ aa8eb760
    with its defaults: one patch, cv2.NORMAL_CLONE, width_bounds_pct ((0.05,
    0.2), (0.05, 0.2)) (half-widths), shift True, resize True with bounds (0.7,
    1.3), skip_background None, so min_object_pct / min_overlap_pct and the
    200 placement attempts never act (the first draw is accepted); geometry in
    ``_ref_nsa_geometry``, blend in ``_ref_patch_ex``.

    ``epoch`` returns the *jittered* ID images (``transforms_ids``): the ID set
    differs every epoch, as the reference's did, and each outlier row j is
    the patched version of ID row j. At 256 px (the reference's size) a patch
    is never skipped (sides >= 13 px); at 32 px the NSA-geometry patches are
    at most 6 px (round(0.2 S) bounds the resized size), so their blend
    changes at most 2 x 2 pixels and most are no-ops; CutPaste-geometry
    patches still change pixels.
    """

    transforms_ids = True

    def __init__(self, cfg: Mapping[str, Any], image_size: int) -> None:
        super().__init__(cfg, image_size)
        if self.image_size < REF_NSA_MIN_IMAGE_SIZE:
            raise ValueError(
                f"outliers.name=ref_nsa needs image_size >= {REF_NSA_MIN_IMAGE_SIZE} (got {self.image_size}); "
                "the reference ran 256 px"
            )

    def _make(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(jittered IDs, outliers), both uint8 (N, 3, S, S)."""
        n, S = ids.shape[0], self.image_size
        d = _ref_nsa_draws(n, generator)
        jittered = _jitter_uint8(ids, d["id_factors"], d["id_order"])
        other = torch.nonzero(d["other"]).flatten()
        sources = jittered.clone()
        if other.numel():
            k = d["source"][other].to(ids.device)
            sources[other.to(ids.device)] = _jitter_uint8(ids[k], d["src_factors"][other], d["src_order"][other])
        out = torch.empty_like(jittered)
        for t in range(n):
            geo = _ref_nsa_geometry(d["u_geo"][t], float(d["z"][t]), S, bool(d["cutpaste"][t]))
            out[t] = _ref_patch_ex(jittered[t], sources[t], geo, S)
        return jittered, out

    def epoch(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The jittered ID images (label 0) followed by their patched copies (label 1)."""
        _check_ids(ids, self.image_size)
        jittered, out = self._make(ids, generator)
        return torch.cat([jittered, out]), _labels([(0, ids.shape[0]), (1, ids.shape[0])], ids.device)

    def outliers(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The patched copies only (their IDs, jittered, come from ``epoch``)."""
        _check_ids(ids, self.image_size)
        out = self._make(ids, generator)[1]
        return out, torch.ones(ids.shape[0], dtype=torch.int64, device=ids.device)
