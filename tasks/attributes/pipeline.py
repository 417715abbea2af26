"""Attribute pipeline: composite prompts ("glasses & beard & ~hat", "2*glasses@eyes") → face images.

    from tasks.attributes.pipeline import AttributesPipeline, save_grid
    pipe = AttributesPipeline.from_pretrained()                              # the shipped model ("attributes"), or a
                                                                             # run / checkpoint / exported folder
    images = pipe("glasses & beard & ~hat", num=16, seed=0)                 # (16, 3, 32, 32) in [-1, 1]
    images = pipe(2 * pipe.attribute("glasses", region="eyes") & ~pipe.attribute("hat"), num=16, seed=0)
    save_grid(images, "grid.png")                                            # atomic PNG

Each term guides with ε = ε_∅ + Σ_i W w_i m_i (ε_{c_i} − ε_∅) (gen.guidance; W = `guidance`), where c_i specifies only
its own attribute and leaves the others unspecified. A negated term ("~hat", weight < 0) is, by default, the tri-state
*positive* term "hat = off" (negation="off"); negation="neg" uses the backbone's negative weight on "hat = on" instead
(Composable Diffusion's NOT). mode="joint" merges all unmasked terms into one condition that specifies them together.
A term with a region (a name from faces.REGIONS, an (x0, y0, x1, y1) box, a mask image path or an (H, W) array) only
guides inside it: at every step ε outside the region is exactly what the prompt without that term gives.

Per-attribute guidance: a model folder may carry calibrated scales (`pipeline.json`: ``task_config: {attribute_scale:
{smile: 1.5}}``, written by `tasks.attributes.calibrate`; a run folder's pipeline.json applies to all its checkpoints); a term's weight is then W · w_i · s(a_i), with s = 1 for
attributes without a scale (and the largest scale of its attributes for a term that specifies several).
`pipe.attribute_scale = {}` switches them off.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from gen.guidance import Prompt, Term, as_prompt, guided_model, keep_key
from gen.io import atomic_path, open_image
from gen.pipeline import DISTILLED, GenPipeline, ProgressFn, per_sample_generators, step_callback
from gen.sampling import sample
from tasks.attributes.faces import REGIONS, region_mask
from tasks.attributes.model import GROUP, AttributeModel
from tasks.attributes.prompt import PromptError, parse_prompt

NEGATIONS = ("off", "neg")
MODES = ("composed", "joint")
# W: the fallback for a model folder without `sampling.guidance`. A model's own W is written into its pipeline.json by
# tasks.attributes.calibrate (--guidance-grid, on prompts and seeds disjoint from the evaluation's). History: 6 was
# first picked on the evaluation's own guidance_sweep (reports/attributes_eval.json at commit 9d5173e, dpm++, no
# scales: W = 3 / 4.5 / 6 gave smile 0.69 / 0.88 / 0.91); the disjoint calibration at W = 4.5, scale 1 read smile
# 0.50 in 3-attribute prompts at 8 images per prompt, and 6 with smile 1.5 reached the target; the full 4.5 + 6 grid at 16
# images per prompt (2026-12-03) chose 4.5 with glasses 1.5, smile 2, beard 2 (reports/attributes_calibration.json).
DEFAULT_GUIDANCE = 6.0
# Sampler: ancestral Euler (stochastic), chosen over the deterministic DPM-Solver++(2M) on the calibration seed. On the
# evaluation (reports/attributes_eval.json, `ablation`; per-attribute minimum / 3-attribute all-correct seen / held out):
# euler_a + calibrated scales 1.0 / 0.98 / 0.95, dpm++ + scales 1.0 / 0.94 / 0.88, euler_a without scales 0.94 / 0.87 /
# 0.83; the previous default (dpm++, no scales) scored 0.91 / 0.81 / 0.81. It costs some variety: within-prompt pairwise
# RMSE of the face crop 0.291 vs 0.308 with dpm++ (real renders 0.321; reports/attributes_diversity.json).
DEFAULT_SCHEDULER = "euler_a"
DEFAULT_STEPS = 20
MAX_BATCH = 64  # images per sampling run: larger requests are sampled in chunks (bounded memory)


def check_attribute_scale(scale: Mapping[str, float] | None, attributes) -> dict[str, float]:
    """{attribute: scale > 0} validated against the model's attributes (a clear error otherwise)."""
    out = {}
    for name, v in dict(scale or {}).items():
        if name not in attributes:
            raise ValueError(f"attribute_scale names unknown attribute {name!r}; valid attributes: {', '.join(attributes)}")
        v = float(v)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"attribute_scale[{name!r}] must be a finite number > 0, got {v}")
        out[name] = v
    return out


