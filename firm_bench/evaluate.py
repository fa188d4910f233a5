"""Score a run from its feature cache and write its metrics.

``score_run`` computes each requested score (``firm-bench list scores``) from
``features/<evalset>/cache.pt``, writes one ``scores/<evalset>/<score>[_k<k>].json``
per score and k (with AUROC, the checkpoint choice and its epoch), and then
``metrics.json``: every score's AUROC, the learning curve's AULC, the final
and best-on-test AUROC, and the recipe labels (schedule, checkpoint choice,
BatchNorm momentum, the loss's form, ID class labels, precision, evaluation
size and zoom, ...) so that no number travels without saying how it was made.

Every score is also computed for the run's encoder at initialisation
(``features/<evalset>/untrained/cache.pt``, ``features.untrained``): each
score file carries it as ``untrained`` and metrics.json as
``untrained_auroc``, the baseline every table shows as its "untrained
encoder" row (an easy class scores high even with random weights).

A score that cannot be computed (NaN features, a collapsed representation,
a missing crop cache) is recorded with ``"status": "failed"`` and its reason,
never as a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from firm_bench import runs
from firm_bench.catalog import loss_form, score_family
from firm_bench.metrics import aulc, auroc
from firm_bench.runs import TEST_EVALSET, cache_path, meta_path, read_curve


def score_file_name(name: str, k: int | None) -> str:
    """``cos_k5.json`` for a k-NN score, ``center.json`` otherwise."""
    return f"{name}_k{k}.json" if k is not None else f"{name}.json"


def precision_of(status: dict | None) -> str | None:
    """``fp32`` or ``bf16`` (autocast): how the run was trained, from its status' resolved speed options."""
    speed = (status or {}).get("speed") or {}
    return None if "bf16" not in speed else ("bf16" if speed["bf16"] else "fp32")


def recipe_labels(cfg: dict, status: dict | None = None) -> dict:
    """The recipe options every output is labelled with (where the reference differs: docs/FAITHFULNESS.md).

    ``loss_form``: the form the loss trained in (pairwise | concat), resolved
    from ``loss_form_setting`` = ``loss.form`` (reference | pairwise | concat;
    ``catalog.loss_form``); ``id_labels``: whether the ID images kept their
    class labels (multi-class FIRM). ``status``: the run's status.json, for
    what only training knows (the precision it ran in).
    """
    from firm_bench.catalog import outlier_differences
    from firm_bench.config import protocol

    return {
        "preset": cfg["preset"],
        "schedule": cfg["optim"]["schedule"],
        "checkpoint": cfg["checkpoint"]["select"],
        "select_score": cfg["checkpoint"]["select_score"] if cfg["checkpoint"]["select"] == "best_test" else None,
        "bn_momentum": cfg["model"]["bn_momentum"],
        "head_init": cfg["model"]["head_init"],
        "loss_form": loss_form(cfg["loss"]["name"], cfg["loss"]["form"]),
        "loss_form_setting": cfg["loss"]["form"],
        "id_labels": bool(cfg["loss"]["id_labels"]),
        "tau": cfg["loss"]["tau"],
        "epochs": cfg["optim"]["epochs"],
        "batch_size": cfg["optim"]["batch_size"],
        "normalization": cfg["dataset"]["normalization"],
        "precision": precision_of(status),
        **protocol(cfg).labels(),
        "outlier_differences": outlier_differences(cfg["outliers"]["name"]),
    }


