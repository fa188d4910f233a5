"""Feature extraction for every view a score needs, cached once per run.

From a trained run (``checkpoints/last.pt``, or ``best_test.pt`` when
``checkpoint.select: best_test``), encoder features (512-d at width 1) are
extracted for:

- the bank: the normal class's training images at each angle of
  ``features.angles`` (test transform: Resize(1.125 * size) -> CenterCrop);
- the test set at each angle (same transform);
- ``features.crops`` random resized crops (scale ``features.crop_scale``,
  ratio 1) of each test image at each angle (docs/METHOD.md "Scores", ``ens``).

The result is a :class:`firm_bench.method.scores.FeatureCache` in
``features/<evalset>/cache.pt`` (``test``: the run's own test protocol;
``ood-<name>``: the unlabeled multiclass protocol against OOD set <name>,
Table 4, so one trained model serves every OOD set); every score is computed from it, so adding a score
needs no retraining and no new forward pass.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from firm_bench.core import config as config_mod
from firm_bench.core import rundir as runs
from firm_bench.core.errors import DamagedFile
from firm_bench.core.rundir import TEST_EVALSET, cache_path, meta_path
from firm_bench.datasets import evalset_data
from firm_bench.method.augment import TEST_ZOOM, ensemble_crops, test_transform
from firm_bench.method.models import FirmModel, create_model, initial_model
from firm_bench.method.scores import FeatureCache
from firm_bench.records import chain
from firm_bench.run.engine.options import autocast_bf16


ROTATIONS = (0, 90, 180, 270)


def rotate(images: Tensor, angle: int) -> Tensor:
    """Rotate (N, C, H, W) images counter-clockwise by ``angle`` in {0, 90, 180, 270}."""
    if angle % 90:
        raise ValueError(f"angle must be a multiple of 90, got {angle}")
    return torch.rot90(images, k=(angle // 90) % 4, dims=(2, 3))


@torch.no_grad()
def encode_views(model: FirmModel, views: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Encoder features (N, D) of already-normalised float views, in eval mode, on CPU."""
    was_training = model.training
    model.eval()
    out = [model.features(views[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(views), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.feature_dim)


@torch.no_grad()
def encode(
    model: FirmModel,
    images: Tensor,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    device: torch.device,
    *,
    keep_on_device: bool = False,
    bf16: bool = False,
    zoom: float = TEST_ZOOM,
) -> Tensor:
    """Encoder features (N, D) float32 of uint8 images under the test transform, batch by batch.

    Test transform: Resize(int(zoom size)) -> CenterCrop(size) -> normalise
    (``augment.test_transform``; zoom 1.125, MVTec 1). Eval mode. The features are gathered on the CPU, or with ``keep_on_device``
    left on ``device`` (the learning curve); ``bf16``:
    bfloat16 autocast of the forward passes (``speed.eval_bf16``).
    """
    mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32, device=device)  # moved once, not per batch
    std_t = torch.as_tensor(tuple(std), dtype=torch.float32, device=device)
    home = device if keep_on_device else torch.device("cpu")
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = test_transform(images[i : i + batch_size].to(device), size, mean_t, std_t, zoom)
        with autocast_bf16(device, bf16):
            out.append(model.features(x).float().to(home))
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.feature_dim, device=home)


