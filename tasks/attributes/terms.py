"""Text and image terms for the attribute pipeline's composite algebra.

    from tasks.attributes.terms import T, Img
    pipe("a smiling man with round glasses")                  # plain words (read by the CLIP)
    pipe("a smiling man" & ~T("hat"))                          # words and a negated term
    pipe(2 * T("wearing sunglasses") @ "eyes" & T("beard"))    # weights and regions as for attribute names
    pipe(Img("a.png") & Img("b.png"))                          # what each image shows, composed
    pipe(Img("a.png") & "hat")                                 # an image, and a hat

How a prompt becomes guidance (no retraining of the diffusion model; the CLIP only *reads*):

* a text is parsed with the attribute grammar where it is one (prompt.parse_mixed: "glasses & ~hat@top"); each part
  in plain words is read by the CLIP's text probe into {attribute: on/off} (clip.decode_text), its weight / "~" /
  region applied to every attribute it names ("~T('a smiling man')" → smile = off);
* an image is read by the CLIP's image probe into every attribute's present / absent (clip.read_images), after being
  resized to the model's size when it is not (said in `pipe.notes`); `Img(path, attributes=["hat"])` carries only
  some of them;
* images are combined into ONE fully specified condition (joint conditioning: the tri-state model was trained on every
  subset of attributes, the full one included), an attribute being on when any image shows it ("the soldier's beard
  and the badge's hat"); the attributes the text names replace the images' values in it, and are also composed as
  their own terms (so "& hat" adds a hat to an image without one);
* text attributes become the usual single-attribute tri-state terms; one attribute asked both on and off by the text
  is an error, as is a prompt whose words name nothing the CLIP knows (the message says what was understood).

`resolve` returns the resolved items and a list of "what was understood" lines (`pipe.understood` after a call).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from tasks.attributes.faces import ATTRIBUTES


class ImageError(ValueError):
    """An image prompt or edit input that cannot be used (unreadable, not an image, wrong shape)."""


class _Combinable:
    def __and__(self, other) -> "Expr":
        return Expr(_items(self) + _items(other))

    def __rand__(self, other) -> "Expr":
        return Expr(_items(other) + _items(self))


@dataclass(frozen=True)
class T(_Combinable):
    """A text term: attribute grammar or plain words. `~T(..)` negates, `w * T(..)` weights, `T(..) @ region`
    (a region name, an (x0, y0, x1, y1) box, a mask path or array) restricts it."""

    text: str
    weight: float = 1.0
    negated: bool = False
    region: Any = None

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise TypeError(f"T() takes a text (str), got {type(self.text).__name__}")

    def __invert__(self) -> "T":
        return replace(self, negated=not self.negated)

    def __mul__(self, w: float) -> "T":
        return replace(self, weight=self.weight * float(w))

    __rmul__ = __mul__

    def __matmul__(self, region) -> "T":
        return replace(self, region=region)

    def __repr__(self) -> str:
        w = "" if self.weight == 1 else f"{self.weight:g}*"
        r = "" if self.region is None else f"@{self.region if isinstance(self.region, (str, tuple)) else 'mask'}"
        return f"{w}{'~' if self.negated else ''}T({self.text!r}){r}"


@dataclass(frozen=True)
class Img(_Combinable):
    """An image term: a path or a (3, H, W) tensor in [-1, 1] / (H, W, 3) uint8 array. `attributes` limits which of
    its attributes are carried (default all); weight / region as for T."""

    source: Any
    attributes: Sequence[str] | None = None
    weight: float = 1.0
    region: Any = None

    def __mul__(self, w: float) -> "Img":
        return replace(self, weight=self.weight * float(w))

    __rmul__ = __mul__

    def __matmul__(self, region) -> "Img":
        return replace(self, region=region)

    def __invert__(self):
        raise TypeError("an image term cannot be negated; negate the attributes you mean, e.g. Img(a) & ~T('hat')")

    def __repr__(self) -> str:
        src = self.source if isinstance(self.source, (str, os.PathLike)) else f"<{type(self.source).__name__}>"
        return f"Img({str(src)!r})"


@dataclass(frozen=True)
class Expr(_Combinable):
    """T / Img / gen Term items combined with '&'."""

    items: tuple = field(default_factory=tuple)

    def __invert__(self) -> "Expr":
        return Expr(tuple(~i for i in self.items))

    def __mul__(self, w: float) -> "Expr":
        return Expr(tuple(i * w for i in self.items))

    __rmul__ = __mul__

    def __matmul__(self, region) -> "Expr":
        return Expr(tuple(i @ region if isinstance(i, (T, Img)) else i for i in self.items))

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.items))


def _items(x) -> tuple:
    from gen.guidance import Prompt, Term

    if isinstance(x, Expr):
        return x.items
    if isinstance(x, (T, Img, Term)):
        return (x,)
    if isinstance(x, Prompt):
        return tuple(x.terms)
    if isinstance(x, str):
        return (T(x),)
    raise TypeError(f"cannot combine a {type(x).__name__} into a prompt; use a str, T(...), Img(...) or a pipeline term")


def is_rich(prompt) -> bool:
    """True for prompts that need this module (T / Img / Expr)."""
    return isinstance(prompt, (T, Img, Expr))


# ---- images ------------------------------------------------------------------------------------------------------------
def load_image(source, size: int, what: str = "image") -> tuple[torch.Tensor, str | None]:
    """A path / PIL image / (3, H, W) tensor in [-1, 1] / (H, W, 3) uint8 array → ((3, size, size) in [-1, 1], note or
    None). A different size is resized (box filter) and the note says so; anything unreadable raises ImageError."""
    from PIL import Image

    note = None
    if isinstance(source, (str, os.PathLike)):
        from gen.io import open_image

        try:
            im = open_image(source, what)
        except ValueError as e:
            raise ImageError(str(e)) from None
        name = os.fspath(source)
    elif isinstance(source, Image.Image):
        im, name = source, "<PIL image>"
    else:
        arr = source
        if torch.is_tensor(arr):
            x = arr.detach().float().cpu()
            if x.ndim == 4 and x.shape[0] == 1:
                x = x[0]
            if x.ndim != 3 or x.shape[0] != 3:
                raise ImageError(f"{what} tensor must be (3, H, W) in [-1, 1], got {tuple(arr.shape)}")
            if not torch.isfinite(x).all():
                raise ImageError(f"{what} tensor has non-finite values")
            arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        arr = np.asarray(arr)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ImageError(f"{what} array must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
        im, name = Image.fromarray(arr), "<array>"
    if im.mode != "RGB":
        im = im.convert("RGB")
    if im.size != (size, size):
        note = f"{what} {name!r} is {im.size[0]}×{im.size[1]}; resized to {size}×{size}"
        im = im.resize((size, size), Image.BOX if min(im.size) >= size else Image.BICUBIC)
    x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
    return x, note


# ---- resolution ----------------------------------------------------------------------------------------------------------
@dataclass
class Wanted:
    """One attribute the prompt asks for."""

    attribute: str
    on: bool
    weight: float
    region: Any
    source: str


def _text_wants(pipe, item: T, understood: list[str]) -> list[Wanted]:
    from tasks.attributes.clip import TextError, check_text, decode_text
    from tasks.attributes.faces import REGIONS
    from tasks.attributes.prompt import FreeText, parse_mixed

    text = check_text(item.text)
    out = []
    for part in parse_mixed(text, pipe.attributes, REGIONS):
        neg = part.negated != item.negated
        w = part.weight * item.weight
        region = item.region if item.region is not None else part.region
        if isinstance(part, FreeText):
            clip, tok = pipe.clip()
            try:
                u = decode_text(clip, tok, part.text)
            except TextError as e:
                raise TextError(f"{e}") from None
            understood.append(f"{part.text!r} → {u.describe()}")
            out += [Wanted(a, v != neg, w, region, f"text {part.text!r}") for a, v in u.spec.items()]
        else:
            out.append(Wanted(part.attribute, not neg, w, region, "attribute name"))
    return out


def read_image(pipe, source) -> tuple[dict[str, bool], dict[str, float], str | None]:
    """What an image shows: ({attribute: present}, confidences, resize note). Read by the attribute judge shipped
    beside the CLIP (checkpoints/attributes_clip/judge, a tasks.attributes.classifier CNN) when there is one and
    pipe.image_reader is "auto" or "judge", else by the CLIP's image probe (measured weaker on the small attributes:
    reports/attributes_clip.json, image_read_heldout_faces)."""
    x, note = load_image(source, pipe.size)
    judge = pipe.image_judge() if pipe.image_reader in ("auto", "judge") else None
    if judge is not None:
        with torch.no_grad():
            q = torch.sigmoid(judge(x[None].float()))[0]
        spec = {a: bool(q[k] > 0.5) for k, a in enumerate(pipe.attributes)}
        return spec, {a: float(max(q[k], 1 - q[k])) for k, a in enumerate(pipe.attributes)}, note
    from tasks.attributes.clip import read_images

    clip, _ = pipe.clip()
    u = read_images(clip, x[None])[0]
    return u.spec, u.confidence, note


def resolve(pipe, prompt) -> tuple[list, list[str], list[str]]:
    """A T / Img / Expr (or str) → ([gen Terms, unscaled], understood lines, notes). Terms are single-attribute
    tri-state terms (weights as written, × guidance later in pipe.build) plus at most one joint image term."""
    from gen.guidance import Term
    from tasks.attributes.pipeline import load_mask

    items = _items(prompt)
    understood, notes = [], []
    wants: list[Wanted] = []
    images: list[tuple[Img, dict[str, bool]]] = []
    raw: list = []
    for item in items:
        if isinstance(item, T):
            wants += _text_wants(pipe, item, understood)
        elif isinstance(item, Img):
            spec, conf, note = read_image(pipe, item.source)
            if note:
                notes.append(note)
            keep = list(item.attributes) if item.attributes is not None else list(pipe.attributes)
            bad = sorted(set(keep) - set(pipe.attributes))
            if bad:
                raise ValueError(f"Img(attributes=...) names unknown attribute(s) {bad}; valid attributes: "
                                 f"{', '.join(pipe.attributes)}")
            spec = {a: spec[a] for a in keep}
            images.append((item, spec))
            understood.append(f"{item!r} → " + ", ".join(("" if v else "~") + a + f" ({conf[a]:.2f})"
                                                           for a, v in spec.items()))
        else:
            raw.append(item)  # a gen Term from pipe.attribute(...): used as it is
    # text: one value per attribute
    by_attr: dict[str, Wanted] = {}
    for w in wants:
        if w.attribute in by_attr:
            prev = by_attr[w.attribute]
            if prev.on != w.on:
                raise ValueError(f"the prompt asks for {w.attribute} both on ({prev.source if prev.on else w.source}) "
                                 f"and off ({w.source if prev.on else prev.source}); understood: "
                                 + "; ".join(understood))
            continue
        by_attr[w.attribute] = w
    if not by_attr and not images and not raw:
        raise ValueError("the prompt names nothing the model knows; understood: " + ("; ".join(understood) or "nothing"))
    terms = []
    if images:
        joint: dict[str, bool] = {}
        for _, spec in images:
            for a, v in spec.items():
                joint[a] = joint.get(a, False) or v
        for a, w in by_attr.items():
            joint[a] = w.on
        weight = float(np.mean([im.weight for im, _ in images]))
        t = pipe.model.term(joint, weight, label="image: " + ", ".join(("" if v else "~") + a for a, v in joint.items()))
        regions = [im.region for im, _ in images if im.region is not None]
        if regions:
            t = t.within(load_mask(regions[0], pipe.size))
        terms.append(t)
    for a, w in by_attr.items():
        t = pipe.attribute(a, on=w.on) * w.weight
        if w.region is not None:
            t = t.within(load_mask(w.region, pipe.size))
        terms.append(t)
    terms += [r for r in raw if isinstance(r, Term)]
    for n in notes:
        warnings.warn(n, stacklevel=3)
    return terms, understood, notes
