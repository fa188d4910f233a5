"""Training: one loop for a run alone or a pack of K, with checkpoint and resume.

``train(cfg, run_dir)`` trains one run, ``train_pack(cfgs, run_dirs)`` K
compatible runs (``core.packs``) at once; both run :func:`_train`. Each run
is built as alone (``run.training.build_training``); the engine is chosen by
K: for K = 1 the run's own ``TrainEngine`` (:class:`Alone`), for K > 1 the
runs fused into one model (``run.pack.Pack``). Every run keeps its own
directory and records (``run.ledger``), so features, scores and metrics read
a packed run as any other; a pack labels them with ``pack`` (size, index,
kernels, members) in ``status.json`` and ``trained.json``.

Every ``eval.every`` epochs (and the last) each run's learning-curve AUROC is
appended to ``curve.csv``; every ``checkpoint.every`` epochs (and the last)
``checkpoints/last.pt`` is written. A rerun resumes every run from its own
checkpoint: a run whose checkpoint is final is not trained again (its
records are rewritten from it), an unfinished or failed one trains on from
there (or from scratch); runs resumed at a later epoch than the others join
the pack when it gets there. So a run killed at any moment and rerun ends
with the numbers of an uninterrupted one (CPU).

A non-finite loss fails its run (``status.json``, ``trained.json``: the
epoch, step and value); the other runs of a pack go on. SIGINT and SIGTERM
stop every run at the end of the epoch in progress, with a checkpoint,
``interrupted`` in ``status.json`` and ``TrainingInterrupted``. While the
device trains an epoch, the host prepares the next one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs
from firm_bench.core.errors import TrainingFailed, TrainingInterrupted
from firm_bench.core.packs import check_packable, check_shapes
from firm_bench.datasets import RunData, load_run_data
from firm_bench.run.engine import EpochData, first_non_finite, resolve_speed
from firm_bench.run.interrupt import StopRequest, stop_requests
from firm_bench.run.ledger import RunLedger, TrainResult
from firm_bench.run.monitor import Monitor, curve_score, progress_mode
from firm_bench.run.numerics import numerics
from firm_bench.run.pack import Pack
from firm_bench.run.training import Training, build_training, epoch_rows

__all__ = ["Alone", "train", "train_pack"]


class Alone:
    """The trainer's engine for one run: its own ``TrainEngine`` on its model and torch SGD (as :class:`Pack`)."""

    def __init__(self, t: Training) -> None:
        self.t = t
        self.status = t.engine.status

    def run_epoch(self, eds: Sequence[EpochData | None]) -> torch.Tensor:
        return self.t.engine.run_epoch(eds[0]).unsqueeze(1)

    def set_live(self, live: Sequence[bool]) -> None:
        pass

    def load(self, k: int, state: dict) -> None:
        self.t.model.load_state_dict(state["model"])
        self.t.optimizer.load_state_dict(state["optimizer"])
        self.t.scheduler.load_state_dict(state["scheduler"])

    def model_state(self, k: int) -> dict:
        return self.t.model.state_dict()

    def optimizer_state(self, k: int) -> dict:
        return self.t.optimizer.state_dict()

    def evaluate(self, which: Sequence[int], rot: Sequence[bool]) -> dict[int, tuple[float, float]]:
        if not which:
            return {}
        value = self.t.evaluate(rot=rot[0])
        return {0: value if isinstance(value, tuple) else (value, value)}

    def drop(self, failed: Sequence[int], good: int | None) -> None:
        pass


@dataclass
class Member:
    """One run of the loop: its config, directory, ``Training``, records and where it stands.

    state: ``waiting`` (resumed at a later epoch than the others: joins when
    the loop reaches ``start_epoch``), ``training``, ``failed``, ``done``.
    ``saved``: the epoch of its last checkpoint.
    """

    index: int
    cfg: dict
    run_dir: Path
    t: Training
    ledger: RunLedger
    monitor: Monitor | None = None
    state: str = "training"
    loss: float = float("nan")
    saved: int = 0
    outcome: TrainResult | TrainingFailed | None = None

    @property
    def start_epoch(self) -> int:
        return self.ledger.start_epoch


