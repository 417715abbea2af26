"""calligraphy-adapt: fine-tune the calligraphy model to a new hand from 8-64 reference glyphs, in minutes on a CPU.

    calligraphy-adapt --references my_hand/ --name myhand --out styles/myhand          # files named 永.png, 和.png, …
    calligraphy-adapt --references scan1.png scan2.png … --chars 永和九年… --name myhand --out styles/myhand
    calligraphy-generate --text 永和九年 --style myhand --out work.png                   # found in ./styles/
    calligraphy-font --style myhand --style-dir ~/hands --chars 春夏秋冬 --out MyHand.ttf

    pipe = CalligraphyPipeline.from_pretrained("calligraphy")
    pipe.load_style("styles/myhand")                   # or let `style="myhand"` find it on the style search path
    glyphs = pipe.glyphs("永和", style="myhand")

What is learned (the base model is never changed):

1. Targets x_0 are the user's glyphs (read, binarised and cropped like every reference: `pipeline.reference_glyphs`);
   the content condition of each is the same character in the content font (`pipeline.content_glyphs`). The
   characters come from the file names (永.png, 永_2.png, 永和.png for a line), from --chars in file order, or are asked
   for on a terminal.
2. A style vector s (cond_dim), initialised from the model's StyleEncoder on the training references, so that step 0
   is exactly today's reference-based output.
3. A LoRA (peft, rank r, W' = W + (α/r) B A with B = 0 at the start) on every Conv2d / Linear of a copy of the U-Net
   except the timestep MLP.
4. Loss: the model's own diffusion loss (`gen.train.diffusion_loss`, DDPM L_simple in the model's prediction type),
   with content / style dropped at the training rates (so classifier-free guidance keeps working), and the same
   random shift / scale applied to a target and its content glyph (8-64 glyphs overfit fast).
5. Held-out split: 1/8 of the references (at least 1) are not trained on; every --eval-every steps their characters
   are sampled (fixed seed, 10 sampler steps) and scored by SSIM against the user's glyphs, and the best snapshot is
   kept (step 0 included, so the result is never worse than the references alone by that measure). The diffusion loss
   on them is reported but cannot choose: it barely moves while the samples change a lot. Training stops at --steps
   or --time-limit.

Saved to --out (written to a temporary folder beside it, then renamed; nothing pickled): `style.safetensors` (the
style vector, the LoRA tensors, the reference glyphs as uint8) and `style.json` (name, base model and its weight
fingerprint, characters, LoRA settings, steps, wall time, losses). An adapted style only loads onto the base model it
was adapted from (same fingerprint): re-run calligraphy-adapt after the model changes.

Style search path (for `--style NAME` in calligraphy-generate / calligraphy-font and `style=NAME` in the API):
`--style-dir` folders (`pipe.style_dirs`), then the folders in $GENSUITE_STYLES (os.pathsep-separated), then
`./styles`; a style is a sub-folder holding style.json whose "name" is NAME.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gen.cli import exit_now, nonnegative_int, positive_int, run, setup_runtime

PROG = "calligraphy-adapt"
FORMAT = "gensuite-calligraphy-style"
FORMAT_VERSION = 1
STYLE_JSON, STYLE_WEIGHTS = "style.json", "style.safetensors"
MIN_GLYPHS, MAX_GLYPHS = 8, 64
SOURCE_ADAPTED = 3          # style_source of rows whose style vector is an adapted style's (pipeline-level; the model
                            # knows 0 = id, 1 = references, 2 = text)
ADAPTER = "style"           # peft adapter name
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")   # what parse_style accepts as a style name
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")   # = pipeline.IMAGE_EXTENSIONS (no torch at --help)

DEFAULTS = dict(
    steps=300,              # most optimiser steps
    time_limit=240.0,       # seconds of training at most (the whole command stays under 5 minutes on 2 CPU cores)
    batch_size=16,          # glyphs per step (drawn with replacement from the training references)
    lr=2e-3,                # AdamW learning rate of the LoRA and the style vector (10-step warmup, cosine decay)
    rank=8,                 # LoRA rank r
    alpha=8.0,              # LoRA α (scale α / r)
    holdout=0.125,          # fraction of the references held out to choose the step (0 = train on all, keep the last)
    eval_every=25,          # steps between held-out evaluations
    eval_sampler_steps=10,  # sampler steps of the held-out glyphs (the pipeline's sampler and guidance)
    content_dropout=0.1,    # P(content → null) per sample, as in training (classifier-free guidance)
    style_dropout=0.1,      # P(style → null) per sample
    shift=0.06,             # augmentation: uniform shift up to ±shift of the glyph side (target and content alike)
    scale=0.08,             # augmentation: scale uniform in [1 − scale, 1 + scale]
)


# ---- the adapted style --------------------------------------------------------------------------------------------
@dataclass
class AdaptedStyle:
    """One adapted hand: style vector (cond_dim,), LoRA tensors (U-Net parameter names, adapter `ADAPTER`), settings."""

    name: str
    vector: "torch.Tensor"
    lora: dict
    rank: int
    alpha: float
    targets: list
    meta: dict = field(default_factory=dict)
    references: "torch.Tensor | None" = None      # (N, S, S) uint8 glyphs it was adapted from
    path: str | None = None


def lora_targets(unet) -> list[str]:
    """Names of the U-Net modules that get a LoRA: every Conv2d / Linear except the timestep MLP."""
    from torch import nn

    return [n for n, m in unet.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not n.startswith("time_mlp")]


def lora_unet(unet, rank: int, alpha: float, targets: list[str]):
    """A copy of `unet` with a peft LoRA (B = 0: the same function as `unet`) on `targets`; only the LoRA trains."""
    from peft import LoraConfig, inject_adapter_in_model

    u = copy.deepcopy(unet)
    cfg = LoraConfig(r=int(rank), lora_alpha=float(alpha), target_modules=list(targets), lora_dropout=0.0, bias="none")
    u = inject_adapter_in_model(cfg, u, adapter_name=ADAPTER)
    for n, p in u.named_parameters():
        p.requires_grad_(".lora_" in n)
    return u


def lora_state(unet) -> dict:
    return {n: p.detach().clone() for n, p in unet.named_parameters() if ".lora_" in n}


def set_lora_scale(unet, scale: float) -> None:
    """Multiply every LoRA's α / r by `scale` (0 → the base U-Net's output exactly)."""
    for m in unet.modules():
        if hasattr(m, "set_scale") and hasattr(m, "lora_A"):
            m.set_scale(ADAPTER, scale)


def fingerprint(model) -> str:
    """sha256 (16 hex) of the base model's float32 weights: which base model an adapted style belongs to."""
    import torch

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class AdaptedDenoiser:
    """`model(x_t, t, cond)` of a CalligraphyModel whose U-Net is the LoRA copy and whose rows with style_source ==
    SOURCE_ADAPTED take `vector` as their style vector (the null vector where style.keep is False). The same two
    steps as CalligraphyModel.forward otherwise."""

    def __init__(self, base, unet, vector):
        self.base, self.unet, self.vector = base, unet, vector

    @property
    def device(self):
        return next(self.base.parameters()).device

    def __call__(self, x_t, t, cond: dict):
        import torch

        from .model import SOURCE_ID

        m = self.base
        content = m.content(cond["content"], cond.get("content.keep"))          # (B, 1, H, W)
        src = cond["style_source"].long()
        sel = src == SOURCE_ADAPTED                                             # (B,)
        v = m.style_vector({**cond, "style_source": torch.where(sel, torch.full_like(src, SOURCE_ID), src)})
        keep = cond.get("style.keep")
        use = sel if keep is None else sel & keep.to(sel.device).bool()
        v = torch.where(use[:, None].to(v.device), self.vector.to(v.dtype).expand_as(v), v)   # (B, cond_dim)
        return self.unet(x_t, t, cond_vec=v, cond_image=content)


