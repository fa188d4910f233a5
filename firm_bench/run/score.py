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
from typing import Callable, Iterable, Sequence

import numpy as np

from firm_bench.core import rundir as runs
from firm_bench.core.facts.method import uses_k
from firm_bench.core.rundir import TEST_EVALSET, cache_path, meta_path
from firm_bench.method.metrics import auroc
from firm_bench.records import chain
from firm_bench.records.metrics import write_metrics

__all__ = ["score_run"]


def score_run(
    cfg: dict,
    run_dir: str | Path,
    names: Sequence[str] | None = None,
    ks: Iterable[int] | None = None,
    evalset: str = TEST_EVALSET,
    on_score: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Compute scores from the run's feature cache; write per-score JSON and metrics.json.

    ``on_score(i, n, key)``: called before the i-th of the n score records
    (``<score>[_k<k>]``) is computed (``firm-bench run``'s progress lines).

    Returns the records computed by this call, keyed ``<score>[_k<k>]``. Holds the
    run directory and the evaluation set's features shared (``rundir.writing``):
    score jobs of one run proceed together, a training or a re-extraction of
    these features excludes them.
    """
    run_dir = Path(run_dir)
    with runs.writing(run_dir, "score", evalset):
        return _score_run(cfg, run_dir, names, ks, evalset, on_score)


def _score_run(cfg: dict, run_dir: Path, names: Sequence[str] | None, ks: Iterable[int] | None,
               evalset: str, on_score: Callable[[int, int, str], None] | None = None) -> dict:
    from firm_bench.method.scores import FeatureCache  # torch: only where features are scored

    meta_file = meta_path(run_dir, evalset)
    if not meta_file.exists():
        raise FileNotFoundError(
            f"{meta_file} does not exist: run `firm-bench features {run_dir} --evalset {evalset}` first"
        )
    meta = runs.read_record(meta_file)
    ok = meta.get("state") == "ok"
    if ok:  # made from the run's model, under its features config: else refused, naming what to rerun
        chain.check_features(run_dir, cfg, evalset, meta)
    cache = FeatureCache.load(cache_path(run_dir, evalset)) if ok else None
    untrained_file = cache_path(run_dir, evalset, runs.UNTRAINED)
    untrained = FeatureCache.load(untrained_file) if ok and meta.get("untrained") and untrained_file.exists() else None
    names = list(names or cfg["scores"]["names"])
    ks = sorted(set(ks or cfg["scores"]["k"]))
    results = {}
    todo = [(name, k) for name in names for k in (ks if uses_k(name) else [None])]
    for i, (name, k) in enumerate(todo, 1):
        if on_score is not None:
            on_score(i, len(todo), runs.score_key(name, k))
        record = {"score": name, "k": k, "evalset": evalset, "checkpoint": meta.get("checkpoint"), "epoch": meta.get("epoch"),
                  **chain.score_links(meta), **_auroc_record(name, k, cache, meta.get("reason", "no features"))}
        if ok:  # the untrained-encoder baseline: the same score of the encoder at initialisation
            why = "no untrained features (features.untrained: false)" if meta.get("untrained") is False else \
                f"{untrained_file} is missing: rerun `firm-bench features {run_dir} --evalset {evalset}`"
            base = _auroc_record(name, k, untrained, why)
            record["untrained"] = {key: base.get(key) for key in ("status", "auroc", "reason")}
        runs.atomic_write_json(runs.score_path(run_dir, evalset, name, k), record)
        results[runs.score_key(name, k)] = record
    write_metrics(cfg, run_dir, stale="leave out")  # another score job of the run may not have rescored yet
    return results


def _auroc_record(name: str, k: int | None, cache, missing: str) -> dict:
    """AUROC of score ``name`` on a feature cache: ``status`` ok with ``auroc``, or failed with a ``reason``."""
    from firm_bench.method.scores import compute_score

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
