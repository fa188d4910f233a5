"""Build firm_bench/datasets/data/fmnist_mini.npz from the official Fashion-MNIST.

Usage:
    python scripts/build_fmnist_mini.py --source /usr/share/datasets/fashion-mnist \\
        --out firm_bench/datasets/data/fmnist_mini.npz

``--source`` holds the four IDX files (plain or .gz), either directly or under
``FashionMNIST/raw/``. Selection (see firm_bench/datasets/mini.py): per class,
the first 200 training and the first 100 test images in file order, kept in
file order. The npz holds ``classes``, ``{split}_images`` uint8 (N, 28, 28),
``{split}_labels`` int64 and ``{split}_indices`` int64 (positions in the
official files).

The output is byte-for-byte reproducible: it is the npz format of
np.savez_compressed (a zip of .npy members, deflate), but written with a fixed
member timestamp, which np.savez_compressed sets to the current time.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from firm_bench.core.errors import DataProblem  # noqa: E402
from firm_bench.datasets.fashion_mnist import CLASSES, RAW, read_arrays  # noqa: E402
from firm_bench.core.facts.datasets import MINI_PER_CLASS as PER_CLASS  # noqa: E402

MAX_BYTES = 2 * 1024 * 1024


def select(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, in file order."""
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))]
    short = [CLASSES[c] for c, p in enumerate(picks) if len(p) < per_class]
    if short:
        raise SystemExit(f"error: fewer than {per_class} images of class(es) {short}")
    return np.sort(np.concatenate(picks)).astype(np.int64)


def build(source: str) -> dict[str, np.ndarray]:
    """The arrays of the subset, read from the IDX files in ``source``."""
    prefix = RAW if (Path(source) / RAW).is_dir() else ""
    arrays = {"classes": np.array(CLASSES)}
    for split, per_class in PER_CLASS.items():
        images, labels = read_arrays(source, split, prefix=prefix)
        index = select(labels, per_class)
        arrays |= {f"{split}_images": images[index], f"{split}_labels": labels[index],
                   f"{split}_indices": index}
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format with fixed timestamps; atomic (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main(source: str, out: str) -> None:
    try:
        arrays = build(source)
    except DataProblem as e:
        raise SystemExit(f"error: {e.problem}" + (f"\nhint: {e.hint}" if e.hint else "")) from e
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz(path, arrays)
    for split in PER_CLASS:
        counts = np.bincount(arrays[f"{split}_labels"], minlength=len(CLASSES))
        print(f"{split}: {counts.sum()} images; per class: "
              + ", ".join(f"{c}={n}" for c, n in zip(CLASSES, counts)))
    size = path.stat().st_size
    print(f"wrote {path} ({size} bytes, {size / 2**20:.2f} MiB)")
    if size > MAX_BYTES:
        raise SystemExit(f"error: {path} is {size} bytes, over the {MAX_BYTES} byte budget")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--out", default="firm_bench/datasets/data/fmnist_mini.npz")
    main(**vars(parser.parse_args()))
