"""The run directory: its layout (the one home of every path in it), atomic writes, status, provenance.

One directory per run, named by content (never by timestamp; :class:`Run`)::

    results/runs/{dataset}/{cls}/{loss}/{outliers}/{recipe}/seed{seed}/
        config.yaml  versions.json  status.json  trained.json    # trained.json last: "training finished"
        curve.csv                                  # epoch (0 = untrained), auroc, loss, lr, elapsed[, select_auroc]
        checkpoints/last.pt  checkpoints/best_test.pt   # each with <file>.sha256 (checksum_path)
        features/{evalset}/cache.pt  meta.json     # evalset: test, or ood-<name> (Table 4)
        features/{evalset}/untrained/cache.pt      # the encoder at initialisation
        scores/{evalset}/{score}[_k{k}].json       # one file per score (score_path)
        metrics.json                               # every score's AUROC, the AULC, the recipe labels
        .lock  features/{evalset}/.lock            # held by the command writing the directory (writing)

Every file is written to a temporary name in the same directory and then
renamed, so a killed process never leaves a half-written file behind; the
temporary files of a killed write (named with their writer's host and PID)
are removed by the next command on the run directory (:func:`writing`).
Every reader names the file, says what it is and what to do when it is
damaged (:class:`~firm_bench.core.errors.DamagedFile`); checkpoints and
feature caches carry a sha256 record (``<file>.sha256``) verified on load,
``config.yaml`` a checksum line, and the learning curve is checked against
the recipe and the checkpoint before AULC is computed (:func:`checked_curve`).
A command that writes a run directory holds its lock (:func:`writing`,
``core.lock``). No torch at import: reading results needs none.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from firm_bench.core import lock as locks
from firm_bench.core.errors import ConfigError, DamagedFile, DiskFull, RunDirUnusable

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


def _temp_tag() -> str:
    """``<host>-<pid>`` of this process, as temporary file names carry it (host: letters, digits, '-')."""
    return f"{re.sub(r'[^A-Za-z0-9-]', '-', locks.host())[:64]}-{os.getpid()}"


#: a temporary file of :func:`atomic_write`: ``.<name>.<host>-<pid>.<random>.tmp``
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp$")


def atomic_write(
    path: str | Path, write: Callable[[io.BufferedWriter], Any], before_replace: Callable[[Path], Any] | None = None
) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync, then rename it to ``path``.

    The one place every firm-bench file is written: a failure (disk full,
    interrupt, kill) leaves any previous ``path`` untouched and no half-written
    file; the temporary file is removed (after a kill, by the next command on
    the run directory: its name carries this process's host and PID). Files are
    created 0644 (mkstemp's 0600 would hide results and caches from other users
    of a shared root). ``before_replace(tmp)`` runs on the complete temporary
    file just before the rename (the checksum record of :func:`atomic_torch_save`).
    A full disk (ENOSPC, EDQUOT, also when torch's zip writer reports it) raises
    :class:`DiskFull` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_temp_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _raise_if_full(exc, path)
        raise
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _raise_if_full(exc, path)
        raise
    return path


def _raise_if_full(exc: BaseException, path: Path) -> None:
    """Raise :class:`DiskFull` for ``path`` when ``exc`` is, or was caused by, a full disk or quota.

    torch's zip writer turns the OSError of a failed write into ``RuntimeError:
    [enforce fail at inline_container.cc] ...``: the OSError is its context.
    """
    if isinstance(exc, DiskFull):
        return
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        code = getattr(cur, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(cur):
            why = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
            raise DiskFull(path, f"{why} writing {path}: free space on its file system (`df -h {path.parent}`) "
                                 f"and rerun the command; the previous {path.name}, if any, is untouched") from exc
        cur = cur.__cause__ or cur.__context__


def remove_stale_temps(root: str | Path, everything_under: str | Path | None = None) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_write` calls left below ``root``; returns them.

    A temporary file is removed when its writer (host and PID in its name) is
    a process of this host that no longer runs, or, whatever its name, when it
    lies below ``everything_under`` (a directory the caller holds exclusively,
    so no live writer can own it).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    me, removed = _temp_tag().rsplit("-", 1)[0], []
    sole = Path(everything_under) if everything_under is not None else None
    for tmp in root.rglob(".*.tmp"):
        m = _TEMP.match(tmp.name)
        ours = sole is not None and (tmp == sole or sole in tmp.parents)
        dead = m is not None and m["host"] == me and not locks.pid_alive(int(m["pid"]))
        if tmp.is_file() and (ours or dead):
            with contextlib.suppress(OSError):
                size = tmp.stat().st_size
                tmp.unlink()
                removed.append(tmp)
                print(f"firm-bench: removed {tmp} ({size / 1e6:.1f} MB), left by a killed write", file=sys.stderr)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


CHECKSUM_SUFFIX = ".sha256"  # <file>.sha256: the sha256 record of a checkpoint or feature cache
_LAST_SHA: dict[str, str] = {}  # path -> sha256 of the file this process last wrote there


def checksum_path(path: str | Path) -> Path:
    """``<file>.sha256``: the JSON record (sha256, bytes, ...) of a file written by :func:`atomic_torch_save`."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_torch_save(path: str | Path, obj: Any, record: Mapping | None = None) -> Path:
    """``torch.save`` atomically, with a checksum record ``<file>.sha256`` verified by :func:`torch_load`.

    The record (``sha256``, ``bytes``, ``previous``, plus ``record``'s fields)
    is written before the file is renamed into place and names the file it
    replaces as ``previous``, so a kill between the two renames leaves a file
    that still verifies (the previous one).
    """
    import torch

    path = Path(path)
    key = os.path.realpath(path)
    previous = _LAST_SHA.get(key)
    if previous is None and path.is_file():
        previous = file_sha256(path)

    written: list[str] = []

    def record_checksum(tmp: Path) -> None:
        written.append(file_sha256(tmp))
        atomic_write_json(checksum_path(path), {"sha256": written[0], "bytes": tmp.stat().st_size,
                                                "previous": previous, **(record or {})})

    _LAST_SHA.pop(key, None)
    atomic_write(path, lambda fh: torch.save(obj, fh), before_replace=record_checksum)
    _LAST_SHA[key] = written[0]
    return path


