"""The chain of identity: each record of a run names the sha256 of what it was made from, and each reader
checks the link it depends on. No torch.

The links (each written by the step that makes the record)::

    trained.json                   run (its identity), checkpoint_sha256 {last.pt, best_test.pt}: the final model
    features/<evalset>/meta.json   run, checkpoint_sha256 (the model it encoded), features (the config that
                                   shaped the cache, :func:`features_identity`), cache_sha256, untrained_sha256
    scores/<evalset>/<key>.json    checkpoint_sha256, features, cache_sha256 (copied from the meta.json it used)
    metrics.json                   run, checkpoint_sha256, curve_sha256, scores_sha256 {<evalset>/<key>: sha256}

A checkpoint's or a cache's sha256 is the one its checksum record holds
(``<file>.sha256``, computed once when ``rundir.atomic_torch_save`` wrote it;
``rundir.torch_load`` checks the file against it when the file is loaded).
The model a run's results must come from is the one ``trained.json`` names
(``checkpoint.select`` picks last.pt or best_test.pt), or, before training
finished (a peek at an interrupted run), the checkpoint as it is now.

A link that does not hold raises :class:`~firm_bench.core.errors.StaleRecord`
naming both files and the commands that make the record again: a cache
extracted at epoch 2 of a run since trained on, or under other
``features.*`` values, or copied from another run's directory, is never
scored as the run's; a run directory moved or copied under another path
(its records say FIRM seed 5, its path NT-Xent seed 0) is never tabled under
its path's labels. Records written before these links existed carry none:
they are checked where the run's model is known (refused as stale: make
them again) and taken as they are where nothing is known (hand-made caches).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from firm_bench.core import rundir as runs
from firm_bench.core.errors import ConfigError, StaleRecord

#: the checkpoint file of each ``checkpoint.select`` value
CHECKPOINTS = {"last": "last.pt", "best_test": "best_test.pt"}
#: features keys that do not change a cache's numbers (the extraction's batch size)
FEATURES_NOT_IN_CACHE = ("batch_size",)
IDENTITY = ("dataset", "cls", "loss", "outliers", "recipe", "seed")


def short(sha: object) -> str:
    return f"{sha[:12]}..." if isinstance(sha, str) else "none (not recorded: written before records named it)"


def recorded_sha256(path: str | Path) -> str:
    """The sha256 of a file ``rundir.atomic_torch_save`` wrote, from its checksum record (no rehashing); a file
    without a record is hashed."""
    record = runs.checksum_path(path)
    if record.is_file():
        sha = runs.read_record(record).get("sha256")
        if isinstance(sha, str):
            return sha
    return runs.file_sha256(path)


def run_identity(cfg: Mapping) -> dict:
    """What names the run (its directory's levels): dataset, cls, loss, outliers, recipe, seed."""
    return dataclasses.asdict(runs.Run.of_config(cfg))


def features_identity(cfg: Mapping) -> dict:
    """The ``features`` config a cache is made under (what changes its numbers: angles, crops, crop scale, ...)."""
    return {k: v for k, v in cfg["features"].items() if k not in FEATURES_NOT_IN_CACHE}


def checkpoint_path(run_dir: str | Path, cfg: Mapping) -> Path:
    """The checkpoint ``checkpoint.select`` scores: ``checkpoints/last.pt`` or ``checkpoints/best_test.pt``."""
    return Path(run_dir) / "checkpoints" / CHECKPOINTS[cfg["checkpoint"]["select"]]


def trained_links(run_dir: str | Path, cfg: Mapping) -> dict:
    """What ``trained.json`` records of the final model: the run's identity and each checkpoint's sha256."""
    ckpts = Path(run_dir) / "checkpoints"
    return {"run": run_identity(cfg),
            "checkpoint_sha256": {name: recorded_sha256(ckpts / name) for name in CHECKPOINTS.values()
                                  if (ckpts / name).is_file()}}


def model_sha256(run_dir: str | Path, cfg: Mapping) -> tuple[str | None, Path]:
    """The sha256 of the model the run's results must come from, and the file that says so.

    ``trained.json`` (training finished) names it; before it is written (or one
    written before it recorded checkpoints) the checkpoint itself does. None when
    nothing names a model: a failed training (its failure is the result), or no
    checkpoint at all.
    """
    run_dir = Path(run_dir)
    name = CHECKPOINTS[cfg["checkpoint"]["select"]]
    trained_file = run_dir / runs.TRAINED_FILE
    trained = runs.read_record(trained_file) if trained_file.is_file() else {}
    if trained.get("state") == "failed":
        return None, trained_file
    recorded = trained.get("checkpoint_sha256")
    if trained.get("state") == "ok" and isinstance(recorded, dict) and isinstance(recorded.get(name), str):
        return recorded[name], trained_file
    ckpt = run_dir / "checkpoints" / name
    return (recorded_sha256(ckpt), ckpt) if ckpt.is_file() else (None, ckpt)


def check_checkpoint(run_dir: str | Path, cfg: Mapping) -> None:
    """Refuse a checkpoint of a finished run that is not the final one ``trained.json`` names (an older one
    restored, or one copied in): :class:`StaleRecord` naming both files and what to do."""
    run_dir = Path(run_dir)
    want, source = model_sha256(run_dir, cfg)
    ckpt = checkpoint_path(run_dir, cfg)
    if source.name == runs.TRAINED_FILE and want is not None and ckpt.is_file() and recorded_sha256(ckpt) != want:
        raise StaleRecord(ckpt, f"has sha256 {short(recorded_sha256(ckpt))}, but {source} names the final model "
                                f"{short(want)}: not the checkpoint the training ended with", "the run's checkpoint",
                          f"put the run's final checkpoint back in {ckpt.parent}, or retrain the run from scratch "
                          f"(delete {ckpt.parent} and {source}, then `firm-bench train --config "
                          f"{run_dir / runs.CONFIG_FILE} --run-dir {run_dir}`)")


def _differences(got: Mapping, want: Mapping) -> list[str]:
    return [f"{k}: {got.get(k, '(absent)')!r} -> {want.get(k, '(absent)')!r}" for k in sorted(set(got) | set(want))
            if got.get(k) != want.get(k)]


def redo_features(run_dir: str | Path, evalset: str) -> str:
    """The commands that make a run's feature cache and scores again."""
    return (f"rerun `firm-bench features {run_dir} --evalset {evalset}`, then `firm-bench score {run_dir} "
            f"--evalset {evalset}` (or `firm-bench score {run_dir} --evalset {evalset} --refresh`, which does both)")


def check_features(run_dir: str | Path, cfg: Mapping, evalset: str, meta: Mapping) -> None:
    """Refuse a feature cache (``meta.json`` state ok) not made from the run's model under its features config.

    Checks meta.json's links: the checkpoint (:func:`model_sha256`), the
    ``features`` config (config.yaml's now), and the cache file (its checksum
    record). Raises :class:`StaleRecord` naming meta.json, the other file and
    the commands that extract and score again.
    """
    run_dir = Path(run_dir)
    meta_file = runs.meta_path(run_dir, evalset)
    what, fix = "the feature metadata of evaluation set " + evalset, redo_features(run_dir, evalset)
    want, source = model_sha256(run_dir, cfg)
    got = meta.get("checkpoint_sha256")
    if want is not None and got != want:
        epoch = f" (epoch {meta.get('epoch')})" if meta.get("epoch") is not None else ""
        raise StaleRecord(meta_file, f"was extracted from the model with sha256 {short(got)}{epoch}, but the run's "
                                     f"model is {short(want)}, as {source} records: a stale cache (of an earlier "
                                     "checkpoint, or copied from another run's directory)", what, fix)
    if "features" in meta or want is not None:
        diff = _differences(meta.get("features") or {}, features_identity(cfg))
        if diff:
            raise StaleRecord(meta_file, f"was extracted under other features settings than "
                                         f"{run_dir / runs.CONFIG_FILE} holds ({'; '.join(diff)})", what, fix)
    cache = runs.cache_path(run_dir, evalset)
    if "cache_sha256" in meta and cache.is_file() and recorded_sha256(cache) != meta["cache_sha256"]:
        raise StaleRecord(meta_file, f"names the cache sha256 {short(meta['cache_sha256'])}, but {cache} is "
                                     f"{short(recorded_sha256(cache))} (a cache of another extraction)", what, fix)


def score_links(meta: Mapping) -> dict:
    """What a score file records of the cache it was computed from (copied from its meta.json)."""
    return {k: meta.get(k) for k in ("checkpoint_sha256", "features", "cache_sha256")}


def check_score(run_dir: str | Path, cfg: Mapping, path: Path, record: Mapping) -> None:
    """Refuse a score file not computed from the run's model and its evaluation set's current cache.

    Raises :class:`StaleRecord` naming the score file, the other file, and the commands that make it again.
    """
    run_dir = Path(run_dir)
    evalset = path.parent.name
    what = f"the {path.stem} score record of evaluation set {evalset}"
    want, source = model_sha256(run_dir, cfg)
    got = record.get("checkpoint_sha256")
    if want is not None and got != want:
        raise StaleRecord(path, f"was scored from the model with sha256 {short(got)} (epoch {record.get('epoch')}), "
                                f"but the run's model is {short(want)}, as {source} records", what,
                          redo_features(run_dir, evalset))
    meta_file = runs.meta_path(run_dir, evalset)
    meta = runs.read_record(meta_file) if meta_file.is_file() else {}
    if meta.get("state") == "ok" and "cache_sha256" in meta and record.get("cache_sha256") != meta["cache_sha256"]:
        raise StaleRecord(path, f"was scored from the cache sha256 {short(record.get('cache_sha256'))}, but "
                                f"{meta_file} names {short(meta['cache_sha256'])} (extracted again since)", what,
                          f"rerun `firm-bench score {run_dir} --evalset {evalset}`")


def check_identity(run_dir: str | Path, record_file: Path, recorded: Mapping | None) -> None:
    """Refuse a record whose run identity (``run``: dataset, cls, loss, outliers, recipe, seed) is not its path's.

    Only a path that reads as a run id (``.../dataset/cls/loss/outliers/recipe/seedN``) is compared; a field
    the record lacks (written before it was recorded) is not.
    """
    try:
        path_run = dataclasses.asdict(runs.Run.of_dir(run_dir))
    except (ValueError, ConfigError):
        return
    if not isinstance(recorded, Mapping):
        return
    diff = [f"{k} {recorded[k]} (its path: {path_run[k]})" for k in IDENTITY
            if recorded.get(k) is not None and str(recorded[k]) != str(path_run[k])]
    if diff:
        try:  # where the records say the run lives (below the same runs root)
            home = runs.Run(**{k: int(recorded[k]) if k == "seed" else str(recorded[k]) for k in IDENTITY}).id
        except (KeyError, ValueError, TypeError, ConfigError):
            home = "its own run directory"
        raise StaleRecord(record_file, f"is the record of another run than its path names: {', '.join(diff)} (the "
                                       "run directory was moved or copied, or trained with another run's config)",
                          "the run's identity",
                          f"move {run_dir} back to {home} under its runs root, or retrain this run in its own "
                          f"directory (`firm-bench train --run-dir {run_dir}` with the run's own recipe)")


def metrics_identity(metrics: Mapping) -> dict:
    """The run identity a metrics.json records (``run``; its recipe also from the recipe labels)."""
    run = dict(metrics.get("run") or {})
    if "recipe" not in run and isinstance(metrics.get("recipe"), Mapping) and metrics["recipe"].get("recipe"):
        run["recipe"] = metrics["recipe"]["recipe"]
    return run


def check_metrics(run_dir: str | Path, metrics: Mapping | None) -> None:
    """Refuse a run whose metrics.json or trained.json is not this run's (identity vs path), or whose
    metrics.json is not its final model's (``metrics``: the metrics.json read, None when there is none).

    The model: metrics.json's ``checkpoint_sha256`` must be the one trained.json
    names for the checkpoint the metrics' recipe labels say was scored, and its
    ``curve_sha256`` trained.json's. Raises :class:`StaleRecord`.
    """
    run_dir = Path(run_dir)
    metrics_file = run_dir / runs.METRICS_FILE
    if metrics is not None:
        check_identity(run_dir, metrics_file, metrics_identity(metrics))
    trained_file = run_dir / runs.TRAINED_FILE
    trained = runs.read_record(trained_file) if trained_file.is_file() else {}
    check_identity(run_dir, trained_file, trained.get("run"))
    if metrics is None or trained.get("state") != "ok":
        return
    fix = (f"rerun `firm-bench features {run_dir}`, then `firm-bench score {run_dir}` (for each evaluation set: "
           "--evalset)")
    select = (metrics.get("recipe") or {}).get("checkpoint") or "last"
    want = (trained.get("checkpoint_sha256") or {}).get(CHECKPOINTS.get(select, "last.pt"))
    if want is not None and metrics.get("checkpoint_sha256") != want:
        raise StaleRecord(metrics_file, f"holds the scores of the model with sha256 "
                                        f"{short(metrics.get('checkpoint_sha256'))}, but {trained_file} names the "
                                        f"final model {short(want)}", "the run's metrics", fix)
    curve = trained.get("curve_sha256")
    if curve is not None and "curve_sha256" in metrics and metrics["curve_sha256"] != curve:
        raise StaleRecord(metrics_file, f"was computed from another learning curve than {trained_file} records",
                          "the run's metrics", f"rerun `firm-bench metrics {run_dir}`")
