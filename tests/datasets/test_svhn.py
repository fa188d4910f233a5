"""SVHN loader (an OOD test set) on fixtures in the official .mat format."""

from __future__ import annotations

import numpy as np
import pytest

from firm_bench.datasets import DatasetError, get_dataset, load_split, one_class_split
from tests.helpers.data import assert_marker, write_svhn


def test_svhn_reads_mat_and_maps_10_to_0(tmp_path):
    expected = write_svhn(tmp_path)
    data = load_split("svhn", "test", root=str(tmp_path))
    assert data.images.shape == (30, 3, 32, 32)
    assert np.array_equal(data.images.numpy(), expected["test"][0])
    assert sorted(set(data.labels.tolist())) == list(range(10))  # the stored 10s became 0
    assert np.array_equal(data.labels.numpy(), expected["test"][1])
    assert_marker(data.images)
    assert data.classes == tuple("0123456789")


def test_svhn_is_ood_only(tmp_path):
    assert get_dataset("svhn").role == "ood"
    with pytest.raises(ValueError, match="role 'ood'.*one-class datasets: cifar10"):
        one_class_split("svhn", 1, root=str(tmp_path))


def test_svhn_corrupted_mat(tmp_path):
    write_svhn(tmp_path)
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match=f"cannot read {path}"):
        load_split("svhn", "test", root=str(tmp_path))


def test_svhn_missing_split_names_layout(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "train_32x32.mat").unlink()
    with pytest.raises(DatasetError, match="missing file .*train_32x32.mat") as err:
        load_split("svhn", "train", root=str(tmp_path))
    assert "ufldl.stanford.edu/housenumbers" in str(err.value)