def torch_load(path: str | Path, *, map_location: Any = None, weights_only: bool = False) -> Any:
    """``torch.load`` of a checkpoint or feature cache, verified against its checksum record first.

    A file that fails its record (flipped bytes, truncation) or that torch
    cannot read raises :class:`DamagedFile` naming it, what it is and what to
    do. A file without a record (written before records existed) is loaded
    unverified. A missing file raises FileNotFoundError.
    """
    import torch

    path = Path(path)
    what, fix = describe(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} ({what}) does not exist; {fix}")
    rec_path = checksum_path(path)
    if rec_path.is_file():
        rec = read_json(rec_path)
        sha = file_sha256(path)
        if sha not in (rec.get("sha256"), rec.get("previous")):
            raise DamagedFile(path, f"does not match its checksum record {rec_path.name} (sha256 {sha[:12]}..., "
                                    f"recorded {str(rec.get('sha256'))[:12]}...): its bytes changed after it was "
                                    "written", what, fix)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 -- torch reports damage as RuntimeError, EOFError, UnpicklingError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DamagedFile(path, f"cannot be read ({type(exc).__name__}: {first[:200]})", what, fix) from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path) -> Any:
    """A run file's JSON; a damaged one (truncated, not JSON, not UTF-8) raises :class:`DamagedFile`
    naming it, what it is and what to do (:func:`describe`)."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise DamagedFile(path, f"is damaged ({exc})", *describe(path)) from None


def read_record(path: str | Path) -> dict:
    """A run file's JSON object (a score, status, training or metrics record): :func:`read_json`, and
    :class:`DamagedFile` naming the file when it holds another JSON value (a list, a number, ...)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DamagedFile(path, f"holds a JSON {type(data).__name__}, not the object firm-bench writes",
                          *describe(path))
    return data


def _train_again(run_dir: Path) -> str:
    return (f"rerun the run's training, `firm-bench train --config {run_dir / CONFIG_FILE} --run-dir {run_dir}` "
            "(it resumes from its checkpoint and rewrites the file)")


