"""Tests of firm_bench/method/outliers.py: the registry contract and each generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from firm_bench.core.errors import UnknownNameError
from firm_bench.method import outliers as O

S = 32


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    # smooth-ish random images, so Poisson blending has something to preserve
    x = torch.rand(10, 3, 8, 8, generator=gen(1))
    x = torch.nn.functional.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def oe_file(tmp_path_factory) -> tuple[str, np.ndarray]:
    arr = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("oe") / "300K_random_images.npy"
    np.save(path, arr)
    return str(path), arr


def build(name: str, oe_file, size: int = S, **cfg):
    return O.OUTLIERS.get(name)({"name": name, "oe_path": oe_file[0], **cfg}, size)


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("name", O.OUTLIERS.names())
def test_contract(name, ids, oe_file):
    src = build(name, oe_file)
    images, labels = src.epoch(ids, gen())
    n = ids.shape[0]
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert images.shape[1:] == (3, S, S) and images.shape[0] == labels.shape[0] >= n
    if type(src).transforms_ids:
        assert images[:n].shape == ids.shape and not torch.equal(images[:n], ids)
    else:
        assert torch.equal(images[:n], ids)
    assert (labels[:n] == 0).all()
    assert (labels[n:] >= 1).all()
    assert set(labels[n:].tolist()) == set(type(src).kinds)
    assert type(src).n_kinds == len(type(src).kinds) and isinstance(type(src).deterministic, bool)
    assert images.shape[0] == n * (1 + src.copies)
    assert isinstance(type(src).paired, bool) and isinstance(type(src).transforms_ids, bool)
    out, out_labels = src.outliers(ids, gen())
    assert torch.equal(out, images[n:]) and torch.equal(out_labels, labels[n:])
    again = src.epoch(ids, gen())
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)
    other = src.epoch(ids, gen(1))
    if type(src).deterministic:
        assert torch.equal(other[0], images)
    elif name != "none":
        assert not torch.equal(other[0], images)


def test_registry_names_and_unknown():
    expected = {"none", "rot", "oe", "oe_rot", "cutpaste", "scar", "cutpaste_scar", "nsa", "ref_cutpaste_scar", "ref_nsa"}
    assert expected <= set(O.OUTLIERS.names())
    with pytest.raises(UnknownNameError, match="valid: "):
        O.OUTLIERS.get("rotation")


def test_ids_checked(oe_file):
    src = build("rot", oe_file)
    with pytest.raises(ValueError, match="uint8"):
        src.epoch(torch.zeros(2, 3, S, S), gen())
    with pytest.raises(ValueError, match="image_size"):
        src.epoch(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), gen())


# ---------------------------------------------------------------- rot


def test_rot_content_and_labels(ids, oe_file):
    src = build("rot", oe_file)
    assert type(src).deterministic and type(src).n_kinds == 3
    images, labels = src.epoch(ids, gen())
    n = ids.shape[0]
    assert images.shape[0] == 4 * n
    assert labels.tolist() == [0] * n + [1] * n + [2] * n + [3] * n
    hwc = ids.permute(0, 2, 3, 1).numpy()
    for k in (1, 2, 3):
        block = images[k * n : (k + 1) * n].permute(0, 2, 3, 1).numpy()
        # counter-clockwise quarter turns, as the reference's np.rot90
        assert np.array_equal(block, np.rot90(hwc, k, axes=(1, 2)))
    x = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2).repeat(1, 3, 1, 1)  # [[0, 1], [2, 3]]
    rot90 = src.epoch(torch.nn.functional.pad(x, (0, S - 2, 0, S - 2)), gen())[0][1, 0]
    # counter-clockwise: the top-left block lands bottom-left, itself turned CCW
    assert rot90[S - 2 :, :2].tolist() == [[1, 3], [0, 2]]


def test_none_is_id_only(ids, oe_file):
    images, labels = build("none", oe_file).epoch(ids, gen())
    assert torch.equal(images, ids) and (labels == 0).all() and type(build("none", oe_file)).n_kinds == 0


# ---------------------------------------------------------------- OE


def _rows_in(images: torch.Tensor, arr: np.ndarray) -> bool:
    pool = {a.tobytes() for a in arr}
    return all(img.permute(1, 2, 0).contiguous().numpy().tobytes() in pool for img in images)


def test_oe_draws_from_file(ids, oe_file):
    src = build("oe", oe_file)
    assert isinstance(src.array, np.memmap)  # opened with mmap_mode="r"
    images, labels = src.epoch(ids, gen())
    n = ids.shape[0]
    assert images.shape == (4 * n, 3, S, S) and labels.tolist() == [0] * n + [1] * (3 * n)
    assert _rows_in(images[n:], oe_file[1])
    assert len({im.numpy().tobytes() for im in images[n:]}) > 10  # many different OE images
    images2, _ = build("oe", oe_file, oe_ratio=1).epoch(ids, gen())
    assert images2.shape[0] == 2 * n


def test_oe_rot_rotates_oe_images(ids, oe_file):
    images, labels = build("oe_rot", oe_file).epoch(ids, gen())
    n = ids.shape[0]
    assert (labels[n:] == 1).all()
    rotated = np.concatenate([np.rot90(oe_file[1], k, axes=(1, 2)) for k in range(4)])
    assert _rows_in(images[n:], rotated)
    assert not _rows_in(images[n:], oe_file[1])  # some were rotated


def test_oe_resizes_to_image_size(oe_file):
    ids64 = torch.zeros(3, 3, 64, 64, dtype=torch.uint8)
    images, _ = build("oe", oe_file, size=64).epoch(ids64, gen())
    assert images.shape == (12, 3, 64, 64) and images.dtype == torch.uint8


def test_oe_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(O.OE_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="300K_random_images.npy.*oe_path"):
        O.OUTLIERS.get("oe")({"name": "oe"}, S)
    missing = tmp_path / "nope.npy"
    with pytest.raises(FileNotFoundError, match="nope.npy.*hendrycks"):
        O.OUTLIERS.get("oe")({"oe_path": str(missing)}, S)
    monkeypatch.setenv(O.OE_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        O.OUTLIERS.get("oe")({}, S)
    for bad, what in [
        (np.zeros((5, 32, 32), np.uint8), r"\(5, 32, 32\)"),
        (np.zeros((5, 3, 32, 32), np.uint8), r"expected \(N, 32, 32, 3\)"),
        (np.zeros((5, 32, 32, 3), np.float32), "float32"),
    ]:
        p = tmp_path / "bad.npy"
        np.save(p, bad)
        with pytest.raises(ValueError, match=f"bad.npy.*{what}|{what}.*bad.npy"):
            O.OUTLIERS.get("oe")({"oe_path": str(p)}, S)


def test_oe_env_var(oe_file, monkeypatch, ids):
    monkeypatch.setenv(O.OE_ENV, oe_file[0])
    images, _ = O.OUTLIERS.get("oe")({"name": "oe", "oe_path": None}, S).epoch(ids, gen())
    assert images.shape[0] == 4 * ids.shape[0]


# ---------------------------------------------------------------- patches


def _changed_box(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int] | None:
    """Height and width of the bounding box of pixels where a and b differ."""
    diff = (a != b).any(dim=0)
    if not diff.any():
        return None
    ys, xs = torch.nonzero(diff, as_tuple=True)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def _max_cutpaste_area(size: int) -> float:
    # area 0.15 S^2 plus the rounding of both sides (<= 0.5 (w + h) + 0.25)
    return 0.15 * size * size + 0.5 * (2 * size) + 0.25


@pytest.mark.parametrize("size", [32, 64])
def test_cutpaste_changes_one_bounded_box(size):
    x = torch.randint(0, 256, (40, 3, size, size), dtype=torch.uint8, generator=gen(3))
    out = O.cutpaste(x, gen())
    changed = 0
    for a, b in zip(out, x):
        box = _changed_box(a, b)
        if box is not None:
            changed += 1
            assert box[0] * box[1] <= _max_cutpaste_area(size)
            assert box[0] * box[1] >= 1
    assert changed >= 38  # an unchanged copy needs the patch pasted back onto itself


@pytest.mark.slow  # many draws of the PIL scar
def test_scar_is_thin_and_bounded():
    x = torch.randint(0, 256, (40, 3, 256, 256), dtype=torch.uint8, generator=gen(4))
    out = O.scar(x, gen())
    for a, b in zip(out, x):
        box = _changed_box(a, b)
        assert box is not None
        # a w x h patch (w <= 16, h <= 25) rotated by <= 45 degrees spans
        # |w cos| + |h sin| <= sqrt(w^2 + h^2) < 30 pixels
        assert max(box) <= 30
        assert int((a != b).any(0).sum()) <= 16 * 25 + 2 * (16 + 25)


def test_scar_scales_to_small_images():
    x = torch.randint(0, 256, (20, 3, S, S), dtype=torch.uint8, generator=gen(6))
    out = O.scar(x, gen())
    changed = 0
    for a, b in zip(out, x):
        box = _changed_box(a, b)
        if box is not None:
            changed += 1
            assert max(box) <= 5  # 25 px at 256 -> ~3 px at 32
    assert changed >= 18  # a no-op scar fails (unchanged only if pasted back onto itself)


@pytest.mark.parametrize("name, cutpaste, scar", [("cutpaste_scar", O.cutpaste, O.scar),
                                                   ("ref_cutpaste_scar", O.ref_cutpaste, O.ref_scar)])
def test_cutpaste_scar_blocks(ids, oe_file, name, cutpaste, scar):
    """IDs unchanged, then one CutPaste copy (label 1) and one scar copy (label 2) of each, in that order."""
    images, labels = build(name, oe_file).epoch(ids, gen())
    n = ids.shape[0]
    assert labels.tolist() == [0] * n + [1] * n + [2] * n
    g = gen()
    assert torch.equal(images[n : 2 * n], cutpaste(ids, g))
    assert torch.equal(images[2 * n :], scar(ids, g))
    assert torch.equal(images[:n], ids)


def test_nsa_blends_inside_a_box(ids):
    out = O.nsa(ids, gen())
    changed = 0
    for a, b in zip(out, ids):
        box = _changed_box(a, b)
        if box is not None:
            changed += 1
            assert box[0] * box[1] <= _max_cutpaste_area(S)
    assert changed >= 8


def test_poisson_blend_solves_the_equation():
    g = gen(5)
    dst = torch.rand(3, 9, 13, generator=g, dtype=torch.float64) * 255
    src = torch.rand(3, 9, 13, generator=g, dtype=torch.float64) * 255
    # same source and destination: the destination is the solution
    assert torch.allclose(O.poisson_blend(dst, dst), dst, atol=1e-8)
    for mixed in (False, True):
        f = O.poisson_blend(dst, src, mixed=mixed)
        # boundary ring kept
        assert torch.equal(f[:, 0], dst[:, 0]) and torch.equal(f[:, :, -1], dst[:, :, -1])
        # interior: 4 f_p - sum f_q = sum v_pq
        lap_f = 4 * f[:, 1:-1, 1:-1] - f[:, :-2, 1:-1] - f[:, 2:, 1:-1] - f[:, 1:-1, :-2] - f[:, 1:-1, 2:]
        guide = 0
        for q in ((slice(0, -2), slice(1, -1)), (slice(2, None), slice(1, -1)), (slice(1, -1), slice(0, -2)), (slice(1, -1), slice(2, None))):
            gs = src[:, 1:-1, 1:-1] - src[:, q[0], q[1]]
            if mixed:
                gd = dst[:, 1:-1, 1:-1] - dst[:, q[0], q[1]]
                gs = torch.where(gd.abs() > gs.abs(), gd, gs)
            guide = guide + gs
        assert torch.allclose(lap_f, guide, atol=1e-6)
    # constant source: a harmonic fill, within the boundary's range
    f = O.poisson_blend(dst, torch.full_like(dst, 7.0))
    assert f.min() >= dst.min() - 1e-6 and f.max() <= dst.max() + 1e-6


# ---------------------------------------------------------------- pairing contract

EXPECTED_ATTRS = {  # name: (copies, paired, transforms_ids)
    "none": (0, False, False),
    "rot": (3, True, False),
    "oe": (3, False, False),
    "oe_rot": (3, False, False),
    "cutpaste": (1, True, False),
    "scar": (1, True, False),
    "cutpaste_scar": (2, True, False),
    "nsa": (1, True, False),
    "ref_cutpaste_scar": (2, True, False),
    "ref_nsa": (1, True, True),
}


def test_pairing_attributes():
    assert set(EXPECTED_ATTRS) == set(O.OUTLIERS.names()), "add new sources to EXPECTED_ATTRS"
    for name, (copies, paired, transforms) in EXPECTED_ATTRS.items():
        cls = O.OUTLIERS.get(name)
        assert (cls.copies, cls.paired, cls.transforms_ids) == (copies, paired, transforms), name


def test_oe_copies_follow_the_ratio(oe_file, ids):
    src = build("oe", oe_file, oe_ratio=2)
    assert src.copies == 2 and src.epoch(ids, gen())[0].shape[0] == 3 * ids.shape[0]


@pytest.mark.parametrize("name", [n for n, a in EXPECTED_ATTRS.items() if a[1]])
def test_outliers_are_kind_major_and_aligned(name, oe_file):
    """Outlier row t N + j is made from ID row j: it agrees with ID j on most
    pixels and with no other ID as much (rot: it is ID j turned t + 1 times)."""
    n, size = 6, 64
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen(8))
    src = build(name, oe_file, size=size)
    images, labels = src.epoch(x, gen())
    id_rows = images[:n]
    for t in range(src.copies):
        block = images[n + t * n : n + (t + 1) * n]
        assert (labels[n + t * n : n + (t + 1) * n] == src.kinds[t if len(src.kinds) > 1 else 0]).all()
        for j in range(n):
            if name == "rot":
                assert torch.equal(block[j], torch.rot90(x[j], t + 1, dims=(1, 2)))
                continue
            agree = (block[j][None] == id_rows).all(dim=1).flatten(1).float().mean(1)
            assert int(agree.argmax()) == j and float(agree[j]) > 0.5, (t, j, agree.tolist())


# ---------------------------------------------------------------- ref_cutpaste_scar


def _position_coded(n: int, size: int) -> torch.Tensor:
    """Images whose pixels are all distinct: R, G = column, row (size <= 256), B = image index."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    one = torch.stack([xx, yy, torch.zeros_like(xx)]).to(torch.uint8)
    x = one[None].repeat(n, 1, 1, 1)
    x[:, 2] = torch.arange(n, dtype=torch.uint8).view(n, 1, 1)
    return x


