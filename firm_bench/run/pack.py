"""Training a pack: K compatible runs trained at once as one horizontally fused model.

``train_pack(cfgs, run_dirs)`` trains K runs whose tensors have the same
shapes (``firm_bench.core.packs``: which config keys may differ) together:
the K models fused into one (``firm_bench.run.engine.fused.fuse``), the
steps of an epoch done by ``firm_bench.run.engine.pack.PackEngine``. Every
run keeps its identity, exactly as ``firm_bench.run.train.train`` leaves a
run trained alone: its own run directory with ``config.yaml``,
``versions.json``, ``status.json``, ``curve.csv``, ``checkpoints/last.pt``
(its own model, torch.optim.SGD and scheduler state dicts, its curve and
selection, in the format of a run trained alone) and ``best_test.pt``, and ``trained.json``, so that features, scores and metrics
read it as any other run. What a pack adds is labelled: ``status.json`` and
``trained.json`` carry ``pack`` (its size, this run's index, the kernels,
the members' directories).

Each run is built as alone (``train.build_training``: its data, outliers,
shuffle, augmentation draws, loss, optimiser, scheduler, all randomness from
its own ``epoch_generator(seed, epoch)``), so a pack with ``speed.pack_kernels:
per_run`` (the CPU default) ends every run with the numbers of training it
alone, bit for bit, and with ``grouped`` (the CUDA default) with the same
arithmetic in another summation order.

Learning curve: every ``eval.every`` epochs (and the last) each training run
is evaluated as ``train.evaluate_knn`` does (k-NN cosine AUROC of its encoder
features, its bank and test set); with grouped kernels the K runs' forward
passes are batched (one fused forward per chunk, their images side by side),
with per_run kernels each run goes through its own model.

Faults stay local: a run whose loss turns non-finite is recorded failed with
its reason (the first non-finite step and value, as a run alone) and leaves
the pack (``live``: its slices are frozen before that step's update); the
others go on. Checkpoint and resume are per run: a pack killed at any moment
and rerun resumes every run from its own ``last.pt``; runs whose checkpoints
are at different epochs (killed between two writes) join the pack when it
reaches their epoch, so every run ends with the numbers of an uninterrupted
pack. Finished runs (``trained.json``, or a last checkpoint at the final
epoch) are not trained again.
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
from firm_bench.core.errors import RecipeMismatch, TrainingInterrupted
from firm_bench.core.packs import check_packable, check_shapes
from firm_bench.datasets import RunData, load_run_data
from firm_bench.method.metrics import auroc
from firm_bench.method.scores import knn_mean_similarity
from firm_bench.run.engine import first_non_finite, resolve_speed
from firm_bench.run.engine.fused import FusedFirmModel, FusedSGD, fuse
from firm_bench.run.engine.options import autocast_bf16, cudnn_benchmark
from firm_bench.run.engine.pack import PackEngine
from firm_bench.run.features import rotate
from firm_bench.run.interrupt import StopRequest, stop_requests
from firm_bench.run.ledger import RunLedger, TrainResult
from firm_bench.run.monitor import Monitor, curve_score, progress_mode
from firm_bench.run.numerics import numerics
from firm_bench.run.train import ROTATIONS, Training, build_training

__all__ = ["PackMember", "evaluate_pack", "train_pack"]


@dataclass
class PackMember:
    """One run of a pack: its config, directory, ``Training``, records (``RunLedger``) and where it stands.

    state: ``waiting`` (resumed at a later epoch than the pack: joins when
    the pack reaches ``start_epoch``), ``training``, ``failed``, ``done``.
    ``saved``: the epoch of its last checkpoint.
    """

    index: int
    cfg: dict
    run_dir: Path
    t: Training
    ledger: RunLedger
    state: str = "training"
    loss: float = float("nan")
    saved: int = 0
    monitor: Monitor | None = None
    result: TrainResult | None = None

    @property
    def start_epoch(self) -> int:
        return self.ledger.start_epoch

    @property
    def curve(self) -> list[dict]:
        return self.ledger.curve

    @property
    def select_by_rot(self) -> bool:
        return self.ledger.select_by_rot


def _finished(cfg: dict, run_dir: Path) -> dict | None:
    """The run's ``trained.json`` when it finished (ok or failed) under this recipe, else None.

    A finished run of another recipe (its ``config.yaml`` differs in a
    recipe key) raises :class:`RecipeMismatch`, as resuming its checkpoint would.
    """
    path = run_dir / runs.TRAINED_FILE
    if not path.exists():
        return None
    record = runs.read_json(path)
    if record.get("state") not in ("ok", "failed"):
        return None
    diff = config_mod.recorded_differences(runs.read_run_config(run_dir), cfg)
    if diff:
        raise RecipeMismatch(str(run_dir), diff)
    return record


def _result_of(run_dir: Path, record: dict) -> TrainResult:
    return TrainResult(run_dir, int(record.get("epochs") or record.get("epoch") or 0), record.get("final_auroc"),
                       record.get("best_test_auroc"), record.get("best_test_epoch"), float(record.get("train_seconds") or 0.0))


# --------------------------------------------------------------------------- #
# the learning curve, batched over the pack
# --------------------------------------------------------------------------- #
@torch.no_grad()
def _fused_encode(net: FusedFirmModel, images: Sequence[torch.Tensor], means: Sequence[torch.Tensor],
                  stds: Sequence[torch.Tensor], size: int, zoom: float, batch_size: int, device: torch.device,
                  keep_on_device: bool, bf16: bool) -> list[torch.Tensor]:
    """Encoder features (N, D) of each run's own images (K tensors of N images), one fused forward per chunk.

    As ``features.encode`` run by run: the test transform of each run's
    chunk (its own normalisation), eval mode, float32 features.
    """
    from firm_bench.method.augment import test_transform

    home = device if keep_on_device else torch.device("cpu")
    n = images[0].shape[0]
    out: list[list[torch.Tensor]] = [[] for _ in images]
    for i in range(0, n, batch_size):
        x = torch.stack([test_transform(im[i : i + batch_size].to(device), size, m, s, zoom)
                         for im, m, s in zip(images, means, stds)])
        with autocast_bf16(device, bf16):
            f = net.features(x)
        for k in range(len(images)):
            out[k].append(f[k].float().to(home))
    return [torch.cat(parts) if parts else torch.empty(0, net.feature_dim, device=home) for parts in out]


@torch.no_grad()
def evaluate_pack(fused: FusedFirmModel, members: Sequence[PackMember], which: Sequence[int],
                  kernels: str) -> dict[int, tuple[float, float]]:
    """Learning-curve AUROC of the runs ``which`` (member indices): {index: (cos, select value)}.

    The select value is the rotation score (four angles, each against the
    bank at the same angle: the reference's ``cos_5_angled``) for runs that
    select their checkpoint by it, else the cos AUROC (as
    ``train.evaluate_knn``). per_run kernels, or runs whose bank and test
    sizes differ: each run's own ``Training.evaluate`` (its model view).
    grouped: the K runs' forward passes fused; the k-NN search and AUROC per
    run, as ``evaluate_knn``.
    """
    ms = [members[i] for i in which]
    if not ms:
        return {}
    sizes = {(m.t.bank_images.shape[0], m.t.test_images.shape[0]) for m in ms}
    if kernels == "per_run" or len(sizes) > 1:
        out = {}
        for m in ms:
            value = m.t.evaluate(rot=True) if m.select_by_rot else m.t.evaluate()
            out[m.index] = value if isinstance(value, tuple) else (value, value)
            m.t.model.train()
        return out
    t0 = ms[0].t
    device, opts = t0.device, t0.opts
    size, _, _, zoom = t0.data.eval_view
    batch = int(ms[0].cfg["features"]["batch_size"])
    net = fused
    conv = next((mod.weight for mod in fused.modules() if isinstance(mod, torch.nn.Conv2d)), None)
    if opts.fast_eval and conv is not None and not conv.is_contiguous():  # as features.as_extracted: NCHW weights
        import copy

        net = copy.deepcopy(fused).to(memory_format=torch.contiguous_format)
    was_training = net.training
    net.eval()
    filler = ms[0]
    by_run = {m.index: m for m in ms}
    full = [by_run.get(k, filler) for k in range(fused.runs)]  # runs not evaluated: any images (ignored)
    means = [torch.as_tensor(tuple(m.t.data.mean), dtype=torch.float32, device=device) for m in full]
    stds = [torch.as_tensor(tuple(m.t.data.std), dtype=torch.float32, device=device) for m in full]
    angles = ROTATIONS if any(m.select_by_rot for m in ms) else ROTATIONS[:1]
    sims: dict[int, list[torch.Tensor]] = {m.index: [] for m in ms}
    args = (means, stds, size, zoom, batch, device, opts.fast_eval, opts.eval_bf16)
    with cudnn_benchmark(False) if opts.fast_eval else cudnn_benchmark(torch.backends.cudnn.benchmark):
        for angle in angles:
            banks = _fused_encode(net, [rotate(m.t.bank_images, angle) for m in full], *args)
            tests = _fused_encode(net, [rotate(m.t.test_images, angle) for m in full], *args)
            for m in ms:
                if angle and not m.select_by_rot:
                    continue
                k = m.index
                sims[k].append(knn_mean_similarity(torch.nn.functional.normalize(tests[k], dim=1),
                                                   torch.nn.functional.normalize(banks[k], dim=1), k=m.cfg["eval"]["k"]))
    net.train(was_training)
    out = {}
    for m in ms:
        targets = m.t.data.test_targets.cpu().numpy()
        cos = auroc(sims[m.index][0].cpu().numpy(), targets)
        out[m.index] = (cos, auroc(torch.stack(sims[m.index]).mean(dim=0).cpu().numpy(), targets)) if m.select_by_rot \
            else (cos, cos)
    return out


# --------------------------------------------------------------------------- #
# the pack trainer
# --------------------------------------------------------------------------- #
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


def train_pack(
    cfgs: Sequence[dict],
    run_dirs: Sequence[str | Path],
    progress: bool | str | None = None,
    datas: Sequence[RunData | None] | None = None,
    progress_every: int | None = None,
) -> list[TrainResult]:
    """Train the K runs ``cfgs`` into ``run_dirs`` as one fused model; each resumes from its own checkpoint.

    Returns one ``TrainResult`` per run (a failed run's has ``final_auroc``
    None; its ``trained.json`` and ``status.json`` say why). Holds every run
    directory exclusively, as ``train`` holds one (``rundir.writing``).
    Raises ConfigError when the runs cannot share a pack (the key that
    differs), :class:`RecipeMismatch` when a run directory holds a checkpoint
    or finished run of another recipe, and on SIGINT / SIGTERM
    :class:`TrainingInterrupted` after every unfinished run saved its
    checkpoint at the end of the epoch in progress (``status.json``:
    interrupted). ``progress``: as ``train`` (``lines``: each run's lines,
    prefixed with its directory's name; ``bar``: one bar for the pack).
    """
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
        stop = held.enter_context(stop_requests("the pack's training"))
        results: list[TrainResult | None] = [None] * len(cfgs)
        todo = []
        for i, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs)):
            record = _finished(cfg, run_dir)
            if record is not None:  # finished before (ok or failed) under this recipe: not trained again
                results[i] = _result_of(run_dir, record)
            else:
                todo.append(i)
        if todo:
            trained = _train_members([cfgs[i] for i in todo], [run_dirs[i] for i in todo], progress,
                                     [datas[i] for i in todo] if datas is not None else None, progress_every, stop)
            for i, result in zip(todo, trained):
                results[i] = result
    return results  # type: ignore[return-value]


def _train_members(cfgs: list[dict], run_dirs: list[Path], progress: bool | str | None,
                   datas: Sequence[RunData | None] | None, progress_every: int | None,
                   stop: StopRequest) -> list[TrainResult]:
    device = runs.pick_device(cfgs[0]["device"])
    if cfgs[0]["threads"]:
        torch.set_num_threads(cfgs[0]["threads"])
    try:
        opts = resolve_speed(cfgs[0]["speed"], device)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None
    settings = numerics(device, opts)
    ledgers = [RunLedger(cfg, run_dir, settings) for cfg, run_dir in zip(cfgs, run_dirs)]
    states = [ledger.checkpoint_state(device) for ledger in ledgers]  # every check before anything is written
    for ledger, state in zip(ledgers, states):
        ledger.open(state, device)

    datas = _data_for(cfgs, datas)
    ts = [build_training(cfg, data, device, opts) for cfg, data in zip(cfgs, datas)]
    names = [str(d) for d in run_dirs]
    rows = [_epoch_rows(t) for t in ts]
    check_shapes([{"training rows per epoch": r, "steps per epoch": t.steps_per_epoch, "rows per step": t.batch}
                  for r, t in zip(rows, ts)], names)
    K = len(ts)
    kernels = opts.pack_kernels
    fused = fuse([t.model for t in ts])
    fused.bind([t.model for t in ts], grads=kernels == "per_run")
    wds = [float(c["optim"]["weight_decay"]) for c in cfgs]
    sgd = FusedSGD.of(fused, weight_decay=wds[0] if len(set(wds)) == 1 else wds)
    members = [PackMember(k, cfg, run_dir, t, ledger)
               for k, (cfg, run_dir, t, ledger) in enumerate(zip(cfgs, run_dirs, ts, ledgers))]
    epochs = int(cfgs[0]["optim"]["epochs"])
    engine = PackEngine(fused, sgd, [t.engine for t in ts], [t.id_classes is not None for t in ts], opts, device,
                        ts[0].batch, ts[0].steps_per_epoch, rows[0], kernels)
    pack_info = {"runs": K, "kernels": kernels, "members": names}
    for m, state in zip(members, states):
        m.ledger.speed = functools.partial(lambda i: {**opts.record(), "status": dict(engine.status),
                                                      "pack": {**pack_info, "index": i}}, m.index)
        if state is None:
            continue
        fused.load_run_state(m.index, state["model"])  # resume each run from its own checkpoint
        m.t.optimizer.load_state_dict(state["optimizer"])
        sgd.load_run_state(m.index, state["optimizer"])
        m.t.optimizer.state.clear()  # the momentum lives in the fused SGD
        m.t.scheduler.load_state_dict(state["scheduler"])
        m.ledger.resume(state)

    start = min(m.start_epoch for m in members)
    mode = progress_mode(progress)
    common = Path(os.path.commonpath([d.resolve() for d in run_dirs])) if K > 1 else run_dirs[0].resolve().parent
    every = progress_every or cfgs[0]["eval"]["every"]
    for m in members:
        m.state = "training" if m.start_epoch == start else "waiting"
        shown = mode if mode == "lines" or (mode == "bar" and m.index == 0) else "off"
        label = str(m.run_dir.resolve().relative_to(common)) if mode == "lines" else ""
        m.monitor = Monitor(m.run_dir, epochs, m.start_epoch, m.t.steps_per_epoch * m.t.batch, shown, every,
                            m.ledger.fields, f"train pack of {K}", label=label,
                            score=curve_score(m.cfg["eval"]["k"]))
        m.monitor.beat(m.start_epoch, force=True)
    t0 = time.perf_counter()

    def elapsed(m: PackMember) -> float:
        return time.perf_counter() - t0 + m.ledger.elapsed_before

    def save_checkpoint(m: PackMember, epoch: int) -> None:
        m.ledger.save_checkpoint(epoch, elapsed(m), fused.state_dict_of(m.index),
                                 sgd.state_dict_of(m.index, m.t.optimizer.param_groups[0]), m.t.scheduler.state_dict())
        m.saved = epoch

    def record_evals(which: list[int], epoch: int) -> None:
        which = [i for i in which if len(members[i].t.data.test_targets)]  # cls: all without dataset.ood: none
        values = evaluate_pack(fused, members, which, kernels)
        for i in which:
            m = members[i]
            value, select_value = values[i]
            m.ledger.add_point(epoch, value, select_value, m.loss, m.t.optimizer.param_groups[0]["lr"],
                               elapsed(m) if epoch else 0.0, functools.partial(fused.state_dict_of, i))

    def fail(m: PackMember, reason: str, epoch: int) -> None:
        m.state = "failed"
        m.monitor.close()
        m.ledger.fail(reason, epoch, pack={**pack_info, "index": m.index})
        print(f"firm-bench: {m.run_dir}: training failed: {reason}; it leaves the pack", file=sys.stderr)

    def finish(m: PackMember) -> None:
        m.state = "done"
        m.monitor.close()
        m.result = m.ledger.finish(elapsed(m))

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

    for m in members:
        m.saved = m.start_epoch
    if stop.requested:  # a signal while the data loaded: nothing trained in this process
        raise interrupted(start)
    fused.train()
    at_start = [m.index for m in members if m.start_epoch == 0 and m.cfg["eval"]["at_start"] and not m.curve]
    if at_start:
        fused.eval()
        record_evals(at_start, 0)
        fused.train()
    for m in members:
        if m.start_epoch >= epochs:  # its last checkpoint is the final one: only the records are missing
            finish(m)
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
        lr = torch.zeros((ts[0].steps_per_epoch, K))
        momentum = torch.zeros_like(lr)
        eds = []
        for m in members:
            if m.state != "training":
                eds.append(None)
                continue
            eds.append(m.t.prepare(epoch))
            lrs, moms, _ = m.t.engine._schedule()  # the run's own scheduler through the epoch, as alone
            lr[:, m.index], momentum[:, m.index] = torch.tensor(lrs), torch.tensor(moms)
        losses = engine.run_epoch(eds, lr, momentum).cpu()  # the epoch's one host read of the losses
        for m in active:
            values = losses[:, m.index]
            bad = first_non_finite(values)
            if bad is not None:
                fail(m, f"non-finite loss ({bad[1]}) at epoch {epoch}, step {bad[0] + 1}", epoch)
                continue
            m.loss = float(values.double().mean())
        if any(m.state == "failed" for m in active):
            _sanitise(fused, sgd, members)
        ok = [m for m in active if m.state == "training"]
        due_eval = [m.index for m in ok if epoch % m.cfg["eval"]["every"] == 0 or epoch == epochs]
        if due_eval:
            fused.eval()
            record_evals(due_eval, epoch)
            fused.train()
        for m in ok:
            if epoch % m.cfg["checkpoint"]["every"] == 0 or epoch == epochs:
                save_checkpoint(m, epoch)
            m.monitor.epoch_done(epoch, m.loss, m.curve[-1]["auroc"] if m.index in due_eval and m.curve else None)
            if epoch == epochs:
                finish(m)
        if stop.requested and epoch < epochs and any(m.state in ("training", "waiting") for m in members):
            raise interrupted(epoch)
    return [m.result or _result_of(m.run_dir, runs.read_json(m.run_dir / runs.TRAINED_FILE)) for m in members]


def _epoch_rows(t: Training) -> int:
    """Training rows of one epoch of a run: its N ID images and their outliers, N (1 + copies) (outliers contract)."""
    if t.fixed_set is not None:
        return int(t.fixed_set[0].shape[0])
    return int(t.data.train_ids.shape[0]) * (1 + int(t.outliers.copies))


@torch.no_grad()
def _sanitise(fused: FusedFirmModel, sgd: FusedSGD, members: Sequence[PackMember]) -> None:
    """Overwrite the slices of failed runs with a copy of a training run's (finite values, never used again).

    A failed run is frozen before its non-finite step's update, but its
    forward passes of the rest of that epoch may have left non-finite
    BatchNorm statistics; its slices are now inert copies, so no kernel ever
    meets a non-finite value of it.
    """
    good = next((m.index for m in members if m.state in ("training", "waiting")), None)
    if good is None:
        return
    for m in members:
        if m.state != "failed":
            continue
        for t in [*fused.parameters(), *fused.buffers(), *sgd.bufs]:
            if t is fused.live or t.dim() == 0:
                continue
            view = t.unflatten(0, (fused.runs, -1))
            view[m.index].copy_(view[good])
