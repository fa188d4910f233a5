"""What training writes into one run directory: one home for a run trained alone and for each run of a pack.

A :class:`RunLedger` holds a run's training records and writes them as the
run directory's layout (``core.rundir``) says: the checked resume
(``checkpoints/last.pt`` only under the same recipe, :class:`RecipeMismatch`
naming the keys otherwise; a fresh start removes what a previous model
left), ``config.yaml`` with its checksum, ``versions.json``, the learning
curve (``curve.csv``) and the test-set selection (``best_test.pt``), the
checkpoint with its checksum record, and the outcome in ``status.json`` and
``trained.json``: ``ok``, ``failed`` with its reason, or ``interrupted`` by a
signal. ``firm_bench.run.train`` drives the models (a run alone or a pack).

Nothing finished is thrown away unasked: a finished run whose checkpoints
were deleted keeps its results (:meth:`RunLedger.kept`; ``retrain`` trains it
again), and re-finishing a run from its final checkpoint (no training) keeps
the provenance of the training that made the model (``versions.json``,
``train_seconds``, the pack label), recording what the re-finish changed
beside it (``refinished``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs
from firm_bench.core.errors import (
    DamagedFile,
    RecipeMismatch,
    TrainingFailed,
    TrainingInterrupted,
)
from firm_bench.records import chain
from firm_bench.run.numerics import changes as numerics_changes
from firm_bench.run.numerics import describe as describe_resumes


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs: int
    final_auroc: float | None
    best_auroc: float | None
    best_epoch: int | None
    elapsed_s: float


@dataclass
class RunLedger:
    """The training records of one run directory (``cfg``: the validated run config).

    ``speed``: the status field of the resolved speed options (read whenever
    a status is written; a pack adds its ``pack`` entry there). ``settings``:
    what besides the config determines the numbers (``run.numerics``),
    compared with the checkpoint's on resume.
    """

    cfg: dict
    run_dir: Path
    settings: dict
    speed: Callable[[], dict] = dict
    start_epoch: int = 0
    curve: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"auroc": None, "epoch": None})
    elapsed_before: float = 0.0
    resumes: list[dict] = field(default_factory=list)
    refinish: dict | None = None  # re-finishing from the final checkpoint: the training's outcome, what changed

    @property
    def epochs(self) -> int:
        return int(self.cfg["optim"]["epochs"])

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def selecting(self) -> bool:
        """The reference's test-set model selection (``checkpoint.select: best_test``, labelled)."""
        return self.cfg["checkpoint"]["select"] == "best_test"

    @property
    def select_by_rot(self) -> bool:
        return self.selecting and self.cfg["checkpoint"]["select_score"] == "rot"

    # ------------------------------------------------------------------ start
    def checkpoint_state(self, device: torch.device) -> dict | None:
        """The run's ``last.pt`` (checksum-checked) when it has one and it is this recipe's, else None."""
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            return None
        state = runs.torch_load(path, map_location=device)
        check_resumable(self.cfg, state, path)
        return state

    def kept(self) -> TrainResult | None:
        """A finished run whose checkpoints were deleted (to save disk): its results, kept, else None.

        Finished: ``status.json`` says ok. Its recorded ``config.yaml`` must be
        this recipe (:class:`RecipeMismatch` naming the keys otherwise, ``optim.epochs``
        too: ``retrain`` replaces it; run-local keys may differ). Nothing is trained or
        removed; ``trained.json``, when gone (Snakemake removes a job's outputs
        before rerunning it), is written back from ``status.json`` and the curve,
        dated when the training finished (so no later step reruns).
        """
        status = runs.read_status(self.run_dir)
        if not status or status.get("state") != "ok":
            return None
        if not (self.run_dir / runs.CONFIG_FILE).exists():
            return None
        diff = config_mod.recorded_differences(runs.read_run_config(self.run_dir), self.cfg,
                                                  self.run_dir / runs.CONFIG_FILE)
        if diff:
            raise RecipeMismatch(str(self.run_dir), diff)
        trained = self.run_dir / runs.TRAINED_FILE
        if not trained.exists():
            keep = ("final_auroc", "best_test_auroc", "best_test_epoch", "train_seconds", "speed",
                    "resumed_under_other_settings", "checkpoint_sha256")
            runs.atomic_write_json(trained, {"state": "ok", "epochs": self.epochs, "run": chain.run_identity(self.cfg),
                                             **{k: status[k] for k in keep if k in status},
                                             **runs.curve_record(runs.read_curve(self.run_dir)),
                                             "checkpoints": "deleted after training; results kept"})
            _dated(trained, status)
        print(f"firm-bench: {self.run_dir} is finished and its checkpoints were deleted: its results are kept, "
              "nothing trained (to train it again from scratch: firm-bench train ... --retrain)", file=sys.stderr)
        return TrainResult(self.run_dir, self.epochs, status.get("final_auroc"), status.get("best_test_auroc"),
                           status.get("best_test_epoch"), float(status.get("train_seconds") or 0.0))

    def open(self, state: dict | None, device: torch.device) -> None:
        """Start the run's records: a fresh start removes a previous model's outputs; config and versions written.

        Re-finishing from the final checkpoint keeps ``versions.json`` (the
        training's) and notes what differs now (:meth:`finish` records it).
        """
        if state is None:
            removed = runs.remove_previous_outputs(self.run_dir)
            for name in ("checkpoints/last.pt", "checkpoints/last.pt" + runs.CHECKSUM_SUFFIX):  # --retrain
                if (self.run_dir / name).exists():
                    (self.run_dir / name).unlink()
                    removed.append(name)
            if removed:
                print(f"firm-bench: {self.run_dir}: training from scratch; removed the previous "
                      f"training's {', '.join(removed)}", file=sys.stderr)
        elif int(state["epoch"]) >= self.epochs:
            self.refinish = self._refinish(device)
        if self.refinish is None or not self.refinish["versions_kept"]:
            runs.atomic_write_json(self.run_dir / "versions.json", runs.versions(device))
        runs.write_run_config(self.run_dir, self.cfg)

    def _refinish(self, device: torch.device) -> dict:
        """What re-finishing keeps (the training's outcome in ``trained.json`` / ``status.json``, its
        ``versions.json``) and what it changes (versions, run-local config keys)."""
        previous = None
        for name in (runs.TRAINED_FILE, runs.STATUS_FILE):
            try:
                record = runs.read_json(self.run_dir / name)
            except (FileNotFoundError, DamagedFile):
                continue
            if isinstance(record, dict) and record.get("state") == "ok":
                previous = {"record": record, "mtime": (self.run_dir / name).stat().st_mtime}
                break
        try:
            kept = runs.read_json(self.run_dir / "versions.json")
        except (FileNotFoundError, DamagedFile):
            kept = None
        now = runs.versions(device)
        changed = {k: [kept.get(k), v] for k, v in now.items() if kept.get(k) != v} if isinstance(kept, dict) else {}
        try:
            config_changes = config_mod.differences(runs.read_run_config(self.run_dir), self.cfg)
        except (FileNotFoundError, DamagedFile):
            config_changes = ["config.yaml: (absent or damaged) -> written again"]
        return {"previous": previous, "versions_kept": isinstance(kept, dict),
                "entry": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": changed,
                          "config": config_changes}}

    def resume(self, state: dict) -> None:
        """Take the checkpoint's epoch, curve, selection and resumes (the model state is the trainer's to load).

        The curve is rewritten as the checkpoint holds it: points evaluated
        after it are evaluated again. A resume under other settings than the
        epochs before it (``run.numerics``) is warned about and recorded.
        """
        self.start_epoch, self.curve, self.best = int(state["epoch"]), state["curve"], state["best"]
        self.elapsed_before = float(state["elapsed_s"])
        runs.write_curve(self.run_dir, self.curve)
        print(f"firm-bench: resuming {self.run_dir} from its checkpoint at epoch {self.start_epoch}/{self.epochs}",
              file=sys.stderr)
        self.resumes = list(state["resumes"])
        changed = numerics_changes(state["numerics"], self.settings)
        if changed and self.start_epoch < self.epochs:
            self.resumes.append({"epoch": self.start_epoch, "changes": changed})
            print(f"firm-bench: WARNING: resuming under other settings than epochs 1-{self.start_epoch} of "
                  f"{self.run_dir} trained with ({', '.join(changed)}): the numbers will differ from an "
                  "uninterrupted run in rounding; recorded as resumed_under_other_settings in status.json, "
                  "trained.json and metrics.json (rerun under the earlier settings, or from scratch, for exact "
                  "numbers)", file=sys.stderr)

    # ------------------------------------------------------------- while training
    def fields(self) -> dict:
        """The status fields only training knows: the speed options, resumes under other settings."""
        return {"speed": self.speed(), "resumed_under_other_settings": describe_resumes(self.resumes)}

    def save_checkpoint(self, epoch: int, elapsed: float, model: dict, optimizer: dict, scheduler: dict) -> None:
        """``checkpoints/last.pt`` at the end of ``epoch`` (state dicts of a run trained alone), with its record."""
        runs.atomic_torch_save(
            self.ckpt_dir / "last.pt",
            {"model": model, "optimizer": optimizer, "scheduler": scheduler, "epoch": epoch, "curve": self.curve,
             "best": self.best, "elapsed_s": elapsed, "config": self.cfg, "numerics": self.settings,
             "resumes": self.resumes},
            record={"epoch": epoch, **runs.curve_record(self.curve)},
        )

    def add_point(self, epoch: int, value: float, select_value: float, loss: float, lr: float, elapsed: float,
                  model_state: Callable[[], dict]) -> None:
        """A learning-curve point; the best so far by ``select_value`` saves ``best_test.pt``.

        ``select_value``: the rotation score for runs that select by it, else
        the point's AUROC; the model is used when ``checkpoint.select`` is
        ``best_test``. The reference chose among its checkpoints of epochs ``eval.every``,
        ``2 eval.every``, ...: never the untrained model (epoch 0).
        """
        row: dict[str, Any] = {"epoch": epoch, "auroc": value, "loss": loss, "lr": lr, "elapsed_s": elapsed}
        if self.selecting:
            row["select_auroc"] = select_value
        self.curve.append(row)
        runs.write_curve(self.run_dir, self.curve)
        if epoch > 0 and (self.best["auroc"] is None or select_value > self.best["auroc"]):
            self.best.update(auroc=select_value, epoch=epoch)
            runs.atomic_torch_save(self.ckpt_dir / "best_test.pt",
                                   {"model": model_state(), "epoch": epoch, "config": self.cfg}, record={"epoch": epoch})

    # ------------------------------------------------------------------- outcomes
    def fail(self, reason: str, epoch: int, **extra: Any) -> TrainingFailed:
        """Record the run failed (``status.json``, ``trained.json``) and return the exception to raise."""
        runs.write_status(self.run_dir, "failed", reason=reason, epoch=epoch, **self.fields())
        runs.atomic_write_json(self.run_dir / runs.TRAINED_FILE,
                               {"state": "failed", "reason": reason, "epoch": epoch, **extra})
        return TrainingFailed(reason)

    def interrupted(self, name: str, signum: int | None, epoch: int) -> TrainingInterrupted:
        """Record a stop on signal ``name`` with the checkpoint at ``epoch``; return the exception to raise."""
        runs.write_status(self.run_dir, "interrupted", signal=name, epoch=epoch, epochs=self.epochs,
                          reason=f"{name} at epoch {epoch}/{self.epochs}; resumes from its checkpoint on rerun",
                          **self.fields())
        return TrainingInterrupted(int(signum or 0), name, epoch, self.epochs, str(self.run_dir))

    def finish(self, elapsed: float) -> TrainResult:
        """Record the run trained (``status.json``, then ``trained.json``, written last).

        A re-finish (no training) keeps the training's ``train_seconds`` and
        speed / pack label (else the checkpoint's time) and appends what it
        changed to ``refinished``; ``trained.json`` keeps its date.
        """
        final = self.curve[-1]["auroc"] if self.curve else None
        seconds = round(elapsed, 3)
        fields = self.fields()
        previous = (self.refinish or {}).get("previous")
        if self.refinish is not None:
            before = previous["record"] if previous else {}
            seconds = before.get("train_seconds", round(self.elapsed_before, 3))
            fields = {**fields, **{k: before[k] for k in ("speed", "resumed_under_other_settings") if k in before},
                      "refinished": [*before.get("refinished", []), {**self.refinish["entry"], "speed": self.speed()}]}
        outcome = {"final_auroc": final, "best_test_auroc": self.best["auroc"], "best_test_epoch": self.best["epoch"],
                   "train_seconds": seconds}
        links = chain.trained_links(self.run_dir, self.cfg)  # in status.json too: trained.json is rebuilt from it
        runs.write_status(self.run_dir, "ok", stage="trained", epoch=self.epochs, **outcome, **fields, **links)
        trained = runs.atomic_write_json(self.run_dir / runs.TRAINED_FILE,
                                         {"state": "ok", "epochs": self.epochs, **outcome, **fields,
                                          **runs.curve_record(self.curve), **links})
        if previous:
            _dated(trained, {"time_unix": previous["mtime"]})
        return TrainResult(self.run_dir, self.epochs, final, self.best["auroc"], self.best["epoch"], elapsed)


def _dated(path: Path, status: dict) -> None:
    """Give ``path`` the time of the training that made the model (``time_unix``), so a workflow's steps after it
    (their inputs no newer than their outputs) are not rerun for records rewritten without training."""
    when = status.get("time_unix")
    if isinstance(when, (int, float)):
        os.utime(path, (when, when))


def check_resumable(cfg: dict, state: dict, path: Path) -> None:
    """Refuse to resume a checkpoint whose recorded config is another recipe, naming the differing keys."""
    recorded = state.get("config") if isinstance(state, dict) else None
    if not isinstance(recorded, dict):
        raise DamagedFile(path, "records no config, so what it trained cannot be checked", *runs.describe(path))
    diff = config_mod.recorded_differences(recorded, cfg, path)
    if diff:
        raise RecipeMismatch(str(path.parent.parent), diff)