def describe(path: str | Path) -> tuple[str, str]:
    """What a run file is and what to do when it is damaged: ``(what, fix)``, from its place in the layout."""
    path = Path(path)
    name, parts = path.name, path.parts
    if name.endswith(CHECKSUM_SUFFIX):
        what, fix = describe(path.with_name(name[: -len(CHECKSUM_SUFFIX)]))
        return f"the checksum record of {what}", fix
    if "features" in parts:
        i = len(parts) - 1 - parts[::-1].index("features")
        run_dir, evalset = Path(*parts[:i]), parts[i + 1] if i + 1 < len(parts) - 1 else TEST_EVALSET
        model = " (encoder at initialisation)" if UNTRAINED in parts[i:] else ""
        what = "the feature metadata" if name == "meta.json" else "the feature cache" + model
        return (f"{what} of evaluation set {evalset}",
                f"rerun `firm-bench features {run_dir} --evalset {evalset}`")
    if "scores" in parts and name.endswith(".json"):
        i = len(parts) - 1 - parts[::-1].index("scores")
        run_dir, evalset = Path(*parts[:i]), parts[i + 1]
        m = re.fullmatch(r"(.+)_k([0-9]+)", path.stem)
        which = f"--scores {m[1]} --k {m[2]}" if m else f"--scores {path.stem}"
        return (f"the {path.stem} score record of evaluation set {evalset}",
                f"rerun `firm-bench score {run_dir} --evalset {evalset} {which}`")
    if "checkpoints" in parts:
        run_dir = path.parent.parent
        again = f"`firm-bench train --config {run_dir / CONFIG_FILE} --run-dir {run_dir}`"
        if name.startswith("last.pt"):
            return ("the training checkpoint",
                    f"delete it (`rm {path}*`) and rerun the run's training, which then starts from scratch ({again})")
        return "the best-on-test checkpoint", f"delete {path.parent} and rerun the run's training from scratch ({again})"
    run_dir = path.parent
    if name == CONFIG_FILE:
        fix = (f"rerun `firm-bench train` with the run's recipe and `--run-dir {run_dir}` (it is checked against "
               f"the checkpoint and re-recorded), or delete {run_dir} to start over")
        return "the run's recorded config", fix
    if name == METRICS_FILE:
        return "the run's metrics", f"rerun `firm-bench metrics {run_dir}` (it rebuilds the file from the score files)"
    kinds = {STATUS_FILE: "the run's training status", TRAINED_FILE: "the training-finished record",
             CURVE_FILE: "the learning curve", "versions.json": "the run's library versions and hardware"}
    return kinds.get(name, f"a file of run directory {run_dir}"), _train_again(run_dir)


#: a run directory level's name (dataset, class, loss, outliers, recipe): what firm-bench's recipe names are
#: made of (``smoke+optim.lr=0.2``), so none can leave the runs root, hide, or read as a command-line option
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
MAX_NAME_LENGTH = 128  # well below a file system's 255 bytes per name


def check_name(level: str, value: object) -> str:
    """``value`` as the name of run directory level ``level``, or :class:`ConfigError` naming it and what to do."""
    text = str(value)
    if len(text) > MAX_NAME_LENGTH:
        problem = f"is {len(text)} characters long (at most {MAX_NAME_LENGTH})"
    elif ".." in text or "/" in text or os.sep in text:
        problem = "contains '..' or '/': the run directory would land outside the runs root"
    elif not NAME_PATTERN.fullmatch(text):
        bad = sorted({c for c in text if not re.fullmatch(r"[A-Za-z0-9._+=-]", c)}) or [text[:1]]
        problem = f"is not a safe directory name (it has {', '.join(repr(c) for c in bad)})"
    else:
        return text
    shown = text if len(text) <= 60 else text[:57] + "..."
    fix = ("choose another name (--recipe NAME, or the workflow variant's name)" if level == "recipe"
           else f"use the {level}'s registered name (firm-bench list)")
    raise ConfigError(f"{level} {shown!r} {problem}; a run directory level is letters, digits and . _ - + = "
                      f"(starting with a letter or digit, no '..', at most {MAX_NAME_LENGTH} characters): {fix}")


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

    def __post_init__(self) -> None:
        for level in ("dataset", "cls", "loss", "outliers", "recipe"):
            check_name("class" if level == "cls" else level, getattr(self, level))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed {self.seed!r} is not a non-negative integer: give a seed such as 0")

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


