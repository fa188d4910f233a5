"""The unlabeled multiclass OOD protocol (Table 4), the OOD folder sets and the OE file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from firm_bench.cli import main as cli_main
from firm_bench.datasets import (
    DatasetError,
    check_dataset,
    get_dataset,
    load_split,
    ood_split,
    resolve_root,
)
from firm_bench.method.outliers import OE_ENV, OE_URL
from tests.helpers.data import (
    OOD_FOLDERS,
    _save,
    _solid,
    assert_marker,
    write_cifar10,
    write_cifar100,
    write_oe,
    write_ood_folder,
    write_png16,
    write_svhn,
)

# ---------------------------------------------------------------- ood_split


def test_ood_split_cifar10_vs_lsun_fix(tmp_path):
    cifar = write_cifar10(tmp_path)
    lsun = write_ood_folder("lsun_fix", tmp_path)
    train, test, targets = ood_split("cifar10", "lsun_fix", root=str(tmp_path))
    assert np.array_equal(train.images.numpy(), cifar["train"][0])  # every training image
    assert len(train) == 50 and sorted(set(train.labels.tolist())) == list(range(10))
    assert test.images.shape == (36, 3, 32, 32)
    assert np.array_equal(test.images[:30].numpy(), cifar["test"][0])
    assert np.array_equal(test.images[30:].numpy(), lsun["test"][0])
    assert_marker(test.images[30:])
    assert targets.dtype == torch.int64 and targets.tolist() == [1] * 30 + [0] * 6
    assert test.classes == (*get_dataset("cifar10").classes, "ood:lsun_fix")
    assert test.labels[30:].tolist() == [10] * 6


@pytest.mark.parametrize("ood", ["svhn", "cifar100", "lsun_resize", "imagenet_resize",
                                 "imagenet_fix"])
def test_every_table4_set_as_ood(tmp_path, ood):
    write_cifar10(tmp_path)
    n_ood = {"svhn": write_svhn, "cifar100": write_cifar100}.get(
        ood, lambda root: write_ood_folder(ood, root))(tmp_path)["test"][1].shape[0]
    train, test, targets = ood_split("cifar10", ood, root=str(tmp_path), image_size=16)
    assert train.images.shape == (50, 3, 16, 16) and test.images.shape == (30 + n_ood, 3, 16, 16)
    assert int(targets.sum()) == 30 and len(targets) == 30 + n_ood


def test_ood_split_rejects_bad_pairs():
    with pytest.raises(ValueError, match="in-distribution dataset 'svhn' has role 'ood'"):
        ood_split("svhn", "cifar10", root="/nonexistent")
    for bad in ("cifar10", "oe"):
        with pytest.raises(ValueError, match=f"'{bad}' cannot be the OOD test set of 'cifar10'; "
                                             "valid: cifar100, fashion_mnist, svhn"):
            ood_split("cifar10", bad, root="/nonexistent")


# ---------------------------------------------------------------- folder sets


@pytest.mark.parametrize("name", sorted(OOD_FOLDERS))
@pytest.mark.parametrize("subfolder", [True, False])
def test_folder_sets_flat_or_one_subfolder(tmp_path, name, subfolder):
    expected = write_ood_folder(name, tmp_path, n=5, subfolder=subfolder)
    (tmp_path / OOD_FOLDERS[name] / "._0.png").write_bytes(b"macOS resource fork")  # ignored
    data = load_split(name, "test", root=str(tmp_path))
    assert data.images.shape == (5, 3, 32, 32) and data.labels.tolist() == [0] * 5
    assert np.abs(data.images.numpy().astype(int) - expected["test"][0]).max() <= 4
    with pytest.raises(ValueError, match=f"{name} has no train split"):
        load_split(name, "train", root=str(tmp_path))


def test_folder_alternative_spellings(tmp_path):
    write_ood_folder("imagenet_fix", tmp_path)  # written as Imagenet_FIX/
    (tmp_path / "Imagenet_FIX").rename(tmp_path / "Imagenet_fix")  # CSI's own spelling
    assert len(load_split("imagenet_fix", "test", root=str(tmp_path))) == 6
    assert "Imagenet_FIX" in get_dataset("imagenet_fix").layout


def test_folder_wrong_image_size(tmp_path):
    write_ood_folder("lsun_resize", tmp_path)
    bad = tmp_path / "LSUN_resize" / "LSUN_resize" / "3.jpg"
    _save(bad, _solid((1, 2, 3), 64, 64), quality=95)
    with pytest.raises(DatasetError, match=re.escape(f"image {bad} is 64x64; lsun_resize images "
                                                     "are 32x32")):
        check_dataset("lsun_resize", root=str(tmp_path))


def test_folder_truncated_image(tmp_path):
    write_ood_folder("imagenet_resize", tmp_path)
    bad = tmp_path / "Imagenet_resize" / "Imagenet_resize" / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:-50])
    with pytest.raises(DatasetError, match=re.escape(f"image {bad} is truncated")):
        load_split("imagenet_resize", "test", root=str(tmp_path))


def test_folder_root_too_deep_or_too_high(tmp_path):
    write_ood_folder("lsun_fix", tmp_path / "ood")
    with pytest.raises(DatasetError, match=re.escape(f"pass its parent {tmp_path / 'ood'} as the "
                                                     "root")):
        load_split("lsun_fix", "test", root=str(tmp_path / "ood" / "LSUN_fix"))
    with pytest.raises(DatasetError, match=re.escape(f"pass {tmp_path / 'ood'} as the root")):
        load_split("lsun_fix", "test", root=str(tmp_path))


def test_folder_empty_or_too_deep(tmp_path):
    (tmp_path / "LSUN_fix" / "a" / "b").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no images in .*LSUN_fix/ or its subfolders"):
        load_split("lsun_fix", "test", root=str(tmp_path))
    _save(tmp_path / "LSUN_fix" / "a" / "b" / "0.png", _solid((0, 0, 0), 32, 32))
    with pytest.raises(DatasetError, match="at most one subfolder deep"):
        load_split("lsun_fix", "test", root=str(tmp_path))


def test_folder_check_report(tmp_path):
    write_ood_folder("lsun_resize", tmp_path)
    report = check_dataset("lsun_resize", root=str(tmp_path))
    assert f"found: {tmp_path / 'LSUN_resize'}/ (6 .jpg images in 1 subfolder(s) LSUN_resize" \
        in report
    assert "test: 6 images, shape (3, 32, 32)" in report and "splits test" in report

    assert "WARNING" not in report  # 8-bit RGB JPEGs: nothing unusual


def test_folder_16bit_png_scaled_and_warned(tmp_path):
    """CSI's *_fix sets are PNGs: a 16-bit grey one is scaled (round(x / 257)) and `data check` names the mode."""
    write_ood_folder("lsun_fix", tmp_path)
    grey = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    write_png16(tmp_path / "LSUN_fix" / "correct_resize_2.png", grey)
    images = load_split("lsun_fix", "test", root=str(tmp_path)).images
    want = np.rint(grey / 257.0).astype(np.uint8)
    assert all(np.array_equal(images[2, c].numpy(), want) for c in range(3))
    assert "WARNING: images in mode I;16: 16-bit grey: scaled to 8 bits" in check_dataset("lsun_fix", root=str(tmp_path))


