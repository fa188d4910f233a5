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
"""

from __future__ import annotations

import sys
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

    def open(self, state: dict | None, device: torch.device) -> None:
        """Start the run's records: a fresh start removes a previous model's outputs; config and versions written."""
        if state is None:
            removed = runs.remove_previous_outputs(self.run_dir)
            if removed:
                print(f"firm-bench: {self.run_dir} has no checkpoint: training from scratch; removed the previous "
                      f"training's {', '.join(removed)}", file=sys.stderr)
        runs.write_run_config(self.run_dir, self.cfg)
        runs.atomic_write_json(self.run_dir / "versions.json", runs.versions(device))

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
        """Record the run trained (``status.json``, then ``trained.json``, written last)."""
        final = self.curve[-1]["auroc"] if self.curve else None
        seconds = round(elapsed, 3)
        outcome = {"final_auroc": final, "best_test_auroc": self.best["auroc"], "best_test_epoch": self.best["epoch"],
                   "train_seconds": seconds}
        runs.write_status(self.run_dir, "ok", stage="trained", epoch=self.epochs, **outcome, **self.fields())
        runs.atomic_write_json(self.run_dir / runs.TRAINED_FILE,
                               {"state": "ok", "epochs": self.epochs, **outcome, **self.fields(),
                                **runs.curve_record(self.curve), **chain.trained_links(self.run_dir, self.cfg)})
        return TrainResult(self.run_dir, self.epochs, final, self.best["auroc"], self.best["epoch"], elapsed)


def check_resumable(cfg: dict, state: dict, path: Path) -> None:
    """Refuse to resume a checkpoint whose recorded config is another recipe, naming the differing keys."""
    recorded = state.get("config") if isinstance(state, dict) else None
    if not isinstance(recorded, dict):
        raise DamagedFile(path, "records no config, so what it trained cannot be checked", *runs.describe(path))
    diff = config_mod.recorded_differences(recorded, cfg, path)
    if diff:
        raise RecipeMismatch(str(path.parent.parent), diff)