def as_extracted(model: torch.nn.Module) -> torch.nn.Module:
    """The model as :func:`load_trained_model` gives it: NCHW weights (a copy when they are channels_last)."""
    conv = next((m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is not None and not conv.is_contiguous():
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    return model


def load_trained_model(run_dir: str | Path, cfg: dict, device: torch.device) -> tuple[FirmModel, int]:
    """The run's model at the checkpoint ``checkpoint.select`` names, and its epoch."""
    name = {"last": "last.pt", "best_test": "best_test.pt"}[cfg["checkpoint"]["select"]]
    path = Path(run_dir) / "checkpoints" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train the run first (firm-bench train)")
    state = runs.torch_load(path, map_location=device)  # checksum verified
    recorded = state.get("config")
    if isinstance(recorded, dict):  # the checkpoint's own config: config.yaml must describe this model
        diff = config_mod.recorded_differences(recorded, cfg, path)
        if diff:
            raise DamagedFile(Path(run_dir) / runs.CONFIG_FILE,
                              f"is not the config {path} was trained with ({'; '.join(diff[:8])})",
                              *runs.describe(Path(run_dir) / runs.CONFIG_FILE))
    model = create_model(cfg["model"]).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, int(state["epoch"])


@torch.no_grad()
def extract_features(
    model: FirmModel,
    bank_images: Tensor,
    test_images: Tensor,
    targets: Tensor,
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    angles: Sequence[int],
    crops: int,
    crop_scale: Sequence[float],
    batch_size: int,
    device: torch.device,
    seed: int,
    progress: bool = False,
    zoom: float = TEST_ZOOM,
) -> FeatureCache:
    """Every view's features: bank and test per angle, ``crops`` test crops per angle.

    ``size`` and ``zoom``: the test transform's (Resize(int(zoom size)) -> CenterCrop(size)).
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed + 7919)
    bank, test, test_crops = [], [], []
    for angle in tqdm(angles, desc="features", unit="angle", disable=not progress):
        bank.append(encode(model, rotate(bank_images, angle), size, mean, std, batch_size, device, zoom=zoom))
        rotated = rotate(test_images, angle)
        test.append(encode(model, rotated, size, mean, std, batch_size, device, zoom=zoom))
        if crops:
            per_crop = [[] for _ in range(crops)]
            for i in range(0, len(rotated), batch_size):
                views = ensemble_crops(
                    rotated[i : i + batch_size].to(device), size, crops, tuple(crop_scale), gen, mean, std, zoom
                )
                for c in range(crops):
                    per_crop[c].append(encode_views(model, views[c], batch_size, device))
            test_crops.append(torch.stack([torch.cat(chunks) for chunks in per_crop]))
    cache = FeatureCache(
        angles=tuple(int(a) for a in angles),
        bank=torch.stack(bank),
        test=torch.stack(test),
        test_crops=torch.stack(test_crops) if crops else None,
        targets=targets.to(torch.int64).cpu(),
    )
    cache.validate()
    return cache


def extract_run_features(
    cfg: dict, run_dir: str | Path, progress: bool = False, evalset: str = TEST_EVALSET
) -> Path:
    """Extract and cache a trained run's features; returns the metadata path.

    A run whose training failed gets a ``features.json`` that says so (and no
    cache), so that its scores are recorded as failed rather than missing.
    Holds the evaluation set's features exclusively (``rundir.writing``) and
    removes its meta.json first, so an interrupted extraction is never taken
    for a finished one.
    """
    run_dir = Path(run_dir)
    with runs.writing(run_dir, "features", evalset):
        meta_path(run_dir, evalset).unlink(missing_ok=True)
        return _extract_run_features(cfg, run_dir, progress, evalset)


def refresh_run_features(cfg: dict, run_dir: str | Path, evalset: str = TEST_EVALSET) -> bool:
    """Extract the features again unless ``meta.json`` names the run's current cache (``records.chain``: its
    model, its features settings); whether it extracted. A damaged meta.json is extracted again too.

    Checked under the evaluation set's exclusive lock, so of the score jobs of a run that found its cache
    stale together (``score --refresh``), one extracts and the others find it fresh.
    """
    run_dir = Path(run_dir)
    with runs.writing(run_dir, "features", evalset):
        meta_file = meta_path(run_dir, evalset)
        try:
            meta = runs.read_record(meta_file) if meta_file.is_file() else {}
            if meta.get("state") == "ok":
                chain.check_features(run_dir, cfg, evalset, meta)
                return False
        except DamagedFile:  # StaleRecord included
            pass
        meta_file.unlink(missing_ok=True)
        _extract_run_features(cfg, run_dir, False, evalset)
        return True


def _extract_run_features(cfg: dict, run_dir: Path, progress: bool, evalset: str) -> Path:
    trained = run_dir / runs.TRAINED_FILE
    if trained.exists() and runs.read_json(trained).get("state") == "failed":
        reason = runs.read_json(trained).get("reason")
        runs.atomic_write_json(meta_path(run_dir, evalset), {"state": "failed", "reason": f"training failed: {reason}"})
        return meta_path(run_dir, evalset)
    device = runs.pick_device(cfg["device"])
    model, epoch = load_trained_model(run_dir, cfg, device)
    chain.check_checkpoint(run_dir, cfg)
    data = evalset_data(cfg, evalset)
    f = cfg["features"]

    def extract(net: FirmModel) -> FeatureCache:
        return extract_features(
            net, data.train_ids, data.test_images, data.test_targets, size=data.eval_size, mean=data.mean,
            std=data.std, zoom=data.eval_zoom, angles=f["angles"], crops=f["crops"], crop_scale=f["crop_scale"],
            batch_size=f["batch_size"], device=device, seed=int(cfg["seed"]), progress=progress,
        )

    cache = extract(model)
    cache.save(cache_path(run_dir, evalset))
    links = {"run": chain.run_identity(cfg),  # what the cache was made from (records.chain)
             "checkpoint_sha256": chain.recorded_sha256(chain.checkpoint_path(run_dir, cfg)),
             "features": chain.features_identity(cfg),
             "cache_sha256": chain.recorded_sha256(cache_path(run_dir, evalset))}
    if f["untrained"]:  # the same views of the encoder at initialisation (same crops: same seed)
        extract(initial_model(cfg["model"], int(cfg["seed"])).to(device).eval()).save(cache_path(run_dir, evalset, runs.UNTRAINED))
        links["untrained_sha256"] = chain.recorded_sha256(cache_path(run_dir, evalset, runs.UNTRAINED))
    runs.atomic_write_json(
        meta_path(run_dir, evalset),
        {"state": "ok", **links, "evalset": evalset, "checkpoint": cfg["checkpoint"]["select"], "epoch": epoch, "angles": list(cache.angles),
         "crops": f["crops"], "n_bank": int(cache.bank.shape[1]), "n_test": int(cache.test.shape[1]),
         "dim": int(cache.bank.shape[2]), "eval_size": data.eval_size, "eval_zoom": data.eval_zoom,
         "normalization": {"setting": cfg["dataset"]["normalization"], "mean": list(data.mean), "std": list(data.std)},
         "untrained": bool(f["untrained"])},
    )
    return meta_path(run_dir, evalset)
