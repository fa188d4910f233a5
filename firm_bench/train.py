"""Training: the loop, the two learning-rate schedules, checkpoint and resume.

The recipe (METHOD.md "Training recipe"): SGD with momentum and weight
decay; every epoch the normal class's training images plus their synthetic
outliers (``outliers.name``) are shuffled into ``batch_size`` batches
(drop_last); each batch gets two augmented views; the loss
(``loss.name``) is computed on the two L2-normalised projections.

Every ``eval.every`` epochs the test set is scored in-process with the k-NN
cosine score on encoder features and a row is appended to ``curve.csv``.
Every ``checkpoint.every`` epochs (and at the end) ``checkpoints/last.pt``
is written atomically; a restarted run resumes from it. All randomness of an
epoch comes from a generator seeded by ``(seed, epoch)``, so a run killed and
resumed ends with the same numbers as an uninterrupted one (CPU; on CUDA up
to non-deterministic kernels).

A non-finite loss stops the run; ``status.json`` records it as failed with
the reason.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from firm_bench import config as config_mod
from firm_bench import runs
from firm_bench.augment import AugmentConfig, TwoViewAugment
from firm_bench.datasets import ImageSet, get_dataset, load_split, one_class_split, ood_split
from firm_bench.features import encode
from firm_bench.losses import get_loss
from firm_bench.metrics import auroc
from firm_bench.models import FirmModel, create_model
from firm_bench.outliers import OUTLIERS
from firm_bench.registry import Registry
from firm_bench.scores import knn_mean_similarity

SCHEDULES: Registry[Callable[..., LRScheduler]] = Registry("schedule")

TRAINED_FILE = "trained.json"  # written last: the workflow's "training finished" marker
CURVE_FIELDS = ("epoch", "auroc", "loss", "lr", "elapsed_s")
DEFAULT_IMAGE_SIZE = 32


@SCHEDULES.register("onecycle")
def onecycle(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, optim: dict) -> LRScheduler:
    """OneCycleLR(max_lr=lr, pct_start) stepped per iteration, as the reference code ran it
    (cosine annealing, momentum cycled 0.85-0.95, PyTorch's div factors)."""
    return OneCycleLR(optimizer, max_lr=optim["lr"], total_steps=total_steps, pct_start=optim["pct_start"])


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, optim: dict
) -> LRScheduler:
    """Linear warm-up for ``warmup_epochs`` then cosine annealing to ``lr_min`` (the paper's App. A)."""
    warm = int(round(optim["warmup_epochs"] * steps_per_epoch))
    floor = optim["lr_min"] / optim["lr"]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)


class TrainingFailed(RuntimeError):
    """The run could not finish (non-finite loss, ...); recorded in status.json."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs: int
    final_auroc: float | None
    best_auroc: float | None
    best_epoch: int | None
    elapsed_s: float


@dataclass
class RunData:
    """Everything a run trains and evaluates on, loaded once."""

    train_ids: torch.Tensor  # uint8 (N, 3, S, S) normal-class training images
    test_images: torch.Tensor  # uint8 (Nt, 3, S, S)
    test_targets: torch.Tensor  # int64 (Nt,), 1 = normal
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def image_size_of(cfg: dict) -> int:
    """``dataset.image_size``, else the dataset's paper size (32; Cats-vs-Dogs 64; MVTec 256)."""
    size = cfg["dataset"]["image_size"] or getattr(get_dataset(cfg["dataset"]["name"]), "default_image_size", None)
    return int(size or DEFAULT_IMAGE_SIZE)


def load_run_data(cfg: dict) -> RunData:
    """The configured split, resized to the run's size.

    One-class protocol: the normal class's training images; the whole test set, normal = 1.
    OOD protocol (``dataset.ood``): every training image; this dataset's test set (normal = 1)
    plus the OOD set's test images (0). ``cls: all`` without ``dataset.ood``: every training
    image and no test set (no learning curve; evaluate with ``firm-bench features --evalset ood-<name>``).
    """
    ds = cfg["dataset"]
    size = image_size_of(cfg)
    info = get_dataset(ds["name"])
    if ds["ood"] is not None:
        train, test, targets = ood_split(ds["name"], ds["ood"], root=ds["root"], image_size=size, download=ds["download"])
    elif ds["cls"] == "all":  # unlabeled multiclass training, no test set: no learning curve
        train = load_split(ds["name"], "train", ds["root"], size, ds["download"])
        test = ImageSet(train.images[:0], train.labels[:0], train.classes)
        targets = torch.zeros(0, dtype=torch.int64)
    else:
        train, test, targets = one_class_split(
            ds["name"], ds["cls"], root=ds["root"], image_size=size, download=ds["download"]
        )
    return RunData(train.images, test.images, targets, size, tuple(info.mean), tuple(info.std))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of all randomness of one epoch (exact resume)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@torch.no_grad()