@pytest.mark.parametrize("size", [64, 256])
def test_ref_cutpaste_moves_an_exact_rectangle(size):
    n = 60
    x = _position_coded(n, size)
    out = O.ref_cutpaste(x, gen(2))
    areas, ratios = [], []
    for a, b in zip(out, x):
        diff = (a != b).any(0)
        ys, xs = torch.nonzero(diff, as_tuple=True)
        assert ys.numel() > 0, "no-op CutPaste copy"
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        h, w = y1 - y0, x1 - x0
        # every pasted pixel differs (all pixels distinct, offset != 0): the change is the full rectangle
        assert int(diff.sum()) == h * w
        # its content is the original rectangle at one offset, unjittered, from the same image
        src_x, src_y = a[0, y0:y1, x0:x1].long(), a[1, y0:y1, x0:x1].long()
        sy, sx = int(src_y[0, 0]), int(src_x[0, 0])
        assert (sy, sx) != (y0, x0)
        assert torch.equal(a[:, y0:y1, x0:x1], b[:, sy : sy + h, sx : sx + w])
        # geometry: area U(0.02, 0.15) S^2 and h / w in (0.3, 3.3), up to the rounding of h and w
        slack = 0.5 * (h + w) + 0.25
        assert 0.02 * size**2 - slack <= h * w <= 0.15 * size**2 + slack
        assert (h + 0.5) / (w - 0.5) >= 0.3 and (h - 0.5) / (w + 0.5) <= 3.3
        areas.append(h * w / size**2)
        ratios.append(h / w)
    assert min(areas) < 0.05 and max(areas) > 0.11  # the range is used, not a constant
    assert min(ratios) < 0.6 and max(ratios) > 1.7