def score_run(
    cfg: dict,
    run_dir: str | Path,
    names: Sequence[str] | None = None,
    ks: Iterable[int] | None = None,
    evalset: str = TEST_EVALSET,
) -> dict:
    """Compute scores from the run's feature cache; write per-score JSON and metrics.json.

    Returns the records computed by this call, keyed ``<score>[_k<k>]``.
    """
    from firm_bench.scores import FeatureCache  # torch: only where features are scored

    run_dir = Path(run_dir)
    meta_file = meta_path(run_dir, evalset)
    if not meta_file.exists():
        raise FileNotFoundError(
            f"{meta_file} does not exist: run `firm-bench features {run_dir} --evalset {evalset}` first"
        )
    meta = runs.read_json(meta_file)
    ok = meta.get("state") == "ok"
    cache = FeatureCache.load(cache_path(run_dir, evalset)) if ok else None
    untrained_file = cache_path(run_dir, evalset, runs.UNTRAINED)
    untrained = FeatureCache.load(untrained_file) if ok and meta.get("untrained") and untrained_file.exists() else None
    names = list(names or cfg["scores"]["names"])
    ks = sorted(set(ks or cfg["scores"]["k"]))
    results = {}
    for name in names:
        for k in ks if score_family(name) == "knn" else [None]:
            record = {"score": name, "k": k, "evalset": evalset, "checkpoint": meta.get("checkpoint"), "epoch": meta.get("epoch"),
                      **_auroc_record(name, k, cache, meta.get("reason", "no features"))}
            if ok:  # the untrained-encoder baseline: the same score of the encoder at initialisation
                why = "no untrained features (features.untrained: false)" if meta.get("untrained") is False else \
                    f"{untrained_file} is missing: rerun `firm-bench features {run_dir} --evalset {evalset}`"
                base = _auroc_record(name, k, untrained, why)
                record["untrained"] = {key: base.get(key) for key in ("status", "auroc", "reason")}
            runs.atomic_write_json(run_dir / "scores" / evalset / score_file_name(name, k), record)
            results[score_file_name(name, k)[: -len(".json")]] = record
    write_metrics(cfg, run_dir)
    return results


def _auroc_record(name: str, k: int | None, cache, missing: str) -> dict:
    """AUROC of score ``name`` on a feature cache: ``status`` ok with ``auroc``, or failed with a ``reason``."""
    from firm_bench.scores import compute_score

    try:
        if cache is None:
            raise RuntimeError(missing)
        targets = cache.targets.numpy()
        record: dict = {"n_test": int(len(targets)), "n_normal": int(targets.sum())}
        values = compute_score(name, cache, k=k or 1)
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise FloatingPointError(f"{bad} non-finite score values (collapsed or NaN features)")
        return {**record, "status": "ok", "auroc": auroc(values, targets)}
    except (ValueError, FloatingPointError, RuntimeError) as exc:
        return {"status": "failed", "reason": str(exc), "auroc": None}


def write_metrics(cfg: dict, run_dir: str | Path) -> dict:
    """:func:`collect_metrics` written to the run's metrics.json; returns it.

    Score jobs of one run (one per family) may finish at the same time: the
    collect-and-write happens under a lock, so the last writer sees every score.
    """
    import fcntl

    with open(Path(run_dir) / ".metrics.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metrics = collect_metrics(cfg, run_dir)
        runs.atomic_write_json(Path(run_dir) / "metrics.json", metrics)
    return metrics


def collect_metrics(cfg: dict, run_dir: str | Path) -> dict:
    """Every score JSON of the run and its learning curve, as the metrics.json dict (reads only).

    ``scores`` holds the run's own test protocol (evalset ``test``); ``evalsets``
    every evaluation set, e.g. ``ood-svhn`` for Table 4.
    """
    run_dir = Path(run_dir)
    evalsets: dict[str, dict] = {}
    for path in sorted((run_dir / "scores").glob("*/*.json")):
        rec = runs.read_json(path)
        entry = {k: rec.get(k) for k in ("score", "k", "status", "auroc", "reason")}
        base = rec.get("untrained") or {}
        entry["untrained_auroc"] = base.get("auroc") if base.get("status") == "ok" else None
        evalsets.setdefault(path.parent.name, {})[path.stem] = entry
    curve = read_curve(run_dir)
    # AULC keeps the reference's points (epochs eval.every, 2 eval.every, ..., E): the epoch-0 point
    # (the untrained model, eval.at_start) is the baseline, shown in the figures, not integrated
    aurocs = [row["auroc"] for row in curve if row["epoch"] > 0]
    start = [row["auroc"] for row in curve if row["epoch"] == 0]
    status = runs.read_status(run_dir) or {}
    metrics = {
        "run": {
            "dataset": cfg["dataset"]["name"],
            "cls": cfg["dataset"]["cls"],
            "loss": cfg["loss"]["name"],
            "outliers": cfg["outliers"]["name"],
            "seed": cfg["seed"],
        },
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
