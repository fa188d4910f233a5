"""CIFAR-10 / CIFAR-100 (superclasses) loaders on fixtures in the official format."""

from __future__ import annotations

import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets

from firm_bench.datasets import DatasetError, get_dataset, load_split, one_class_split
from tests.helpers.data import CIFAR100_COARSE, assert_marker, write_cifar10, write_cifar100


def test_cifar10_reads_all_batches_in_order(tmp_path):
    expected = write_cifar10(tmp_path, per_class={"train": 5, "test": 3})
    train = load_split("cifar10", "train", root=str(tmp_path))
    assert train.images.shape == (50, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), expected["train"][0])
    assert np.array_equal(train.labels.numpy(), expected["train"][1])
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert_marker(train.images)


def test_cifar100_uses_coarse_labels(tmp_path):
    expected = write_cifar100(tmp_path)
    test = load_split("cifar100", "test", root=str(tmp_path))
    assert test.classes == tuple(CIFAR100_COARSE) == get_dataset("cifar100").classes
    assert np.array_equal(test.labels.numpy(), expected["test"][1])
    assert int(test.labels.max()) == 19  # coarse, not the fine labels (up to 99)
    train, _, targets = one_class_split("cifar100", 19, root=str(tmp_path))
    assert len(train) == 3 and int(targets.sum()) == 2


def test_cifar_resize_to_64(tmp_path):
    write_cifar10(tmp_path)
    data = load_split("cifar10", "test", root=str(tmp_path), image_size=64)
    assert data.images.shape == (30, 3, 64, 64) and data.images.dtype == torch.uint8


def test_corrupted_pickle(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetError, match=f"cannot unpickle {path}") as err:
        load_split("cifar10", "train", root=str(tmp_path))
    assert "cifar-10-python.tar.gz" in str(err.value)


def test_truncated_pickle(tmp_path):
    write_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="cannot unpickle .*truncated or corrupted"):
        load_split("cifar100", "train", root=str(tmp_path))


def test_wrong_content(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DatasetError, match=r"expected uint8 \(N, 3072\)"):
        load_split("cifar10", "test", root=str(tmp_path))
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(DatasetError, match=r"labels span \[0, 10\], expected \[0, 9\]"):
        load_split("cifar10", "test", root=str(tmp_path))


def test_cifar100_files_under_cifar10_name(tmp_path):
    write_cifar10(tmp_path)  # a meta file naming other classes is another dataset
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}))
    with pytest.raises(DatasetError, match="is this the right dataset"):
        load_split("cifar10", "test", root=str(tmp_path))


def test_root_inside_batches_folder(tmp_path):
    write_cifar10(tmp_path)
    inner = tmp_path / "cifar-10-batches-py"
    with pytest.raises(DatasetError) as err:
        load_split("cifar10", "test", root=str(inner))
    msg = str(err.value)
    assert f"root: {inner}" in msg and f"pass its parent {tmp_path} as the root" in msg


def test_root_one_level_too_high(tmp_path):
    write_cifar10(tmp_path / "datasets")
    with pytest.raises(DatasetError, match=f"pass {tmp_path / 'datasets'}"):
        load_split("cifar10", "test", root=str(tmp_path))


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeCIFAR10:  # stands in for torchvision's download + extract
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    assert len(load_split("cifar10", "test", root=str(tmp_path), download=True)) == 30
    assert calls == [(str(tmp_path), True, True)]
    load_split("cifar10", "train", root=str(tmp_path), download=True)
    assert len(calls) == 1  # files present: no second download


def test_download_failure_is_a_dataset_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(DatasetError, match=f"download into {tmp_path} failed: URLError"):
        load_split("cifar100", "train", root=str(tmp_path), download=True)
