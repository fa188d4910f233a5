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

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs
from firm_bench.core.packs import check_packable, check_shapes
from firm_bench.datasets import RunData, load_run_data
from firm_bench.method.metrics import auroc
from firm_bench.method.scores import knn_mean_similarity
from firm_bench.run.engine import first_non_finite, resolve_speed
from firm_bench.run.engine.fused import FusedFirmModel, FusedSGD, fuse
from firm_bench.run.engine.options import autocast_bf16, cudnn_benchmark
from firm_bench.run.engine.pack import PackEngine
from firm_bench.run.features import rotate
from firm_bench.run.train import ROTATIONS, TrainResult, Training, _progress, _recipe_view, build_training

__all__ = ["PackMember", "evaluate_pack", "train_pack"]


@dataclass
class PackMember:
    """One run of a pack: its config, directory, ``Training``, and where it stands.

    state: ``waiting`` (resumed at a later epoch than the pack: joins when
    the pack reaches ``start_epoch``), ``training``, ``failed``, ``done``.
    """

    index: int
    cfg: dict
    run_dir: Path
    t: Training
    start_epoch: int = 0
    curve: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"auroc": None, "epoch": None})
    elapsed_before: float = 0.0
    state: str = "training"
    loss: float = float("nan")

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def selecting(self) -> bool:
        return self.cfg["checkpoint"]["select"] == "best_test"

    @property
    def select_by_rot(self) -> bool:
        return self.selecting and self.cfg["checkpoint"]["select_score"] == "rot"


def _finished(run_dir: Path) -> dict | None:
    """The run's ``trained.json`` when it finished (ok or failed), else None."""
    path = run_dir / runs.TRAINED_FILE
    if path.exists():
        record = runs.read_json(path)
        if record.get("state") in ("ok", "failed"):
            return record
    return None


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
    progress: bool | None = None,
    datas: Sequence[RunData | None] | None = None,
) -> list[TrainResult]:
    """Train the K runs ``cfgs`` into ``run_dirs`` as one fused model; each resumes from its own checkpoint.

    Returns one ``TrainResult`` per run (a failed run's has ``final_auroc``
    None; its ``trained.json`` and ``status.json`` say why). Raises
    ConfigError when the runs cannot share a pack (the key that differs) or
    a run directory holds a checkpoint of another config.
    """
    cfgs = [config_mod.validate(c) for c in cfgs]
    run_dirs = [Path(d) for d in run_dirs]
    if len(cfgs) != len(run_dirs):
        raise ValueError(f"train_pack: {len(cfgs)} configs for {len(run_dirs)} run directories")
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise config_mod.ConfigError(f"a pack lists a run directory twice: {', '.join(map(str, run_dirs))}")
    names = [str(d) for d in run_dirs]
    check_packable(cfgs, names)
    results: list[TrainResult | None] = [None] * len(cfgs)
    todo = []
    for i, run_dir in enumerate(run_dirs):
        record = _finished(run_dir)
        if record is not None:  # finished before (ok or failed): not trained again
            results[i] = _result_of(run_dir, record)
        else:
            todo.append(i)
    if todo:
        trained = _train_members([cfgs[i] for i in todo], [run_dirs[i] for i in todo], progress,
                                 [datas[i] for i in todo] if datas is not None else None)
        for i, result in zip(todo, trained):
            results[i] = result
    return results  # type: ignore[return-value]