def denoiser(model, style: AdaptedStyle, lora_scale: float = 1.0) -> AdaptedDenoiser:
    """The sampling-time model of an adapted style (a LoRA copy of model.unet with the saved tensors loaded)."""
    import torch

    unet = lora_unet(model.unet, style.rank, style.alpha, style.targets).to(next(model.parameters()).device)
    missing = set(lora_state(unet)) - set(style.lora)
    extra = set(style.lora) - set(lora_state(unet))
    if missing or extra:
        raise ValueError(f"adapted style {style.name!r} does not fit this model's U-Net ({len(missing)} LoRA tensors "
                         f"missing, {len(extra)} unknown); re-run calligraphy-adapt on this model")
    with torch.no_grad():
        params = dict(unet.named_parameters())
        for k, v in style.lora.items():
            if params[k].shape != v.shape:
                raise ValueError(f"adapted style {style.name!r}: LoRA tensor {k} has shape {tuple(v.shape)}, the "
                                 f"model expects {tuple(params[k].shape)}")
            params[k].copy_(v)
    unet.eval()
    if lora_scale != 1.0:
        set_lora_scale(unet, lora_scale)
    return AdaptedDenoiser(model, unet, style.vector.to(next(model.parameters()).device))


# ---- persistence --------------------------------------------------------------------------------------------------
def save_style(style: AdaptedStyle, out) -> str:
    """Write style.safetensors + style.json to `out` atomically (a temporary folder beside it, then renamed; an
    existing style folder at `out` is replaced, any other existing path is refused)."""
    import torch
    from safetensors.torch import save_file

    from gen.io import atomic_folder

    out = Path(out)
    check_out(out)
    with atomic_folder(out) as tmp:
        tensors = {"style_vector": style.vector.detach().float().cpu().contiguous()}
        tensors.update({f"lora.{k}": v.detach().float().cpu().contiguous() for k, v in style.lora.items()})
        if style.references is not None:
            tensors["references"] = style.references.to(torch.uint8).cpu().contiguous()
        save_file(tensors, str(tmp / STYLE_WEIGHTS), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                                "name": style.name})
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": style.name,
                "lora": {"rank": style.rank, "alpha": style.alpha, "targets": list(style.targets)}, **style.meta}
        (tmp / STYLE_JSON).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(out)