def curve_text(rows: list[dict]) -> str:
    """The text of curve.csv for the learning curve rows (:data:`CURVE_FIELDS`, plus ``select_auroc`` where
    the rows have it): what :func:`write_curve` writes and what its checksum records are computed from."""
    import csv

    buf = io.StringIO()
    fields = CURVE_FIELDS + (("select_auroc",) if rows and "select_auroc" in rows[0] else ())
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def curve_record(rows: list[dict]) -> dict:
    """What training records about its learning curve (in the checkpoint's checksum record and trained.json):
    the evaluated epochs and the sha256 of curve.csv's text."""
    return {"curve_epochs": [int(r["epoch"]) for r in rows],
            "curve_sha256": hashlib.sha256(curve_text(rows).encode("utf-8")).hexdigest()}


def curve_sha256(run_dir: str | Path) -> str:
    """The sha256 of a run's curve.csv as written (none written: the empty curve's text, as :func:`curve_record`
    hashes a run that evaluated no curve, e.g. an OOD run)."""
    path = Path(run_dir) / CURVE_FILE
    return file_sha256(path) if path.exists() else hashlib.sha256(curve_text([]).encode("utf-8")).hexdigest()


def write_curve(run_dir: str | Path, rows: list[dict]) -> Path:
    """curve.csv of the learning curve rows (:func:`curve_text`)."""
    return atomic_write_text(Path(run_dir) / CURVE_FILE, curve_text(rows))


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
    """The learning curve rows of a run (epoch as int, the rest as float); [] without curve.csv.

    A row that is incomplete or does not parse raises :class:`DamagedFile`. Only
    the structure is checked here; :func:`checked_curve` checks the points
    against the recipe and the checkpoint.
    """
    import csv

    path = Path(run_dir) / CURVE_FILE
    if not path.exists():
        return []
    try:
        with path.open(encoding="utf-8") as fh:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as exc:  # a short row has None values
        raise DamagedFile(path, f"is damaged ({exc or 'a short row'})", *describe(path)) from None


def expected_curve_epochs(cfg: Mapping) -> list[int]:
    """The epochs a finished training evaluated, from its recipe: 0 with ``eval.at_start``, then every
    ``eval.every``-th epoch and the last (``optim.epochs``); none without a test set (``dataset.cls: all``
    without ``dataset.ood``), as ``run.train`` evaluates."""
    ds = cfg["dataset"]
    if ds["cls"] == "all" and ds["ood"] is None:
        return []
    epochs, every = int(cfg["optim"]["epochs"]), int(cfg["eval"]["every"])
    return [0] * bool(cfg["eval"]["at_start"]) + [e for e in range(1, epochs + 1) if e % every == 0 or e == epochs]


def checked_curve(run_dir: str | Path, cfg: Mapping) -> list[dict]:
    """The learning curve of a finished training, checked before AULC or the final AUROC are computed from it.

    Its epochs must be the recipe's (:func:`expected_curve_epochs`) and its text
    the one recorded at the end of training (trained.json) and with the last
    checkpoint (its checksum record), where those records exist. Raises
    :class:`DamagedFile` naming curve.csv and what to do.
    """
    run_dir = Path(run_dir)
    path = run_dir / CURVE_FILE
    rows = read_curve(run_dir)
    got, want = [r["epoch"] for r in rows], expected_curve_epochs(cfg)
    what, fix = describe(path)
    if got != want:
        e = cfg["eval"]
        raise DamagedFile(path, f"holds {len(got)} points (epochs {_epochs(got)}), but the recipe (optim.epochs="
                                f"{cfg['optim']['epochs']}, eval.every={e['every']}, eval.at_start="
                                f"{str(e['at_start']).lower()}) evaluates {len(want)} (epochs {_epochs(want)})",
                          what, fix)
    sha = curve_sha256(run_dir)
    for record in (run_dir / TRAINED_FILE, checksum_path(run_dir / "checkpoints" / "last.pt")):
        rec = read_json(record) if record.is_file() else {}
        if "curve_sha256" in rec and rec["curve_sha256"] != sha:
            raise DamagedFile(path, f"differs from the curve recorded in {record} (its points were changed after "
                                    "training wrote them)", what, fix)
    return rows


def _epochs(epochs: list[int]) -> str:
    if not epochs:
        return "none"
    return ", ".join(map(str, epochs)) if len(epochs) <= 8 else f"{epochs[0]}, {epochs[1]}, ..., {epochs[-1]}"


