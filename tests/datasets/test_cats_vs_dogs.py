"""Cats-vs-Dogs: Kaggle's cat.N.jpg / dog.N.jpg converted once to a cached 64 x 64 array file."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch

from firm_bench.datasets import DatasetError, check_dataset, load_split, one_class_split
from firm_bench.datasets import cats_vs_dogs as cvd
from tests.helpers.data import _save, _solid, cat_dog_colour, write_cats_vs_dogs

CACHE = cvd.CACHE_FILE


def _close(data, expected) -> None:
    images, labels = expected
    assert np.array_equal(data.labels.numpy(), labels)
    assert np.abs(data.images.numpy().astype(int) - images).max() <= 4  # JPEG rounding only


def test_kaggle_conversion_sizes_and_split(tmp_path):
    expected = write_cats_vs_dogs(tmp_path, n_per_class=10)
    train = load_split("cats_vs_dogs", "train", root=str(tmp_path))
    test = load_split("cats_vs_dogs", "test", root=str(tmp_path))
    assert train.images.shape == (16, 3, 64, 64) and test.images.shape == (4, 3, 64, 64)
    assert train.classes == ("cat", "dog")
    assert torch.bincount(train.labels).tolist() == [8, 8]
    assert torch.bincount(test.labels).tolist() == [2, 2]
    # solid colour per file: the documented seed-0 permutation put each file where expected
    _close(train, expected["train"])
    _close(test, expected["test"])
    assert (tmp_path / CACHE).is_file()


def test_split_rule_at_full_size():
    assert cvd.n_test_of(12500) == 2500 and cvd.n_test_of(10) == 2 and cvd.n_test_of(11) == 2
    train, test = cvd.kaggle_split(12500)
    assert len(train) == 10000 and len(test) == 2500
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(12500))
    again = cvd.kaggle_split(12500)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert np.array_equal(np.concatenate([train, test]),
                          np.random.default_rng(0).permutation(12500))


def test_deterministic_and_rebuild_identical(tmp_path):
    write_cats_vs_dogs(tmp_path / "a")
    write_cats_vs_dogs(tmp_path / "b")
    a = one_class_split("cats_vs_dogs", "dog", root=str(tmp_path / "a"))
    b = one_class_split("cats_vs_dogs", 1, root=str(tmp_path / "b"))
    for x, y in zip(a[:2], b[:2]):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
    assert torch.equal(a[2], b[2]) and a[2].tolist() == [0, 0, 1, 1]
    first = (tmp_path / "a" / CACHE).read_bytes()
    (tmp_path / "a" / CACHE).unlink()
    again = one_class_split("cats_vs_dogs", "dog", root=str(tmp_path / "a"))
    assert torch.equal(again[0].images, a[0].images) and torch.equal(again[1].images, a[1].images)
    with np.load(tmp_path / "a" / CACHE) as z, np.load(__import__("io").BytesIO(first)) as old:
        assert sorted(z.files) == sorted(old.files)
        assert all(np.array_equal(z[k], old[k]) for k in z.files)
        assert z["train_files"][0].startswith(("cat.", "dog."))


def test_cache_reused_on_second_load(tmp_path, monkeypatch):
    write_cats_vs_dogs(tmp_path)
    first = load_split("cats_vs_dogs", "train", root=str(tmp_path))
    stamp = os.stat(tmp_path / CACHE).st_mtime_ns

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache is valid")

    monkeypatch.setattr(cvd, "_convert_one", no_decoding)
    second = load_split("cats_vs_dogs", "train", root=str(tmp_path))
    assert torch.equal(first.images, second.images)
    assert os.stat(tmp_path / CACHE).st_mtime_ns == stamp
    assert "(reused)" in check_dataset("cats_vs_dogs", root=str(tmp_path))


def test_cache_rebuilt_when_sources_change(tmp_path):
    write_cats_vs_dogs(tmp_path)
    load_split("cats_vs_dogs", "train", root=str(tmp_path))
    before = (tmp_path / CACHE).read_bytes()
    folder = tmp_path / "dogs-vs-cats" / "train"
    _save(folder / "cat.10.jpg", _solid(cat_dog_colour(0, 10), 70, 90), quality=95)  # a new file
    train = load_split("cats_vs_dogs", "train", root=str(tmp_path))
    assert torch.bincount(train.labels).tolist() == [9, 8]  # 11 cats: 9 train, 2 test
    assert (tmp_path / CACHE).read_bytes() != before
    _save(folder / "cat.10.jpg", _solid(cat_dog_colour(0, 10), 99, 99), quality=95)  # other size
    after = (tmp_path / CACHE).read_bytes()
    load_split("cats_vs_dogs", "test", root=str(tmp_path))
    assert (tmp_path / CACHE).read_bytes() != after


def test_truncated_jpeg_is_named_and_no_cache_written(tmp_path):
    write_cats_vs_dogs(tmp_path)
    path = tmp_path / "dogs-vs-cats" / "train" / "dog.3.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DatasetError, match=re.escape(f"image {path} is truncated")):
        load_split("cats_vs_dogs", "train", root=str(tmp_path))
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        check_dataset("cats_vs_dogs", root=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dogs-vs-cats"]  # no cache, no temp


def test_broken_source_leaves_existing_cache_untouched(tmp_path):
    write_cats_vs_dogs(tmp_path)
    load_split("cats_vs_dogs", "train", root=str(tmp_path))
    cache = tmp_path / CACHE
    before, stamp = cache.read_bytes(), os.stat(cache).st_mtime_ns
    (tmp_path / "dogs-vs-cats" / "train" / "cat.5.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*cat\.5\.jpg"):
        load_split("cats_vs_dogs", "test", root=str(tmp_path))
    assert cache.read_bytes() == before and os.stat(cache).st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [CACHE, "dogs-vs-cats"]


def test_already_split_layout(tmp_path):
    expected = write_cats_vs_dogs(tmp_path, n_per_class=7, layout="split", prefix="", n_test=3)
    train = load_split("cats_vs_dogs", "train", root=str(tmp_path))
    test = load_split("cats_vs_dogs", "test", root=str(tmp_path))
    assert train.images.shape == (8, 3, 64, 64) and len(test) == 6
    _close(train, expected["train"])
    _close(test, expected["test"])
    assert "already split" in check_dataset("cats_vs_dogs", root=str(tmp_path))


@pytest.mark.parametrize("where", ["train_folder", "kaggle_dir"])
def test_root_variants(tmp_path, where):
    expected = write_cats_vs_dogs(tmp_path)
    root = tmp_path / "dogs-vs-cats" / ("train" if where == "train_folder" else "")
    test = load_split("cats_vs_dogs", "test", root=str(root))
    _close(test, expected["test"])
    assert (root / CACHE).is_file()


def test_read_only_root_caches_in_cache_env(tmp_path, monkeypatch):
    write_cats_vs_dogs(tmp_path / "data")
    monkeypatch.setenv(cvd.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cvd.os, "access", lambda path, mode: False)  # tests may run as root
    load_split("cats_vs_dogs", "train", root=str(tmp_path / "data"))
    (cached,) = (tmp_path / "cache").iterdir()
    assert re.fullmatch(r"cats_vs_dogs_64-[0-9a-f]{12}\.npz", cached.name)
    assert not (tmp_path / "data" / CACHE).exists()


def test_root_inside_split_folder(tmp_path):
    write_cats_vs_dogs(tmp_path, layout="split", prefix="")
    with pytest.raises(DatasetError, match=re.escape(f"pass {tmp_path} as the root")):
        load_split("cats_vs_dogs", "train", root=str(tmp_path / "train" / "cat"))


def test_root_one_level_too_high(tmp_path):
    write_cats_vs_dogs(tmp_path / "kaggle", prefix="")
    with pytest.raises(DatasetError, match=re.escape(f"found Kaggle images in {tmp_path}")):
        load_split("cats_vs_dogs", "train", root=str(tmp_path))
    assert not list(tmp_path.glob("*.npz"))


def test_missing_split_folder(tmp_path):
    write_cats_vs_dogs(tmp_path, layout="split")
    shutil.rmtree(tmp_path / "dogs-vs-cats" / "test" / "dog")
    with pytest.raises(DatasetError, match=r"missing split folder .*test/dog/"):
        load_split("cats_vs_dogs", "train", root=str(tmp_path))
    assert not list(tmp_path.glob("*.npz"))


def test_one_class_missing(tmp_path):
    write_cats_vs_dogs(tmp_path)
    for p in (tmp_path / "dogs-vs-cats" / "train").glob("dog.*"):
        p.unlink()
    with pytest.raises(DatasetError, match=r"10 cat.N.jpg files but no dog.N.jpg"):
        load_split("cats_vs_dogs", "train", root=str(tmp_path))


def test_check_report(tmp_path):
    write_cats_vs_dogs(tmp_path)
    report = check_dataset("cats_vs_dogs", root=str(tmp_path))
    assert "found: Kaggle training folder" in report and "(10/10 cat.N.jpg/dog.N.jpg" in report
    assert re.search(r"source images: 20, widths \d+-\d+ px, heights \d+-\d+ px", report)
    assert f"cache: {tmp_path / CACHE} (written now)" in report
    assert "train: 16 images, shape (3, 64, 64)" in report and "test: 4 images" in report