# ---------------------------------------------------------------- OE (300K random images)

OE = "300K_random_images.npy"


@pytest.mark.parametrize("as_file", [True, False])
def test_oe_check_reports_shape_without_loading(tmp_path, as_file, monkeypatch):
    write_oe(tmp_path, n=20)
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    root = tmp_path / OE if as_file else tmp_path
    report = check_dataset("oe", root=str(root))
    assert calls == ["r"]  # memory-mapped through outliers.load_oe_array, never read whole
    assert f"file: {tmp_path / OE}" in report and "memory-mapped; not loaded" in report
    assert "train: 20 images, shape (32, 32, 3) (H, W, C; channels last), dtype uint8" in report


def test_oe_root_from_its_environment_variable(tmp_path, monkeypatch):
    expected = write_oe(tmp_path)
    monkeypatch.setenv(OE_ENV, str(tmp_path / OE))
    assert resolve_root("oe", None) == str(tmp_path / OE)
    data = load_split("oe", "train")
    assert np.array_equal(data.images.numpy(), expected["train"][0])


def test_oe_missing_says_where_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as err:
        check_dataset("oe", root=str(tmp_path))
    msg = str(err.value)
    assert f"{tmp_path / OE}" in msg and OE_URL in msg
    assert OE_URL == "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"


def test_oe_found_one_level_down(tmp_path):
    write_oe(tmp_path / "oe")
    with pytest.raises(DatasetError, match=re.escape(f"found {tmp_path / 'oe' / OE}")):
        check_dataset("oe", root=str(tmp_path))


@pytest.mark.parametrize("array, problem", [
    (np.zeros((4, 32, 32), np.uint8), r"shape \(4, 32, 32\); expected \(N, 32, 32, 3\) uint8"),
    (np.zeros((4, 3, 32, 32), np.uint8), r"shape \(4, 3, 32, 32\); expected \(N, 32, 32, 3\)"),
    (np.zeros((4, 32, 32, 3), np.float32), r"dtype float32; expected uint8"),
])
def test_oe_wrong_array(tmp_path, array, problem):
    np.save(tmp_path / OE, array)
    with pytest.raises(DatasetError, match=problem):
        check_dataset("oe", root=str(tmp_path))


def test_oe_truncated_file(tmp_path):
    write_oe(tmp_path)
    path = tmp_path / OE
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DatasetError, match="cannot read OE file"):
        check_dataset("oe", root=str(path))


def test_cli_data_check_oe(tmp_path, capsys):
    write_oe(tmp_path)
    assert cli_main(["data", "check", "oe", "--root", str(tmp_path / OE)]) == 0
    assert "train: 20 images" in capsys.readouterr().out
    assert cli_main(["data", "check", "oe", "--root", str(tmp_path / "none.npy")]) == 2
    assert OE_URL in capsys.readouterr().err
