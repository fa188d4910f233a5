"""Tests of firm_bench/outliers.py: the registry contract and each generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from firm_bench import outliers as O
from firm_bench.registry import UnknownNameError

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
    assert torch.equal(images[:n], ids) and (labels[:n] == 0).all()
    assert (labels[n:] >= 1).all()
    assert set(labels[n:].tolist()) == set(type(src).kinds)
    assert type(src).n_kinds == len(type(src).kinds) and isinstance(type(src).deterministic, bool)
    again = src.epoch(ids, gen())
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)
    other = src.epoch(ids, gen(1))
    if type(src).deterministic:
        assert torch.equal(other[0], images)
    elif name != "none":
        assert not torch.equal(other[0], images)


def test_registry_names_and_unknown():
    assert {"none", "rot", "oe", "oe_rot", "cutpaste", "scar", "cutpaste_scar", "nsa"} <= set(O.OUTLIERS.names())
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


def test_scar_scales_to_small_images(ids):
    out = O.scar(ids, gen())
    for a, b in zip(out, ids):
        box = _changed_box(a, b)
        assert box is None or max(box) <= 5  # 25 px at 256 -> ~3 px at 32


def test_cutpaste_scar_blocks(ids, oe_file):
    images, labels = build("cutpaste_scar", oe_file).epoch(ids, gen())
    n = ids.shape[0]
    assert labels.tolist() == [0] * n + [1] * n + [2] * n
    g = gen()
    assert torch.equal(images[n : 2 * n], O.cutpaste(ids, g))
    assert torch.equal(images[2 * n :], O.scar(ids, g))


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
