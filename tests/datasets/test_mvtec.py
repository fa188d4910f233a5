"""MVTec AD loader on fixtures in the official folder layout (PNG, grayscale classes, defects)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from firm_bench.datasets import (
    DatasetError,
    check_dataset,
    get_dataset,
    load_split,
    mvtec,
    one_class_split,
)
from tests.helpers.data import assert_marker, write_mvtec, write_png16


@pytest.fixture
def small(tmp_path):
    """bottle (RGB) + grid (grayscale) at 64 px, extracted directly into the root."""
    return tmp_path, write_mvtec(tmp_path, classes=("bottle", "grid"), size=64)


@pytest.mark.parametrize("container", ["", "mvtec_ad", "mvtec_anomaly_detection"])
def test_accepted_folder_levels(tmp_path, container):
    write_mvtec(tmp_path / container if container else tmp_path, classes=("bottle",), size=32)
    train, test, targets = one_class_split("mvtec", "bottle", root=str(tmp_path), image_size=32)
    assert len(train) == 3 and len(test) == 6 and targets.tolist() == [1, 1, 0, 0, 0, 0]
    report = check_dataset("mvtec", root=str(tmp_path))
    found = f"<root>/{container}/" if container else "directly in the root"
    assert found in report.splitlines()[2]


def test_one_class_protocol_grayscale_class(small):
    root, expected = small
    train, test, targets = one_class_split("mvtec", "grid", root=str(root), image_size=64)
    grid = get_dataset("mvtec").classes.index("grid")
    assert grid == 4 and (train.labels == grid).all() and (test.labels == grid).all()
    # exact pixels (no resize at 64), grayscale replicated to 3 channels
    exp_train, exp_labels = expected["train"]
    assert np.array_equal(train.images.numpy(), exp_train[exp_labels == grid])
    exp_test, exp_test_labels = expected["test"]
    assert np.array_equal(test.images.numpy(), exp_test[exp_test_labels == grid])
    assert torch.equal(test.images[:, 0], test.images[:, 2])
    # good first, then the defect folders by name; 1 = good, 0 = any defect
    assert test.group_names == ("good", "bent", "glue")
    assert test.groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert targets.tolist() == [1, 1, 0, 0, 0, 0] and targets.dtype == torch.int64
    assert train.groups.tolist() == [0, 0, 0]


def test_class_by_index_or_name(small):
    root, _ = small
    by_name = one_class_split("mvtec", "bottle", root=str(root), image_size=64)
    by_index = one_class_split("mvtec", 0, root=str(root), image_size=64)
    for a, b in zip(by_name[:2], by_index[:2]):
        assert torch.equal(a.images, b.images)
    assert torch.equal(by_name[2], by_index[2])
    assert_marker(by_name[0].images)  # bottle/train/good/000.png: row/column/channel order
    with pytest.raises(ValueError, match=r"unknown class 'bottel'.*0=bottle.*14=zipper"):
        one_class_split("mvtec", "bottel", root=str(root))


def test_reads_only_the_requested_class(small):
    root, _ = small
    (root / "bottle" / "test" / "good" / "000.png").write_bytes(b"broken")  # another class
    train, test, _ = one_class_split("mvtec", "grid", root=str(root), image_size=32)
    assert len(train) == 3 and len(test) == 6
    with pytest.raises(DatasetError, match="cannot read image .*bottle/test/good/000.png"):
        one_class_split("mvtec", "bottle", root=str(root), image_size=32)


def test_area_resize_while_reading(tmp_path):
    (tmp_path / "bottle").mkdir()
    write_mvtec(tmp_path, classes=("bottle",), size=128)
    board = ((np.arange(128)[:, None] + np.arange(128)[None, :]) % 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, -1)).save(tmp_path / "bottle/train/good/001.png")
    train, _, _ = one_class_split("mvtec", "bottle", root=str(tmp_path), image_size=64)
    x = train.images[1].int()
    assert train.images.shape == (3, 3, 64, 64)
    assert ((x - 128).abs() <= 1).all()  # 2x2 area average of a 1-px checkerboard: mid-grey


def test_default_size_and_all_classes(small):
    root, _ = small
    info = get_dataset("mvtec")
    assert info.native_size == info.image_size == mvtec.DEFAULT_SIZE == 256
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    test = load_split("mvtec", "test", root=str(root))  # every class present, 64 -> 256
    assert test.images.shape == (12, 3, 256, 256)
    assert test.labels.tolist() == [0] * 6 + [4] * 6
    assert test.group_names == ("good", "bent", "broken_large", "contamination", "glue")
    names = [test.group_names[g] for g in test.groups.tolist()]
    assert names == ["good", "good", "broken_large", "broken_large", "contamination",
                     "contamination", "good", "good", "bent", "bent", "glue", "glue"]


def test_root_inside_class_folder(small):
    root, _ = small
    with pytest.raises(DatasetError) as err:
        one_class_split("mvtec", "bottle", root=str(root / "bottle"))
    msg = str(err.value)
    assert f"root: {root / 'bottle'}" in msg
    assert f"root points inside the class folder bottle/; pass {root}" in msg


def test_root_one_level_too_high(tmp_path):
    write_mvtec(tmp_path / "datasets" / "MVTec", classes=("grid",), size=32)
    with pytest.raises(DatasetError, match=re.escape(f"pass {tmp_path / 'datasets' / 'MVTec'} "
                                                     "as the root")):
        check_dataset("mvtec", root=str(tmp_path / "datasets"))


def test_missing_test_split(small):
    root, _ = small
    shutil.rmtree(root / "bottle" / "test")
    with pytest.raises(DatasetError, match=re.escape(f"missing split: {root}/bottle/test/")) as e:
        check_dataset("mvtec", root=str(root))
    assert "expected bottle/test/good/*.png" in str(e.value)


def test_missing_class(small):
    root, _ = small
    with pytest.raises(DatasetError, match=r"class folder .*/cable/ is missing \(classes present"):
        one_class_split("mvtec", "cable", root=str(root))


def test_truncated_png_named_by_check_and_loader(small):
    root, _ = small
    path = root / "grid" / "test" / "glue" / "001.png"
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DatasetError, match=re.escape(f"image {path} is truncated")):
        check_dataset("mvtec", root=str(root))
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        one_class_split("mvtec", "grid", root=str(root), image_size=32)


def test_check_counts_headers_without_decoding(small, monkeypatch):
    root, _ = small
    (root / "grid" / "ground_truth" / "glue" / "000_mask.png").unlink()

    def no_decoding(path):
        raise AssertionError(f"check decoded {path}")

    monkeypatch.setattr(mvtec, "read_image", no_decoding)
    report = check_dataset("mvtec", root=str(root))
    assert "bottle: train/good 3; test 6 = 2 good, 2 broken_large, 2 contamination; " \
           "images 64x64 RGB; masks 4" in report
    assert "grid: train/good 3; test 6 = 2 good, 2 bent, 2 glue; images 64x64 L; masks 3 " \
           "(WARNING: 1 defect images without a ground_truth mask" in report
    assert "train: 6 images in 2 of 15 classes" in report and "test: 12 images" in report
    assert re.search(r"\n\s+1 cable\s+absent\n", report)
    assert "total: 18 images" in report


def test_16bit_pngs_are_scaled_to_8_bits_not_clipped(tmp_path):
    """A 16-bit grey PNG (mode I;16) in an MVTec class: every pixel round(x / 257), not convert('RGB')'s clip at 255;
    `data check` warns about the mode."""
    write_mvtec(tmp_path, classes=("grid",), size=32)
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 65536, (32, 32), dtype=np.uint16)
    grey[0, :4] = [0, 128, 129, 65535]  # the ends and the rounding boundary (128/257 < 0.5 < 129/257)
    write_png16(tmp_path / "grid" / "train" / "good" / "001.png", grey)
    train, _, _ = one_class_split("mvtec", "grid", root=str(tmp_path), image_size=32)
    got = train.images[1].numpy()
    want = np.rint(grey.astype(np.float64) * 255 / 65535).astype(np.uint8)  # the full range mapped onto 0..255
    assert np.array_equal(got[0], want) and np.array_equal(got[1], want) and np.array_equal(got[2], want)
    assert got[0, 0, :4].tolist() == [0, 0, 1, 255]
    assert (got == 255).mean() < 0.01  # clipped, ~99.6% of these pixels would be white
    report = check_dataset("mvtec", root=str(tmp_path))
    assert "grid: train/good 3;" in report and "I;16" in report
    assert "WARNING: images in mode I;16: 16-bit grey: scaled to 8 bits" in report


def test_32bit_images_are_refused_naming_the_file(tmp_path):
    write_mvtec(tmp_path, classes=("bottle",), size=32)
    path = tmp_path / "bottle" / "train" / "good" / "003.tif"  # PNG has no 32-bit mode; TIFF does
    Image.fromarray(np.full((32, 32), 70000, np.int32), "I").save(path)  # 32-bit integer pixels: no known range
    with pytest.raises(DatasetError, match=re.escape(f"image {path} has mode I") + ".*convert it to an 8-bit PNG"):
        one_class_split("mvtec", "bottle", root=str(tmp_path), image_size=32)
    refusal = re.escape(f"image {path} in mode I (32-bit integer pixels): firm-bench refuses them when reading; "
                        "convert them to 8-bit PNGs (RGB or grey)")
    with pytest.raises(DatasetError, match=refusal):  # `data check` fails as training would, naming the file
        check_dataset("mvtec", root=str(tmp_path))


def test_data_check_exits_non_zero_on_refused_image_modes(tmp_path, capsys):
    from firm_bench.cli import main

    write_mvtec(tmp_path, classes=("bottle",), size=32)
    assert main(["data", "check", "mvtec", "--root", str(tmp_path)]) == 0
    capsys.readouterr()
    for name in ("003.tif", "004.tif"):
        Image.fromarray(np.zeros((32, 32), np.float32), "F").save(tmp_path / "bottle" / "train" / "good" / name)
    assert main(["data", "check", "mvtec", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"image {tmp_path / 'bottle' / 'train' / 'good' / '003.tif'} and 1 more in mode F (32-bit float pixels): " \
           "firm-bench refuses them when reading" in err, err
