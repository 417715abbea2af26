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
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import torch
from torch import Tensor

Cond = Mapping[str, Tensor]
CondModelFn = Callable[[Tensor, Tensor, Cond], Tensor]  # (x_t (B,…), t (B,), cond) -> prediction (B,…)


def keep_key(group: str) -> str:
    return f"{group}.keep"


# ---- training: independent dropout per condition group ----------------------------------------------------------------
def drop_conditions(cond: Cond, probs: Mapping[str, float], batch_size: int, generator: torch.Generator | None = None,
                    elementwise: Mapping[str, int] | None = None, device=None) -> dict[str, Tensor]:
    """Return a copy of `cond` whose ``"g.keep"`` flags are False with probability ``probs[g]``, independently per group
    and per sample (and per element for groups listed in `elementwise` with their element count K: shape (B, K))."""
    out = dict(cond)
    elementwise = dict(elementwise or {})
    for g, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability for group {g!r} must be in [0, 1], got {p}")
        shape = (batch_size, elementwise[g]) if g in elementwise else (batch_size,)
        keep = torch.rand(shape, generator=generator, device=device) >= p
        prev = out.get(keep_key(g))
        out[keep_key(g)] = keep if prev is None else (prev.to(keep.device) & keep)
    return out


def null_condition(cond: Cond, groups: Mapping[str, int | None]) -> dict[str, Tensor]:
    """`cond` with every group's keep flag False: the unconditional input. groups: name -> element count or None."""
    out = dict(cond)
    b = next(iter(cond.values())).shape[0] if cond else 1
    for g, k in groups.items():
        out[keep_key(g)] = torch.zeros((b,) if k is None else (b, k), dtype=torch.bool)
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
        return replace(self, mask=torch.as_tensor(mask, dtype=torch.float32))

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


def _expand(v: Tensor, b: int) -> Tensor:
    if v.shape[0] == b:
        return v
    if v.shape[0] != 1:
        raise ValueError(f"condition tensor has batch {v.shape[0]}, expected 1 or {b}")
    return v.expand(b, *v.shape[1:])


def batch_conditions(conds: list[Cond], b: int) -> dict[str, Tensor]:
    """Concatenate condition dicts (each of batch 1 or b) along the batch: the one-forward-pass layout."""
    keys = set(conds[0])
    for c in conds[1:]:
        if set(c) != keys:
            raise ValueError(f"all terms must carry the same condition keys; got {sorted(keys)} and {sorted(c)}")
    return {k: torch.cat([_expand(torch.as_tensor(c[k]), b) for c in conds]) for k in sorted(keys)}


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
    """
    prompt = as_prompt(prompt)
    if len(prompt) == 0:
        raise ValueError("prompt has no terms; pass at least one Term (call the model with the null condition to "
                         "sample unconditionally)")
    b = x.shape[0]
    t = t.expand(b) if t.ndim == 0 else t
    masks = [None if term.mask is None else _check_mask(term.mask, x, term.label) for term in prompt.terms]
    if len(prompt) == 1 and prompt.terms[0].weight == 1.0 and masks[0] is None:
        return model(x, t, batch_conditions([prompt.terms[0].cond], b))
    conds = [null_cond] + [term.cond for term in prompt.terms]
    n = len(conds)
    out = model(x.repeat(n, *[1] * (x.ndim - 1)), t.repeat(n), batch_conditions(conds, b))
    eps_null, *eps_terms = out.chunk(n)
    eps = eps_null.clone()
    for term, mask, e in zip(prompt.terms, masks, eps_terms):
        delta = term.weight * (e - eps_null)
        eps = eps + (delta if mask is None else mask * delta)
    return eps


def guided_model(model: CondModelFn, prompt: "Term | Prompt | None", null_cond: Cond) -> Callable[[Tensor, Tensor], Tensor]:
    """Close over a prompt to get the ``model(x_t, t)`` callable the samplers take. None/empty → unconditional."""
    prompt = None if prompt is None else as_prompt(prompt)
    if not prompt:
        return lambda x, t: model(x, t.expand(x.shape[0]) if t.ndim == 0 else t, batch_conditions([null_cond], x.shape[0]))
    return lambda x, t: guided_prediction(model, x, t, prompt, null_cond)