def check_out(out: Path) -> None:
    if out.exists() and not (out.is_dir() and ((out / STYLE_JSON).is_file() or not any(out.iterdir()))):
        raise ValueError(f"--out {str(out)!r} exists and is not an adapted style folder (nor empty); give a new "
                         f"folder, e.g. styles/myhand")


def load_style(folder) -> AdaptedStyle:
    """Read a folder written by save_style (safetensors + JSON only); a ValueError says what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    js, wt = folder / STYLE_JSON, folder / STYLE_WEIGHTS
    if not js.is_file() or not wt.is_file():
        raise ValueError(f"{str(folder)!r} is not an adapted style folder (expected {STYLE_JSON} and {STYLE_WEIGHTS} "
                         f"from calligraphy-adapt)")
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(js)!r} is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(js)!r}: format {meta.get('format')!r} version {meta.get('format_version')!r} is not "
                         f"supported (this release reads {FORMAT!r} version {FORMAT_VERSION})")
    try:
        t = load_file(str(wt))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"cannot read {str(wt)!r}: {e}") from None
    if "style_vector" not in t:
        raise ValueError(f"{str(wt)!r} has no style_vector")
    lora = {k[len("lora."):]: v for k, v in t.items() if k.startswith("lora.")}
    lo = meta.get("lora", {})
    rest = {k: v for k, v in meta.items() if k not in ("format", "format_version", "name", "lora")}
    return AdaptedStyle(meta["name"], t["style_vector"], lora, int(lo["rank"]), float(lo["alpha"]),
                        list(lo["targets"]), rest, t.get("references"), str(folder))


def style_search_path(extra=()) -> list[Path]:
    """--style-dir folders, then $GENSUITE_STYLES (os.pathsep-separated), then ./styles."""
    env = [p for p in os.environ.get("GENSUITE_STYLES", "").split(os.pathsep) if p]
    return [Path(p) for p in [*extra, *env, "styles"]]


def find_styles(extra=()) -> dict[str, Path]:
    """Adapted style name → folder, first on the search path wins."""
    found: dict[str, Path] = {}
    for d in style_search_path(extra):
        if not d.is_dir():
            continue
        for js in sorted(d.glob(f"*/{STYLE_JSON}")):
            try:
                name = json.loads(js.read_text(encoding="utf-8")).get("name")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                continue
            if isinstance(name, str) and name not in found:
                found[name] = js.parent
    return found


# ---- inputs -------------------------------------------------------------------------------------------------------
def reference_files(paths) -> list[Path]:
    """Files from --references: each folder's images sorted by name, files as given; errors for missing paths, folders
    without images and files that are not images (by extension)."""
    out = []
    if not paths:
        raise ValueError("no references given: pass a folder of glyph images or the image files (--references)")
    for p in map(Path, paths):
        if p.is_dir():
            imgs = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not imgs:
                raise ValueError(f"folder {str(p)!r} holds no reference images ({', '.join(IMAGE_EXTENSIONS)})")
            out += imgs
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"reference {str(p)!r} is not an image file; accepted: {', '.join(IMAGE_EXTENSIONS)}")
            out.append(p)
        else:
            raise ValueError(f"reference {str(p)!r} does not exist")
    return out


NAMING_HELP = ("name each file after the character it shows (永.png; a second sample 永_2.png; a line of several "
               "characters 永和九年.png), or give --chars with the characters of all files in order (files sorted by "
               "name within a folder)")


def read_references(files, size: int, chars: str | None = None, ask=None) -> tuple[list, list[str], list[str]]:
    """(glyphs (1, S, S) in [-1, 1], their characters, the source file of each). Characters come from `chars` (every
    file's characters in order), else the file names, else `ask(path) -> str` (a terminal prompt) when given; else a
    ValueError that says how to name the files. Every file is read and checked before anything else happens."""
    from .data import CONTENT_STYLE, OK, glyph_status
    from .pipeline import _ink, character_cells, is_han, reference_glyphs

    given = None if chars is None else [c for c in chars if not c.isspace()]
    glyphs, names, src, unnamed = [], [], [], []
    pos = 0
    for f in files:
        if given is not None:
            n = len(character_cells(_ink(f))) or 1
            mine = "".join(given[pos:pos + n])
            pos += n
            if len(mine) != n:
                raise ValueError(f"--chars has {len(given)} characters but the references show more (reached {f.name})")
            got = reference_glyphs(f, size, chars=mine)
        else:
            got = reference_glyphs(f, size)
            if any(c is None for _, c in got) and ask is not None:
                got = reference_glyphs(f, size, chars=ask(f))
        for g, c in got:
            if c is None:
                unnamed.append(f.name)
            glyphs.append(g), names.append(c), src.append(f.name)
    if given is not None and pos != len(given):
        raise ValueError(f"--chars has {len(given)} characters but the references show {pos} glyphs")
    if unnamed:
        raise ValueError(f"the file names of {len(unnamed)} reference image(s) do not say which character they show "
                         f"({', '.join(unnamed[:5])}{' …' if len(unnamed) > 5 else ''}); {NAMING_HELP}")
    bad = sorted({c for c in names if not is_han(c) or glyph_status(c, CONTENT_STYLE) != OK})
    if bad:
        raise ValueError(f"references name characters that are not Chinese characters the content font draws: "
                         f"{' '.join(bad)}; {NAMING_HELP}")
    n = len(glyphs)
    if not MIN_GLYPHS <= n <= MAX_GLYPHS:
        raise ValueError(f"{n} reference glyphs; adaptation needs {MIN_GLYPHS} to {MAX_GLYPHS}")
    return glyphs, names, src


def check_name(name: str, training_styles) -> None:
    if not name or not NAME_RE.match(name):
        raise ValueError(f"style name {name!r}: use letters, digits and _ (not starting with a digit), e.g. myhand")
    if name in training_styles:
        raise ValueError(f"style name {name!r} is one of the model's training styles; choose another name")


# ---- training -----------------------------------------------------------------------------------------------------
def augment(x, c, g, shift: float, scale: float):
    """The same random shift / scale for each target x and its content glyph c ((B, 1, S, S) in [-1, 1], paper −1)."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    s = 1 + (torch.rand(b, generator=g) * 2 - 1) * scale
    d = (torch.rand(b, 2, generator=g) * 2 - 1) * shift * 2          # affine_grid units: the side is 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = 1 / s, 1 / s, d
    grid = F.affine_grid(theta.to(x), x.shape, align_corners=False)
    warp = lambda im: F.grid_sample(im.add(1).div(2), grid, align_corners=False).mul(2).sub(1)  # paper → 0 → −1
    return warp(x), warp(c)


def split(n: int, holdout: float, g) -> tuple[list[int], list[int]]:
    import torch

    n_val = 0 if holdout <= 0 else max(1, int(round(holdout * n)))
    perm = torch.randperm(n, generator=g).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def adapt(pipe, glyphs, chars, name: str, seed: int = 0, progress=None, log=None, on_eval=None,
          **opts) -> AdaptedStyle:
    """Fine-tune a style vector + U-Net LoRA on reference glyphs (list of (1, S, S) in [-1, 1]) of `chars`.
    `on_eval(step, held_out_loss, AdaptedStyle snapshot)` is called at every evaluation (step 0 included)."""
    import torch

    from gen.train import diffusion_loss

    from .model import SOURCE_REFS

    o = {**DEFAULTS, **opts}
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown adaptation option(s) {sorted(unknown)}; accepted: {sorted(DEFAULTS)}")
    check_name(name, pipe.styles)
    t_start = time.time()
    model = pipe.model
    dev = pipe.device
    g = torch.Generator().manual_seed(int(seed))
    x_all = torch.stack(list(glyphs)).float()                                   # (N, 1, S, S)
    c_all = pipe.content_glyphs(list(chars))                                     # (N, 1, S, S)
    tr, va = split(len(chars), o["holdout"], g)
    n = len(tr)
    # 2. style vector from the StyleEncoder on the training references (= the references path at step 0)
    with torch.no_grad():
        vec0 = model.style_vector({"style_source": torch.tensor([SOURCE_REFS], device=dev),
                                   "refs": x_all[tr][None].to(dev), "refs_mask": torch.ones(1, n, dtype=torch.bool,
                                                                                           device=dev)})[0]
    vector = torch.nn.Parameter(vec0.detach().clone())
    # 3. LoRA on a copy of the U-Net
    targets = lora_targets(model.unet)
    unet = lora_unet(model.unet, o["rank"], o["alpha"], targets).to(dev).train()
    f = AdaptedDenoiser(model, unet, vector)
    lora_params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": lora_params}, {"params": [vector]}], lr=o["lr"], weight_decay=0.0)
    steps = int(o["steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / max(1, steps))))
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)

    def cond_of(idx, content, keep_c, keep_s):
        b = len(idx)
        return {"content": content.to(dev), "content.keep": keep_c.to(dev),
                "style_source": torch.full((b,), SOURCE_ADAPTED, device=dev), "style_id": torch.zeros(b, dtype=torch.long,
                                                                                                device=dev),
                "style.keep": keep_s.to(dev)}

    # 5. held-out glyphs: sampled with a fixed seed and scored by SSIM against the user's own (the criterion), and
    #    the conditional diffusion loss at fixed draws, 8 timesteps spread over [0, T) each (reported only: it barely
    #    moves while the samples change a lot, so it cannot choose the step)
    gv = torch.Generator().manual_seed(int(seed) + 1)
    T = pipe.schedule.T
    val = None
    if va:
        ts = torch.linspace(0.05, 0.95, 8).mul(T).long()
        idx = torch.tensor(va).repeat_interleave(len(ts))
        val = (x_all[idx], c_all[idx], ts.repeat(len(va)), torch.randn(len(idx), *x_all.shape[1:], generator=gv), idx)

    @torch.no_grad()
    def val_loss() -> float | None:
        if val is None:
            return None
        x0, c, t, eps, idx = val
        ones = torch.ones(len(idx), dtype=torch.bool)
        unet.eval()
        x0, t, eps = x0.to(dev), t.to(dev), eps.to(dev)
        pred = f(pipe.schedule.q_sample(x0, t, eps), t, cond_of(idx, c, ones, ones))
        unet.train()
        target = pipe.schedule.training_target(x0, t, eps, pipe.prediction_type)
        return float(torch.nn.functional.mse_loss(pred, target))

    @torch.no_grad()
    def val_ssim() -> float | None:
        if not va:
            return None
        from gen.guidance import Prompt, Term, guided_model
        from gen.metrics import ssim
        from gen.sampling import sample

        content = c_all[va].to(dev)
        base = pipe._base_cond(content, 1)
        cond = {**base, "style_source": torch.tensor([SOURCE_ADAPTED])}
        null = {**base, "content.keep": torch.zeros(1, dtype=torch.bool), "style.keep": torch.tensor([False])}
        unet.eval()
        fn = guided_model(f, Prompt((Term(cond, float(pipe.sampling["guidance"])),)), null)
        x = sample(fn, (len(va), 1, pipe.size, pipe.size), pipe.schedule, sampler=pipe.sampling["scheduler"],
                   steps=o["eval_sampler_steps"], generator=torch.Generator().manual_seed(int(seed)),
                   prediction_type=pipe.prediction_type, device=dev).clamp(-1, 1)
        unet.train()
        return float(ssim(x.cpu(), x_all[va]).mean())

    history, train_losses = [], []
    best = (val_ssim(), 0, lora_state(unet), vector.detach().clone())
    history.append({"step": 0, "val_ssim": best[0], "val_loss": val_loss()})
    snap = lambda: AdaptedStyle(name, vector.detach().clone().cpu(), {k: v.cpu() for k, v in lora_state(unet).items()},
                                int(o["rank"]), float(o["alpha"]), targets)
    if on_eval:
        on_eval(0, best[0], snap())
    t_train = time.time()
    step = 0
    try:
        while step < steps and time.time() - t_train < o["time_limit"]:
            # 4. a batch of (augmented) targets and their content glyphs, condition dropout as in training
            pick = torch.tensor(tr)[torch.randint(n, (o["batch_size"],), generator=g)]
            x0, c = augment(x_all[pick], c_all[pick], g, o["shift"], o["scale"])
            keep_c = torch.rand(len(pick), generator=g) >= o["content_dropout"]
            keep_s = torch.rand(len(pick), generator=g) >= o["style_dropout"]
            loss = diffusion_loss(f, pipe.schedule, x0.to(dev), cond_of(pick, c, keep_c, keep_s), pipe.prediction_type,
                                  g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + [vector], 1.0)
            opt.step()
            sched.step()
            step += 1
            train_losses.append(float(loss.detach()))
            if step % o["eval_every"] == 0 or step == steps:
                v = val_ssim()
                history.append({"step": step, "val_ssim": v, "val_loss": val_loss(),
                                "train_loss": float(sum(train_losses[-o["eval_every"]:]) /
                                                    len(train_losses[-o["eval_every"]:]))})
                if v is not None and v > best[0]:
                    best = (v, step, lora_state(unet), vector.detach().clone())
                if on_eval:
                    on_eval(step, v, snap())
                if log:
                    log(f"step {step}: train loss {history[-1]['train_loss']:.4f}" +
                        (f", held-out SSIM {v:.4f} (best {best[0]:.4f} at step {best[1]})" if v is not None else ""))
            if progress:
                progress(step, steps)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    if val is None:  # nothing held out: keep the last state
        best = (None, step, lora_state(unet), vector.detach().clone())
    chosen_lora, chosen_vec = best[2], best[3]
    refs_u8 = x_all[:, 0].add(1).div(2).mul(255).round().clamp(0, 255).to(torch.uint8)
    meta = {"base_model": {"source": str(getattr(pipe, "source", "")), "fingerprint": fingerprint(model),
                           "image_size": pipe.size, "cond_dim": int(model.config.cond_dim)},
            "characters": "".join(chars), "train_characters": "".join(chars[i] for i in tr),
            "heldout_characters": "".join(chars[i] for i in va), "steps": best[1], "steps_run": step,
            "options": o, "seed": int(seed), "wall_seconds": round(time.time() - t_start, 2),
            "train_seconds": round(time.time() - t_train, 2),
            "heldout_ssim": {"step0": history[0]["val_ssim"], "best": best[0]},
            "loss": {"heldout_step0": history[0]["val_loss"],
                     "heldout_chosen": next((h["val_loss"] for h in history if h["step"] == best[1]), None),
                     "train_first": train_losses[0] if train_losses else None,
                     "train_last_25": (sum(train_losses[-25:]) / len(train_losses[-25:])) if train_losses else None},
            "history": history}
    return AdaptedStyle(name, chosen_vec.cpu(), {k: v.cpu() for k, v in chosen_lora.items()}, int(o["rank"]),
                        float(o["alpha"]), targets, meta, refs_u8.cpu())


def reference_loss(pipe, style: AdaptedStyle | None, glyphs, chars, seed: int = 0, draws: int = 8,
                   refs=None) -> float:
    """The conditional diffusion loss on glyphs (list of (1, S, S) in [-1, 1]) of `chars` at fixed (t, ε) draws: of
    the adapted style, or (style None) of the base model given `refs` (default: the glyphs themselves) as references
    (today's path). For tests and reports."""
    import torch

    from .model import SOURCE_REFS

    g = torch.Generator().manual_seed(seed)
    x = torch.stack(list(glyphs)).float()
    c = pipe.content_glyphs(list(chars))
    ts = torch.linspace(0.05, 0.95, draws).mul(pipe.schedule.T).long()
    x0, c, t = x.repeat_interleave(draws, 0), c.repeat_interleave(draws, 0), ts.repeat(len(x))
    eps = torch.randn(x0.shape, generator=g)
    b = len(x0)
    ones = torch.ones(b, dtype=torch.bool)
    with torch.no_grad():
        if style is None:
            r = x if refs is None else torch.stack(list(refs)).float()
            cond = {"content": c, "content.keep": ones, "style_source": torch.full((b,), SOURCE_REFS),
                    "style_id": torch.zeros(b, dtype=torch.long), "refs": r[None].expand(b, *r.shape),
                    "refs_mask": torch.ones(b, len(r), dtype=torch.bool), "style.keep": ones}
            f = pipe.model
        else:
            cond = {"content": c, "content.keep": ones, "style_source": torch.full((b,), SOURCE_ADAPTED),
                    "style_id": torch.zeros(b, dtype=torch.long), "style.keep": ones}
            f = denoiser(pipe.model, style)
        pred = f(pipe.schedule.q_sample(x0, t, eps), t, cond)
        return float(torch.nn.functional.mse_loss(pred, pipe.schedule.training_target(x0, t, eps, pipe.prediction_type)))


# ---- CLI ----------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--references", nargs="+", required=True, metavar="DIR|IMG",
                   help=f"{MIN_GLYPHS}-{MAX_GLYPHS} reference glyphs: folders of images (sorted by name) and/or image "
                        "files (photos or scans: binarised and cropped; one character per image, or a line of "
                        "characters named in the file name)")
    p.add_argument("--chars", default=None, help="the characters the references show, in file order (instead of "
                                                 "naming the files after them)")
    p.add_argument("--name", required=True, help="the style's name, used as --style NAME afterwards")
    p.add_argument("--out", required=True, help="folder to write (e.g. styles/NAME; ./styles is on the style search "
                                                "path)")
    p.add_argument("--model", default="calligraphy", help="base model: shipped name, pipeline, run or checkpoint folder")
    p.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"], help="most optimiser steps")
    p.add_argument("--time-limit", type=float, default=DEFAULTS["time_limit"], help="seconds of training at most")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="glyphs per step")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="learning rate (LoRA and style vector)")
    p.add_argument("--rank", type=positive_int, default=DEFAULTS["rank"], help="LoRA rank")
    p.add_argument("--holdout", type=float, default=DEFAULTS["holdout"],
                   help="fraction of references held out to choose the step (0 = none: keep the last step)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (split, batches, noise)")
    p.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=nonnegative_int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _ask(path) -> str:
    return input(f"{PROG}: characters shown in {Path(path).name} (reading order): ")


