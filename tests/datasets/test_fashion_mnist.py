"""Fashion-MNIST loader: IDX fixtures (plain and .gz) and the official files."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from firm_bench.datasets import DatasetError, check_dataset, load_split, one_class_split
from tests.helpers.data import assert_marker, write_fashion_mnist

OFFICIAL = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
OFFICIAL_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
RAW = Path("FashionMNIST/raw")


@pytest.mark.parametrize("gz", [True, False])
def test_gray_replicated_to_rgb(tmp_path, gz):
    expected = write_fashion_mnist(tmp_path, gz=gz)
    data = load_split("fashion_mnist", "train", root=str(tmp_path))
    assert data.images.shape == (30, 3, 28, 28)
    assert np.array_equal(data.images.numpy(), expected["train"][0])
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert data.classes[9] == "Ankle boot"
    assert_marker(data.images)


def test_resize_28_to_32(tmp_path):
    write_fashion_mnist(tmp_path)
    train, test, targets = one_class_split("fashion_mnist", 3, root=str(tmp_path), image_size=32)
    assert train.images.shape == (3, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert int(targets.sum()) == 2


def test_plain_file_wins_over_gz(tmp_path):
    write_fashion_mnist(tmp_path, gz=True)
    plain = write_fashion_mnist(tmp_path, gz=False, seed=1)  # different content
    data = load_split("fashion_mnist", "test", root=str(tmp_path))
    assert np.array_equal(data.images.numpy(), plain["test"][0])


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"])
def test_truncated_idx_names_the_file(tmp_path, name):
    write_fashion_mnist(tmp_path, gz=name.endswith(".gz"))
    path = tmp_path / RAW / name
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*truncated") as err:
        load_split("fashion_mnist", "test", root=str(tmp_path))
    assert "FashionMNIST/raw/" in str(err.value)


def test_labels_out_of_range(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / RAW / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = 12
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError, match=r"labels span \[0, 12\]"):
        load_split("fashion_mnist", "test", root=str(tmp_path))


def test_files_directly_in_root_get_a_hint(tmp_path):
    write_fashion_mnist(tmp_path / "x")
    for f in (tmp_path / "x" / RAW).iterdir():
        f.rename(tmp_path / f.name)
    with pytest.raises(DatasetError, match=r"must sit in <root>/FashionMNIST/raw/"):
        load_split("fashion_mnist", "train", root=str(tmp_path))


@pytest.fixture(scope="module")
def official_root(tmp_path_factory):
    """A root whose FashionMNIST/raw/ links to the official (read-only) .gz files."""
    missing = [f for f in OFFICIAL_FILES if not (OFFICIAL / f).is_file()]
    if missing:
        pytest.skip(f"official Fashion-MNIST not installed: {OFFICIAL} lacks {missing} "
                    "(apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("official")
    (root / RAW).mkdir(parents=True)
    for f in OFFICIAL_FILES:
        (root / RAW / f).symlink_to(OFFICIAL / f)
    return str(root)


def test_official_files(official_root):
    train = load_split("fashion_mnist", "train", root=official_root)
    test = load_split("fashion_mnist", "test", root=official_root)
    assert train.images.shape == (60000, 3, 28, 28) and len(test) == 10000
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert int(train.labels[0]) == 9 and train.classes[9] == "Ankle boot"
    mean = train.images[:, 0].double().mean().item() / 255
    assert abs(mean - 0.2860) < 5e-5  # the hard-coded normalisation mean


def test_official_report(official_root):
    report = check_dataset("fashion_mnist", root=official_root)
    assert "train: 60000 images" in report and "test: 10000 images" in report
    assert any(line.split()[-2:] == ["boot", "6000"] for line in report.splitlines())
