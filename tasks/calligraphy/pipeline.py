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
from gen.pipeline import GenPipeline, ProgressFn, move_module, step_callback
from gen.sampling import sample

from .data import CONTENT_STYLE, OK, _normalise, default_margin, glyph_status, render_glyph
from .layout import LAYOUTS, compose_work
from .model import SOURCE_ID, SOURCE_REFS, SOURCE_TEXT, CalligraphyModel

MAX_CHARS = 64          # longest text one call accepts (characters)
RENDER_SIZE = 64        # content / reference glyphs are rendered at 64 px (as the training cache), then area-downsampled
DEFAULT_STEPS = 20      # sampler steps of a newly trained model (the shipped one: 4, in its pipeline.json)
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


def _ink(path) -> np.ndarray:
    """A reference image as float ink in [0, 1] (ink = 1): dark ink on light paper or the reverse, paper → 0."""
    im = open_image(path, "reference image", accepted=f"a readable image file ({', '.join(IMAGE_EXTENSIONS)}) "
                                                      "showing one glyph")
    a = np.asarray(im.convert("L"), np.float32) / 255.0
    border = lambda im: np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]])
    if np.median(border(a)) > 0.5:  # light paper: make ink = 1
        a = 1.0 - a
    bg = float(np.median(border(a)))  # paper level → 0, strongest ink → 1
    return np.clip((a - bg) / max(1e-6, float(a.max()) - bg), 0, 1)


def character_cells(ink: np.ndarray, threshold: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) of the characters a reference shows: one box, or several when its ink falls into
    separate runs along its longer side with clear gaps between (a line of writing). A single glyph with inner gaps
    (川, 八) is one box: a split needs the ink's bounding box at least 1.6 times longer than wide and every run at
    least 40 % as long as the box is wide."""
    m = ink > threshold
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if rows.size == 0:
        return []
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = y1 - y0, x1 - x0
    if max(h, w) < 1.6 * min(h, w):
        return [(y0, y1, x0, x1)]
    along = m[y0:y1, x0:x1].any(0) if w > h else m[y0:y1, x0:x1].any(1)   # ink profile along the long side
    short = min(h, w)
    runs, start = [], None
    gap_min = max(2, int(0.1 * short))
    gap = 0
    for i, v in enumerate(along):
        if v:
            if start is None:
                start = i
            gap, end = 0, i + 1
        elif start is not None:
            gap += 1
            if gap >= gap_min:
                runs.append((start, end))
                start, gap = None, 0
    if start is not None:
        runs.append((start, end))
    merged = []
    for r in runs:  # too-short runs join their neighbour (a dot or a detached stroke)
        if merged and (r[1] - r[0] < 0.4 * short or merged[-1][1] - merged[-1][0] < 0.4 * short):
            merged[-1] = (merged[-1][0], r[1])
        else:
            merged.append(r)
    if len(merged) < 2:
        return [(y0, y1, x0, x1)]
    if w > h:
        return [(y0, y1, x0 + a, x0 + b) for a, b in merged]
    return [(y0 + a, y0 + b, x0, x1) for a, b in merged]


def _named_chars(path) -> list[str]:
    """The Han characters a reference's file name gives (e.g. 永和.png → 永, 和; 'ref_01.png' → none)."""
    return [c for c in Path(str(path)).stem if is_han(c)]


