"""The learning-curve evaluation on the training device (``speed.fast_eval``)."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from firm_bench.augment import _resize_center_crop, to_float
from firm_bench.speed.options import autocast_bf16, cudnn_benchmark


def _as_feature_extraction(model: torch.nn.Module) -> torch.nn.Module:
    """The model as ``firm-bench features`` loads it: NCHW weights (a copy when training in channels_last)."""
    conv = next((m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is not None and not conv.is_contiguous():
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    return model


@torch.no_grad()
def encode_on_device(
    model: torch.nn.Module, images: Tensor, size: int, mean: Tensor, std: Tensor, batch_size: int, bf16: bool = False
) -> Tensor:
    """Encoder features (N, D) float32 on the model's device, test transform, eval mode.

    The test transform of ``augment.test_transform`` (Resize(1.125 size) ->
    CenterCrop -> normalise) with mean/std (1, 3, 1, 1) already on the device.
    """
    device = mean.device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = (_resize_center_crop(to_float(images[i : i + batch_size].to(device)), size) - mean) / std
        with autocast_bf16(device, bf16):
            out.append(model.features(x).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.feature_dim, device=device)


@torch.no_grad()
def evaluate_knn_on_device(
    model: torch.nn.Module,
    bank_images: Tensor,
    test_images: Tensor,
    targets: Tensor,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    k: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
) -> float:
    """Learning-curve AUROC (k-NN mean cosine similarity), features and search on ``device``.

    The same number as ``train.evaluate_knn`` (which gathers features on the
    CPU and searches there) on the CPU; one host read at the end. The
    forward passes run as ``firm-bench features`` runs them (NCHW weights,
    no cuDNN autotuning, float32 unless ``bf16``), so the curve's last point
    equals the ``cos`` score of the feature cache.
    """
    from firm_bench.metrics import auroc
    from firm_bench.scores import knn_mean_similarity

    m = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    net = _as_feature_extraction(model)
    with cudnn_benchmark(False):
        bank = encode_on_device(net, bank_images, size, m, s, batch_size, bf16)
        test = encode_on_device(net, test_images, size, m, s, batch_size, bf16)
    sims = knn_mean_similarity(F.normalize(test, dim=1), F.normalize(bank, dim=1), k=k)
    return auroc(sims.cpu().numpy(), targets.cpu().numpy())
