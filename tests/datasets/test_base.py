"""Shared machinery in firm_bench/datasets/base.py: IDX reading, files, resize."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from firm_bench.core.errors import DataProblem
from firm_bench.datasets.base import IDX_IMAGES, IDX_LABELS, read_idx, require, resize_images
from tests.helpers.data import idx_bytes


def test_idx_plain_and_gz(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "im").write_bytes(idx_bytes(images))
    (tmp_path / "im.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "lb").write_bytes(idx_bytes(np.array([7, 1], np.uint8)))
    for name in ("im", "im.gz"):
        out = read_idx(tmp_path / name, IDX_IMAGES)
        assert out.dtype == np.uint8 and (out == images).all()
        out[0, 0, 0] = 1  # writable: a copy, not a view of the bytes
    assert read_idx(tmp_path / "lb", IDX_LABELS).tolist() == [7, 1]


def test_idx_wrong_magic(tmp_path):
    (tmp_path / "lb").write_bytes(idx_bytes(np.array([7, 1], np.uint8)))
    with pytest.raises(DataProblem, match="magic number 2049, expected 2051"):
        read_idx(tmp_path / "lb", IDX_IMAGES)


@pytest.mark.parametrize("keep", [3, 16, 30])
def test_idx_truncated(tmp_path, keep):
    data = idx_bytes(np.zeros((2, 3, 4), np.uint8))[:keep]
    (tmp_path / "im").write_bytes(data)
    with pytest.raises(DataProblem, match=f"{tmp_path / 'im'} is truncated"):
        read_idx(tmp_path / "im", IDX_IMAGES)


def test_idx_truncated_gz(tmp_path):
    data = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28))))
    (tmp_path / "im.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataProblem, match=f"cannot read {tmp_path / 'im.gz'}.*truncated"):
        read_idx(tmp_path / "im.gz", IDX_IMAGES)


def test_require_alternatives_and_hints(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.gz").write_bytes(b"")
    assert require(str(tmp_path), [("a/b/f", "a/b/f.gz")]) == [tmp_path / "a" / "b" / "f.gz"]
    (tmp_path / "a" / "b" / "f").write_bytes(b"")
    assert require(str(tmp_path), [("a/b/f", "a/b/f.gz")]) == [tmp_path / "a" / "b" / "f"]
    with pytest.raises(DataProblem) as err:  # root one level too deep
        require(str(tmp_path / "a" / "b"), ["a/b/f"])
    assert f"pass its parent {tmp_path} as the root" in err.value.hint
    with pytest.raises(DataProblem) as err:  # root one level too high
        require(str(tmp_path.parent), ["a/b/f"])
    assert f"pass {tmp_path}" in err.value.hint


def test_require_fetch_runs_only_when_missing(tmp_path):
    calls = []

    def fetch():
        calls.append(1)
        (tmp_path / "f").write_bytes(b"")

    assert require(str(tmp_path), ["f"], fetch) == [tmp_path / "f"]
    assert require(str(tmp_path), ["f"], fetch) and len(calls) == 1


def test_resize_keeps_constant_and_size():
    x = torch.full((5, 3, 28, 28), 200, dtype=torch.uint8)
    y = resize_images(x, 32, chunk=2)
    assert y.shape == (5, 3, 32, 32) and y.dtype == torch.uint8 and (y == 200).all()
    assert resize_images(x, 28) is x


def test_resize_antialias_and_rounding():
    # a 1-pixel checkerboard averages to mid-grey only with antialiasing
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 255
    x = board.to(torch.uint8).expand(1, 3, 32, 32)
    y = resize_images(x, 8)
    assert ((y.int() - 128).abs() <= 1).all()
    ref = torch.nn.functional.interpolate(x.float(), size=(8, 8), mode="bilinear",
                                          antialias=True).round().to(torch.uint8)
    assert torch.equal(y, ref)