CONFIG_HEADER = "# firm-bench run config; sha256 of the text below: "


def write_run_config(run_dir: str | Path, cfg: Mapping) -> Path:
    """config.yaml: the run's resolved config, under a first line holding the sha256 of the text below it."""
    import yaml

    text = yaml.safe_dump(dict(cfg), sort_keys=False)
    return atomic_write_text(Path(run_dir) / CONFIG_FILE,
                             f"{CONFIG_HEADER}{hashlib.sha256(text.encode('utf-8')).hexdigest()}\n{text}")


def read_run_config(run_dir: str | Path) -> dict:
    """The run's recorded config as written (not validated, no defaults filled in), its checksum verified.

    A config.yaml whose text does not match its checksum line (truncated, edited,
    or written by a firm-bench without the line) raises :class:`DamagedFile`:
    filling the gaps with schema defaults would relabel the run. A missing one
    raises FileNotFoundError.
    """
    import yaml

    run_dir = Path(run_dir)
    _refuse_a_file(run_dir)
    path = run_dir / CONFIG_FILE
    what, fix = describe(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory? "
                                "(run `firm-bench train` first)")
    try:
        head, _, text = path.read_bytes().decode("utf-8").partition("\n")
    except UnicodeDecodeError as exc:
        raise DamagedFile(path, f"is damaged ({exc})", what, fix) from None
    if not head.startswith(CONFIG_HEADER):
        raise DamagedFile(path, "has no checksum line (its first line), so it cannot be told from a truncated or "
                                "edited copy", what, fix)
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != head[len(CONFIG_HEADER):].strip():
        raise DamagedFile(path, "does not match its checksum line (truncated or edited after the run wrote it)",
                          what, fix)
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DamagedFile(path, f"is not valid YAML ({exc})", what, fix) from None
    if not isinstance(cfg, dict):
        raise DamagedFile(path, "does not hold a YAML mapping", what, fix)
    return cfg


#: what a training started from scratch removes: everything the previous training's model produced
PREVIOUS_OUTPUTS = (TRAINED_FILE, METRICS_FILE, CURVE_FILE, "scores", "features", "checkpoints/best_test.pt",
                    "checkpoints/best_test.pt" + CHECKSUM_SUFFIX)


def remove_previous_outputs(run_dir: str | Path) -> list[str]:
    """Remove the results of a previous training (:data:`PREVIOUS_OUTPUTS`) from ``run_dir``; returns their names.

    Called when a training starts from scratch (no checkpoint to resume): what
    an older model left (trained.json, features, scores, metrics, curve) must
    not be served as the new model's results until the new training ends.
    trained.json goes first: it is the workflow's "training finished" marker.
    """
    run_dir = Path(run_dir)
    removed = []
    for name in PREVIOUS_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


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
    return read_record(path) if path.exists() else None


#: how each command holds a run directory: (run lock, evaluation-set lock), each exclusive, shared or None.
#: Training rewrites everything: the whole directory, exclusively. Feature extraction rewrites one evaluation
#: set's features: that set exclusively, the directory shared (no training meanwhile). Scores and metrics
#: write one file each, atomically, and metrics.json under its own lock, so a workflow's concurrent score
#: jobs of one run proceed together; a training or a re-extraction of their features excludes them.
WRITERS = {"train": ("exclusive", None), "run": ("exclusive", None), "features": ("shared", "exclusive"),
           "score": ("shared", "shared"), "metrics": ("shared", None)}
LOCK_FILE = ".lock"


