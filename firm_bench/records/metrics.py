"""A run's metrics.json: every score's AUROC, the learning curve's AULC, and the recipe labels.

``collect_metrics`` reads a run's score files (``scores/<evalset>/<score>[_k<k>].json``,
written by ``firm_bench.run.score``) and its learning curve; ``write_metrics``
writes the result under a lock (the score jobs of one run may finish at the
same time, so the last writer sees every score). ``recipe_labels`` is what
every output says about how its numbers were made (schedule, checkpoint
choice, BatchNorm momentum, loss form, precision, evaluation size and zoom,
...; where the reference code differs: docs/FAITHFULNESS.md). No torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from firm_bench.core import rundir as runs
from firm_bench.core.config import momentum_label, protocol, setting
from firm_bench.core.errors import StaleRecord
from firm_bench.core.facts.method import OUTLIERS
from firm_bench.core.rundir import TEST_EVALSET, checked_curve, read_curve
from firm_bench.method.metrics import aulc
from firm_bench.records import chain

__all__ = ["collect_metrics", "precision_of", "recipe_labels", "write_metrics"]


def precision_of(status: dict | None) -> str | None:
    """``fp32`` or ``bf16`` (autocast): how the run was trained, from its status' resolved speed options."""
    speed = (status or {}).get("speed") or {}
    return None if "bf16" not in speed else ("bf16" if speed["bf16"] else "fp32")


def recipe_labels(cfg: dict, status: dict | None = None) -> dict:
    """The recipe options every output is labelled with (where the reference differs: docs/FAITHFULNESS.md).

    ``loss_form``: the form the loss trained in (pairwise | concat, ``loss.form``
    as the config was built), ``loss_form_setting`` the setting it came from
    (reference | pairwise | concat); ``id_labels``: whether the ID images kept their
    class labels (multi-class FIRM). ``momentum``: the SGD momentum that ran
    (``config.momentum_label``: ``cycled 0.95-0.85-0.95`` under onecycle, as
    the reference, or the held value). ``status``: the run's status.json, for
    what only training knows (the precision it ran in; each resume under
    settings that change the rounding, ``resumed_under_other_settings``, e.g.
    ``resumed at epoch 2: threads 2 -> 1``, None when there was none).
    """
    return {
        "preset": cfg["preset"],
        "recipe": cfg["recipe"],
        "schedule": cfg["optim"]["schedule"],
        "momentum": momentum_label(cfg),
        "checkpoint": cfg["checkpoint"]["select"],
        "select_score": cfg["checkpoint"]["select_score"] if cfg["checkpoint"]["select"] == "best_test" else None,
        "bn_momentum": cfg["model"]["bn_momentum"],
        "head_init": cfg["model"]["head_init"],
        "loss_form": cfg["loss"]["form"],
        "loss_form_setting": setting(cfg, "loss.form"),
        "id_labels": bool(cfg["loss"]["id_labels"]),
        "tau": cfg["loss"]["tau"],
        "epochs": cfg["optim"]["epochs"],
        "batch_size": cfg["optim"]["batch_size"],
        "normalization": cfg["dataset"]["normalization"],
        "precision": precision_of(status),
        # resumed under settings that change the rounding (thread count, device, precision: run.numerics)
        "resumed_under_other_settings": "; ".join((status or {}).get("resumed_under_other_settings") or []) or None,
        **protocol(cfg).labels(),
        "outlier_differences": list(OUTLIERS[cfg["outliers"]["name"]].differences),
    }


