"""Pixel-level size of two minor differences (docs/FAITHFULNESS.md "Minor differences"), on fmnist_mini.

Run: PYTHONPATH=$PWD python3 docs/measure/minor_differences.py
"""
import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image

from firm_bench.datasets.mini import read_mini
from firm_bench.datasets.base import resize_images

g = torch.Generator().manual_seed(0)
data = read_mini("", "train", False)
x = data.images[:512]  # uint8 (N, 3, 28, 28)
print("images", tuple(x.shape))

# 1) colour jitter 0.4 (brightness, contrast; saturation/hue are no-ops on grey): PIL uint8 per op vs float, rounded once
diffs = []
for i in range(len(x)):
    b, c = (0.6 + 0.8 * torch.rand(2, generator=g)).tolist()
    pil = Image.fromarray(x[i].permute(1, 2, 0).numpy())
    ref = torch.from_numpy(np.array(F.adjust_contrast(F.adjust_brightness(pil, b), c))).permute(2, 0, 1)
    ours = F.adjust_contrast(F.adjust_brightness(x[i].float() / 255, b), c).mul(255).round().clamp(0, 255)
    diffs.append((ref.float() - ours).abs())
d = torch.stack(diffs)
print(f"jitter: mean |PIL uint8 - float| = {d.mean():.3f} grey levels, share of pixels differing = {(d > 0).float().mean():.3f}, max = {d.max():.0f}")

# 2) Fashion-MNIST: crop from 28 then resize to 32 (reference) vs resize 28 -> 32 then crop the same relative box
diffs = []
for i in range(len(x)):
    s = 0.25 + 0.75 * torch.rand(1, generator=g).item()
    side = s ** 0.5
    top, left = (torch.rand(2, generator=g) * (1 - side)).tolist()
    r = [round(v * 28) for v in (top, left, side, side)]
    ref = F.resize(F.crop(x[i], *r), [32, 32], antialias=True)
    big = resize_images(x[i : i + 1], 32)[0]
    o = [round(v * 32) for v in (top, left, side, side)]
    ours = F.resize(F.crop(big, *o), [32, 32], antialias=True)
    diffs.append((ref.float() - ours.float()).abs())
d = torch.stack(diffs)
print(f"28->32 order: mean |crop-then-resize - resize-then-crop| = {d.mean():.2f} grey levels, median image mean = {d.mean(dim=(1,2,3)).median():.2f}")