def train(
    cfg: dict,
    run_dir: str | Path,
    progress: bool | str | None = None,
    data: RunData | None = None,
    progress_every: int | None = None,
    retrain: bool = False,
) -> TrainResult:
    """Train one run from a resolved config into ``run_dir``, resuming if it holds a checkpoint.

    ``progress``: ``bar`` | ``lines`` | ``off`` | ``auto`` (None; True = bar,
    False = off: ``run.monitor``), a line every ``progress_every`` epochs
    (default ``eval.every``). Raises :class:`TrainingFailed` when the loss
    turns non-finite, :class:`TrainingInterrupted` on SIGINT / SIGTERM.

    Holds the run directory exclusively (``rundir.writing``): a second process
    on it fails at once, naming this one. A checkpoint is resumed only when its
    recorded config has this recipe (``config.resume_view``; the differing keys are
    named otherwise, :class:`RecipeMismatch`); a training that starts from scratch
    first removes what a previous model left (``rundir.remove_previous_outputs``). A finished run whose
    checkpoints were deleted keeps its results (``RunLedger.kept``): ``retrain`` trains it again from scratch
    (as it does any run: its checkpoint and results are replaced).
    """
    outcome = _train_held([cfg], [run_dir], progress, [data], progress_every, retrain)[0]
    if isinstance(outcome, TrainingFailed):
        raise outcome
    return outcome


def train_pack(
    cfgs: Sequence[dict],
    run_dirs: Sequence[str | Path],
    progress: bool | str | None = None,
    datas: Sequence[RunData | None] | None = None,
    progress_every: int | None = None,
    retrain: bool = False,
) -> list[TrainResult]:
    """Train the K runs ``cfgs`` into ``run_dirs`` together (K > 1: one fused model); each as ``train`` would.

    Returns one ``TrainResult`` per run (a failed run's has ``final_auroc``
    None; its ``trained.json`` and ``status.json`` say why). Raises
    ConfigError when the runs cannot share a pack (the key that differs);
    otherwise as ``train`` (``progress``: ``lines`` prefixes each run's lines
    with its directory's name, ``bar`` shows one bar for the pack).
    """
    outcomes = _train_held(cfgs, run_dirs, progress, datas, progress_every, retrain)
    return [TrainResult(o.run_dir, o.epoch, None, None, None, 0.0) if isinstance(o, _Failed) else o for o in outcomes]


class _Failed(TrainingFailed):
    """A run's failure, with its directory and the epoch it failed in."""

    def __init__(self, reason: str, run_dir: Path, epoch: int) -> None:
        super().__init__(reason)
        self.run_dir, self.epoch = run_dir, epoch


def _train_held(cfgs: Sequence[dict], run_dirs: Sequence[str | Path], progress: bool | str | None,
                datas: Sequence[RunData | None] | None,
                progress_every: int | None, retrain: bool = False) -> list[TrainResult | TrainingFailed]:
    cfgs = [config_mod.validate(c) for c in cfgs]
    run_dirs = [Path(d) for d in run_dirs]
    if len(cfgs) != len(run_dirs):
        raise ValueError(f"train_pack: {len(cfgs)} configs for {len(run_dirs)} run directories")
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise config_mod.ConfigError(f"a pack lists a run directory twice: {', '.join(map(str, run_dirs))}")
    check_packable(cfgs, [str(d) for d in run_dirs])
    with contextlib.ExitStack() as held:
        for run_dir in run_dirs:
            held.enter_context(runs.writing(run_dir, "train"))
        stop = held.enter_context(stop_requests("the pack's training" if len(cfgs) > 1 else "training"))
        return _train(cfgs, run_dirs, progress, datas, progress_every, stop, retrain)


