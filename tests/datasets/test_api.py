"""The package-level API of firm_bench.datasets (resolve_root, errors, checks)."""

from __future__ import annotations

import os

import pytest
import torch

from firm_bench.core.errors import UnknownNameError
from firm_bench.datasets import (
    DATA_ENV,
    DatasetError,
    ImageSet,
    check_dataset,
    get_dataset,
    load_split,
    one_class_split,
    resolve_root,
)
from tests.helpers.data import write_cifar10


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar11'; valid: cats_vs_dogs, cifar10, cifar100, "):
        get_dataset("cifar11")
    with pytest.raises(UnknownNameError, match="fmnist_mini"):
        load_split("mnist", "train")


def test_resolve_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_root("cifar10", None) == str(tmp_path / "data")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert resolve_root("cifar10", None) == str(tmp_path / "env")
    assert resolve_root("cifar10", str(tmp_path / "arg")) == str(tmp_path / "arg")
    monkeypatch.setenv(DATA_ENV, "")
    assert resolve_root("cifar10", None) == str(tmp_path / "data")


def test_env_root_is_used(monkeypatch, tmp_path):
    write_cifar10(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert len(load_split("cifar10", "test")) == 30


def test_bad_split_and_size(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'val'; valid: train, test"):
        load_split("fmnist_mini", "val")
    with pytest.raises(ValueError, match="image_size"):
        load_split("fmnist_mini", "test", image_size=0)


@pytest.mark.parametrize("cls", [-1, 10, True])
def test_class_out_of_range(cls):
    with pytest.raises(ValueError, match=r"valid 0\.\.9 \(0=airplane, .*9=truck\)"):
        one_class_split("cifar10", cls, root="/nonexistent")  # checked before any read


def test_check_dataset_report(tmp_path):
    write_cifar10(tmp_path)
    report = check_dataset("cifar10", root=str(tmp_path))
    assert f"root: {tmp_path}" in report
    assert "train: 50 images, shape (3, 32, 32), dtype torch.uint8" in report
    assert "test: 30 images" in report and "total: 80 images" in report
    lines = report.splitlines()
    assert any(line.split() == ["0", "airplane", "5"] for line in lines)
    assert any(line.split() == ["9", "truck", "3"] for line in lines)


def test_check_dataset_missing_class(tmp_path):
    write_cifar10(tmp_path, per_class={"train": 0, "test": 1})
    with pytest.raises(DatasetError, match="train split has 0 images"):
        check_dataset("cifar10", root=str(tmp_path))


def test_check_dataset_missing_data(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset("svhn", root=str(tmp_path / "none"))


def test_image_set_validates():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(x.float(), torch.zeros(2, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="int64"):
        ImageSet(x, torch.zeros(3, dtype=torch.int64), ("a",))
    assert len(ImageSet(x, torch.zeros(2, dtype=torch.int64), ("a",))) == 2


def test_relative_root_is_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert os.path.isabs(resolve_root("svhn", "rel"))