def load_mask(region, size: int) -> Tensor:
    """A region → (1, H, W) float mask in [0, 1]: a name (faces.REGIONS), an (x0, y0, x1, y1) box in [0, 1], a path to a
    mask image (grayscale, white = inside, resized to the sample size) or an (H, W) / (1, H, W) array or tensor."""
    if isinstance(region, str) and region not in REGIONS:
        if not os.path.exists(region):
            raise ValueError(f"region {region!r} is neither a region name ({', '.join(REGIONS)}) nor an existing mask "
                             "image file")
        from PIL import Image

        im = open_image(region, "region mask", accepted="a grayscale mask image (white = inside the region)")
        m = np.asarray(im.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        if m.max() < 0.5:
            raise ValueError(f"region mask {region!r} has no white pixel: the region would be empty; accepted: a "
                             "grayscale mask image, white = inside the region")
        return torch.from_numpy(m)[None]
    if isinstance(region, str) or (isinstance(region, (tuple, list)) and len(region) == 4
                                   and all(isinstance(v, (int, float)) for v in region)):
        return torch.from_numpy(region_mask(region, size))[None]
    m = torch.as_tensor(np.asarray(region) if not torch.is_tensor(region) else region, dtype=torch.float32)
    if m.ndim == 2:
        m = m[None]
    if m.shape[-2:] != (size, size) or m.ndim != 3:
        raise ValueError(f"a mask must be (H, W) or (1, H, W) with H = W = {size}, got {tuple(m.shape)}")
    return m


def specified(term: Term) -> dict[int, bool]:
    """{attribute index: value} of the attributes a term's condition specifies (its batch-0 row)."""
    keep, vals = term.cond[keep_key(GROUP)][0], term.cond[GROUP][0]
    return {int(i): bool(vals[i] > 0.5) for i in torch.nonzero(keep).flatten()}


class AttributesPipeline(GenPipeline):
    """Model + noise schedule + the composite-prompt algebra; call it with a prompt to get images.

    `AttributesPipeline(model, meta)` with meta as in pipeline.json (see gen.pipeline); `negation` as above."""

    task = "attributes"
    model_class = AttributeModel
    default_sampling = {"scheduler": DEFAULT_SCHEDULER, "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}

    def __init__(self, model: AttributeModel, meta: Mapping | None = None, negation: str = "off"):
        if negation not in NEGATIONS:
            raise ValueError(f"negation must be one of {NEGATIONS}, got {negation!r}")
        super().__init__(model, meta or {})
        self.negation = negation
        self.attributes = model.attributes
        self.task_config.setdefault("size", 32)
        self.attribute_scale = self.task_config.get("attribute_scale")  # validated by the setter
        self.understood: list[str] = []  # what the last text / image prompt was read as (tasks.attributes.terms)
        self.notes: list[str] = []  # e.g. "image 'a.png' is 64×64; resized to 32×32"
        self._clip = None
        self.image_reader = "auto"  # image prompts: "auto" (the shipped judge if present, else the CLIP), "judge", "clip"
        self._image_judge = False  # not looked up yet

    @property
    def size(self) -> int:
        return int(self.task_config["size"])

    @property
    def attribute_scale(self) -> dict[str, float]:
        """{attribute: guidance scale}; attributes not listed have scale 1. Assigning validates (clear error)."""
        return self._attribute_scale

    @attribute_scale.setter
    def attribute_scale(self, scale: Mapping[str, float] | None) -> None:
        self._attribute_scale = check_attribute_scale(scale, self.attributes)
        self.task_config["attribute_scale"] = dict(self._attribute_scale)

    @classmethod
    def meta_from_training(cls, cfg: dict) -> dict:
        meta = super().meta_from_training(cfg)
        meta["task_config"] = {"size": int(cfg.get("data", {}).get("size", 32))}
        return meta

    # -- terms --------------------------------------------------------------------------------------------------------
    def attribute(self, name: str, on: bool = True, region=None) -> Term:
        """A Term guiding towards `name` = on (or off), every other attribute unspecified; with `region` (a name, a
        box, a mask image path or an (H, W) mask, see load_mask) it guides only inside that region."""
        if name not in self.attributes:
            raise ValueError(f"unknown attribute {name!r}; valid attributes: {', '.join(self.attributes)}")
        t = self.model.term({name: on}, label=name if on else f"{name}=off")
        return t if region is None else t.within(load_mask(region, self.size))

    def parse(self, text: str) -> Prompt:
        """A prompt string → Prompt (PromptError with the position and the valid attributes on bad input). Parts in
        plain words ("a smiling man & ~hat") are read by the CLIP (tasks.attributes.terms); a prompt in the attribute
        grammar alone never loads it."""
        try:
            parsed = parse_prompt(text, self.attributes, REGIONS)
        except PromptError:
            from tasks.attributes.prompt import parse_mixed
            from tasks.attributes.terms import T

            parse_mixed(text, self.attributes, REGIONS)  # the grammar's own error when no part is plain words
            return self._resolve(T(text))
        terms = []
        for p in parsed:
            t = self.attribute(p.attribute) * p.weight
            t = ~t if p.negated else t
            if p.region is not None:
                t = t.within(load_mask(p.region, self.size))
            terms.append(t)
        return Prompt(tuple(terms))

    def build(self, prompt: "str | Term | Prompt | None", regions: Mapping[str, object] | None = None,
              guidance: float | None = None, mode: str = "composed") -> Prompt:
        """Prompt in any form → the resolved Prompt the sampler uses: regions attached, weights × guidance × the
        per-attribute scale, negations per `self.negation`, and in mode="joint" the unmasked terms merged into one
        condition (weight W × the largest scale of its attributes)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        guidance = self.sampling["guidance"] if guidance is None else float(guidance)
        from tasks.attributes.terms import is_rich

        self.understood, self.notes = [], []
        if isinstance(prompt, str):
            p = self.parse(prompt)
        elif is_rich(prompt):
            p = self._resolve(prompt)
        else:
            p = Prompt() if prompt is None else as_prompt(prompt)
        terms = list(p.terms)
        for name, region in (regions or {}).items():
            if name not in self.attributes:
                raise PromptError(f"unknown attribute {name!r} in regions; valid attributes: "
                                  f"{', '.join(self.attributes)}", name, 0)
            idx = self.attributes.index(name)
            hits = [i for i, t in enumerate(terms) if idx in specified(t)]
            if not hits:
                raise ValueError(f"region given for {name!r}, which is not in the prompt {p!r}")
            for i in hits:
                terms[i] = terms[i].within(load_mask(region, self.size))
        out = []
        for t in terms:
            if t.weight < 0 and self.negation == "off":  # ~a → the positive tri-state term "a = off"
                keep = t.cond[keep_key(GROUP)]
                vals = torch.where(keep, 1.0 - t.cond[GROUP], t.cond[GROUP])
                t = replace(t, cond={GROUP: vals, keep_key(GROUP): keep}, weight=-t.weight)
            out.append(t * (guidance * self.scale_of(t)))
        if mode == "joint":
            plain = [t for t in out if t.mask is None]
            out = _merge_unmasked(out, guidance * max((self.scale_of(t) for t in plain), default=1.0))
        return Prompt(tuple(out))

    # -- text and image prompts (tasks.attributes.terms) and the CLIP that reads them ------------------------------------
    def clip(self):
        """(CLIP model, tokenizer) that reads text and image prompts: `task_config.clip` (a shipped name or folder),
        default the shipped "attributes_clip"; loaded on first use (set_clip replaces it)."""
        if getattr(self, "_clip", None) is None:
            from tasks.attributes.clip import load_clip

            self._clip = load_clip(self.task_config.get("clip", "attributes_clip"))
        return self._clip

    def image_judge(self):
        """The attribute judge that reads image prompts (`task_config.image_judge`, default the one shipped in
        checkpoints/attributes_clip/judge), or None where there is none (or image_reader = "clip")."""
        if self.image_reader == "clip":
            return None
        if getattr(self, "_image_judge", False) is False:
            from gen.pipeline import checkpoints_root
            from tasks.attributes.classifier import load_classifier

            path = self.task_config.get("image_judge") or str(checkpoints_root() / "attributes_clip" / "judge")
            self._image_judge = load_classifier(path)[0] if os.path.isfile(os.path.join(
                path, "classifier.safetensors")) else None
            if self._image_judge is None and self.image_reader == "judge":
                raise ValueError(f"image_reader='judge' but there is no judge at {path}")
        return self._image_judge

    def set_clip(self, model, tokenizer=None) -> None:
        from tasks.attributes.clip import tokenizer_for

        self._clip = (model.eval(), tokenizer or tokenizer_for(model))

    def _resolve(self, prompt) -> Prompt:
        from tasks.attributes.terms import resolve

        terms, self.understood, self.notes = resolve(self, prompt)
        return Prompt(tuple(terms))

    def understand(self, prompt) -> list[str]:
        """What a prompt is read as, one line per plain-words part or image ("'a smiling man' → smile (0.98)")."""
        self.build(prompt)
        return list(self.understood)

    def edit(self, image, prompt, region=None, strength: float = 0.8, num: int = 1, seed: int = 0,
             steps: int | None = None, guidance: float | None = None, jumps: int = 0,
             progress: ProgressFn | None = None) -> Tensor:
        """"This face, with sunglasses": regenerate `region` of `image` (a path, a (3, H, W) tensor in [-1, 1] or an
        (H, W, 3) uint8 array; resized to the model's size when it is not, said in `self.notes`) under `prompt`,
        keeping every pixel outside it (gen.inpaint.sample_known: SDEdit start at `strength`, RePaint replacement).
        region: a name, box, mask path or array as for terms; None = the union of the regions of the attributes the
        prompt names (faces.ATTRIBUTE_REGION). Returns (num, 3, H, W) in [-1, 1]."""
        from gen.inpaint import sample_known
        from tasks.attributes.faces import ATTRIBUTE_REGION
        from tasks.attributes.terms import load_image

        if num < 1:
            raise ValueError(f"num must be ≥ 1, got {num}")
        if not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
            raise ValueError(f"strength must be in (0, 1], got {strength!r}")
        x0, note = load_image(image, self.size, "edit image")
        built = self.build(prompt, None, guidance)
        if not len(built):
            raise ValueError("an edit needs a prompt that names something, e.g. 'sunglasses'")
        self.notes = ([note] if note else []) + list(self.notes)
        if region is None:
            names = sorted({self.attributes[i] for t in built.terms for i in specified(t)})
            mask = torch.zeros(1, self.size, self.size)
            for a in names:
                mask = torch.maximum(mask, load_mask(ATTRIBUTE_REGION[a], self.size))
        else:
            mask = load_mask(region, self.size)
        known = (1.0 - mask)[None]  # (1, 1, H, W): 1 = keep the input
        steps = int(steps or self.sampling["steps"])
        f = guided_model(self.model, built, self.model.null_cond())
        cb = None if progress is None else (lambda i, n, x: progress(i + 1, n))
        x = sample_known(f, x0[None].expand(num, -1, -1, -1), known, self.schedule, strength=float(strength),
                         steps=steps, generator=per_sample_generators(seed, num), prediction_type=self.prediction_type,
                         jumps=jumps, device=self.device, callback=cb)
        return x.clamp(-1, 1).cpu()

    def scale_of(self, term: Term) -> float:
        """The per-attribute guidance scale of a term: the largest scale of the attributes it specifies (1 if none)."""
        return max((self.attribute_scale.get(self.attributes[i], 1.0) for i in specified(term)), default=1.0)

    # -- sampling -----------------------------------------------------------------------------------------------------
    def sample(self, prompt: Prompt, num: int = 16, seed: int = 0, steps: int | None = None,
               scheduler: str | None = None, progress: ProgressFn | None = None,
               batch_size: int = MAX_BATCH) -> Tensor:
        """Sample with an already resolved Prompt (terms' conds may have batch 1 or `num`, e.g. one prompt per image).
        Per-image generators: image i's starting noise and its sampler noise (stochastic samplers) come from a generator
        seeded by (seed, i), so a grid's first images do not depend on num. Sampled in chunks of `batch_size` images
        (memory stays bounded; the images are those of one batch, up to float rounding)."""
        if num < 1:
            raise ValueError(f"num must be ≥ 1, got {num}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        explicit = scheduler == DISTILLED
        model, scheduler, steps, _ = self.sampler_for(scheduler, steps, None)
        if model is not self.model:  # the distilled student: the prompt's tri-state vector, one pass per step
            try:
                prompt = student_prompt(prompt)
            except ValueError:
                if explicit:
                    raise
                # --steps 4 alone chose the student, which cannot take this prompt: the model's own sampler
                model, scheduler = self.model, self.sampling["scheduler"]
        g = per_sample_generators(seed, num)  # x_T is their first draw
        starts = list(range(0, num, batch_size))
        outs = []
        for k, a in enumerate(starts):
            b = min(num, a + batch_size)
            part = _slice_prompt(prompt, a, b, num)
            f = guided_model(model, part if len(part) else None, self.model.null_cond())
            cb = None if progress is None else (lambda i, n, x, k=k: progress(k * n + i + 1, n * len(starts)))
            with torch.no_grad():
                x = sample(f, (b - a, 3, self.size, self.size), self.schedule, sampler=scheduler, steps=steps,
                           generator=g[a:b], prediction_type=self.prediction_type, callback=cb, device=self.device)
            outs.append(x.clamp(-1, 1).cpu())
        return torch.cat(outs)

    def __call__(self, prompt: "str | Term | Prompt | None" = "", num: int = 16, seed: int = 0,
                 steps: int | None = None, scheduler: str | None = None, guidance: float | None = None,
                 regions: Mapping[str, object] | None = None, mode: str = "composed",
                 progress: ProgressFn | None = None) -> Tensor:
        """prompt → (num, 3, H, W) images in [-1, 1] (on the CPU). An empty prompt samples unconditionally.
        steps / scheduler / guidance default to the pipeline's sampling settings (pipeline.json); `progress(i, n)` is
        called after every sampler step."""
        w = self.sampling["guidance"] if guidance is None else guidance
        built = self.build(prompt, regions, w, mode)
        implied = scheduler is None and self._student_implied(steps)
        if scheduler == DISTILLED or implied:
            why = self._student_refusal(built, w)
            if scheduler == DISTILLED:
                self.sampler_for(scheduler, steps, guidance)  # the student's own step count and guidance, or an error
                if why:
                    raise ValueError(why)
            elif why or guidance is not None:
                scheduler = self.sampling["scheduler"]  # --steps 4 alone chose the student, which cannot do this
        return self.sample(built, num, seed, steps, scheduler, progress)

    def _student_implied(self, steps) -> bool:
        """`steps` alone (no scheduler named) asks for the distilled student (gen.pipeline's rule)."""
        d = self.distilled
        return d is not None and steps is not None and int(steps) == int(d["steps"]) != int(self.sampling["steps"])

    def _student_refusal(self, built: Prompt, guidance: float) -> str | None:
        """Why the distilled student cannot sample `built` (resolved at `guidance`), or None: regions, the "neg"
        negation, contradicting terms (`student_prompt`), or a term with a weight of its own."""
        try:
            student_prompt(built)
        except ValueError as e:
            return str(e)
        for t in built.terms:
            default = guidance * self.scale_of(t)
            if abs(t.weight - default) > 1e-6 * default:
                return (f"the distilled student samples plain prompts (attributes joined by '&', '~a') at their "
                        f"default weights; {t.label!r} has a weight of its own: use another scheduler (e.g. the "
                        f"default {self.sampling['scheduler']!r}) for weighted terms")
        return None


def student_prompt(prompt: Prompt) -> Prompt:
    """A resolved prompt as the distilled student's condition: its terms (unmasked, positive weights: the weights
    themselves are folded into the student) merged into one tri-state term of weight 1; empty → empty."""
    terms = list(prompt.terms)
    if not terms:
        return prompt
    for t in terms:
        if t.mask is not None and not bool((t.mask == 1).all()):
            raise ValueError(f"the distilled student has no regions ({t.label!r} is restricted to one); use another "
                             "scheduler (e.g. the default 'euler_a') for regional prompts")
        if t.weight <= 0:
            raise ValueError(f"the distilled student reads '~a' as 'a = off' (negation='off'); {t.label!r} has a "
                             f"negative weight: use another scheduler for negation='neg'")
    vals = torch.broadcast_tensors(*[t.cond[GROUP] for t in terms])
    keeps = torch.broadcast_tensors(*[t.cond[keep_key(GROUP)].bool() for t in terms])
    keep, merged = torch.zeros_like(keeps[0]), torch.zeros_like(vals[0])
    for t, v, k in zip(terms, vals, keeps):
        if ((keep & k) & (merged != v)).any():
            raise ValueError(f"the distilled student takes each attribute with one value; {t.label!r} contradicts "
                             "another term: use another scheduler (e.g. the default 'euler_a')")
        keep, merged = keep | k, torch.where(k, v, merged)
    return Prompt((Term({GROUP: merged, keep_key(GROUP): keep}, 1.0, label=" & ".join(t.label for t in terms)),))


def _slice_prompt(prompt: Prompt, a: int, b: int, num: int) -> Prompt:
    """Images a..b of a prompt over `num` images: per-image conds / masks (first dim = num) are sliced, shared ones
    (batch 1) kept."""
    if a == 0 and b == num:
        return prompt

    def cut(v):
        return v[a:b] if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == num else v
    return Prompt(tuple(replace(t, cond={k: cut(v) for k, v in t.cond.items()},
                                mask=t.mask[a:b] if t.mask is not None and t.mask.ndim == 4 and t.mask.shape[0] == num
                                else t.mask) for t in prompt.terms))


def _merge_unmasked(terms: list[Term], guidance: float) -> list[Term]:
    """Joint conditioning: all unmasked terms → one term specifying all their attributes at once (weight W)."""
    plain = [t for t in terms if t.mask is None]
    if len(plain) < 2:
        return terms
    keep = torch.zeros_like(plain[0].cond[keep_key(GROUP)])
    vals = torch.zeros_like(plain[0].cond[GROUP])
    for t in plain:
        k = t.cond[keep_key(GROUP)]
        if (keep & k).any():
            raise ValueError("joint mode cannot merge two terms that specify the same attribute")
        keep, vals = keep | k, torch.where(k, t.cond[GROUP], vals)
    label = " & ".join(t.label for t in plain)
    return [Term({GROUP: vals, keep_key(GROUP): keep}, guidance, label=label)] + [t for t in terms if t.mask is not None]


def to_grid(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] → (H', W', 3) uint8 grid with 2-px white gaps: torchvision.utils.make_grid's layout
    (padding 2, pad value 1; tested equal), without importing torchvision (it imports torch._dynamo: ~1.5 s)."""
    x = images.detach().float().clamp(-1, 1).add(1).div(2).cpu().numpy()
    n, c, h, w = x.shape
    if n == 1:                                                   # (make_grid returns a single image unpadded)
        return (x[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    cols = min(nrow or math.ceil(math.sqrt(n)), n)
    rows, pad = math.ceil(n / cols), 2
    grid = np.ones((c, rows * (h + pad) + pad, cols * (w + pad) + pad), np.float32)
    for k in range(n):
        r, q = divmod(k, cols)
        grid[:, r * (h + pad) + pad:(r + 1) * (h + pad), q * (w + pad) + pad:(q + 1) * (w + pad)] = x[k]
    return (grid.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def save_grid(images: Tensor, path: str, nrow: int | None = None) -> str:
    """Write a PNG grid atomically (temp file in the same folder, then os.replace); returns the path."""
    from PIL import Image

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    img = Image.fromarray(to_grid(images, nrow))
    with atomic_path(path, suffix=".png.tmp") as tmp, open(tmp, "wb") as f:
        img.save(f, format="PNG")
    return path


# ---- export with a model card ----------------------------------------------------------------------------------------
def model_card(run_config: dict, report: dict | None = None, attribute_scale: Mapping[str, float] | None = None,
               guidance: float | None = None) -> str:
    """Markdown model card for an exported attribute model (through the one writer, gen.pipeline.model_card)."""
    from gen.pipeline import model_card as write_card

    m, d, tr = run_config.get("model", {}), run_config.get("data", {}), run_config.get("train", {})
    evaluation = None
    if report:
        keys = ("command", "classifier_accuracy", "per_attribute_accuracy_mean", "all_correct", "not_accuracy",
                "region_accuracy", "targets", "ablation")
        evaluation = {k: report[k] for k in keys if k in report}
    scales = (f"{dict(attribute_scale)}, chosen by `python -m tasks.attributes.calibrate` on the judge, with W, on "
              "prompts and seeds disjoint from the evaluation's (calibration seeds 1000-1999, the evaluation's 0 and "
              "1)") if attribute_scale else "none"
    return write_card(
        "Tri-state multi-label attribute model (procedural faces, 32×32)",
        "A `tasks.attributes.model.AttributeModel`: a 2D `gen.unet.ConditionalUNet` with one token per attribute "
        "(on / off / unspecified) read by cross-attention and pooled into FiLM.\n\n"
        f"Attributes: {', '.join(run_config.get('attributes', []))}",
        use='from tasks.attributes.pipeline import AttributesPipeline, save_grid\n'
            'pipe = AttributesPipeline.from_pretrained("attributes")          # or this folder\n'
            'save_grid(pipe("glasses & beard & ~hat", num=16, seed=0), "grid.png")',
        sampling={"scheduler": DEFAULT_SCHEDULER, "steps": DEFAULT_STEPS, "guidance W": DEFAULT_GUIDANCE if guidance is None else guidance,
                  "per-attribute guidance scales (pipeline.json task_config.attribute_scale)": scales},
        training={"command": "accelerate launch tasks/attributes/train.py --config configs/attributes.yaml",
                  "steps": tr.get("steps"), "initialised from": m.get("init_from") or "scratch",
                  "data": f"{d.get('num_samples')} procedural faces (train split: held-out combinations excluded)",
                  "dropout": f"per-attribute {d.get('attribute_dropout')}, whole-condition {d.get('condition_dropout')}"},
        config=run_config, evaluation=evaluation, evaluation_source="tasks.attributes.evaluate report",
        limits="Procedural 32×32 cartoon faces only; not a model of real faces. Licence: Apache-2.0.")


def export(run: str, out: str, report_path: str | None = None) -> str:
    """Export a run's latest EMA weights + settings + model card to `out` (fp16 safetensors):

        python -m tasks.attributes.pipeline runs/attributes --out checkpoints/attributes --report reports/attributes_eval.json
    """
    from gen.pipeline import resolve_pretrained

    r = resolve_pretrained(run)
    run_cfg = dict(r.train_config or {})
    pipe = AttributesPipeline.from_pretrained(run)
    run_cfg["attributes"] = list(pipe.attributes)
    report = None
    if report_path:
        with open(report_path) as f:
            report = json.load(f)
    return pipe.save_pretrained(out, card=model_card(run_cfg, report, pipe.attribute_scale, pipe.sampling.get("guidance")), dtype=torch.float16)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Export a trained attribute run (EMA weights + model card).",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("run", help="run folder, e.g. runs/attributes")
    ap.add_argument("--out", required=True, help="export folder")
    ap.add_argument("--report", default=None, help="evaluation JSON to put in the card")
    a = ap.parse_args()
    print(export(a.run, a.out, a.report))
