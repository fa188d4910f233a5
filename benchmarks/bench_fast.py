"""Naive reference-style training loop vs firm-bench's fast path, side by side (issue 6).

One invocation measures, on the same device and with the same recipe
(a preset's model, batch size and augmentation; the embedded fmnist_mini
class 0 at 32 px stands in for a CIFAR-10 class):

- ``naive``: what a reference implementation does: per-image PIL
  augmentations (torchvision.transforms.v2 RandomResizedCrop, ColorJitter,
  GaussianBlur) in DataLoader workers, float32, ``loss.item()`` every step,
  and each evaluation saving a checkpoint file, reloading it into a fresh
  model and extracting features through a DataLoader, k-NN on the CPU;
- ``off``: firm-bench's loop with every ``speed`` option off (the exact fast
  path only: no bf16, channels_last, cuDNN autotuning, CUDA graph or compile);
- ``fast-eager``: the fast path without the CUDA graph (CUDA only);
- ``fast``: the fast path with the run config's defaults (``speed: auto``:
  on a GPU bf16, channels_last, cuDNN autotuning and the CUDA graph);
- ``fast-bf16`` / ``fast-channels-last`` / ``fast-compile``: the fast path
  plus bf16 or channels_last (CPU: ``auto`` leaves both off there) or
  torch.compile (on request only);
- ``fusedK`` (K = 4, 8, 16, 32, ...): K runs (seeds 0 .. K-1 of the same
  recipe) trained as one horizontally fused model (``firm_bench.run.pack``:
  ``PackEngine``, the pack's learning-curve evaluation batched), with the
  kernels ``speed.pack_kernels`` resolves to (``auto``: grouped on CUDA,
  per_run on the CPU); ``fusedK-grouped`` / ``fusedK-per_run`` force one.
  Reported as the device's total views/s (all K runs) and per run, with
  the pack's peak memory.

Each variant runs in its own process (clean peak memory, its own cuDNN
state). After a warm-up epoch, it trains whole epochs until ``--steps`` (or
``--epochs``) and ``--min-seconds`` are reached, then times one learning-curve
evaluation on a bank and test set of ``--eval-bank`` / ``--eval-test``
images (default: a CIFAR-10 class's 5000 / 10000 for ``--preset paper``,
the stand-in's own 200 / 1000 otherwise). Reported per variant: steps/s,
training views/s (two views per sample), seconds per epoch of a CIFAR-10
class (``--samples-per-epoch`` 20000 = 5000 images x 4 rotations, plus one
evaluation of 15000 images every ``eval.every`` epochs, scaled per image),
the projected GPU-hours of a 2000-epoch run and of Table 1a's FIRM column
(10 classes x 5 seeds; for a pack: device time per run, the pack's
throughput shared by its K runs), peak memory, host syncs per epoch (CUDA)
and where they happen (``sync_sites``), and every ratio to ``naive``. Output: a table on stderr, JSON on stdout and in
``--out``. Exit status 1 when a requested variant failed (its error is in
the JSON). On a shared machine, ``--rounds N`` measures the variants in turn
N times and reports each one's fastest round (every round's views/s and
1-minute load average are in the JSON).

    python benchmarks/bench_fast.py --preset mini --epochs 2             # CPU, ~1-2 min
    python benchmarks/bench_fast.py --device cuda --preset paper --out bench_fast.json
    python benchmarks/bench_fast.py --device cuda --preset paper --variants naive,fast,fused4,fused8,fused16,fused32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if (REPO / "firm_bench" / "__init__.py").exists() and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this tree's firm_bench, installed or not

CIFAR_BANK, CIFAR_TEST = 5000, 10000  # one CIFAR-10 class: its training images; the whole test set
TABLE1A_FIRM_RUNS = 50  # Table 1a's FIRM column: 10 classes x 5 seeds

SPEED_OFF = [
    "speed.bf16=false", "speed.channels_last=false", "speed.cudnn_benchmark=false",
    "speed.cuda_graph=false", "speed.compile=false",
]
FAST_VARIANTS: dict[str, list[str]] = {
    "off": SPEED_OFF,
    "fast": [],
    "fast-eager": ["speed.cuda_graph=false"],
    "fast-bf16": ["speed.bf16=true"],
    "fast-channels-last": ["speed.channels_last=true"],  # on the CPU (auto turns it on for CUDA only)
    "fast-compile": ["speed.compile=true"],  # model and augmentation compiled, inside the CUDA graph
}


class BenchError(RuntimeError):
    """A variant could not be measured; the message says why."""


# ---------------------------------------------------------------- shared set-up


def resolve_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> dict:
    from firm_bench.core import config

    return config.resolve(
        args.preset,
        # optim.epochs: a long schedule, so that no measurement runs past its end (speed does not depend on it)
        overrides=["dataset.name=fmnist_mini", "dataset.cls=0", "dataset.image_size=32", f"device={args.device}",
                   "optim.epochs=100000", *args.overrides, *extra],
    )


def eval_set(data: Any, n_bank: int, n_test: int) -> Any:
    """The run's data with bank and test tiled (or cut) to n_bank / n_test images."""

    def tile(x: torch.Tensor, n: int) -> torch.Tensor:
        reps = -(-n // x.shape[0])
        return x.repeat(reps, *([1] * (x.ndim - 1)))[:n].contiguous()

    return replace(data, train_ids=tile(data.train_ids, n_bank), test_images=tile(data.test_images, n_test),
                   test_targets=tile(data.test_targets, n_test))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = {"peak_rss_mb": round(own, 1), "peak_rss_workers_mb": round(children, 1)}
    if device.type == "cuda":
        out["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return out


def measure_epochs(args: argparse.Namespace, steps_per_epoch: int) -> int:
    if args.steps:
        return max(1, -(-args.steps // steps_per_epoch))
    return args.epochs


# ---------------------------------------------------------------- the fast path (and "off")


def run_fast(args: argparse.Namespace, variant: str) -> dict:
    """Time firm-bench's own loop (``train.build_training`` + the engine) as ``train()`` runs it."""
    from firm_bench.core import rundir as runs
    from firm_bench.datasets import load_run_data
    from firm_bench.run.training import build_training

    overrides = FAST_VARIANTS[variant]
    cfg = resolve_config(args, overrides)
    device = runs.pick_device(cfg["device"])
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_run_data(cfg)
    t = build_training(cfg, data, device)
    epochs_needed = measure_epochs(args, t.steps_per_epoch)
    t0 = time.perf_counter()
    epoch = 0
    for _ in range(args.warmup_epochs):  # capture, autotuning, compile, allocator warm-up
        epoch += 1
        t.engine.run_epoch(t.prepare(epoch)).cpu()
    sync(device)
    warmup_s = time.perf_counter() - t0
    steps, start_wall = 0, time.time()
    t0 = time.perf_counter()
    upcoming = t.prepare(epoch + 1)
    while True:  # as train(): prepare the next epoch while the device trains this one
        epoch += 1
        losses = t.engine.run_epoch(upcoming)
        upcoming = t.prepare(epoch + 1)
        values = losses.cpu()
        steps += t.steps_per_epoch
        done = epoch - args.warmup_epochs >= epochs_needed
        if done and time.perf_counter() - t0 >= args.min_seconds:
            break
    sync(device)
    train_s = time.perf_counter() - t0
    end_wall = time.time()
    if not torch.isfinite(values).all():
        raise BenchError(f"{variant}: non-finite training loss")
    syncs, sync_sites = count_syncs(t, epoch + 1) if device.type == "cuda" else (None, None)
    ev = eval_set(data, *eval_sizes(args, data))
    sync(device)
    t0 = time.perf_counter()
    value = t.evaluate(ev)
    sync(device)
    eval_s = time.perf_counter() - t0
    return {
        "variant": variant, "steps": steps, "train_s": train_s, "warmup_s": round(warmup_s, 2),
        "eval_s": eval_s, "eval_images": len(ev.train_ids) + len(ev.test_images), "eval_auroc": value,
        "batch_size": t.batch, "start_wall": start_wall, "end_wall": end_wall,
        "host_syncs_per_epoch": syncs, "sync_sites": sync_sites, "speed": t.speed_record(),
        "eval_every": int(cfg["eval"]["every"]),
        **peak_memory(device),
    }


def fused_variant(variant: str) -> tuple[int, str | None] | None:
    """``fusedK`` -> (K, None); ``fusedK-grouped`` / ``fusedK-per_run`` -> (K, kernels); anything else None."""
    if not variant.startswith("fused"):
        return None
    size, _, kernels = variant[len("fused"):].partition("-")
    if not size.isdigit() or int(size) < 1 or kernels not in ("", "grouped", "per_run"):
        return None
    return int(size), kernels or None


def run_fused(args: argparse.Namespace, variant: str) -> dict:
    """K runs (seeds 0 .. K-1) as one fused model: ``PackEngine`` steps, the pack's batched evaluation."""
    from firm_bench.core import rundir as runs
    from firm_bench.datasets import load_run_data
    from firm_bench.run.pack import Pack
    from firm_bench.run.training import build_training

    size, kernels = fused_variant(variant)
    extra = [f"speed.pack_kernels={kernels}"] if kernels else []
    cfgs = [resolve_config(args, [f"seed={seed}", *extra]) for seed in range(size)]
    device = runs.pick_device(cfgs[0]["device"])
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_run_data(cfgs[0])
    ts = [build_training(cfg, data, device) for cfg in cfgs]
    opts = ts[0].opts
    pack = Pack(ts)
    steps_per_epoch = ts[0].steps_per_epoch

    def epoch_inputs(epoch: int) -> list:
        return [t.prepare(epoch) for t in ts]

    epochs_needed = measure_epochs(args, steps_per_epoch)
    t0 = time.perf_counter()
    epoch = 0
    for _ in range(args.warmup_epochs):  # capture, autotuning, allocator warm-up
        epoch += 1
        pack.run_epoch(epoch_inputs(epoch)).cpu()
    sync(device)
    warmup_s = time.perf_counter() - t0
    steps, start_wall = 0, time.time()
    t0 = time.perf_counter()
    upcoming = epoch_inputs(epoch + 1)
    while True:  # as the pack trainer: the next epoch prepared while the device trains this one
        epoch += 1
        losses = pack.run_epoch(upcoming)
        upcoming = epoch_inputs(epoch + 1)
        values = losses.cpu()
        steps += size * steps_per_epoch
        if epoch - args.warmup_epochs >= epochs_needed and time.perf_counter() - t0 >= args.min_seconds:
            break
    sync(device)
    train_s = time.perf_counter() - t0
    end_wall = time.time()
    if not torch.isfinite(values).all():
        raise BenchError(f"{variant}: non-finite training loss")
    syncs, sync_sites = count_pack_syncs(pack, epoch_inputs(epoch + 1)) if device.type == "cuda" else (None, None)
    ev = eval_set(data, *eval_sizes(args, data))
    for t in ts:  # the timed evaluation on the CIFAR-sized sets
        t.bank_images, t.test_images = ev.train_ids.to(device), ev.test_images.to(device)
        t.data = ev
    sync(device)
    t0 = time.perf_counter()
    values = pack.evaluate(list(range(size)), [False] * size)
    sync(device)
    eval_s = time.perf_counter() - t0
    return {
        "variant": variant, "runs": size, "pack_kernels": opts.pack_kernels, "steps": steps, "train_s": train_s,
        "warmup_s": round(warmup_s, 2), "eval_s": eval_s,
        "eval_images": size * (len(ev.train_ids) + len(ev.test_images)), "eval_auroc": values[0][0],
        "batch_size": ts[0].batch, "start_wall": start_wall, "end_wall": end_wall,
        "host_syncs_per_epoch": syncs, "sync_sites": sync_sites,
        "speed": {**opts.record(), "status": dict(pack.status)}, "eval_every": int(cfgs[0]["eval"]["every"]),
        **peak_memory(device),
    }


@contextlib.contextmanager
def recording_syncs(sites: dict[str, int], stage: str) -> Iterator[None]:
    """Count the host-device synchronisations inside the block (CUDA's sync debug mode) into ``sites``.

    Key: "stage file:line" (the Python line that called the synchronising
    operation) -> count.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            key = f"{stage} {Path(w.filename).name}:{w.lineno}"
            sites[key] = sites.get(key, 0) + 1


def count_syncs(t: Any, epoch: int) -> tuple[int, dict[str, int]]:
    """Host-device synchronisations while preparing and training one epoch: their number and sites."""
    sites: dict[str, int] = {}
    with recording_syncs(sites, "prepare"):
        ed = t.prepare(epoch)
    with recording_syncs(sites, "run_epoch"):
        losses = t.engine.run_epoch(ed)
    losses.cpu()
    return sum(sites.values()), sites


def count_pack_syncs(pack: Any, eds: list) -> tuple[int, dict[str, int]]:
    """Host-device synchronisations while a pack trains one epoch (as :func:`count_syncs`)."""
    sites: dict[str, int] = {}
    with recording_syncs(sites, "run_epoch"):
        losses = pack.run_epoch(eds)
    losses.cpu()
    return sum(sites.values()), sites


# ---------------------------------------------------------------- the naive loop


class PairDataset(torch.utils.data.Dataset):
    """Two PIL-augmented views per image, one image at a time (the reference code's way)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        from torchvision.transforms.v2.functional import to_pil_image

        img = to_pil_image(self.images[i])
        return self.transform(img), self.transform(img), int(self.labels[i])


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, transform: Any) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from torchvision.transforms.v2.functional import to_pil_image

        return self.transform(to_pil_image(self.images[i]))


def naive_transforms(cfg: dict, size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[Any, Any]:
    """The training and test transforms of a reference implementation, on PIL images."""
    from torchvision.transforms import v2

    a = cfg["augment"]
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    train = v2.Compose([
        v2.RandomResizedCrop(size, scale=tuple(a["crop_scale"]), ratio=tuple(a["crop_ratio"])),
        v2.RandomApply([v2.ColorJitter(*a["jitter"])], p=a["jitter_p"]),
        v2.RandomApply([v2.GaussianBlur(a["blur_kernel"], tuple(a["blur_sigma"]))], p=a["blur_p"]),
        *tail,
    ])
    test = v2.Compose([v2.Resize(int(1.125 * size)), v2.CenterCrop(size), *tail])
    return train, test


class NaiveLoop:
    """A reference-style run: DataLoader workers with PIL augmentation, fp32, checkpoint-reload evaluation."""

    def __init__(self, cfg: dict, workers: int) -> None:
        from firm_bench.core import rundir as runs
        from firm_bench.datasets import load_run_data
        from firm_bench.method.losses import get_loss
        from firm_bench.method.models import create_model
        from firm_bench.method.outliers import OUTLIERS
        from firm_bench.method.schedules import SCHEDULES

        self.cfg, self.workers = cfg, workers
        self.device = runs.pick_device(cfg["device"])
        self.data = data = load_run_data(cfg)
        seed = int(cfg["seed"])
        torch.manual_seed(seed)
        images, labels = OUTLIERS.get(cfg["outliers"]["name"])(cfg["outliers"], data.image_size).epoch(
            data.train_ids, torch.Generator().manual_seed(seed))
        train_tf, self.test_tf = naive_transforms(cfg, data.image_size, data.mean, data.std)
        self.batch = int(cfg["optim"]["batch_size"])
        self.cuda = self.device.type == "cuda"
        self.loader = torch.utils.data.DataLoader(
            PairDataset(images, labels, train_tf), batch_size=self.batch, shuffle=True, drop_last=True,
            num_workers=workers, pin_memory=self.cuda, persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )
        self.model = create_model(cfg["model"]).to(self.device)
        o = cfg["optim"]
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=o["lr"], momentum=o["momentum"],
                                         weight_decay=o["weight_decay"])
        self.steps_per_epoch = len(self.loader)
        self.scheduler = SCHEDULES.get(o["schedule"])(self.optimizer, o["epochs"] * self.steps_per_epoch,
                                                      self.steps_per_epoch, o)
        self.loss_fn = get_loss(cfg["loss"]["name"], tau=cfg["loss"]["tau"], form=cfg["loss"]["form"])
        self.logged: list[float] = []

    def one_epoch(self) -> int:
        self.model.train()
        n = 0
        for v1, v2, y in self.loader:
            v1, v2, y = v1.to(self.device), v2.to(self.device), y.to(self.device)
            out1, out2 = self.model(torch.cat([v1, v2])).z.chunk(2)
            loss = self.loss_fn(out1, out2, y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.logged.append(loss.item())  # the usual per-step logging
            n += 1
        return n

    def evaluate(self, ev: Any) -> float:
        """Save a checkpoint, reload it into a fresh model, features through a DataLoader, k-NN on the CPU."""
        from firm_bench.method.metrics import auroc
        from firm_bench.method.models import create_model
        from firm_bench.method.scores import knn_mean_similarity

        feat_batch = int(self.cfg["features"]["batch_size"])
        with tempfile.TemporaryDirectory() as tmp:  # the reference evaluated a saved checkpoint
            path = Path(tmp) / "checkpoint.pt"
            torch.save({"model": self.model.state_dict()}, path)
            fresh = create_model(self.cfg["model"]).to(self.device)
            fresh.load_state_dict(torch.load(path, map_location=self.device)["model"])
            fresh.eval()
            feats = []
            with torch.no_grad():
                for part in (ev.train_ids, ev.test_images):
                    dl = torch.utils.data.DataLoader(ImageDataset(part, self.test_tf), batch_size=feat_batch,
                                                     num_workers=self.workers, pin_memory=self.cuda)
                    feats.append(torch.cat([fresh.features(x.to(self.device)).cpu() for x in dl]))
        bank, test = (torch.nn.functional.normalize(f.float(), dim=1) for f in feats)
        return auroc(knn_mean_similarity(test, bank, k=self.cfg["eval"]["k"]).numpy(), ev.test_targets.numpy())


def run_naive(args: argparse.Namespace) -> dict:
    """Time the reference-style loop (``NaiveLoop``)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    loop = NaiveLoop(resolve_config(args, SPEED_OFF), args.workers)
    device = loop.device
    t0 = time.perf_counter()
    for _ in range(args.warmup_epochs):
        loop.one_epoch()
    sync(device)
    warmup_s = time.perf_counter() - t0
    epochs_needed = measure_epochs(args, loop.steps_per_epoch)
    steps, done_epochs = 0, 0
    t0 = time.perf_counter()
    while done_epochs < epochs_needed or time.perf_counter() - t0 < args.min_seconds:
        steps += loop.one_epoch()
        done_epochs += 1
    sync(device)
    train_s = time.perf_counter() - t0
    ev = eval_set(loop.data, *eval_sizes(args, loop.data))
    t0 = time.perf_counter()
    value = loop.evaluate(ev)
    eval_s = time.perf_counter() - t0
    if not all(v == v and abs(v) != float("inf") for v in loop.logged[-steps:]):
        raise BenchError("naive: non-finite training loss")
    return {
        "variant": "naive", "steps": steps, "train_s": train_s, "warmup_s": round(warmup_s, 2), "eval_s": eval_s,
        "eval_images": len(ev.train_ids) + len(ev.test_images), "eval_auroc": value, "batch_size": loop.batch,
        "workers": args.workers, "host_syncs_per_epoch": None, "eval_every": int(loop.cfg["eval"]["every"]),
        **peak_memory(device),
    }


def auroc_comparison(args: argparse.Namespace, seeds: Sequence[int]) -> dict:
    """Final learning-curve AUROC of full runs of the preset (its own data and epochs), naive vs fast, per seed.

    The statistics check of the fast path: both train the same recipe; their
    AUROCs should agree within the spread over seeds.
    """
    from firm_bench.core import config
    from firm_bench.run.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict[str, list[float]] = {"naive": [], "fast": []}
    for seed in seeds:
        base = [f"device={args.device}", f"seed={seed}", *args.overrides]
        loop = NaiveLoop(config.resolve(args.preset, overrides=[*base, *SPEED_OFF]), args.workers)
        for _ in range(int(loop.cfg["optim"]["epochs"])):
            loop.one_epoch()
        out["naive"].append(loop.evaluate(loop.data))
        with tempfile.TemporaryDirectory() as tmp:
            result = train(config.resolve(args.preset, overrides=base), tmp, progress=False)
        out["fast"].append(result.final_auroc)
        print(f"bench_fast: seed {seed}: naive {out['naive'][-1]:.4f}, fast {out['fast'][-1]:.4f}", file=sys.stderr)
    summary = {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None} for k, v in out.items()}
    return {"preset": args.preset, "seeds": list(seeds), "final_auroc": out, "summary": summary,
            "difference_of_means": summary["fast"]["mean"] - summary["naive"]["mean"]}


def eval_sizes(args: argparse.Namespace, data: Any) -> tuple[int, int]:
    paper = args.preset == "paper"
    bank = args.eval_bank or (CIFAR_BANK if paper else len(data.train_ids))
    test = args.eval_test or (CIFAR_TEST if paper else len(data.test_images))
    return bank, test


# ---------------------------------------------------------------- orchestration


def summarize(r: dict, args: argparse.Namespace, pack: int = 1) -> dict:
    """Derived figures of one variant; a pack's (``pack`` runs sharing the device) views/s is their sum.

    views/s is the device's training throughput, so the seconds per epoch and
    the GPU-hours are device time per run; a run of a pack takes ``pack``
    times as long on the wall clock.
    """
    views_per_s = 2 * r["batch_size"] * r["steps"] / r["train_s"]
    per_image_eval = r["eval_s"] / r["eval_images"]
    eval_every = args.eval_every or r["eval_every"]
    s_epoch = 2 * args.samples_per_epoch / views_per_s + per_image_eval * (CIFAR_BANK + CIFAR_TEST) / eval_every
    gpu_h = s_epoch * args.run_epochs / 3600
    return {
        "steps_per_s": round(r["steps"] / r["train_s"], 2),
        "views_per_s": round(views_per_s, 1),
        "runs": pack,
        "views_per_s_per_run": round(views_per_s / pack, 1),
        "eval_s": round(r["eval_s"], 3),
        "eval_s_per_image": per_image_eval,
        "s_per_epoch_cifar10_class": round(s_epoch, 3),
        "gpu_hours_per_run": round(gpu_h, 3),
        "run_wall_hours": round(gpu_h * pack, 3),
        "table1a_firm_gpu_hours": round(TABLE1A_FIRM_RUNS * gpu_h, 2),
    }


def worker_command(args: argparse.Namespace, variant: str, result: Path) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--result", str(result),
           "--device", args.device, "--preset", args.preset, "--epochs", str(args.epochs),
           "--warmup-epochs", str(args.warmup_epochs), "--min-seconds", str(args.min_seconds),
           "--workers", str(args.workers)]
    for flag, value in (("--steps", args.steps), ("--eval-bank", args.eval_bank), ("--eval-test", args.eval_test),
                        ("--threads", args.threads)):
        if value:
            cmd += [flag, str(value)]
    for pair in args.overrides:
        cmd += ["--set", pair]
    return cmd


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    fused = fused_variant(variant)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(worker_command(args, variant, result), capture_output=True, text=True,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{variant}: timed out after {args.timeout} s") from None
        if proc.returncode != 0 or not result.exists():
            tail = proc.stderr.strip().splitlines()[-3:] if proc.stderr.strip() else [f"exit status {proc.returncode}"]
            raise BenchError(f"{variant}: " + " | ".join(tail))
        r = json.loads(result.read_text())
    return {**r, **summarize(r, args, pack=fused[0] if fused else 1)}


def default_variants(device: str) -> list[str]:
    if device == "cuda":
        return ["naive", "fast", "fused4", "fused8", "fused16", "fused32", "off", "fast-eager"]  # most telling first
    return ["naive", "off", "fast", "fused4", "fused8"]


def environment(device: torch.device) -> dict:
    import firm_bench

    env = {"firm_bench": firm_bench.__version__, "torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def table(results: dict[str, dict]) -> str:
    cols = [("variant", 16), ("K", 3), ("steps/s", 9), ("views/s", 10), ("per run", 9), ("x naive", 8),
            ("s/epoch*", 9), ("x naive", 8), ("GPU-h/run", 10), ("GPU-h 1a", 9), ("peak MB", 9), ("syncs/ep", 9)]
    lines = [" ".join(f"{c:>{w}}" for c, w in cols)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:>16} failed: {r['error']}")
            continue
        peak = r.get("peak_gpu_mem_mb") or r.get("peak_rss_mb")
        cells = [name, r.get("runs", 1), r["steps_per_s"], r["views_per_s"], r.get("views_per_s_per_run", "-"),
                 r.get("views_per_s_vs_naive", "-"),
                 r["s_per_epoch_cifar10_class"], r.get("epoch_speedup_vs_naive", "-"), r["gpu_hours_per_run"],
                 r["table1a_firm_gpu_hours"], peak, r.get("host_syncs_per_epoch")]
        lines.append(" ".join(f"{str(c if c is not None else '-'):>{w}}" for c, (_, w) in zip(cells, cols)))
    lines.append("* device seconds per epoch of a CIFAR-10 class (20000 samples) incl. one 15000-image evaluation every "
                 "eval.every epochs; GPU-h/run: a 2000-epoch run; GPU-h 1a: Table 1a's FIRM column (50 runs); "
                 "fusedK: the device's throughput of all K runs, so device time per run")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    ap.add_argument("--preset", default="mini", help="run preset whose model and recipe are timed (paper, mini, smoke)")
    ap.add_argument("--epochs", type=int, default=2, help="measured epochs of the stand-in data after the warm-up")
    ap.add_argument("--steps", type=int, default=0, help="measured steps instead (rounded up to whole epochs)")
    ap.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs first (capture, autotuning, workers)")
    ap.add_argument("--min-seconds", type=float, default=0.0, help="keep training whole epochs until this long")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="naive DataLoader workers")
    ap.add_argument("--variants", default=None,
                    help="comma-separated: naive, off, fast, fast-eager, fast-bf16, fast-channels-last, fast-compile, "
                         "fusedK, fusedK-grouped, fusedK-per_run (K runs as one fused model) "
                         "(default: naive,off,fast,fused4,fused8 on CPU; naive,fast,fused4,fused8,fused16,fused32,"
                         "off,fast-eager on CUDA)")
    ap.add_argument("--fast-only", action="store_true", help="only the fast path")
    ap.add_argument("--naive-only", action="store_true", help="only the naive loop")
    ap.add_argument("--eval-bank", type=int, default=0, help="bank images of the timed evaluation")
    ap.add_argument("--eval-test", type=int, default=0, help="test images of the timed evaluation")
    ap.add_argument("--eval-every", type=int, default=0, help="epochs between evaluations (default: the preset's eval.every)")
    ap.add_argument("--samples-per-epoch", type=int, default=20000, help="for the per-epoch figures (CIFAR-10 class: 20000)")
    ap.add_argument("--run-epochs", type=int, default=2000, help="epochs of the projected full run (2000)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per variant before it counts as failed")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure the variants in turn this many times and report each one's fastest round "
                         "(shared machines: other load slows some rounds; every round's views/s is in the JSON)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra run-config override for every variant")
    ap.add_argument("--auroc-seeds", default=None, metavar="0,1,2",
                    help="instead of timing: train full runs of the preset per seed, naive and fast, and compare "
                         "their final AUROC (the fast path must not change the statistics)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fast_only and args.naive_only:
        ap.error("--fast-only and --naive-only exclude each other")
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:  # one variant, in this process
        if args.worker == "naive":
            result = run_naive(args)
        elif fused_variant(args.worker):
            result = run_fused(args, args.worker)
        else:
            result = run_fast(args, args.worker)
        Path(args.result).write_text(json.dumps(result))
        return 0
    from firm_bench.core import rundir as runs

    try:
        device = runs.pick_device(args.device)
    except RuntimeError as exc:
        print(f"bench_fast: {exc}", file=sys.stderr)
        return 2
    args.device = str(device)
    if args.auroc_seeds:
        report = {"benchmark": "bench_fast --auroc-seeds", "environment": environment(device),
                  "command": " ".join(sys.argv),
                  "auroc": auroc_comparison(args, [int(x) for x in args.auroc_seeds.split(",")])}
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    variants = args.variants.split(",") if args.variants else default_variants(device.type)
    if args.fast_only:
        variants = [v for v in variants if v != "naive"] or ["fast"]
    if args.naive_only:
        variants = ["naive"]
    unknown = [v for v in variants if not (v in FAST_VARIANTS or v == "naive" or fused_variant(v))]
    if unknown:
        print(f"bench_fast: unknown variant(s) {', '.join(unknown)}; valid: naive, {', '.join(FAST_VARIANTS)}, fusedK, "
              "fusedK-grouped, fusedK-per_run", file=sys.stderr)
        return 2
    rounds: dict[str, list[dict]] = {v: [] for v in variants}
    for k in range(args.rounds):  # the variants in turn, round after round: load changes hit them alike
        for v in variants:
            print(f"bench_fast: {v} ..." + (f" (round {k + 1} of {args.rounds})" if args.rounds > 1 else ""),
                  file=sys.stderr, flush=True)
            load_before = os.getloadavg()[0]
            try:
                r = run_variant(args, v)
            except BenchError as exc:
                r = {"variant": v, "error": str(exc)}
            rounds[v].append({**r, "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
            results = {name: best_round(rs) for name, rs in rounds.items() if rs}
            report = build_report(args, device, results)
            if args.out:  # after every variant: a run cut short keeps what it measured
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table(results), file=sys.stderr)
    print(json.dumps(report, indent=2))
    failed = [v for v, r in results.items() if "error" in r]
    if failed:
        print(f"bench_fast: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def best_round(rounds: list[dict]) -> dict:
    """A variant's fastest round (the least slowed by other load), with every round's views/s and load.

    ``load_1min``: the 1-minute load average before and after each round; on
    a shared machine a round that ran beside other work is slower, so the
    best round is the one to compare (``--rounds``).
    """
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[-1]
    best = dict(max(ok, key=lambda r: r["views_per_s"]))
    if len(rounds) > 1:
        best["rounds_views_per_s"] = [r.get("views_per_s") for r in rounds]
        best["rounds_load_1min"] = [r["load_1min"] for r in rounds]
    return best


def build_report(args: argparse.Namespace, device: torch.device, results: dict[str, dict]) -> dict:
    """The JSON report: every variant's figures, their ratios to ``naive`` and the best views/s per GPU."""
    base = results.get("naive")
    if base and "error" not in base:
        for r in results.values():
            if "error" not in r:
                r["views_per_s_vs_naive"] = round(r["views_per_s"] / base["views_per_s"], 2)
                r["epoch_speedup_vs_naive"] = round(base["s_per_epoch_cifar10_class"] / r["s_per_epoch_cifar10_class"], 2)
                if "peak_gpu_mem_mb" in r and base.get("peak_gpu_mem_mb"):
                    r["peak_gpu_mem_vs_naive"] = round(r["peak_gpu_mem_mb"] / base["peak_gpu_mem_mb"], 2)
    report = {
        "benchmark": "bench_fast", "preset": args.preset, "stand_in": "fmnist_mini class 0, 32 px",
        "samples_per_epoch": args.samples_per_epoch, "run_epochs": args.run_epochs,
        "environment": environment(device), "command": " ".join(sys.argv), "results": results,
    }
    ok = [r for r in results.values() if "error" not in r]
    if ok:
        best = max(ok, key=lambda r: r["views_per_s"])
        report["best"] = {"variant": best["variant"], "runs": best.get("runs", 1),
                          "views_per_s_per_gpu": best["views_per_s"], "gpu_hours_per_run": best["gpu_hours_per_run"],
                          "eval_s_per_image": best["eval_s_per_image"],
                          "peak_memory_mb": best.get("peak_gpu_mem_mb") or best.get("peak_rss_mb")}
    return report


if __name__ == "__main__":
    sys.exit(main())
