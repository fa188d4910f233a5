"""The contract every registered dataset keeps, driven by DATASETS (timm style).

A newly registered dataset is tested here once it has a fixture writer in
fixtures.WRITERS (or is listed in fixtures.EMBEDDED).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from firm_bench.datasets import (
    DATASETS,
    DatasetError,
    check_dataset,
    class_index,
    get_dataset,
    load_split,
    one_class_split,
)
from tests.helpers.data import APPROXIMATE, EMBEDDED, WRITERS, assert_marker

NAMES = DATASETS.names()


def test_registered_names():
    assert NAMES == ["cifar10", "cifar100", "fashion_mnist", "svhn", "fmnist_mini", "mvtec",
                     "cats_vs_dogs", "lsun_resize", "imagenet_resize", "lsun_fix", "imagenet_fix",
                     "oe"]


@pytest.fixture(params=NAMES)
def dataset(request, tmp_path):
    """(name, root, expected arrays or None) with the fixture written under root."""
    name = request.param
    assert name in WRITERS or name in EMBEDDED, f"register a fixture writer for {name!r}"
    expected = WRITERS[name](tmp_path) if name in WRITERS else None
    return name, str(tmp_path), expected


def test_info_fields(dataset):
    info = get_dataset(dataset[0])
    assert info.name == dataset[0]
    assert info.role in ("one_class", "ood", "oe")
    assert len(info.classes) >= (2 if info.role == "one_class" else 1)
    assert len(set(info.classes)) == len(info.classes)
    assert info.native_size in (28, 32, 64, 256)
    assert info.image_size in (32, 64, 256)
    assert info.splits and set(info.splits) <= {"train", "test"}
    assert info.role != "one_class" or info.splits == ("train", "test")
    for stats in (info.mean, info.std):
        assert len(stats) == 3 and all(0.1 < v < 0.6 for v in stats)
    assert info.layout and info.how_to_get


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_native(dataset, split):
    name, root, expected = dataset
    info = get_dataset(name)
    if split not in info.splits:
        with pytest.raises(ValueError, match=f"{name} has no {split} split"):
            load_split(name, split, root=root)
        return
    data = load_split(name, split, root=root)
    s = info.native_size
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, s, s)
    assert data.labels.dtype == torch.int64 and data.labels.shape == (len(data),)
    assert data.classes == info.classes
    assert 0 <= int(data.labels.min()) and int(data.labels.max()) < len(info.classes)
    if expected is not None:
        images, labels = expected[split]
        assert (data.labels.numpy() == labels).all()
        if name in APPROXIMATE:  # JPEG
            assert np.abs(data.images.numpy().astype(int) - images).max() <= 4
        else:
            assert (data.images.numpy() == images).all()
            assert_marker(data.images)


def test_resize(dataset):
    name, root, _ = dataset
    split = get_dataset(name).splits[-1]
    native = load_split(name, split, root=root)
    for size in (16, 32, 40):
        data = load_split(name, split, root=root, image_size=size)
        assert data.images.shape == (len(native), 3, size, size)
        assert data.images.dtype == torch.uint8
        assert torch.equal(data.labels, native.labels)


def test_one_class(dataset):
    name, root, _ = dataset
    info = get_dataset(name)
    if info.role != "one_class":
        with pytest.raises(ValueError, match="one-class datasets"):
            one_class_split(name, 0, root=root)
        return
    full_train = load_split(name, "train", root=root)
    cls = int(full_train.labels.max())  # the last class with images (fixtures may be partial)
    train, test, targets = one_class_split(name, info.classes[cls], root=root, image_size=32)
    assert len(train) == int((full_train.labels == cls).sum()) > 0
    assert (train.labels == cls).all() and train.images.shape[1:] == (3, 32, 32)
    assert targets.dtype == torch.int64 and targets.shape == (len(test),)
    assert 0 < int(targets.sum()) < len(test)
    if info.one_class is None:  # the default protocol: the whole test set, normal = the class
        assert len(test) == len(load_split(name, "test", root=root))
        assert torch.equal(targets, (test.labels == cls).long())
    else:  # a dataset's own protocol (MVTec): the class's own test images only
        assert (test.labels == cls).all()


def test_missing_root(dataset, tmp_path):
    name = dataset[0]
    if name in EMBEDDED:
        return  # the root is ignored
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        load_split(name, get_dataset(name).splits[0], root=str(root))
    msg = str(err.value)
    assert str(root) in msg
    assert all(line.strip() in msg for line in get_dataset(name).layout.splitlines())
    assert "download" in msg


def test_check_dataset(dataset):
    name, root, _ = dataset
    report = check_dataset(name, root=root)
    for split in get_dataset(name).splits:
        counts = torch.bincount(load_split(name, split, root=root).labels)
        assert f"{split}: {int(counts.sum())} images" in report
    assert get_dataset(name).classes[-1] in report and "total:" in report


def test_class_names(dataset):
    """Every class name (exact, or as a lower-case slug) and index string names its class."""
    name = dataset[0]
    info = get_dataset(name)
    for i, c in enumerate(info.classes):
        assert class_index(name, c) == class_index(name, str(i)) == class_index(name, i) == i
    with pytest.raises(ValueError, match="valid names") as err:
        class_index(name, "no_such_class")
    assert info.classes[-1] in str(err.value)
