"""Classifier-free guidance: condition dropout for training, and a composite-prompt algebra for sampling.

Conditions are dicts of tensors with a leading batch dimension (1 or B). Each condition *group* ``g`` may carry a boolean
``"g.keep"`` entry of shape (B,) — or (B, K) for per-element groups such as K independent attributes; where it is False
the model uses its learned null embedding for that group (see `gen.conditioning.NullableEmbedding`). Dropping a group
therefore never changes the raw values, only the keep flags, and "unconditional" is just every keep flag False.

Sampling combines the terms of a prompt (Composable Diffusion, Liu et al. 2022; CFG, Ho & Salimans 2021):

    ε = ε_∅ + Σ_i w_i m_i ⊙ (ε_{c_i} − ε_∅)

with weight w_i (negative for NOT) and an optional mask m_i (spatial (1|C, H, W) for 2D, temporal/per-channel
(1|C, T) for 1D) so a term acts only inside its region. All terms of a step go through the model in one batched pass.
Because the combination is affine with coefficients summing to one, it is the same for ε, v and x_0 predictions.

    glasses, beard, hat = Term(c1, label="glasses"), Term(c2, label="beard"), Term(c3, label="hat")
    prompt = 2 * glasses & beard & ~hat.within(top_mask)
    eps = guided_prediction(model, x_t, t, prompt, null_cond)

Devices: conditions, masks and null conditions may be built anywhere (on the CPU, as the ``term`` helpers do);
`guided_prediction` moves every condition tensor and mask to the input's device, and `guided_model`'s callable reports
the wrapped model's device (``.device``, see `model_device`) so a sampler can infer where to work.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

Cond = Mapping[str, Tensor]
CondModelFn = Callable[[Tensor, Tensor, Cond], Tensor]  # (x_t (B,…), t (B,), cond) -> prediction (B,…)


def keep_key(group: str) -> str:
    return f"{group}.keep"


def model_device(model) -> torch.device | None:
    """The device a model callable runs on, or None when it cannot be told (a plain function or lambda): its ``device``
    attribute (`guided_model`'s callable, any callable carrying one); an nn.Module's first parameter or buffer comes
    first (ModelMixin.device imports diffusers.hooks, i.e. peft, ~1-2 s) and its ``device`` attribute only when it has
    neither; a bound method or functools.partial is looked through to its module / function."""
    seen = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, nn.Module):
            for t in (*model.parameters(), *model.buffers()):
                return t.device
        try:
            dev = getattr(model, "device", None)
        except Exception:  # a device property that cannot answer (e.g. a ModelMixin without parameters)
            dev = None
        if isinstance(dev, (torch.device, str)):
            return torch.device(dev)
        if isinstance(model, nn.Module):
            return None
        model = getattr(model, "__self__", None) or getattr(model, "func", None)
    return None


def _cond_device(cond: Cond):
    for v in cond.values():
        if torch.is_tensor(v):
            return v.device
    return None


# ---- training: independent dropout per condition group ----------------------------------------------------------------
def drop_conditions(cond: Cond, probs: Mapping[str, float], batch_size: int, generator: torch.Generator | None = None,
                    elementwise: Mapping[str, int] | None = None, device=None) -> dict[str, Tensor]:
    """Return a copy of `cond` whose ``"g.keep"`` flags are False with probability ``probs[g]``, independently per group
    and per sample (and per element for groups listed in `elementwise` with their element count K: shape (B, K)).

    The flags end up on `device`, else on the device of `cond`'s tensors (torch's default device when it has none);
    with a generator the random numbers are drawn on the generator's device and moved, so a CPU generator gives the same
    flags wherever the model trains."""
    out = dict(cond)
    elementwise = dict(elementwise or {})
    target = device if device is not None else _cond_device(cond)
    draw_on = generator.device if generator is not None else target
    for g, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability for group {g!r} must be in [0, 1], got {p}")
        shape = (batch_size, elementwise[g]) if g in elementwise else (batch_size,)
        keep = torch.rand(shape, generator=generator, device=draw_on) >= p
        if target is not None:
            keep = keep.to(target)
        prev = out.get(keep_key(g))
        out[keep_key(g)] = keep if prev is None else (prev.to(keep.device) & keep)
    return out


def null_condition(cond: Cond, groups: Mapping[str, int | None]) -> dict[str, Tensor]:
    """`cond` with every group's keep flag False: the unconditional input. groups: name -> element count or None."""
    out = dict(cond)
    b = next(iter(cond.values())).shape[0] if cond else 1
    device = _cond_device(cond)
    for g, k in groups.items():
        out[keep_key(g)] = torch.zeros((b,) if k is None else (b, k), dtype=torch.bool, device=device)
    return out


# ---- sampling: the composite-prompt algebra ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One guided condition: ``w · m ⊙ (ε(c) − ε_∅)``. Combine with ``&``, negate with ``~``, scale with ``*``."""

    cond: Cond
    weight: float = 1.0
    mask: Tensor | None = None
    label: str = ""

    def __and__(self, other: "Term | Prompt") -> "Prompt":
        return Prompt((self,)) & other

    def __invert__(self) -> "Term":
        return replace(self, weight=-self.weight, label=f"~{self.label}" if self.label else "")

    def __mul__(self, w: float) -> "Term":
        return replace(self, weight=self.weight * float(w))

    __rmul__ = __mul__

    def within(self, mask: Tensor) -> "Term":
        """Restrict this term to a region: mask (broadcastable to one sample's shape), 1 inside, 0 outside."""
        return replace(self, mask=_as_tensor(mask).to(torch.float32))

    def __repr__(self) -> str:
        region = "" if self.mask is None else "@region"
        return f"{self.weight:g}*{self.label or 'term'}{region}"