def evaluate_knn(model: FirmModel, data: RunData, k: int, batch_size: int, device: torch.device) -> float:
    """Learning-curve AUROC: mean cosine similarity to the k nearest training features."""
    bank = encode(model, data.train_ids, data.image_size, data.mean, data.std, batch_size, device)
    test = encode(model, data.test_images, data.image_size, data.mean, data.std, batch_size, device)
    sims = knn_mean_similarity(
        torch.nn.functional.normalize(test, dim=1), torch.nn.functional.normalize(bank, dim=1), k=k
    )
    return auroc(sims.cpu().numpy(), data.test_targets.numpy())


def _write_curve(run_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.atomic_write_text(run_dir / "curve.csv", buf.getvalue())


def read_curve(run_dir: str | Path) -> list[dict]:
    """The learning curve rows of a run (epoch as int, the rest as float)."""
    path = Path(run_dir) / "curve.csv"
    if not path.exists():
        return []
    with path.open() as fh:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)
        ]


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="epoch", dynamic_ncols=True)


def train(
    cfg: dict,
    run_dir: str | Path,
    progress: bool | None = None,
    data: RunData | None = None,
) -> TrainResult:
    """Train one run from a resolved config into ``run_dir``, resuming if it holds a checkpoint."""
    cfg = config_mod.validate(cfg)
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    device = runs.pick_device(cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if progress is None:
        progress = sys.stderr.isatty()

    previous = run_dir / runs.CONFIG_FILE
    if previous.exists() and (ckpt_dir / "last.pt").exists():
        old = config_mod.load_yaml(previous)
        if _recipe_view(old) != _recipe_view(cfg):
            raise config_mod.ConfigError(
                f"{run_dir} holds a checkpoint of a different config; "
                "use another run directory or delete it to start over"
            )
    runs.atomic_write_text(previous, config_mod.dump(cfg))
    runs.atomic_write_json(run_dir / "versions.json", runs.versions(device))

    data = data or load_run_data(cfg)
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    model = create_model(cfg["model"]).to(device)
    optim_cfg = cfg["optim"]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=optim_cfg["lr"], momentum=optim_cfg["momentum"], weight_decay=optim_cfg["weight_decay"]
    )
    outliers = OUTLIERS.get(cfg["outliers"]["name"])(cfg["outliers"], data.image_size)
    fixed_set = outliers.epoch(data.train_ids, epoch_generator(seed, 0)) if outliers.deterministic else None
    n_train = (fixed_set[0] if fixed_set else outliers.epoch(data.train_ids, epoch_generator(seed, 0))[0]).shape[0]
    batch = int(optim_cfg["batch_size"])
    steps_per_epoch = n_train // batch
    if steps_per_epoch == 0:
        raise config_mod.ConfigError(
            f"optim.batch_size={batch} is larger than the training set ({n_train} images with outliers); "
            "lower optim.batch_size"
        )
    epochs = int(optim_cfg["epochs"])
    scheduler = SCHEDULES.get(optim_cfg["schedule"])(optimizer, epochs * steps_per_epoch, steps_per_epoch, optim_cfg)
    loss_fn = get_loss(cfg["loss"]["name"], tau=cfg["loss"]["tau"], form=cfg["loss"]["form"])
    augment = TwoViewAugment(AugmentConfig.from_dict(cfg["augment"]), data.image_size, data.mean, data.std)

    start_epoch, curve, best = 0, [], {"auroc": None, "epoch": None}
    elapsed_before = 0.0
    if (ckpt_dir / "last.pt").exists():
        state = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, curve, best = state["epoch"], state["curve"], state["best"]
        elapsed_before = state.get("elapsed_s", 0.0)
        print(f"firm-bench: resuming {run_dir} from its checkpoint at epoch {start_epoch}/{epochs}", file=sys.stderr)
    runs.write_status(run_dir, "running", epoch=start_epoch, epochs=epochs)

    def save_checkpoint(epoch: int, elapsed: float) -> None:
        runs.atomic_torch_save(
            ckpt_dir / "last.pt",
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "curve": curve,
                "best": best,
                "elapsed_s": elapsed,
                "config": cfg,
            },
        )

    eval_cfg = cfg["eval"]
    feat_batch = int(cfg["features"]["batch_size"])

    def record_eval(epoch: int, loss_value: float, elapsed: float) -> None:
        if len(data.test_targets) == 0:  # cls: all without dataset.ood: nothing to evaluate on
            return
        value = evaluate_knn(model, data, eval_cfg["k"], feat_batch, device)
        model.train()
        curve.append(
            {"epoch": epoch, "auroc": value, "loss": loss_value, "lr": optimizer.param_groups[0]["lr"], "elapsed_s": elapsed}
        )
        _write_curve(run_dir, curve)
        if best["auroc"] is None or value > best["auroc"]:
            best.update(auroc=value, epoch=epoch)
            runs.atomic_torch_save(ckpt_dir / "best_test.pt", {"model": model.state_dict(), "epoch": epoch})

    t0 = time.perf_counter() - elapsed_before
    if start_epoch == 0 and eval_cfg["at_start"] and not curve:
        model.eval()
        record_eval(0, float("nan"), 0.0)
    model.train()
    bar = _progress(epochs, start_epoch, progress, f"train {cfg['loss']['name']}")
    epoch_loss = float("nan")
    for epoch in range(start_epoch + 1, epochs + 1):
        gen = epoch_generator(seed, epoch)
        images, labels = fixed_set if fixed_set else outliers.epoch(data.train_ids, gen)
        images, labels = images.to(device), labels.to(device)
        order = torch.randperm(images.shape[0], generator=gen)[: steps_per_epoch * batch].to(device)
        total = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            v1, v2 = augment(images[idx], gen)
            out1, out2 = model(torch.cat([v1, v2])).z.chunk(2)
            loss = loss_fn(out1, out2, labels[idx])
            if not torch.isfinite(loss):
                reason = f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step + 1}"
                runs.write_status(run_dir, "failed", reason=reason, epoch=epoch)
                runs.atomic_write_json(run_dir / TRAINED_FILE, {"state": "failed", "reason": reason, "epoch": epoch})
                raise TrainingFailed(reason)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
        epoch_loss = (total / steps_per_epoch).item()
        elapsed = time.perf_counter() - t0
        if epoch % eval_cfg["every"] == 0 or epoch == epochs:
            model.eval()
            record_eval(epoch, epoch_loss, elapsed)
        if epoch % cfg["checkpoint"]["every"] == 0 or epoch == epochs:
            save_checkpoint(epoch, elapsed)
        bar.update(1)
        bar.set_postfix(loss=f"{epoch_loss:.4f}", auroc=f"{curve[-1]['auroc']:.4f}" if curve else "-")
    bar.close()
    elapsed = time.perf_counter() - t0
    final = curve[-1]["auroc"] if curve else None
    runs.write_status(
        run_dir,
        "ok",
        stage="trained",
        epoch=epochs,
        final_auroc=final,
        best_test_auroc=best["auroc"],
        best_test_epoch=best["epoch"],
        train_seconds=round(elapsed, 3),
    )
    runs.atomic_write_json(
        run_dir / TRAINED_FILE,
        {"state": "ok", "epochs": epochs, "final_auroc": final, "best_test_auroc": best["auroc"], "best_test_epoch": best["epoch"],
         "train_seconds": round(elapsed, 3)},
    )
    return TrainResult(run_dir, epochs, final, best["auroc"], best["epoch"], elapsed)


def _recipe_view(cfg: dict) -> dict:
    """The part of a config that must match to resume (everything but run-local knobs)."""
    return {k: v for k, v in cfg.items() if k not in {"device", "threads", "scores", "features"}}
