"""Glyph super-resolution stage: a model-resolution glyph (32 px) + the 64-px content glyph → a 64-px glyph.

    python -m tasks.calligraphy.superres --config configs/calligraphy_sr.yaml            # train → runs/calligraphy_sr
    python -m tasks.calligraphy.superres --config configs/calligraphy_sr.yaml --dry-run  # print the resolved config

The diffusion model writes 32-px glyphs; this deterministic stage (a small residual CNN on a space-to-depth stem, so
its convolutions run at 32×32) lifts them to 64 px. It sees the bicubic upsampling of the low-resolution glyph and the
64-px content glyph (Noto Sans, which carries every stroke: thin strokes of dense characters such as 藝 or 鬱 that
vanish at 32 px are recovered from it), and predicts a residual on the upsampling. It is trained on real glyphs of the
training designs and training characters (input: the glyph area-downsampled to 32 px like the diffusion model's
targets, with a little noise so that sampled glyphs are in its domain), loss L1 on [0, 1]. Works / fonts / SVG are
then traced from the 64-px result (tasks.calligraphy.vector), so any output size stays crisp.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gen._diffusers import ConfigMixin, ModelMixin, register_to_config

DEFAULTS = dict(
    model=dict(
        width=48,            # channels of the residual blocks (at half resolution after the space-to-depth stem)
        blocks=5,            # residual blocks
        in_size=32,          # low-resolution side (the diffusion model's image_size)
        out_size=64,         # output side (2 × in_size)
    ),
    train=dict(
        output_dir="runs/calligraphy_sr",  # the trained model (save_pretrained layout) and train_log.json go here
        steps=1500,          # optimizer steps
        batch_size=16,       # glyphs per step
        lr=1.0e-3,           # AdamW learning rate (cosine to 0)
        noise=0.08,          # max std of the Gaussian noise added to the low-resolution input (in [-1, 1] units)
        seed=0,              # data draws and init
        threads=1,           # torch threads
        max_seconds=0,       # stop (and save) after this wall time (0 = no limit)
    ),
    data=dict(
        config="configs/calligraphy.yaml",  # the diffusion config whose training designs / split / charset are used
        max_chars=0,         # use only the first N training characters (0 = all); tests use a few
        chars="",            # character universe as one string ("" = the diffusion config's); tests use a few
    ),
)


class GlyphSuperRes(ModelMixin, ConfigMixin):
    """(B, 1, s, s) low-res glyph in [-1, 1] + (B, 1, 2s, 2s) content glyph in [-1, 1] → (B, 1, 2s, 2s) in [-1, 1]."""

    @register_to_config
    def __init__(self, width: int = 48, blocks: int = 5, in_size: int = 32, out_size: int = 64):
        super().__init__()
        if out_size != 2 * in_size:
            raise ValueError(f"out_size must be 2 × in_size, got {in_size} → {out_size}")
        self.stem = nn.Conv2d(8, width, 3, padding=1)                     # space-to-depth(2) of [upsampled, content]
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                                  nn.Conv2d(width, width, 3, padding=1)) for _ in range(blocks))
        self.head = nn.Conv2d(width, 4, 3, padding=1)                     # depth-to-space(2) → 1 channel
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, low: Tensor, content: Tensor) -> Tensor:
        up = F.interpolate(low, size=content.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        h = F.silu(self.stem(F.pixel_unshuffle(torch.cat([up, content], 1), 2)))      # (B, W, s, s)
        for blk in self.body:
            h = h + blk(h)
        return (up + F.pixel_shuffle(self.head(F.silu(h)), 2)).clamp(-1, 1)         # (B, 1, 2s, 2s)


def load_superres(folder: str | os.PathLike) -> GlyphSuperRes:
    """A trained stage from its folder (config.json + safetensors only), in fp32, eval mode."""
    m = GlyphSuperRes.from_pretrained(str(folder), use_safetensors=True)
    return m.float().eval()


def resolve_config(argv=None):
    """--config file key=value … → the resolved config, or None after --dry-run printed it (errors exit 2)."""
    from gen.config import ConfigError, check_float, check_int, cli_error, load_config, train_argparser

    parser = train_argparser(__doc__.splitlines()[0], "configs/calligraphy_sr.yaml")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides, DEFAULTS)
        for sec, known in DEFAULTS.items():
            unknown = sorted(set(cfg[sec]) - set(known))
            if unknown:
                raise ConfigError(f"unknown config key {sec}.{unknown[0]!r}; valid keys here: {sorted(known)}")
        unknown = sorted(set(cfg) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r}; valid: {sorted(DEFAULTS)}")
        for k in ("steps", "batch_size"):
            check_int(f"train.{k}", cfg["train"][k], 1)
        check_float("train.lr", cfg["train"]["lr"], 0, low_open=True)
        check_int("model.width", cfg["model"]["width"], 1)
    except ConfigError as e:
        raise cli_error(parser, e) from None
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        return None
    return cfg


def train(cfg: dict) -> dict:
    """Train the stage on real glyphs (see the module docstring); saves to train.output_dir. Returns a summary."""
    import yaml

    from gen.io import atomic_write_json

    from .train import GlyphStore, PairDataset

    tc, mc, dc = cfg["train"], cfg["model"], cfg["data"]
    if tc["threads"]:
        torch.set_num_threads(int(tc["threads"]))
    with open(dc["config"], encoding="utf-8") as f:
        dcfg = (yaml.safe_load(f) or {}).get("data", {})
    chars = sorted(set(dc["chars"] or dcfg.get("chars") or "")) or None
    store = GlyphStore(dcfg["styles"], mc["out_size"], dcfg.get("heldout_fraction", 0.1), dcfg.get("split_seed", 0), chars=chars,
                       charset=dcfg.get("charset", "all"))
    idx = store.train_idx[: dc["max_chars"]] if dc["max_chars"] else store.train_idx
    pairs = PairDataset(store, idx).pairs                                 # (P, 2) style, char
    g = torch.Generator().manual_seed(int(tc["seed"]))
    torch.manual_seed(int(tc["seed"]))
    model = GlyphSuperRes(**mc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tc["steps"])
    t0, losses, step = time.time(), [], 0
    for step in range(1, tc["steps"] + 1):
        pick = pairs[torch.randint(len(pairs), (tc["batch_size"],), generator=g)]
        hi = torch.stack([store.images[int(s), int(c)] for s, c in pick])                  # (B, 1, 64, 64) [-1, 1]
        con = store.content[pick[:, 1]]
        low = F.interpolate(hi, size=(mc["in_size"],) * 2, mode="area")
        low = (low + torch.rand(len(low), 1, 1, 1, generator=g) * tc["noise"] * torch.randn(low.shape, generator=g)).clamp(-1, 1)
        out = model(low, con)
        loss = F.l1_loss(out, hi) / 2                                                       # L1 on the [0, 1] scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 100 == 0:
            print(f"[calligraphy-sr] step {step} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} "
                  f"{time.time() - t0:.0f}s", flush=True)
        if tc["max_seconds"] and time.time() - t0 > tc["max_seconds"]:
            break
    os.makedirs(tc["output_dir"], exist_ok=True)
    model.eval().save_pretrained(tc["output_dir"], safe_serialization=True)
    summary = {"steps": step, "seconds": round(time.time() - t0, 1), "final_loss_l1_01": sum(losses[-100:]) / max(1, len(losses[-100:])),
               "pairs": int(len(pairs)), "config": cfg}
    atomic_write_json(os.path.join(tc["output_dir"], "train_log.json"), summary, indent=1, ensure_ascii=False)
    return summary


def main(argv=None) -> int:
    from gen.cli import run

    cfg = resolve_config(argv)  # config errors: argparse's one-line error, exit 2 (CLIError)
    if cfg is None:
        return 0

    def _go():
        s = train(cfg)
        print(json.dumps({k: s[k] for k in ("steps", "seconds", "final_loss_l1_01")}))
        return 0

    return run(_go, "calligraphy-superres")


if __name__ == "__main__":
    sys.exit(main())