def _data_for(cfgs: Sequence[dict], datas: Sequence[RunData | None] | None) -> list[RunData]:
    """Each run's data, loaded once per distinct (dataset, features) section."""
    cache: dict[str, RunData] = {}
    out = []
    for i, cfg in enumerate(cfgs):
        given = datas[i] if datas is not None else None
        if given is not None:
            out.append(given)
            continue
        key = json.dumps([cfg["dataset"], cfg["features"]], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = load_run_data(cfg)
        out.append(cache[key])
    return out


def _train(cfgs: list[dict], run_dirs: list[Path], progress: bool | str | None,
           datas: Sequence[RunData | None] | None, progress_every: int | None,
           stop: StopRequest, retrain: bool = False) -> list[TrainResult | TrainingFailed]:
    device = runs.pick_device(cfgs[0]["device"])
    if cfgs[0]["threads"]:
        torch.set_num_threads(cfgs[0]["threads"])
    try:
        opts = resolve_speed(cfgs[0]["speed"], device)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None
    settings = numerics(device, opts)
    ledgers = [RunLedger(cfg, run_dir, settings) for cfg, run_dir in zip(cfgs, run_dirs)]
    states = [None if retrain else ledger.checkpoint_state(device) for ledger in ledgers]  # every check first
    kept = [ledger.kept() if state is None and not retrain else None for ledger, state in zip(ledgers, states)]
    if any(kept):  # finished runs without checkpoints keep their results; the others train
        rest = [i for i, k in enumerate(kept) if k is None]
        trained = iter(_train([cfgs[i] for i in rest], [run_dirs[i] for i in rest], progress,
                              [datas[i] for i in rest] if datas is not None else None, progress_every, stop)
                       if rest else [])
        return [k if k is not None else next(trained) for k in kept]
    for ledger, state in zip(ledgers, states):
        ledger.open(state, device)

    ts = [build_training(cfg, data, device, opts) for cfg, data in zip(cfgs, _data_for(cfgs, datas))]
    K = len(ts)
    names = [str(d) for d in run_dirs]
    if K > 1:
        check_shapes([{"training rows per epoch": epoch_rows(t), "steps per epoch": t.steps_per_epoch,
                       "rows per step": t.batch} for t in ts], names)
    engine: Alone | Pack = Alone(ts[0]) if K == 1 else Pack(ts)

    def pack_of(k: int) -> dict:
        """What a pack adds to a run's records."""
        return {"pack": {"runs": K, "kernels": opts.pack_kernels, "members": names, "index": k}} if K > 1 else {}

    def speed(k: int) -> dict:
        return {**opts.record(), "status": dict(engine.status), **pack_of(k)}

    members = [Member(k, cfg, run_dir, t, ledger)
               for k, (cfg, run_dir, t, ledger) in enumerate(zip(cfgs, run_dirs, ts, ledgers))]
    for m, state in zip(members, states):
        m.ledger.speed = functools.partial(speed, m.index)
        if state is not None:
            engine.load(m.index, state)  # each run from its own checkpoint
            m.ledger.resume(state)

    epochs = int(cfgs[0]["optim"]["epochs"])
    start = min(m.start_epoch for m in members)
    mode = progress_mode(progress)
    common = Path(os.path.commonpath([d.resolve() for d in run_dirs])) if K > 1 else None
    for m in members:
        m.state = "training" if m.start_epoch == start else "waiting"
        m.saved = m.start_epoch
        shown = mode if mode == "lines" or (mode == "bar" and m.index == 0) else "off"
        label = str(m.run_dir.resolve().relative_to(common)) if common and mode == "lines" else ""
        title = f"train pack of {K}" if K > 1 else f"train {m.cfg['loss']['name']}"
        m.monitor = Monitor(m.run_dir, epochs, m.start_epoch, m.t.steps_per_epoch * m.t.batch, shown,
                            progress_every or m.cfg["eval"]["every"], m.ledger.fields, title, label=label,
                            score=curve_score(m.cfg["eval"]["k"]))
        m.monitor.beat(m.start_epoch, force=True)
    t0 = time.perf_counter()

    def elapsed(m: Member) -> float:
        return time.perf_counter() - t0 + m.ledger.elapsed_before

    def save_checkpoint(m: Member, epoch: int) -> None:
        m.ledger.save_checkpoint(epoch, elapsed(m), engine.model_state(m.index), engine.optimizer_state(m.index),
                                 m.t.scheduler.state_dict())
        m.saved = epoch

    def record_evals(which: list[int], epoch: int) -> None:
        which = [i for i in which if len(members[i].t.data.test_targets)]  # cls: all without dataset.ood: none
        values = engine.evaluate(which, [m.ledger.select_by_rot for m in members])
        for i in which:
            m = members[i]
            value, select_value = values[i]
            m.ledger.add_point(epoch, value, select_value, m.loss, m.t.optimizer.param_groups[0]["lr"],
                               elapsed(m) if epoch else 0.0, functools.partial(engine.model_state, i))

    def fail(m: Member, reason: str, epoch: int) -> None:
        m.state = "failed"
        m.monitor.close()
        m.outcome = _Failed(str(m.ledger.fail(reason, epoch, **pack_of(m.index))), m.run_dir, epoch)
        if K > 1:
            print(f"firm-bench: {m.run_dir}: training failed: {reason}; it leaves the pack", file=sys.stderr)

    def finish(m: Member) -> None:
        m.state = "done"
        m.monitor.close()
        m.outcome = m.ledger.finish(elapsed(m))

    def interrupted(epoch: int) -> TrainingInterrupted:
        """Stopped on a signal at the end of ``epoch``: every unfinished run's checkpoint, status, the exception."""
        stops = []
        for m in members:
            if m.state == "training" and epoch > m.saved:
                save_checkpoint(m, epoch)
            if m.state in ("training", "waiting"):
                m.monitor.close()
                stops.append(m.ledger.interrupted(stop.name, stop.signum, m.saved))
        return stops[0]

    if stop.requested:  # a signal while the data loaded: nothing trained in this process
        raise interrupted(start)
    at_start = [m.index for m in members if m.start_epoch == 0 and m.cfg["eval"]["at_start"] and not m.ledger.curve]
    if at_start:
        record_evals(at_start, 0)
    for m in members:
        if m.start_epoch >= epochs:  # its last checkpoint is the final one: only the records are written again
            finish(m)

    def joins(m: Member, epoch: int) -> bool:
        """Whether ``m`` trains epoch ``epoch`` (as far as known before the epoch before it ends)."""
        return m.state == "training" or (m.state == "waiting" and m.start_epoch == epoch - 1)

    upcoming: dict[int, EpochData] = {}  # the next epoch's data, made while the device trains this one
    epoch = start
    while epoch < epochs:
        epoch += 1
        for m in members:
            if m.state == "waiting" and m.start_epoch == epoch - 1:
                m.state = "training"
        active = [m for m in members if m.state == "training"]
        if not active:  # the runs in training failed: on to the epoch where the next waiting one joins
            waiting = [m.start_epoch for m in members if m.state == "waiting"]
            if not waiting:
                break
            epoch = min(waiting)
            continue
        engine.set_live([m.state == "training" for m in members])
        ready, upcoming = upcoming, {}
        eds = [(ready[m.index] if m.index in ready else m.t.prepare(epoch)) if m.state == "training" else None
               for m in members]
        losses = engine.run_epoch(eds)
        if epoch < epochs:
            upcoming = {m.index: m.t.prepare(epoch + 1) for m in members if joins(m, epoch + 1)}
        losses = losses.cpu()  # the epoch's one host read of the losses
        for m in active:
            bad = first_non_finite(losses[:, m.index])
            if bad is not None:
                fail(m, f"non-finite loss ({bad[1]}) at epoch {epoch}, step {bad[0] + 1}", epoch)
                continue
            m.loss = float(losses[:, m.index].double().mean())
        if any(m.state == "failed" for m in active):
            good = next((m.index for m in members if m.state in ("training", "waiting")), None)
            engine.drop([m.index for m in members if m.state == "failed"], good)
        ok = [m for m in active if m.state == "training"]
        due_eval = [m.index for m in ok if epoch % m.cfg["eval"]["every"] == 0 or epoch == epochs]
        if due_eval:
            record_evals(due_eval, epoch)
        for m in ok:
            if epoch % m.cfg["checkpoint"]["every"] == 0 or epoch == epochs:
                save_checkpoint(m, epoch)
            m.monitor.epoch_done(epoch, m.loss, m.ledger.curve[-1]["auroc"] if m.index in due_eval and m.ledger.curve
                                 else None)
            if epoch == epochs:
                finish(m)
        if stop.requested and epoch < epochs and any(m.state in ("training", "waiting") for m in members):
            raise interrupted(epoch)
    return [m.outcome for m in members]