@dataclass(frozen=True)
class Prompt:
    """A sum of guided terms. ``Prompt()`` is empty (sample unconditionally with the model directly)."""

    terms: tuple[Term, ...] = field(default_factory=tuple)

    def __and__(self, other: "Term | Prompt") -> "Prompt":
        other_terms = (other,) if isinstance(other, Term) else tuple(other.terms)
        return Prompt(self.terms + other_terms)

    __rand__ = __and__

    def __invert__(self) -> "Prompt":
        return Prompt(tuple(~t for t in self.terms))

    def __mul__(self, w: float) -> "Prompt":
        return Prompt(tuple(t * w for t in self.terms))

    __rmul__ = __mul__

    def within(self, mask: Tensor) -> "Prompt":
        return Prompt(tuple(t.within(mask) for t in self.terms))

    def normalized(self) -> "Prompt":
        """Weights divided by their sum (e.g. style mixing 0.7*a + 0.3*b). A zero sum is an error."""
        s = sum(t.weight for t in self.terms)
        if abs(s) < 1e-8:
            raise ValueError(f"cannot normalise prompt {self!r}: its weights sum to 0")
        return self * (1.0 / s)

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.terms)) or "<empty prompt>"


def as_prompt(p: "Term | Prompt") -> Prompt:
    return Prompt((p,)) if isinstance(p, Term) else p


def _as_tensor(v, device=None) -> Tensor:
    """A tensor stays where it is unless `device` is given (torch.as_tensor would move it to torch's default device)."""
    if torch.is_tensor(v):
        return v if device is None else v.to(device)
    return torch.as_tensor(v, device=device)


def _expand(v: Tensor, b: int) -> Tensor:
    if v.shape[0] == b:
        return v
    if v.shape[0] != 1:
        raise ValueError(f"condition tensor has batch {v.shape[0]}, expected 1 or {b}")
    return v.expand(b, *v.shape[1:])


def batch_conditions(conds: list[Cond], b: int, device=None) -> dict[str, Tensor]:
    """Concatenate condition dicts (each of batch 1 or b) along the batch: the one-forward-pass layout; on `device`
    when given (every tensor moved there first)."""
    keys = set(conds[0])
    for c in conds[1:]:
        if set(c) != keys:
            raise ValueError(f"all terms must carry the same condition keys; got {sorted(keys)} and {sorted(c)}")
    return {k: torch.cat([_expand(_as_tensor(c[k], device), b) for c in conds]) for k in sorted(keys)}


def _check_mask(mask: Tensor, x: Tensor, label: str) -> Tensor:
    mask = mask.to(x.device, x.dtype)
    try:
        shape = torch.broadcast_shapes(mask.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape or mask.ndim > x.ndim:
        raise ValueError(f"mask of term {label or '?'} has shape {tuple(mask.shape)}, which does not broadcast to the "
                         f"sample shape {tuple(x.shape[1:])} (accepted: e.g. (1, H, W) for 2D, (C, T) or (1, T) for 1D)")
    return mask


def guided_prediction(model: CondModelFn, x: Tensor, t: Tensor, prompt: "Term | Prompt", null_cond: Cond) -> Tensor:
    """ε = ε_∅ + Σ_i w_i m_i (ε_{c_i} − ε_∅), all terms in one batched forward pass.

    Fast path: a single unmasked term with w = 1 is just the conditional prediction (no unconditional pass).
    t, every condition tensor and every mask are moved to x's device before the model sees them.
    """
    prompt = as_prompt(prompt)
    if len(prompt) == 0:
        raise ValueError("prompt has no terms; pass at least one Term (call the model with the null condition to "
                         "sample unconditionally)")
    b = x.shape[0]
    t = _timesteps(t, x)
    masks = [None if term.mask is None else _check_mask(term.mask, x, term.label) for term in prompt.terms]
    if len(prompt) == 1 and prompt.terms[0].weight == 1.0 and masks[0] is None:
        return model(x, t, batch_conditions([prompt.terms[0].cond], b, x.device))
    conds = [null_cond] + [term.cond for term in prompt.terms]
    n = len(conds)
    out = model(x.repeat(n, *[1] * (x.ndim - 1)), t.repeat(n), batch_conditions(conds, b, x.device))
    eps_null, *eps_terms = out.chunk(n)
    eps = eps_null.clone()
    for term, mask, e in zip(prompt.terms, masks, eps_terms):
        delta = term.weight * (e - eps_null)
        eps = eps + (delta if mask is None else mask * delta)
    return eps


def _timesteps(t: Tensor, x: Tensor) -> Tensor:
    t = _as_tensor(t, x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


class GuidedModel:
    """The ``model(x_t, t)`` callable the samplers take: a conditional model closed over a prompt and its null
    condition. ``.device`` is the wrapped model's device (None when it cannot be told), so samplers infer it."""

    def __init__(self, model: CondModelFn, prompt: "Prompt | None", null_cond: Cond):
        self.model, self.prompt, self.null_cond = model, prompt, null_cond

    @property
    def device(self) -> torch.device | None:
        return model_device(self.model)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        if not self.prompt:
            return self.model(x, _timesteps(t, x), batch_conditions([self.null_cond], x.shape[0], x.device))
        return guided_prediction(self.model, x, t, self.prompt, self.null_cond)

    def __repr__(self) -> str:
        return f"GuidedModel({self.prompt!r})"


def guided_model(model: CondModelFn, prompt: "Term | Prompt | None", null_cond: Cond) -> GuidedModel:
    """Close over a prompt to get the ``model(x_t, t)`` callable the samplers take. None/empty → unconditional."""
    prompt = None if prompt is None else as_prompt(prompt)
    return GuidedModel(model, prompt or None, null_cond)
