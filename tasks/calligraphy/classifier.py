"""The glyph judge: a small CNN trained on real font renders that says which character and which style a glyph is.

Used by `tasks.calligraphy.evaluate` for content accuracy, style accuracy and a Fréchet distance over its penultimate
features ("fid_glyph": project glyph-classifier features, not Inception; `gen.metrics.frechet_distance`). It never sees
generated glyphs in training; augmentation (shifts, scale, blur, noise) keeps it from keying on pixel-exact font
rendering. Its loop stays here (two heads, a character batch and a style batch per step); it is saved and loaded with
`gen.judge` (safetensors + a JSON card).

    judge = train_judge(char_images, char_labels, style_images, style_labels, n_chars, n_styles, seed=0)
    feats, char_logits, style_logits = judge(x)        # x (B, 1, S, S) in [-1, 1]
    save_glyph_judge(judge, folder, card); judge, card = load_glyph_judge(folder)
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gen.judge import load_judge, save_judge
from gen.metrics import frechet_distance  # noqa: F401  (one implementation for the suite; re-exported here)


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
        self.judge_init = dict(n_chars=n_chars, n_styles=n_styles, width=width)   # what rebuilds it (the card records it)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f = self.trunk(x)                                         # (B, 4w)
        return f, self.char_head(f), self.style_head(f)


def save_glyph_judge(model: GlyphJudge, folder: str | os.PathLike, card: dict) -> dict:
    """gen.judge.save_judge with the network's constructor arguments."""
    return save_judge(model, folder, card, init=model.judge_init)


def load_glyph_judge(folder: str | os.PathLike) -> tuple[GlyphJudge, dict]:
    """(judge in eval mode, card) from a folder written by save_glyph_judge (safetensors only)."""
    return load_judge(GlyphJudge, folder)


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
                steps: int = 600, batch_size: int = 64, seed: int = 0, lr: float = 2e-3, width: int = 32) -> GlyphJudge:
    """Train both heads on real renders: char_x (N, 1, S, S) with char_y (N,), style_x (M, 1, S, S) with style_y (M,)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = GlyphJudge(n_chars, n_styles, width)
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
