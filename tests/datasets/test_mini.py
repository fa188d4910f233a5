"""fmnist_mini: the embedded Fashion-MNIST subset and its build script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from firm_bench.datasets import get_dataset, load_split
from firm_bench.datasets.fashion_mnist import read_arrays
from firm_bench.core.facts.datasets import MINI_PER_CLASS as PER_CLASS
from tests.helpers import ROOT

DATA = ROOT / "firm_bench" / "datasets" / "data"
NPZ = DATA / "fmnist_mini.npz"
OFFICIAL = Path("/usr/share/datasets/fashion-mnist")


def official_or_skip() -> Path:
    if not (OFFICIAL / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"official Fashion-MNIST not installed in {OFFICIAL} "
                    "(apt-get install dataset-fashion-mnist)")
    return OFFICIAL


def test_counts_size_and_licence():
    assert NPZ.stat().st_size <= 2 * 1024 * 1024
    licence = (DATA / "LICENSE-fashion-mnist.txt").read_text()
    assert "MIT" in licence and "Zalando SE" in licence and "2017" in licence
    for split, n in PER_CLASS.items():
        data = load_split("fmnist_mini", split)
        assert torch.bincount(data.labels).tolist() == [n] * 10
        assert data.images.shape == (10 * n, 3, 28, 28)
    assert PER_CLASS == {"train": 200, "test": 100}


def test_root_ignored():
    a = load_split("fmnist_mini", "test", root="/does/not/exist", download=True)
    b = load_split("fmnist_mini", "test")
    assert torch.equal(a.images, b.images)
    assert get_dataset("fmnist_mini").classes == get_dataset("fashion_mnist").classes


@pytest.mark.parametrize("split", ["train", "test"])
def test_byte_identical_to_official(split):
    images, labels = read_arrays(str(official_or_skip()), split, prefix="")
    with np.load(NPZ) as z:
        index = z[f"{split}_indices"]
        assert np.array_equal(z[f"{split}_images"], images[index])
        assert np.array_equal(z[f"{split}_labels"], labels[index])
    # the documented selection: per class the first PER_CLASS images, in file order
    first = np.sort(np.concatenate(
        [np.flatnonzero(labels == c)[: PER_CLASS[split]] for c in range(10)]))
    assert np.array_equal(index, first)


def test_build_script_is_reproducible(tmp_path):
    source = official_or_skip()
    script = ROOT / "scripts" / "build_fmnist_mini.py"
    out = tmp_path / "mini.npz"
    run = subprocess.run([sys.executable, str(script), "--source", str(source), "--out", str(out)],
                         capture_output=True, text=True, check=True)
    assert "Ankle boot=200" in run.stdout and "Ankle boot=100" in run.stdout
    assert f"({out.stat().st_size} bytes" in run.stdout
    assert out.read_bytes() == NPZ.read_bytes()
