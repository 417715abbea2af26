"""Procedural, class-labelled data sets for the backbone: deterministic by seed, generated in memory in milliseconds.

- `Shapes2D`: K shape classes (disc, square, triangle, cross, ring, bar…) with random colour, size, position and
  background, (3, S, S) in [−1, 1]. Used for 2D pretraining until task data lands, the demo and the end-to-end test.
- `Curves1D`: K waveform classes (sines of different frequency, square, saw…) with random phase, amplitude and a
  per-channel offset, (C, T) in [−1, 1]; the class is checkable analytically by the dominant frequency.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

SHAPES = ("disc", "square", "triangle", "cross", "ring", "hbar")
WAVES = ("sin1", "sin2", "sin4", "sin8")  # dominant frequency (cycles per window) is the class: 1, 2, 4, 8


def _shape_mask(kind: str, yy: np.ndarray, xx: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if kind == "disc":
        return dx ** 2 + dy ** 2 <= r ** 2
    if kind == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if kind == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == "cross":
        w = r * 0.35
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if kind == "ring":
        d2 = dx ** 2 + dy ** 2
        return (d2 <= r ** 2) & (d2 >= (0.55 * r) ** 2)
    if kind == "hbar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r * 0.3)
    raise ValueError(f"unknown shape {kind!r}; accepted: {SHAPES}")


def render_shape(label: int, rng: np.random.Generator, size: int = 32, num_classes: int = len(SHAPES)) -> np.ndarray:
    """(3, size, size) float32 in [−1, 1]: one shape of class `label` on a plain background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = size * rng.uniform(0.22, 0.32)
    cx, cy = size / 2 + rng.uniform(-0.12, 0.12) * size, size / 2 + rng.uniform(-0.12, 0.12) * size
    bg = rng.uniform(-1.0, -0.2, size=3)
    fg = rng.uniform(0.2, 1.0, size=3)
    mask = _shape_mask(SHAPES[label % len(SHAPES)], yy, xx, cx, cy, r)
    img = np.where(mask[None], fg[:, None, None], bg[:, None, None])
    return img.astype(np.float32)


class Shapes2D(torch.utils.data.Dataset):
    def __init__(self, n: int = 4096, size: int = 32, num_classes: int = 4, seed: int = 0):
        if not 1 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes must be in [1, {len(SHAPES)}]")
        self.n, self.size, self.k, self.seed = n, size, num_classes, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        label = int(rng.integers(self.k))
        return {"x": torch.from_numpy(render_shape(label, rng, self.size)), "label": label}

    def tensors(self) -> tuple[Tensor, Tensor]:
        items = [self[i] for i in range(self.n)]
        return torch.stack([d["x"] for d in items]), torch.tensor([d["label"] for d in items])


def render_curve(label: int, rng: np.random.Generator, channels: int = 2, length: int = 64) -> np.ndarray:
    """(channels, length) float32: class `label` sets the dominant frequency (1, 2, 4 or 8 cycles per window)."""
    f = 2 ** (label % len(WAVES))
    s = np.arange(length, dtype=np.float32) / length
    out = []
    for _ in range(channels):
        amp, phase, off = rng.uniform(0.5, 0.9), rng.uniform(0, 2 * math.pi), rng.uniform(-0.1, 0.1)
        out.append(amp * np.sin(2 * math.pi * f * s + phase) + off)
    return np.stack(out).astype(np.float32)


def dominant_frequency(x: Tensor) -> Tensor:
    """(B, C, T) → (B,) the FFT bin with most energy summed over channels (DC excluded)."""
    spec = torch.fft.rfft(x - x.mean(-1, keepdim=True), dim=-1).abs().pow(2).sum(1)
    return spec[:, 1:].argmax(-1) + 1


class Curves1D(torch.utils.data.Dataset):
    def __init__(self, n: int = 4096, channels: int = 2, length: int = 64, num_classes: int = 4, seed: int = 0):
        if not 1 <= num_classes <= len(WAVES):
            raise ValueError(f"num_classes must be in [1, {len(WAVES)}]")
        self.n, self.c, self.t, self.k, self.seed = n, channels, length, num_classes, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        label = int(rng.integers(self.k))
        return {"x": torch.from_numpy(render_curve(label, rng, self.c, self.t)), "label": label}


def shape_judge(data: Shapes2D, steps: int = 250, seed: int = 0) -> torch.nn.Module:
    """A small CNN trained on real `data` to tell the shape classes apart: the judge of class-conditional samples.
    Its 32-d pooled features (`judge[:-1]`) serve for a Fréchet distance ("shape-judge features, not Inception").
    Trained by `gen.judge.train_judge` (Adam 3e-3, batch 64, no augmentation)."""
    from torch import nn

    from gen.judge import train_judge

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                        nn.Linear(32, data.k))
    return train_judge(net, data.tensors(), steps=steps, batch_size=64, lr=3e-3, seed=seed, optimizer="adam")