@contextlib.contextmanager
def writing(run_dir: str | Path, command: str, evalset: str | None = None) -> Iterator[Path]:
    """Hold ``run_dir`` for ``command`` (:data:`WRITERS`) for the ``with`` block, and clean up after killed writes.

    Raises :class:`~firm_bench.core.errors.RunDirLocked` at once when another
    process holds it in a conflicting mode (naming it: PID, host, command).
    Once held, the temporary files of killed writes are removed: all of them
    in what is held exclusively, elsewhere those of dead processes of this host
    (:func:`remove_stale_temps`).
    """
    run_dir = Path(run_dir)
    run_mode, set_mode = WRITERS[command]
    _refuse_a_file(run_dir)
    if run_mode != "exclusive" and not run_dir.is_dir():  # only training creates a run directory
        raise FileNotFoundError(f"{run_dir} does not exist: is it a run directory? (run `firm-bench train` first)")
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    what = " ".join(["firm-bench", *sys.argv[1:]]) if prog in ("firm-bench", "cli.py") else f"firm-bench {command}"
    what = what if len(what) <= 300 else what[:297] + "..."
    with contextlib.ExitStack() as stack, _unwritable_named(run_dir):
        stack.enter_context(locks.hold(run_dir / LOCK_FILE, exclusive=run_mode == "exclusive", command=what,
                                       subject=f"run directory {run_dir}"))
        sole = run_dir if run_mode == "exclusive" else None
        if set_mode is not None and evalset is not None:
            base = run_dir / "features" / evalset
            stack.enter_context(locks.hold(base / LOCK_FILE, exclusive=set_mode == "exclusive", command=what,
                                           subject=f"the {evalset} features of {run_dir}"))
            sole = sole or (base if set_mode == "exclusive" else None)
        remove_stale_temps(run_dir, everything_under=sole)
        try:
            yield run_dir
        except (DiskFull, OSError) as exc:
            if run_mode == "exclusive":
                record_disk_full(run_dir, exc)
            raise


def _refuse_a_file(run_dir: Path) -> None:
    """:class:`RunDirUnusable` when ``run_dir``, or the nearest of its parents that exists, is not a directory."""
    for path in (run_dir, *run_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "it is" if path == run_dir else f"{path} is"
                raise RunDirUnusable(f"run directory {run_dir}: {where} a file, not a directory; give a directory "
                                     "(a new one, or a run's) as the run directory, or move the file away")
            return


#: the errors of writing where one may not: permission denied, a read-only file system
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def _unwritable_named(run_dir: Path) -> Iterator[None]:
    """Turn a refused write inside ``run_dir`` (read-only directory or file system) into one line saying so."""
    try:
        yield
    except OSError as exc:
        inside = exc.filename is not None and Path(os.path.abspath(exc.filename)).is_relative_to(
            os.path.abspath(run_dir))
        if exc.errno not in _UNWRITABLE or not inside:
            raise
        raise RunDirUnusable(f"run directory {run_dir} cannot be written ({exc.strerror}: {exc.filename}); give "
                             "a writable run directory (--run-dir), or make it writable (`chmod -R u+w "
                             f"{run_dir}`, or remount its file system read-write)") from None


def record_disk_full(run_dir: str | Path, exc: BaseException) -> bool:
    """Record in status.json that this process's training of ``run_dir`` stopped on a full disk; whether it did.

    Only a status that says this process is training the run (``running``,
    this PID and host) is rewritten: as ``failed``, with the full disk as its
    reason, at the epoch of the last checkpoint (where a rerun resumes), so
    ``firm-bench status`` does not show a dead run as running at its last
    heartbeat. ``exc``: a :class:`DiskFull`, or an OSError ENOSPC / EDQUOT
    (anything else records nothing). The write is small and follows the
    removal of the failed write's temporary file; if it fails as well, a
    line on stderr says so.
    """
    run_dir = Path(run_dir)
    if not isinstance(exc, DiskFull) and getattr(exc, "errno", None) not in (errno.ENOSPC, errno.EDQUOT):
        return False
    try:
        status = read_status(run_dir) or {}
    except (OSError, DamagedFile):
        status = {}
    if status.get("state") != "running" or (status.get("pid"), status.get("host")) != (os.getpid(), locks.host()):
        return False
    try:
        ckpt = read_json(checksum_path(run_dir / "checkpoints" / "last.pt"))
        epoch = int(ckpt["epoch"]) if isinstance(ckpt, dict) else 0
    except (OSError, DamagedFile, KeyError, TypeError, ValueError):
        epoch = 0
    reason = (f"stopped by a full disk: {exc}; the training resumes from its checkpoint at epoch {epoch} when "
              "rerun" if epoch else f"stopped by a full disk: {exc}; rerun the training once there is space")
    try:
        write_status(run_dir, "failed", reason=reason, epoch=epoch, epochs=status.get("epochs"), stage="disk full",
                     **{k: status[k] for k in ("pid", "host", "started") if k in status})
    except (DiskFull, OSError) as again:
        print(f"firm-bench: {run_dir}: could not record the full disk in {STATUS_FILE} either ({again})",
              file=sys.stderr)
        return False
    return True


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