def write_metrics(cfg: dict, run_dir: str | Path, stale: str = "refuse") -> dict:
    """:func:`collect_metrics` written to the run's metrics.json; returns it (``stale``: as there).

    Score jobs of one run (one per family) may finish at the same time: the
    collect-and-write happens under a lock, so the last writer sees every score.
    The run directory is held shared meanwhile (``rundir.writing``: no training).
    """
    import fcntl

    with runs.writing(run_dir, "metrics"), open(Path(run_dir) / ".metrics.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metrics = collect_metrics(cfg, run_dir, stale)
        runs.atomic_write_json(Path(run_dir) / runs.METRICS_FILE, metrics)
    return metrics


def collect_metrics(cfg: dict, run_dir: str | Path, stale: str = "refuse") -> dict:
    """Every score JSON of the run and its learning curve, as the metrics.json dict (reads only).

    ``scores`` holds the run's own test protocol (evalset ``test``); ``evalsets``
    every evaluation set, e.g. ``ood-svhn`` for Table 4. Each score file must
    come from the run's model and its evaluation set's cache (``records.chain``):
    a stale one raises :class:`~firm_bench.core.errors.StaleRecord` naming it and
    what to rerun, or with ``stale="leave out"`` (a score job, whose sibling jobs
    of the run rescore the other families) is left out with a line on stderr.
    metrics.json records what it was made from: the model's and the curve's
    sha256 and each score file's (``scores_sha256``), and the run's identity.
    """
    if stale not in ("refuse", "leave out"):
        raise ValueError(f"stale must be 'refuse' or 'leave out', got {stale!r}")
    run_dir = Path(run_dir)
    evalsets: dict[str, dict] = {}
    scores_sha: dict[str, str] = {}
    for path in sorted((run_dir / "scores").glob("*/*.json")):
        rec = runs.read_record(path)
        try:
            chain.check_score(run_dir, cfg, path, rec)
        except StaleRecord as exc:
            if stale == "refuse":
                raise
            print(f"firm-bench: left out of {run_dir / runs.METRICS_FILE}: {exc}", file=sys.stderr)
            continue
        scores_sha[f"{path.parent.name}/{path.stem}"] = runs.file_sha256(path)
        entry = {k: rec.get(k) for k in ("score", "k", "status", "auroc", "reason")}
        base = rec.get("untrained") or {}
        entry["untrained_auroc"] = base.get("auroc") if base.get("status") == "ok" else None
        evalsets.setdefault(path.parent.name, {})[path.stem] = entry
    trained_file = run_dir / runs.TRAINED_FILE
    trained = runs.read_record(trained_file) if trained_file.is_file() else {}
    # a finished training's curve is checked against the recipe and the checkpoint (a short or edited
    # curve.csv raises, naming the file); an unfinished one's gives no AULC or final AUROC
    finished = trained.get("state") == "ok"
    curve = checked_curve(run_dir, cfg) if finished else read_curve(run_dir)
    # AULC keeps the reference's points (epochs eval.every, 2 eval.every, ..., E): the epoch-0 point
    # (the untrained model, eval.at_start) is the baseline, shown in the figures, not integrated
    aurocs = [row["auroc"] for row in curve if row["epoch"] > 0] if finished else []
    start = [row["auroc"] for row in curve if row["epoch"] == 0]
    status = runs.read_status(run_dir) or {}
    metrics = {
        "run": {
            "dataset": cfg["dataset"]["name"],
            "cls": cfg["dataset"]["cls"],
            "loss": cfg["loss"]["name"],
            "outliers": cfg["outliers"]["name"],
            "recipe": cfg["recipe"],
            "seed": cfg["seed"],
        },
        "checkpoint_sha256": chain.model_sha256(run_dir, cfg)[0],
        "curve_sha256": runs.curve_sha256(run_dir),
        "scores_sha256": scores_sha,
        "recipe": recipe_labels(cfg, status),
        "train_status": status.get("state"),
        "train_seconds": status.get("train_seconds"),
        "curve_points": len(aurocs),
        "final_auroc": aurocs[-1] if aurocs else None,
        "best_test_auroc": max(aurocs) if aurocs else None,
        "aulc": aulc(aurocs) if len(aurocs) >= 2 else None,
        "aulc_points": "epochs > 0 (epoch 0, the untrained model, is left out as in the reference)",
        "untrained_curve_auroc": start[0] if start else None,
        "scores": evalsets.get(TEST_EVALSET, {}),
        "evalsets": evalsets,
    }
    return metrics