def _train_members(cfgs: list[dict], run_dirs: list[Path], progress: bool | None,
                   datas: Sequence[RunData | None] | None) -> list[TrainResult]:
    device = runs.pick_device(cfgs[0]["device"])
    if cfgs[0]["threads"]:
        torch.set_num_threads(cfgs[0]["threads"])
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        opts = resolve_speed(cfgs[0]["speed"], device)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None
    for cfg, run_dir in zip(cfgs, run_dirs):  # as train(): a checkpoint of another config is refused
        previous = run_dir / runs.CONFIG_FILE
        if previous.exists() and (run_dir / "checkpoints" / "last.pt").exists():
            if _recipe_view(config_mod.load_yaml(previous)) != _recipe_view(cfg):
                raise config_mod.ConfigError(f"{run_dir} holds a checkpoint of a different config; "
                                             "use another run directory or delete it to start over")
    for cfg, run_dir in zip(cfgs, run_dirs):
        runs.atomic_write_text(run_dir / runs.CONFIG_FILE, config_mod.dump(cfg))
        runs.atomic_write_json(run_dir / "versions.json", runs.versions(device))

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
    members = [PackMember(k, cfg, run_dir, t) for k, (cfg, run_dir, t) in enumerate(zip(cfgs, run_dirs, ts))]
    epochs = int(cfgs[0]["optim"]["epochs"])
    for m in members:  # resume each run from its own checkpoint
        path = m.ckpt_dir / "last.pt"
        if not path.exists():
            continue
        state = torch.load(path, map_location=device, weights_only=False)
        fused.load_run_state(m.index, state["model"])
        m.t.optimizer.load_state_dict(state["optimizer"])
        sgd.load_run_state(m.index, state["optimizer"])
        m.t.optimizer.state.clear()  # the momentum lives in the fused SGD
        m.t.scheduler.load_state_dict(state["scheduler"])
        m.start_epoch, m.curve, m.best = int(state["epoch"]), state["curve"], state["best"]
        m.elapsed_before = float(state.get("elapsed_s", 0.0))
        print(f"firm-bench: resuming {m.run_dir} from its checkpoint at epoch {m.start_epoch}/{epochs}", file=sys.stderr)
    engine = PackEngine(fused, sgd, [t.engine for t in ts], [t.id_classes is not None for t in ts], opts, device,
                        ts[0].batch, ts[0].steps_per_epoch, rows[0], kernels)
    pack_info = {"runs": K, "kernels": kernels, "members": names}

    def speed(m: PackMember) -> dict:
        return {**opts.record(), "status": dict(engine.status), "pack": {**pack_info, "index": m.index}}

    start = min(m.start_epoch for m in members)
    for m in members:
        m.state = "training" if m.start_epoch == start else "waiting"
        runs.write_status(m.run_dir, "running", epoch=m.start_epoch, epochs=epochs, speed=speed(m))
    t0 = time.perf_counter()

    def elapsed(m: PackMember) -> float:
        return time.perf_counter() - t0 + m.elapsed_before

    def save_checkpoint(m: PackMember, epoch: int) -> None:
        runs.atomic_torch_save(m.ckpt_dir / "last.pt", {
            "model": fused.state_dict_of(m.index),
            "optimizer": sgd.state_dict_of(m.index, m.t.optimizer.param_groups[0]),
            "scheduler": m.t.scheduler.state_dict(),
            "epoch": epoch, "curve": m.curve, "best": m.best, "elapsed_s": elapsed(m), "config": m.cfg,
        })

    def record_evals(which: list[int], epoch: int) -> None:
        which = [i for i in which if len(members[i].t.data.test_targets)]  # cls: all without dataset.ood: none
        values = evaluate_pack(fused, members, which, kernels)
        for i in which:
            m = members[i]
            value, select_value = values[i]
            row = {"epoch": epoch, "auroc": value, "loss": m.loss, "lr": m.t.optimizer.param_groups[0]["lr"],
                   "elapsed_s": elapsed(m)}
            if m.selecting:
                row["select_auroc"] = select_value
            m.curve.append(row)
            runs.write_curve(m.run_dir, m.curve)
            if epoch > 0 and (m.best["auroc"] is None or select_value > m.best["auroc"]):
                m.best.update(auroc=select_value, epoch=epoch)
                runs.atomic_torch_save(m.ckpt_dir / "best_test.pt", {"model": fused.state_dict_of(i), "epoch": epoch})

    def fail(m: PackMember, reason: str, epoch: int) -> None:
        m.state = "failed"
        runs.write_status(m.run_dir, "failed", reason=reason, epoch=epoch, speed=speed(m))
        runs.atomic_write_json(m.run_dir / runs.TRAINED_FILE, {"state": "failed", "reason": reason, "epoch": epoch,
                                                                "pack": {**pack_info, "index": m.index}})
        print(f"firm-bench: {m.run_dir}: training failed: {reason}; it leaves the pack", file=sys.stderr)

    def finish(m: PackMember) -> None:
        m.state = "done"
        final = m.curve[-1]["auroc"] if m.curve else None
        seconds = round(elapsed(m), 3)
        runs.write_status(m.run_dir, "ok", stage="trained", epoch=epochs, final_auroc=final,
                          best_test_auroc=m.best["auroc"], best_test_epoch=m.best["epoch"], train_seconds=seconds,
                          speed=speed(m))
        runs.atomic_write_json(m.run_dir / runs.TRAINED_FILE, {
            "state": "ok", "epochs": epochs, "final_auroc": final, "best_test_auroc": m.best["auroc"],
            "best_test_epoch": m.best["epoch"], "train_seconds": seconds, "speed": speed(m)})

    fused.train()
    at_start = [m.index for m in members if m.start_epoch == 0 and m.cfg["eval"]["at_start"] and not m.curve]
    if at_start:
        fused.eval()
        record_evals(at_start, 0)
        fused.train()
    for m in members:
        if m.start_epoch >= epochs:  # its last checkpoint is the final one: only the records are missing
            finish(m)
    bar = _progress(epochs, start, progress, f"train pack of {K}")
    for epoch in range(start + 1, epochs + 1):
        for m in members:
            if m.state == "waiting" and m.start_epoch == epoch - 1:
                m.state = "training"
        active = [m for m in members if m.state == "training"]
        if not active:
            break
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
            if epoch == epochs:
                finish(m)
        bar.update(1)
        bar.set_postfix(live=f"{len(ok)}/{K}")
    bar.close()
    out = []
    for m in members:
        record = _finished(m.run_dir) or {}
        out.append(_result_of(m.run_dir, record))
    return out


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