def _main(args) -> int:
    t0 = time.time()
    if not 0 <= args.holdout < 0.5:
        raise ValueError(f"--holdout {args.holdout}: expected a fraction in [0, 0.5)")
    if args.time_limit <= 0:
        raise ValueError(f"--time-limit {args.time_limit}: expected a positive number of seconds")
    out = Path(args.out)
    check_out(out)
    if not args.name or not NAME_RE.match(args.name):
        check_name(args.name, ())
    files = reference_files(args.references)
    device = setup_runtime(args)
    from .pipeline import CalligraphyPipeline

    pipe = CalligraphyPipeline.from_pretrained(args.model, device=device)
    check_name(args.name, pipe.styles)
    ask = _ask if args.chars is None and sys.stdin is not None and sys.stdin.isatty() else None
    glyphs, chars, _ = read_references(files, pipe.size, args.chars, ask)
    say = None if args.quiet else (lambda m: print(f"{PROG}: {m}", file=sys.stderr, flush=True))
    if say:
        say(f"{len(glyphs)} glyphs ({''.join(chars)}) from {len(files)} file(s); training ≤ {args.steps} steps / "
            f"{args.time_limit:.0f} s")
    style = adapt(pipe, glyphs, chars, args.name, seed=args.seed, log=say, steps=args.steps,
                  time_limit=args.time_limit, batch_size=args.batch_size, lr=args.lr, rank=args.rank,
                  alpha=float(args.rank), holdout=args.holdout)
    style.meta["references"] = [str(f) for f in files]
    style.meta["command"] = shlex.join([PROG, *args.argv])
    style.meta["wall_seconds_total"] = round(time.time() - t0, 2)
    save_style(style, out)
    m = style.meta
    held = (f"; held-out SSIM {m['heldout_ssim']['step0']:.3f} → {m['heldout_ssim']['best']:.3f}"
            if m["heldout_ssim"]["best"] is not None else "")
    print(f"wrote {out} (style {args.name!r}: step {m['steps']} of {m['steps_run']}{held}) in "
          f"{time.time() - t0:.1f} s; use --style {args.name}" +
          ("" if out.parent.resolve() == Path("styles").resolve() else f" --style-dir {out.parent}"))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    exit_now(main())