def reference_glyphs(path, size: int, chars: str | None = None) -> list[tuple[torch.Tensor, str | None]]:
    """The glyphs one reference image gives, with the character each shows when the file name says it: an image of
    one character → one glyph; an image of several characters (a line of writing) → one glyph per character, only
    when the file name names exactly that many (e.g. 永和九年.png), else a ValueError saying so. `chars` (the
    characters the image shows, in reading order) overrides the file name."""
    a = _ink(path)
    cells = character_cells(a)
    if not cells:
        raise ValueError(f"reference image {str(path)!r} shows no ink (it is blank)")
    named = _named_chars(path) if chars is None else [c for c in chars if not c.isspace()]
    if chars is not None and len(named) != len(cells):
        raise ValueError(f"reference image {str(path)!r} shows {len(cells)} character(s) but {len(named)} were given "
                         f"for it ({''.join(named)!r})")
    if len(cells) > 1 and len(named) != len(cells):
        raise ValueError(f"reference image {str(path)!r} shows {len(cells)} characters side by side; give one "
                         f"character per image, or name them in the file name in reading order (e.g. "
                         f"{'永和九年'[:len(cells)] if len(cells) <= 4 else '永和九年…'}.png)"
                         + (f" — its name gives {len(named)}" if named else ""))
    out = []
    for k, (y0, y1, x0, x1) in enumerate(cells):
        crop = np.rint(a[y0:y1, x0:x1] * 255).astype(np.uint8)
        g = _normalise(crop, RENDER_SIZE, default_margin(RENDER_SIZE))
        char = named[k] if len(named) == len(cells) else None
        out.append((to_model_size(np.rint(g * 255).astype(np.uint8)[None], size)[0], char))
    return out


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

    def __init__(self, model: CalligraphyModel, meta: Mapping | None = None, superres=None):
        super().__init__(model, meta or {})
        self.task_config.setdefault("text_encoder", "minilm")
        self.task_config.setdefault("text_encoder_weights", "")
        self.superres = superres  # tasks.calligraphy.superres.GlyphSuperRes (model size → 2 × model size) or None
        self.adapted: dict = {}   # adapted styles by name (tasks.calligraphy.adapt.AdaptedStyle), see load_style
        self.style_dirs: list = []  # folders searched first for adapted styles by name (then $GENSUITE_STYLES, ./styles)
        self._denoisers: dict = {}

    @classmethod
    def from_pretrained(cls, name_or_path=None, *, device=None, superres=None, **kwargs) -> "CalligraphyPipeline":
        """As GenPipeline.from_pretrained; the super-resolution stage comes from `superres` (a folder), else from the
        pipeline folder's `task_config.superres` (a sub-folder name, e.g. "superres"); none → glyphs at model size."""
        from gen.pipeline import resolve_pretrained

        from .superres import load_superres

        pipe = super().from_pretrained(name_or_path, device=None, **kwargs)
        folder = None
        if superres:
            folder = Path(superres)
        elif pipe.task_config.get("superres"):
            root = resolve_pretrained(cls.task if name_or_path is None else name_or_path).model_dir.parent
            folder = root / pipe.task_config["superres"]
        if folder is not None:
            if not (folder / "config.json").is_file():
                raise ValueError(f"super-resolution stage {str(folder)!r} not found (expected config.json + "
                                 f"safetensors from `python -m tasks.calligraphy.superres`)")
            pipe.superres = load_superres(folder)
        if device is not None:
            from gen.pipeline import resolve_device

            pipe.to(resolve_device(device))
        return pipe

    def to(self, device):
        super().to(device)
        self._denoisers.clear()
        if self.superres is not None:
            move_module(self.superres, self.device)
        return self

    def save_pretrained(self, path, card=None, *, dtype=None) -> str:
        """As GenPipeline.save_pretrained, plus the super-resolution stage in `superres/` (named in task_config)."""
        if self.superres is None:
            self.task_config.pop("superres", None)
            return super().save_pretrained(path, card, dtype=dtype)
        self.task_config["superres"] = "superres"
        out = super().save_pretrained(path, card, dtype=dtype)
        import copy

        sr = self.superres if dtype is None else copy.deepcopy(self.superres).to(dtype)
        sr.save_pretrained(str(Path(out) / "superres"), safe_serialization=True)
        return out

    @property
    def output_size(self) -> int:
        """Side of the glyphs `glyphs` returns by default: 2 × model size with the super-resolution stage."""
        return 2 * self.size if self.superres is not None else self.size

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

    # -- adapted styles (calligraphy-adapt) -----------------------------------------------------------------------
    def load_style(self, path) -> str:
        """Register an adapted style folder (from calligraphy-adapt) so `style=NAME` uses it; returns its name. It must
        have been adapted from this very model (same weight fingerprint)."""
        from .adapt import fingerprint, load_style

        st = load_style(path)
        if st.name in self.styles:
            raise ValueError(f"adapted style {st.name!r} ({str(path)!r}) has the name of a training style")
        base = st.meta.get("base_model", {})
        if base.get("fingerprint") != fingerprint(self.model):
            raise ValueError(f"adapted style {st.name!r} ({str(path)!r}) was adapted from another base model "
                             f"({base.get('source') or '?'}, fingerprint {base.get('fingerprint')}); this model's is "
                             f"{fingerprint(self.model)}: re-run calligraphy-adapt with this model")
        self.adapted[st.name] = st
        self._denoisers.pop(st.name, None)
        return st.name

    def known_styles(self) -> list[str]:
        """Training styles, then the loaded adapted styles and those found on the style search path."""
        from .adapt import find_styles

        extra = [*self.adapted, *find_styles(self.style_dirs)]
        return self.styles + [n for n in dict.fromkeys(extra) if n not in self.styles]

    def adapted_styles(self) -> list[str]:
        """Names of the adapted styles this model can use: loaded ones, and those on the style search path that were
        adapted from this very model (same weight fingerprint; styles adapted from another model are left out)."""
        import json

        from .adapt import STYLE_JSON, find_styles, fingerprint

        mine, names = fingerprint(self.model), list(self.adapted)
        for name, folder in find_styles(self.style_dirs).items():
            if name in names or name in self.styles:
                continue
            try:
                meta = json.loads((folder / STYLE_JSON).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(meta, dict) and (meta.get("base_model") or {}).get("fingerprint") == mine:
                names.append(name)
        return names

    def parse_style(self, spec: str) -> list[tuple[float, str]]:
        """parse_style over the known styles; an adapted style is loaded on first use and cannot be mixed."""
        terms = parse_style(spec, self.known_styles())
        adapted = [n for _, n in terms if n not in self.styles]
        if adapted and len(terms) > 1:
            raise ValueError(f"adapted style {adapted[0]!r} cannot be mixed with other styles ({spec!r}); use it alone")
        for n in adapted:
            if n not in self.adapted:
                from .adapt import find_styles

                self.load_style(find_styles(self.style_dirs)[n])
        return terms

    def _denoiser(self, style: str | None):
        """The model the sampler calls for an adapted style: its LoRA U-Net + style vector (cached); else None."""
        m = _TERM.match(style or "")
        style = m.group(2) if m else None
        if not style or style not in self.adapted:
            return None
        if style not in self._denoisers:
            from .adapt import denoiser

            self._denoisers[style] = denoiser(self.model, self.adapted[style])
        return self._denoisers[style]

    @classmethod
    def meta_from_training(cls, cfg: dict) -> dict:
        meta = super().meta_from_training(cfg)
        te = cfg.get("text_encoder", {})
        meta["task_config"] = {"text_encoder": te.get("name", "minilm"), "text_encoder_weights": te.get("weights", "")}
        return meta

    # -- inputs ---------------------------------------------------------------------------------------------------
    def check_text(self, text: str, max_chars: int = MAX_CHARS) -> list[str]:
        """The characters to write (whitespace removed); errors for empty / too long / uncovered text."""
        chars = [c for c in (text or "") if not c.isspace()]
        if not chars:
            raise ValueError("empty text: give at least one character to write")
        if len(chars) > max_chars:
            raise ValueError(f"text has {len(chars)} characters; the limit is {max_chars} per work")
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

    def content_glyphs(self, chars: list[str], size: int | None = None) -> torch.Tensor:
        """(N, 1, S, S) content glyphs in [-1, 1], rendered like the training cache (64 px uint8, area-downsampled);
        `size` defaults to the model's."""
        g = [np.rint(render_glyph(c, CONTENT_STYLE, size=RENDER_SIZE) * 255).astype(np.uint8) for c in chars]
        return to_model_size(np.stack(g), size or self.size)

    def load_references(self, references) -> list[torch.Tensor]:
        """Reference glyphs (tensors (1, S, S) in [-1, 1] or image paths; an image may hold several named characters)
        at model size; every file is checked (readable image, ink, one character or named ones) before any work."""
        out = []
        for r in references:
            out += [r] if torch.is_tensor(r) else [g for g, _ in reference_glyphs(r, self.size)]
        if len(out) > 64:
            raise ValueError(f"{len(out)} reference glyphs; at most 64 are used")
        return out

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
            refs = torch.stack(self.load_references(references))
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
            from .adapt import SOURCE_ADAPTED

            for a, name in self.parse_style(style or self.styles[0]):
                if name in self.adapted:
                    styled.append((a, {**base, "style_source": torch.tensor([SOURCE_ADAPTED])}, name))
                else:
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
               content: torch.Tensor | None = None, progress: ProgressFn | None = None, size: int | None = None,
               content_hr: torch.Tensor | None = None) -> np.ndarray:
        """Generate every character of `text`: (N, S, S) float32 in [0, 1], ink = 1. Same seed → same output.
        S = `size`, default `output_size` (64 px through the super-resolution stage when the pipeline has one; `size`
        = the model size gives the raw diffusion raster). `content` (N, 1, s, s) at model size overrides the rendered
        content glyphs (evaluation passes the cached ones; then `content_hr` (N, 1, 2s, 2s) is the super-resolution
        stage's content, rendered when missing). steps / scheduler / guidance default to the pipeline's sampling
        settings."""
        size = self.output_size if size is None else int(size)
        if size not in (self.size, self.output_size):
            raise ValueError(f"glyph size {size} not available: this pipeline writes {self.size} px"
                             + (f" and {self.output_size} px" if self.output_size != self.size else ""))
        # scheduler "distilled" (or the student's step count) → the distilled student at guidance 1 (w folded in)
        model, scheduler, steps, guidance = self.sampler_for(scheduler, steps, guidance)
        if model is not self.model and content_guidance is not None:
            raise ValueError("the distilled student has one guidance folded in; content_guidance needs another "
                             "scheduler")
        chars = None
        if content is None:
            chars = self.check_text(text, max_chars=max(MAX_CHARS, len(text or "")))
            content = self.content_glyphs(chars)
        prompt, null = self.prompt(content, style, references, style_prompt, guidance, content_guidance)
        adapted = None if references or style_prompt else self._denoiser(style)   # an adapted style's LoRA model
        if adapted is not None:
            if model is not self.model:
                raise ValueError(f"adapted style {style!r} runs on the full model; the distilled student has no LoRA "
                                 f"(use another scheduler)")
            model = adapted
        f = guided_model(model, prompt, null)
        n, s = content.shape[0], self.size
        x = sample(f, (n, 1, s, s), self.schedule, sampler=scheduler, steps=steps,
                   generator=torch.Generator().manual_seed(int(seed)), prediction_type=self.prediction_type,
                   callback=step_callback(progress), device=self.device)
        x = x.clamp(-1, 1)
        if size != self.size:
            if content_hr is None:
                if chars is None:
                    raise ValueError("give content_hr with content when asking for super-resolved glyphs")
                content_hr = self.content_glyphs(chars, size)
            x = self.superres(x.to(self.device), content_hr.to(self.device)).clamp(-1, 1)
        return x.add(1).div(2)[:, 0].cpu().numpy().astype(np.float32)

    def work(self, text: str, layout: str = "vertical", video: bool = False, cell: int = DEFAULT_CELL,
             chars_per_line: int | None = None, vector: bool = True, svg: bool = False, **glyph_kw):
        """Compose the generated glyphs into a work: (image (H, W, 3) uint8, frames | None[, svg str]).

        vector=True (default): each glyph is traced to outlines (tasks.calligraphy.vector) and the cells are rendered
        from the outlines at `cell` px (crisp at any size); vector=False upsamples the raster bicubically (the old
        path). svg=True also returns the SVG work (vector only)."""
        from .video import writing_frames

        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
        chars = self.check_text(text)
        raster = self.glyphs("".join(chars), **glyph_kw)
        svg_text = None
        if vector:
            from .vector import rasterize, trace_glyph, work_svg

            outlines = [trace_glyph(r) for r in raster]
            g = np.stack([np.rint(rasterize(o, cell) * 255).astype(np.uint8) for o in outlines])
            if svg:
                svg_text = work_svg(outlines, layout, cell, chars_per_line, "".join(chars))
        else:
            g = torch.from_numpy(raster)[:, None]
            if cell != g.shape[-1]:
                g = F.interpolate(g, size=(cell, cell), mode="bicubic", align_corners=False).clamp(0, 1)
            g = (g[:, 0].numpy() * 255).round().astype(np.uint8)
            g[g < 16] = 0  # faint sampling noise on the paper
        image, _ = compose_work(list(g), layout, chars_per_line)
        frames = writing_frames(list(g), chars, layout, chars_per_line) if video else None
        return (image, frames, svg_text) if svg else (image, frames)

    def uncovered(self, chars: list[str]) -> list[str]:
        """Characters that no training design of this model draws validly (judged from the installed fonts of its
        styles; when none of them is installed here, the content-font check of `check_text` is all there is)."""
        from .data import _cmap, is_jis_kanji
        from .styles import STYLES

        fonts = [STYLES[n] for n in self.styles if n in STYLES and STYLES[n].available]
        if not fonts:
            return []
        maps = [(f, _cmap(f.font_path, f.face_index)) for f in fonts]
        out = []
        for c in chars:
            if not any(ord(c) in m and (f.forms != "ja" or is_jis_kanji(c)) for f, m in maps):
                out.append(c)
        return out

    def font_characters(self, text: str, max_chars: int = 20000) -> list[str]:
        """The distinct characters of a font request, in first-seen order, checked (Han, content font, covered by a
        training design) before any work."""
        seen = list(dict.fromkeys(c for c in (text or "") if not c.isspace()))
        if not seen:
            raise ValueError("no characters given for the font (the text or charset is empty)")
        chars = self.check_text("".join(seen), max_chars=max_chars)
        missing = self.uncovered(chars)
        if missing:
            raise ValueError(f"{len(missing)} character(s) that no training design covers: {' '.join(missing[:40])}"
                             f"{' …' if len(missing) > 40 else ''} ({', '.join(f'U+{ord(c):04X}' for c in missing[:40])})")
        return chars

    def font(self, text: str, out, family: str | None = None, batch: int = 32, progress: ProgressFn | None = None,
             seed: int = 0, **glyph_kw) -> dict:
        """Write an installable font (.ttf / .otf by extension) of the distinct characters of `text`: glyphs at
        `output_size`, traced to outlines, written with fontTools (tasks.calligraphy.font). Inputs (characters,
        references, style, output path) are checked before any work; the file is written atomically. Glyphs are made
        `batch` characters at a time, batch b with seed `seed + b`. `progress(done, total)` counts characters."""
        from .font import FONT_EXTENSIONS, write_font
        from .vector import trace_glyph

        out = Path(out)
        if out.suffix.lower() not in FONT_EXTENSIONS:
            raise ValueError(f"unsupported font extension {out.suffix!r} for {out.name}; accepted: "
                             f"{', '.join(FONT_EXTENSIONS)}")
        if out.is_dir() or not out.parent.resolve().is_dir():
            raise ValueError(f"output {str(out)!r}: expected a file path in an existing folder")
        chars = self.font_characters(text)
        if glyph_kw.get("references"):  # check (and load) the references once, before any sampling
            glyph_kw["references"] = self.load_references(glyph_kw["references"])
        elif glyph_kw.get("style"):
            self.parse_style(glyph_kw["style"])
        outlines, blank = [], []
        for b, i in enumerate(range(0, len(chars), batch)):
            part = chars[i:i + batch]
            g = self.glyphs("".join(part), seed=seed + b, **glyph_kw)
            for c, r in zip(part, g):
                o = trace_glyph(r)
                if o.empty:
                    blank.append(c)
                outlines.append(o)
            if progress is not None:
                progress(min(i + batch, len(chars)), len(chars))
        name = family or out.stem
        src = ("references" if glyph_kw.get("references") else
               f"style prompt {glyph_kw['style_prompt']!r}" if glyph_kw.get("style_prompt") else
               f"style {glyph_kw.get('style') or self.styles[0]}")
        write_font(outlines, chars, out, family=name,
                   description=f"Generated by gensuite calligraphy-font ({src}, seed {seed})")
        return {"font": str(out), "chars": len(chars), "blank": blank, "family": name}

    def write(self, text: str, out, video=None, layout: str = "vertical", **kw) -> dict:
        """Write the work image (and optionally its writing video, .gif or .mp4). Every input is checked before any
        file is written; each file is written to a temporary name and moved into place."""
        from .video import VIDEO_EXTENSIONS, write_video

        out = Path(out)
        if out.is_dir() or not out.parent.resolve().is_dir():
            raise ValueError(f"output {str(out)!r}: expected a file path in an existing folder")
        if out.suffix.lower() not in IMAGE_EXTENSIONS + (".svg",):
            raise ValueError(f"unsupported image extension {out.suffix!r} for {out.name}; accepted: "
                             f"{', '.join(IMAGE_EXTENSIONS + ('.svg',))}")
        if out.suffix.lower() == ".svg" and kw.get("vector") is False:
            raise ValueError("an .svg work needs the vector path (vector=True)")
        if video is not None and Path(video).suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"unsupported video extension {Path(video).suffix!r}; accepted: "
                             f"{', '.join(VIDEO_EXTENSIONS)}")
        is_svg = out.suffix.lower() == ".svg"
        res = self.work(text, layout=layout, video=video is not None, svg=is_svg, **kw)
        image, frames = res[0], res[1]
        if frames is not None:
            write_video(frames, video)
        try:
            if is_svg:
                from gen.io import atomic_write_text

                atomic_write_text(out, res[2], suffix=".tmp.svg")
            else:
                _atomic_image(image, out)
        except BaseException:
            if video is not None and os.path.exists(video):
                os.unlink(video)
            raise
        return {"image": str(out), "video": None if video is None else str(video), "size": image.shape[:2]}
