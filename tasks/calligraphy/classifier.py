"""The glyph judge: a small CNN trained on real font renders that says which character and which style a glyph is.

Used by `tasks.calligraphy.evaluate` for content accuracy, style accuracy and a Fréchet distance over its penultimate
features ("fid_glyph": project glyph-classifier features, not Inception). It never sees generated glyphs in training;
augmentation (shifts, scale, blur, noise) keeps it from keying on pixel-exact font rendering.

    judge = train_judge(char_images, char_labels, style_images, style_labels, n_chars, n_styles, seed=0)
    feats, char_logits, style_logits = judge(x)        # x (B, 1, S, S) in [-1, 1]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from gen.io import atomic_path


class GlyphJudge(nn.Module):
    """conv(32)→conv(64)→conv(128)→GAP → 128-d features → (character logits, style logits)."""

    def __init__(self, n_chars: int, n_styles: int, width: int = 32):
        super().__init__()
        w = width
        block = lambda a, b: [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                              nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
        self.trunk = nn.Sequential(*block(1, w), *block(w, 2 * w), *block(2 * w, 4 * w),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.char_head = nn.Linear(4 * w, n_chars)
        self.style_head = nn.Linear(4 * w, n_styles)
        self.meta = dict(n_chars=n_chars, n_styles=n_styles, width=width)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f = self.trunk(x)                                         # (B, 4w)
        return f, self.char_head(f), self.style_head(f)

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp,
                      metadata={"meta": json.dumps({**self.meta, **(extra or {})})})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GlyphJudge":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["meta"])
        m = cls(meta["n_chars"], meta["n_styles"], meta["width"])
        m.load_state_dict(load_file(str(path)))
        return m.eval()


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random shift (±2 px), scale (0.85–1.1), blur and noise: (B, 1, S, S) in [-1, 1] → same."""
    b = x.shape[0]
    s = 0.85 + 0.25 * torch.rand(b, generator=g)
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * (2.0 / x.shape[-1]) * 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / s, 1 / s
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1
    blur = torch.rand(b, generator=g) < 0.3
    if blur.any():
        k = torch.tensor([0.25, 0.5, 0.25])
        k2 = (k[:, None] * k[None]).view(1, 1, 3, 3)
        y = torch.where(blur[:, None, None, None], F.conv2d(y, k2, padding=1), y)
    return (y + 0.1 * torch.rand(b, 1, 1, 1, generator=g) * torch.randn(y.shape, generator=g)).clamp(-1, 1)


def train_judge(char_x: Tensor, char_y: Tensor, style_x: Tensor, style_y: Tensor, n_chars: int, n_styles: int,
                steps: int = 600, batch_size: int = 64, seed: int = 0, lr: float = 2e-3) -> GlyphJudge:
    """Train both heads on real renders: char_x (N, 1, S, S) with char_y (N,), style_x (M, 1, S, S) with style_y (M,)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = GlyphJudge(n_chars, n_styles)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        i = torch.randint(len(char_x), (batch_size,), generator=g)
        j = torch.randint(len(style_x), (batch_size,), generator=g)
        _, lc, _ = model(augment(char_x[i], g))
        _, _, ls = model(augment(style_x[j], g))
        loss = F.cross_entropy(lc, char_y[i]) + F.cross_entropy(ls, style_y[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def judge_batches(model: GlyphJudge, x: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor, Tensor]:
    outs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return tuple(torch.cat(o) for o in zip(*outs))


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between feature sets a (N, D), b (M, D) (Heusel et al. 2017)."""
    import numpy as np
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