def test_pil_rotation_matches_pillow():
    from PIL import Image

    g = gen(9)
    for t in range(40):
        h, w = int(torch.randint(3, 26, (1,), generator=g)), int(torch.randint(2, 17, (1,), generator=g))
        patch = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        angle = 0.0 if t == 0 else float(torch.rand(1, generator=g, dtype=torch.float64) * 90 - 45)
        rot, mask = O._pil_rotate_bilinear(patch, angle)
        pil = Image.fromarray(patch.permute(1, 2, 0).numpy())
        ref = torch.from_numpy(np.array(pil.rotate(angle, resample=Image.BILINEAR, expand=True))).permute(2, 0, 1)
        ones = Image.new("L", (w, h), 255)
        ref_mask = torch.from_numpy(np.array(ones.rotate(angle, resample=Image.BILINEAR, expand=True)))
        assert rot.shape == ref.shape and mask.shape == ref_mask.shape
        assert torch.equal(mask, ref_mask == 255) and set(ref_mask.unique().tolist()) <= {0, 255}
        assert torch.equal(rot, ref)


def test_ref_scar_is_the_pil_scar_inside_its_footprint():
    """Rebuilt with Pillow from the same draws: crop, our jitter, PIL rotate, PIL paste through the mask."""
    from PIL import Image

    n, size = 30, 256
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen(10))
    out = O.ref_scar(x, gen(4))
    d = O._ref_scar_draws(n, size, gen(4))
    assert ((d["w"] >= 2) & (d["w"] <= 16) & (d["h"] >= 10) & (d["h"] <= 25)).all()
    assert d["w"].unique().numel() > 5 and d["h"].unique().numel() > 5
    assert (d["angle"].abs() <= 45).all() and d["angle"].min() < -20 and d["angle"].max() > 20
    for t in range(n):
        hh, ww, i, j = (int(d[k][t]) for k in ("h", "w", "i", "j"))
        patch = O._jitter_patch(x[t, :, i : i + hh, j : j + ww], d["factors"][t], d["order"][t])
        pil_patch = Image.fromarray(patch.permute(1, 2, 0).numpy())
        rot = pil_patch.rotate(float(d["angle"][t]), resample=Image.BILINEAR, expand=True)
        mask = Image.new("L", pil_patch.size, 255).rotate(float(d["angle"][t]), resample=Image.BILINEAR, expand=True)
        rw, rh = rot.size
        pi, pj = int(O._offset(d["u_paste"][t, 0], size - rh)), int(O._offset(d["u_paste"][t, 1], size - rw))
        img = Image.fromarray(x[t].permute(1, 2, 0).numpy())
        img.paste(rot, (pj, pi), mask)
        assert torch.equal(out[t], torch.from_numpy(np.array(img)).permute(2, 0, 1))
        footprint = torch.zeros(size, size, dtype=torch.bool)
        footprint[pi : pi + rh, pj : pj + rw] = torch.from_numpy(np.array(mask)) == 255
        changed = (out[t] != x[t]).any(0)
        assert not (changed & ~footprint).any()  # only inside the rotated footprint
        assert int(changed.sum()) >= 0.5 * int(footprint.sum()) >= 10  # not a no-op




