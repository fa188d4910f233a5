"""The run directory: its layout (the one home of every path in it), atomic writes, status, provenance.

One directory per run, named by content (never by timestamp; :class:`Run`)::

    results/runs/{dataset}/{cls}/{loss}/{outliers}/{recipe}/seed{seed}/
        config.yaml  versions.json  status.json  trained.json    # trained.json last: "training finished"
        curve.csv                                  # epoch (0 = untrained), auroc, loss, lr, elapsed[, select_auroc]
        checkpoints/last.pt  checkpoints/best_test.pt
        features/{evalset}/cache.pt  meta.json     # evalset: test, or ood-<name> (Table 4)
        features/{evalset}/untrained/cache.pt      # the encoder at initialisation
        scores/{evalset}/{score}[_k{k}].json       # one file per score (score_path)
        metrics.json                               # every score's AUROC, the AULC, the recipe labels

Every file is written to a temporary name in the same directory and then
renamed, so a killed process never leaves a half-written file behind. No
torch at import: reading results needs none.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # torch is imported where needed: reading results (tables, reports) needs no torch
    import torch

STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"  # every score's AUROC, the AULC and the recipe labels (records.metrics)


def score_key(score: str, k: int | None) -> str:
    """A score's name in a run's records: ``cos_k5`` for a k-NN score (k given), ``center`` otherwise."""
    return f"{score}_k{k}" if k is not None else score


def score_path(run_dir: str | Path, evalset: str, score: str, k: int | None) -> Path:
    """``scores/<evalset>/<score>[_k<k>].json``: one score of one evaluation set."""
    return Path(run_dir) / "scores" / evalset / f"{score_key(score, k)}.json"


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], Any]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync, then rename it to ``path``.

    The one place every firm-bench file is written: a failure (disk full,
    interrupt, kill) leaves any previous ``path`` untouched and no half-written
    file; the temporary file is removed. Files are created 0644 (mkstemp's
    0600 would hide results and caches from other users of a shared root).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    import torch

    return atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


@dataclass(frozen=True, order=True)
class Run:
    """One training run's identity: the unit that is trained once and scored many ways.

    Its directory below the runs root is :attr:`id`,
    ``dataset/cls/loss/outliers/recipe/seedN`` (the Snakefile's ``{run}``
    wildcard); :meth:`parse` and :meth:`of_dir` read it back, so the layout
    is defined here only.
    """

    dataset: str
    cls: str
    loss: str
    outliers: str
    recipe: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.cls}/{self.loss}/{self.outliers}/{self.recipe}/seed{self.seed}"

    def path(self, root: str | Path) -> str:
        return f"{root}/{self.id}"

    @classmethod
    def parse(cls, run_id: str) -> "Run":
        """The run whose :attr:`id` is ``run_id``."""
        parts = run_id.split("/")
        if len(parts) != 6 or not parts[5].startswith("seed") or not parts[5][4:].isdigit():
            raise ValueError(f"not a run id (dataset/cls/loss/outliers/recipe/seedN): {run_id!r}")
        return cls(*parts[:5], int(parts[5][4:]))

    @classmethod
    def of_dir(cls, run_dir: str | Path) -> "Run":
        """The run of a run directory (its last six path parts)."""
        parts = Path(run_dir).parts
        if len(parts) < 6:
            raise ValueError(f"not a run directory (.../dataset/cls/loss/outliers/recipe/seedN): {str(run_dir)!r}")
        return cls.parse("/".join(parts[-6:]))

    @classmethod
    def of_config(cls, cfg: Mapping) -> "Run":
        """The run of a resolved run config (its recipe: ``recipe``, else the preset's name)."""
        recipe = cfg.get("recipe") or cfg.get("preset") or "none"  # recipe: null in a config not yet validated
        return cls(cfg["dataset"]["name"], str(cfg["dataset"]["cls"]), cfg["loss"]["name"], cfg["outliers"]["name"],
                   recipe, int(cfg["seed"]))


def run_dir_for(cfg: Mapping, root: str | Path = "results/runs") -> Path:
    """The content-addressed run directory of a resolved config."""
    return Path(Run.of_config(cfg).path(root))


def git_commit() -> str | None:
    """The firm-bench source tree's git commit (with ``-dirty``), if it is a checkout."""
    here = Path(__file__).resolve().parents[2]  # the checkout holding firm_bench/
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions(device: torch.device | None = None) -> dict:
    """Library versions, hardware and source commit, recorded with every run."""
    import numpy
    import sklearn
    import torch
    import torchvision

    import firm_bench

    info: dict[str, Any] = {
        "firm_bench": firm_bench.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
            info["cuda"] = torch.version.cuda
    return info


TEST_EVALSET = "test"  # the run's own test protocol (one-class: the whole test set)
OOD_PREFIX = "ood-"    # ood-<name>: this dataset's test set vs OOD set <name> (Table 4)
#: an evaluation set's name, as a regular expression (the Snakefile's ``{evalset}`` wildcard)
EVALSET_PATTERN = f"{TEST_EVALSET}|{OOD_PREFIX}[a-z0-9_]+"


def evalset_of(ood: str | None) -> str:
    """The evaluation set of an OOD set (``ood-<name>``), or the run's own test protocol for None."""
    return TEST_EVALSET if ood is None else f"{OOD_PREFIX}{ood}"


def ood_of(evalset: str) -> str | None:
    """The OOD set of an evaluation set (``ood-svhn`` -> ``svhn``), None for the run's own ``test``."""
    if evalset == TEST_EVALSET:
        return None
    if not evalset.startswith(OOD_PREFIX):
        raise ValueError(f"unknown evaluation set {evalset!r}; valid: {TEST_EVALSET}, {OOD_PREFIX}<dataset>")
    return evalset[len(OOD_PREFIX):]
CURVE_FILE = "curve.csv"
TRAINED_FILE = "trained.json"  # written last by training: the workflow's "training finished" marker
#: curve.csv columns; with ``checkpoint.select: best_test`` also ``select_auroc`` (the selection score)
CURVE_FIELDS = ("epoch", "auroc", "loss", "lr", "elapsed_s")


def write_curve(run_dir: str | Path, rows: list[dict]) -> Path:
    """curve.csv of the learning curve rows (:data:`CURVE_FIELDS`, plus ``select_auroc`` where the rows have it)."""
    import csv

    buf = io.StringIO()
    fields = CURVE_FIELDS + (("select_auroc",) if rows and "select_auroc" in rows[0] else ())
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(Path(run_dir) / CURVE_FILE, buf.getvalue())


UNTRAINED = "untrained"  # the run's encoder at initialisation (the untrained-encoder baseline)


def cache_path(run_dir: str | Path, evalset: str = TEST_EVALSET, model: str = "trained") -> Path:
    """The FeatureCache of one evaluation set: ``features/<evalset>/cache.pt`` of the trained
    model, ``features/<evalset>/untrained/cache.pt`` of the encoder at initialisation (``model``)."""
    if model not in ("trained", UNTRAINED):
        raise ValueError(f"model must be 'trained' or {UNTRAINED!r}, got {model!r}")
    base = Path(run_dir) / "features" / evalset
    return base / "cache.pt" if model == "trained" else base / UNTRAINED / "cache.pt"


def meta_path(run_dir: str | Path, evalset: str = TEST_EVALSET) -> Path:
    """``features/<evalset>/meta.json``: written last; says ok or failed (with the reason)."""
    return Path(run_dir) / "features" / evalset / "meta.json"


def read_curve(run_dir: str | Path) -> list[dict]:
    """The learning curve rows of a run (epoch as int, the rest as float)."""
    import csv

    path = Path(run_dir) / CURVE_FILE
    if not path.exists():
        return []
    with path.open() as fh:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)
        ]


#: the states of status.json: interrupted = stopped on a signal with a checkpoint (resumes on rerun)
STATUS_STATES = ("running", "ok", "failed", "interrupted")


def write_status(run_dir: str | Path, state: str, **fields: Any) -> Path:
    """status.json: ``state`` is one of :data:`STATUS_STATES`; failures carry a ``reason``.

    ``time`` is when it was written (while running, training rewrites it as a
    heartbeat, with ``pid`` and ``host``: ``records.status`` tells a dead run
    from a live one by them); ``time_unix`` is the same instant in seconds.
    """
    if state not in STATUS_STATES:
        raise ValueError(f"status state must be one of {', '.join(STATUS_STATES)}, got {state!r}")
    now = time.time()
    payload = {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
               "time_unix": round(now, 3), **fields}
    return atomic_write_json(Path(run_dir) / STATUS_FILE, payload)


def read_status(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / STATUS_FILE
    return read_json(path) if path.exists() else None


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise the named device (checked)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} requested but MPS is not available; use device: auto or cpu")
    return dev
