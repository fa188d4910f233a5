"""Shared machinery in firm_bench/datasets/base.py: IDX reading, files, resize."""

from __future__ import annotations

import gzip
import re

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


# ---------------------------------------------------------------- bad roots and images, each one clear line


def _png(width: int, height: int, bit_depth: int = 8, rows: bytes = b"") -> bytes:
    """A grey PNG file's bytes with an IHDR of ``width`` x ``height`` (``rows``: its raw scanlines, may be short)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows or b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("dataset", ["cifar10", "mvtec", "cats_vs_dogs", "lsun_resize"])
def test_a_root_that_is_a_file_is_said_to_be_one(tmp_path, capsys, dataset):
    from firm_bench.cli import main

    for name, kind, hint in (("data.zip", "an archive", " (extract the archive into one)"), ("data", "a file", "")):
        root = tmp_path / name
        root.write_bytes(b"PK\x03\x04 not a folder")
        assert main(["data", "check", dataset, "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert f"root {root} is {kind}, not a folder: pass the folder holding the dataset's files{hint}" in err, err
        assert "does not exist" not in err
    with pytest.raises(DataProblem, match=re.escape(f"root folder {tmp_path / 'nope'} does not exist")):
        require(str(tmp_path / "nope"), ["x.bin"])


def test_a_huge_image_is_said_to_be_too_large_not_corrupted(tmp_path):
    """A 14000 x 14000 PNG trips PIL's decompression-bomb guard: said as such, naming the file and what to do."""
    from firm_bench.datasets.base import probe_image, read_image

    path = tmp_path / "huge.png"
    path.write_bytes(_png(14000, 14000))
    for read in (probe_image, read_image):
        with pytest.raises(DataProblem) as info:
            read(path)
        text = str(info.value)
        assert text.startswith(f"image {path} is too large to read: Image size (196000000 pixels) exceeds limit"), text
        assert "downscale it, or remove it from the dataset's folder" in text and "corrupted" not in text


def test_16bit_pngs_holding_8bit_values_are_read_as_8bit_with_a_warning(tmp_path, capsys, monkeypatch):
    """A 16-bit grey PNG whose values all lie in 0..255 holds 8-bit values: scaling by 1/257 would read it black.
    It is read as those values, and a warning names the file, the range found and what was done."""
    from firm_bench.datasets import base
    from firm_bench.datasets.base import read_image
    from tests.helpers.data import write_png16

    monkeypatch.setattr(base, "_WARNED", set())
    values = np.arange(256, dtype=np.uint16).reshape(16, 16)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        write_png16(path, values)
    got = np.asarray(read_image(first))
    assert got.shape == (16, 16, 3) and np.array_equal(got[..., 0], values.astype(np.uint8))
    err = capsys.readouterr().err
    assert (f"WARNING: 16-bit image {first} holds only values 0..255 (8-bit values stored in 16 bits): read as those "
            "8-bit values, not scaled by 1/257 (which would make it black)") in err
    assert np.array_equal(np.asarray(read_image(second))[..., 1], values.astype(np.uint8))
    assert capsys.readouterr().err == ""  # once per process
    wide = values.astype(np.uint32) * 257  # a real 16-bit image: scaled, no warning
    write_png16(first, wide.astype(np.uint16))
    assert np.array_equal(np.asarray(read_image(first))[..., 2], values.astype(np.uint8))
    assert capsys.readouterr().err == ""
