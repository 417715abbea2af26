"""Text → calligraphy work: content glyphs → guided diffusion per character → composed work (+ writing video).

    pipe = CalligraphyPipeline.from_pretrained()                          # the shipped model ("calligraphy"), a run,
                                                                          # a checkpoint or an exported folder
    glyphs = pipe.glyphs("永和九年", style="0.7*gyosho+0.3*ukai", seed=0)  # (4, S, S) float in [0, 1], ink = 1
    image, frames = pipe.work("永和九年", style="gyosho", video=True)       # (H, W, 3) uint8, list of frames
    pipe.write("永和九年", "work.png", video="work.gif", style="gyosho")   # atomic files

Guidance over content c and style s (two-condition classifier-free guidance, as in InstructPix2Pix):

    ε = ε_∅ + g_c (ε(c, ∅) − ε_∅) + g_s Σ_j a_j (ε(c, s_j) − ε(c, ∅))
      = ε_∅ + (g_c − g_s)(ε(c, ∅) − ε_∅) + Σ_j g_s a_j (ε(c, s_j) − ε_∅)

with style mixing weights a_j normalised to sum 1 ("0.7*gyosho+0.3*ukai"). The second line is a `gen.guidance` prompt
(Terms over one batched pass), so mixing costs one extra batch row per style.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from gen.guidance import Prompt, Term, guided_model
from gen.io import atomic_path, open_image
from gen.pipeline import GenPipeline, ProgressFn, step_callback
from gen.sampling import sample

from .data import CONTENT_STYLE, OK, _normalise, default_margin, glyph_status, render_glyph
from .layout import LAYOUTS, compose_work
from .model import SOURCE_ID, SOURCE_REFS, SOURCE_TEXT, CalligraphyModel

MAX_CHARS = 64          # longest text one call accepts (characters)
RENDER_SIZE = 64        # content / reference glyphs are rendered at 64 px (as the training cache), then area-downsampled
DEFAULT_STEPS = 20      # default sampler steps
DEFAULT_SCHEDULER = "dpm++"
DEFAULT_GUIDANCE = 2.0  # g_s (and g_c unless given)
DEFAULT_CELL = 96       # pixels per character in the composed work (glyphs are upsampled bicubically)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def is_han(c: str) -> bool:
    """A CJK ideograph (unified, extensions or compatibility): what the calligraphy model writes."""
    import unicodedata

    return unicodedata.name(c, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def to_model_size(glyphs_u8: np.ndarray, size: int) -> torch.Tensor:
    """(N, 64, 64) uint8 ink=255 → (N, 1, size, size) in [-1, 1]: the same area downsampling as the training data."""
    x = torch.from_numpy(np.ascontiguousarray(glyphs_u8)).float().div(255.0).unsqueeze(1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.mul(2).sub(1)


def parse_style(spec: str, known: list[str]) -> list[tuple[float, str]]:
    """'gyosho' or '0.7*gyosho+0.3*ukai' → [(0.7, 'gyosho'), (0.3, 'ukai')] with weights normalised to sum 1."""
    if not spec or not spec.strip():
        raise ValueError(f"empty style; known styles: {', '.join(known)}")
    terms = []
    for part in spec.split("+"):
        m = _TERM.match(part)
        if not m:
            raise ValueError(f"cannot parse style term {part.strip()!r} in {spec!r}; accepted: NAME or W*NAME joined "
                             f"by '+', e.g. '0.7*gyosho+0.3*ukai'")
        w, name = float(m.group(1)) if m.group(1) else 1.0, m.group(2)
        if name not in known:
            raise ValueError(f"unknown style {name!r}; known styles: {', '.join(known)}")
        terms.append((w, name))
    total = sum(w for w, _ in terms)
    if total <= 0:
        raise ValueError(f"style weights in {spec!r} must sum to a positive number")
    return [(w / total, n) for w, n in terms]


def load_reference(path, size: int) -> torch.Tensor:
    """One reference glyph image (any size; dark ink on light paper or the reverse) → (1, size, size) in [-1, 1],
    cropped to its ink and normalised exactly like the training glyphs."""
    im = open_image(path, "reference image", accepted=f"a readable image file ({', '.join(IMAGE_EXTENSIONS)}) "
                                                      "showing one glyph")
    a = np.asarray(im.convert("L"), np.float32) / 255.0
    border = lambda im: np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]])
    if np.median(border(a)) > 0.5:  # light paper: make ink = 1
        a = 1.0 - a
    bg = float(np.median(border(a)))  # paper level → 0, strongest ink → 1
    a = np.clip((a - bg) / max(1e-6, float(a.max()) - bg), 0, 1)
    rows, cols = np.flatnonzero(a.max(1) > 0.2), np.flatnonzero(a.max(0) > 0.2)
    if rows.size == 0:
        raise ValueError(f"reference image {str(path)!r} shows no ink (it is blank)")
    crop = np.rint(a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] * 255).astype(np.uint8)
    g = _normalise(crop, RENDER_SIZE, default_margin(RENDER_SIZE))
    return to_model_size(np.rint(g * 255).astype(np.uint8)[None], size)[0]


def _atomic_image(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=f".tmp{path.suffix}", prefix=f".{path.stem}.") as tmp:  # PIL: format from extension
        Image.fromarray(image).save(tmp)


class CalligraphyPipeline(GenPipeline):
    """The model, its diffusion schedule and the text encoder spec; `glyphs`, `work`, `write`.

    `CalligraphyPipeline(model, meta)` with meta as in pipeline.json (see gen.pipeline); task_config holds the text
    encoder (`text_encoder`, `text_encoder_weights`)."""

    task = "calligraphy"
    model_class = CalligraphyModel
    default_sampling = {"scheduler": DEFAULT_SCHEDULER, "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}

    def __init__(self, model: CalligraphyModel, meta: Mapping | None = None):
        super().__init__(model, meta or {})
        self.task_config.setdefault("text_encoder", "minilm")
        self.task_config.setdefault("text_encoder_weights", "")

    @property
    def text_encoder(self) -> str:
        return self.task_config["text_encoder"]

    @property
    def text_encoder_weights(self) -> str:
        return self.task_config["text_encoder_weights"]

    @property
    def styles(self) -> list[str]:
        return self.model.style_names

    @property
    def size(self) -> int:
        return int(self.model.config.image_size)

    @classmethod
    def meta_from_training(cls, cfg: dict) -> dict:
        meta = super().meta_from_training(cfg)
        te = cfg.get("text_encoder", {})
        meta["task_config"] = {"text_encoder": te.get("name", "minilm"), "text_encoder_weights": te.get("weights", "")}
        return meta

    # -- inputs ---------------------------------------------------------------------------------------------------
    def check_text(self, text: str) -> list[str]:
        """The characters to write (whitespace removed); errors for empty / too long / uncovered text."""
        chars = [c for c in (text or "") if not c.isspace()]
        if not chars:
            raise ValueError("empty text: give at least one character to write")
        if len(chars) > MAX_CHARS:
            raise ValueError(f"text has {len(chars)} characters; the limit is {MAX_CHARS} per work")
        other = sorted({c for c in chars if not is_han(c)}, key=chars.index)
        if other:
            raise ValueError(f"text has characters that are not Chinese characters (Han): {' '.join(other)} "
                             f"({', '.join(f'U+{ord(c):04X}' for c in other)}); accepted: CJK ideographs such as 永和九年 "
                             "(whitespace is ignored)")
        missing = sorted({c for c in chars if glyph_status(c, CONTENT_STYLE) != OK}, key=chars.index)
        if missing:
            raise ValueError(f"characters not covered by the content font ({CONTENT_STYLE.name}) nor any style: "
                             f"{' '.join(missing)} ({', '.join(f'U+{ord(c):04X}' for c in missing)})")
        return chars

    def content_glyphs(self, chars: list[str]) -> torch.Tensor:
        """(N, 1, S, S) content glyphs in [-1, 1], rendered like the training cache (64 px uint8, area-downsampled)."""
        g = [np.rint(render_glyph(c, CONTENT_STYLE, size=RENDER_SIZE) * 255).astype(np.uint8) for c in chars]
        return to_model_size(np.stack(g), self.size)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        from .text_encoder import load_text_encoder

        if not prompt or not prompt.strip():
            raise ValueError("empty style prompt")
        emb = load_text_encoder(self.text_encoder, self.text_encoder_weights).encode([prompt])  # (1, D)
        if emb.shape[1] != self.model.config.text_dim:
            raise ValueError(f"text encoder gives {emb.shape[1]}-d embeddings; the model expects "
                             f"{self.model.config.text_dim}")
        return emb

    def _base_cond(self, content: torch.Tensor, k: int) -> dict:
        s = self.size
        return {"content": content, "content.keep": torch.ones(content.shape[0], dtype=torch.bool),
                "style_source": torch.tensor([SOURCE_ID]), "style_id": torch.tensor([0]),
                "refs": torch.zeros(1, k, 1, s, s), "refs_mask": torch.zeros(1, k, dtype=torch.bool),
                "text_emb": torch.zeros(1, self.model.config.text_dim), "style.keep": torch.tensor([True])}

    def prompt(self, content: torch.Tensor, style: str | None = None, references=None, style_prompt: str | None = None,
               guidance: float | None = None, content_guidance: float | None = None) -> tuple[Prompt, dict]:
        """The guidance prompt (Terms) and the null condition for one batch of content glyphs (N, 1, S, S)."""
        given = [x is not None and x != [] for x in (style, references, style_prompt)]
        if sum(given) > 1:
            raise ValueError("give only one of style, references, style_prompt")
        refs = None
        if references is not None and len(references) > 0:
            refs = torch.stack([r if torch.is_tensor(r) else load_reference(r, self.size) for r in references])
        k = 1 if refs is None else refs.shape[0]
        base = self._base_cond(content, k)
        styled: list[tuple[float, dict, str]] = []
        if refs is not None:
            styled.append((1.0, {**base, "style_source": torch.tensor([SOURCE_REFS]), "refs": refs[None],
                                 "refs_mask": torch.ones(1, k, dtype=torch.bool)}, "refs"))
        elif style_prompt is not None:
            styled.append((1.0, {**base, "style_source": torch.tensor([SOURCE_TEXT]),
                                 "text_emb": self.encode_prompt(style_prompt)}, "text"))
        else:
            for a, name in parse_style(style or self.styles[0], self.styles):
                styled.append((a, {**base, "style_id": torch.tensor([self.styles.index(name)])}, name))
        g_s = float(self.sampling["guidance"] if guidance is None else guidance)
        g_c = g_s if content_guidance is None else float(content_guidance)
        null = {**base, "content.keep": torch.zeros(1, dtype=torch.bool), "style.keep": torch.tensor([False])}
        terms = [Term(c, g_s * a, label=lab) for a, c, lab in styled]
        if abs(g_c - g_s) > 1e-8:
            terms.append(Term({**base, "style.keep": torch.tensor([False])}, g_c - g_s, label="content"))
        return Prompt(tuple(terms)), null

    # -- sampling -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def glyphs(self, text: str, style: str | None = None, references=None, style_prompt: str | None = None,
               seed: int = 0, steps: int | None = None, scheduler: str | None = None,
               guidance: float | None = None, content_guidance: float | None = None,
               content: torch.Tensor | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        """Generate every character of `text`: (N, S, S) float32 in [0, 1], ink = 1. Same seed → same output.
        `content` (N, 1, S, S) overrides the rendered content glyphs (evaluation passes the cached ones). steps /
        scheduler / guidance default to the pipeline's sampling settings."""
        s_ = self.sampling
        steps, scheduler = int(steps or s_["steps"]), scheduler or s_["scheduler"]
        guidance = s_["guidance"] if guidance is None else guidance
        if content is None:
            content = self.content_glyphs(self.check_text(text))
        prompt, null = self.prompt(content, style, references, style_prompt, guidance, content_guidance)
        f = guided_model(self.model, prompt, null)
        n, s = content.shape[0], self.size
        x = sample(f, (n, 1, s, s), self.schedule, sampler=scheduler, steps=steps,
                   generator=torch.Generator().manual_seed(int(seed)), prediction_type=self.prediction_type,
                   callback=step_callback(progress), device=self.device)
        return x.clamp(-1, 1).add(1).div(2)[:, 0].cpu().numpy().astype(np.float32)

    def work(self, text: str, layout: str = "vertical", video: bool = False, cell: int = DEFAULT_CELL,
             chars_per_line: int | None = None, **glyph_kw):
        """Compose the generated glyphs (upsampled to `cell` px) into a work: (image (H, W, 3) uint8, frames | None)."""
        from .video import writing_frames

        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
        chars = self.check_text(text)
        g = torch.from_numpy(self.glyphs("".join(chars), **glyph_kw))[:, None]
        if cell != self.size:
            g = F.interpolate(g, size=(cell, cell), mode="bicubic", align_corners=False).clamp(0, 1)
        g = (g[:, 0].numpy() * 255).round().astype(np.uint8)
        g[g < 16] = 0  # faint sampling noise on the paper
        image, _ = compose_work(list(g), layout, chars_per_line)
        frames = writing_frames(list(g), chars, layout, chars_per_line) if video else None
        return image, frames

    def write(self, text: str, out, video=None, layout: str = "vertical", **kw) -> dict:
        """Write the work image (and optionally its writing video, .gif or .mp4). Every input is checked before any
        file is written; each file is written to a temporary name and moved into place."""
        from .video import VIDEO_EXTENSIONS, write_video

        out = Path(out)
        if out.is_dir() or not out.parent.resolve().is_dir():
            raise ValueError(f"output {str(out)!r}: expected a file path in an existing folder")
        if out.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"unsupported image extension {out.suffix!r} for {out.name}; accepted: "
                             f"{', '.join(IMAGE_EXTENSIONS)}")
        if video is not None and Path(video).suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"unsupported video extension {Path(video).suffix!r}; accepted: "
                             f"{', '.join(VIDEO_EXTENSIONS)}")
        image, frames = self.work(text, layout=layout, video=video is not None, **kw)
        if frames is not None:
            write_video(frames, video)
        try:
            _atomic_image(image, out)
        except BaseException:
            if video is not None and os.path.exists(video):
                os.unlink(video)
            raise
        return {"image": str(out), "video": None if video is None else str(video), "size": image.shape[:2]}