def test_ref_scar_scales_with_the_image_size():
    d = O._ref_scar_draws(200, 64, gen(11))
    assert (d["w"] >= 1).all() and (d["w"] <= 4).all() and (d["h"] >= 2).all() and (d["h"] <= 6).all()
    x = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=gen(12))
    out = O.ref_scar(x, gen(13))
    n_changed = (out != x).any(1).flatten(1).sum(1)
    assert (n_changed >= 1).all() and (n_changed <= 6 * 4 + 2 * (6 + 4)).all()


# ---------------------------------------------------------------- ref_nsa


def _textured(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth colour fields plus pixel noise: Poisson blending has texture to carry."""
    g = gen(seed)
    low = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
    return (low * 180 + torch.rand(n, 3, size, size, generator=g) * 75).to(torch.uint8)


def test_ref_nsa_ids_are_colour_jittered_inputs():
    """A colour jitter is a per-pixel colour map (contrast's mean is per image):
    equal input colours give equal output colours, greys stay grey."""
    n, size = 12, 32
    palette = torch.tensor([[0, 0, 0], [255, 255, 255], [128, 128, 128], [60, 60, 60], [200, 30, 30],
                            [30, 200, 30], [30, 30, 200], [220, 180, 40]], dtype=torch.uint8)
    idx = torch.randint(0, len(palette), (n, size, size), generator=gen(14))
    x = palette[idx].permute(0, 3, 1, 2).contiguous()
    images, _ = O.OUTLIERS.get("ref_nsa")({}, size).epoch(x, gen(15))
    jit = images[:n]
    changed = 0
    for t in range(n):
        changed += int(not torch.equal(jit[t], x[t]))
        for c in range(len(palette)):
            sel = idx[t] == c
            colours = jit[t][:, sel]
            assert (colours == colours[:, :1]).all()  # one output colour per input colour
            if palette[c, 0] == palette[c, 1] == palette[c, 2]:
                out = colours[:, 0].int()
                assert int(out.max() - out.min()) <= 1  # grey stays grey
                assert abs(int(out[0]) - int(palette[c, 0])) <= 0.21 * 255 + 1  # factors in [0.9, 1.1]
    assert changed >= n - 1


def test_ref_nsa_changes_only_a_patch_of_the_jittered_id():
    n, size = 16, 256
    x = _textured(n, size, 16)
    src = O.OUTLIERS.get("ref_nsa")({}, size)
    images, labels = src.epoch(x, gen(17))
    d = O._ref_nsa_draws(n, gen(17))
    assert labels.tolist() == [0] * n + [1] * n
    for t in range(n):
        geo = O._ref_nsa_geometry(d["u_geo"][t], float(d["z"][t]), size, bool(d["cutpaste"][t]))
        changed = (images[n + t] != images[t]).any(0)
        # the blended ROI's interior: rows r0 + 2 .. r0 + H - 3, columns shifted by one for odd W
        H, W, r0, c0 = geo["H"], geo["W"], geo["r0"], geo["c0"] + geo["W"] % 2
        inside = torch.zeros(size, size, dtype=torch.bool)
        inside[r0 + 2 : r0 + H - 2, c0 + 2 : c0 + W - 2] = True
        assert not (changed & ~inside).any()
        assert int(changed.sum()) >= 20, "no-op ref_nsa outlier"  # at 256 px a patch is never skipped
        # parameter-free bounds: sides <= 0.71 S (CutPaste geometry) and area <= 0.15 S^2 + rounding
        box = _changed_box(images[n + t], images[t])
        assert max(box) <= 0.71 * size and box[0] * box[1] <= 0.15 * size**2 + size
        if not d["cutpaste"][t]:
            assert max(box) <= 51 - 4  # NSA geometry: resized sides <= round(0.2 S)
        if d["other"][t] and int(d["source"][t]) != t:  # the other image's patch, not its own
            own = O._ref_patch_ex(images[t], images[t], geo, size)
            assert not torch.equal(own, images[n + t])
    assert d["other"].any() and (~d["other"]).any() and d["cutpaste"].any() and (~d["cutpaste"]).any()


def test_ref_nsa_geometry_bounds():
    size = 256
    g = gen(18)
    nsa_sides, cp_area, cp_aspect = [], [], []
    for t in range(2000):
        u, z = O._rand((7,), g), float(O._randn((1,), g)[0])
        for cutpaste in (False, True):
            geo = O._ref_nsa_geometry(u, z, size, cutpaste)
            H, W, r0, c0 = geo["H"], geo["W"], geo["r0"], geo["c0"]
            hs, ws = geo["r1s"] - geo["r0s"], geo["c1s"] - geo["c0s"]
            assert 0 <= geo["r0s"] < geo["r1s"] <= size and 0 <= geo["c0s"] < geo["c1s"] <= size
            assert 1 <= r0 and r0 + H <= size - 1 and 1 <= c0 and c0 + W <= size - 1 + W % 2 and c0 + W <= size
            if cutpaste:
                assert (H, W) == (hs, ws) and H % 2 == 0 and W % 2 == 0
                cp_area.append(H * W / size**2)
                cp_aspect.append(H / W)
            else:
                assert 13 <= H <= 51 and 13 <= W <= 51 and hs <= 100 and ws <= 100
                nsa_sides += [H, W]
    assert min(cp_area) >= 0.02 - 0.01 and max(cp_area) <= 0.15 + 0.01 and min(cp_area) < 0.03 and max(cp_area) > 0.13
    assert min(cp_aspect) >= 0.27 and max(cp_aspect) <= 3.6 and min(cp_aspect) < 0.4 and max(cp_aspect) > 2.5
    assert min(nsa_sides) <= 20 and max(nsa_sides) == 51


def _dense_clone(dst: torch.Tensor, src: torch.Tensor, erode: int) -> torch.Tensor:
    """Independent reference: the guidance field built edge by edge and the
    Poisson system solved as a dense linear system."""
    C, h, w = dst.shape
    inner = [(y, x) for y in range(1, h - 1) for x in range(1, w - 1)]
    index = {p: k for k, p in enumerate(inner)}

    def in_mask(y, x):
        return erode <= y < h - erode and erode <= x < w - erode

    out = dst.clone()
    for c in range(C):
        A = torch.zeros(len(inner), len(inner), dtype=torch.float64)
        b = torch.zeros(len(inner), dtype=torch.float64)
        for (y, x), k in index.items():
            A[k, k] = -4.0
            # div G at p = sum over the 4 edges of p of the guided difference toward the neighbour
            # (neighbour q, pixel whose forward gradient the edge p-q is)
            edges = (((y, x + 1), (y, x)), ((y, x - 1), (y, x - 1)), ((y + 1, x), (y, x)), ((y - 1, x), (y - 1, x)))
            for (qy, qx), (gy, gx) in edges:
                img = src if in_mask(gy, gx) else dst
                b[k] += img[c, qy, qx] - img[c, y, x]
                if (qy, qx) in index:
                    A[k, index[(qy, qx)]] += 1.0
                else:
                    b[k] -= dst[c, qy, qx]
        f = torch.linalg.solve(A, b)
        for (y, x), k in index.items():
            out[c, y, x] = f[k]
    return out


def test_cv2_normal_clone_against_a_dense_solve():
    g = gen(19)
    for h, w, erode in ((9, 12, 3), (11, 8, 1), (7, 7, 0), (6, 10, 3)):
        dst = torch.rand(3, h, w, generator=g, dtype=torch.float64) * 255
        src = torch.rand(3, h, w, generator=g, dtype=torch.float64) * 255
        assert torch.allclose(O._cv2_normal_clone(dst, src, erode), _dense_clone(dst, src, erode), atol=1e-8)
    # a mask eroded away: destination gradients only, so the destination itself
    dst = torch.rand(3, 6, 6, generator=g, dtype=torch.float64) * 255
    assert torch.allclose(O._cv2_normal_clone(dst, torch.zeros_like(dst), 3), dst, atol=1e-8)


def test_ref_patch_ex_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    size = 256
    x = _textured(8, size, 20)
    g = gen(21)
    for t in range(8):
        u, z = O._rand((7,), g), float(O._randn((1,), g)[0])
        geo = O._ref_nsa_geometry(u, z, size, cutpaste=t % 2 == 0)
        dest, src = x[t], x[(t + 1) % 8]
        ours = O._ref_patch_ex(dest, src, geo, size).permute(1, 2, 0).numpy().astype(int)
        patch = src.permute(1, 2, 0).numpy()[geo["r0s"] : geo["r1s"], geo["c0s"] : geo["c1s"]]
        H, W, r0, c0 = geo["H"], geo["W"], geo["r0"], geo["c0"]
        if patch.shape[:2] != (H, W):
            patch = cv2.resize(np.ascontiguousarray(patch), (W, H))
        mask = np.zeros((H, W, 1), np.uint8)
        mask[1:-1, 1:-1] = 255
        center = (c0 + W - W // 2, r0 + H // 2)
        dest_np = dest.permute(1, 2, 0).numpy().copy()
        ref = cv2.seamlessClone(np.ascontiguousarray(patch), dest_np, mask, center, cv2.NORMAL_CLONE)
        diff = np.abs(ours - ref.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 0.02


def test_ref_nsa_needs_a_minimum_size():
    with pytest.raises(ValueError, match="image_size >= 24"):
        O.OUTLIERS.get("ref_nsa")({}, 16)
