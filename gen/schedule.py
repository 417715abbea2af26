"""Noise schedules and the closed forms of the DDPM forward process. No parameters, no model.

Symbols (Ho et al. 2020, "DDPM"; Song et al. 2021, "DDIM"), indices 0-based as in diffusers (t = 0 … T-1):

    beta_t        β_t                 variance added at step t
    alpha_t       α_t = 1 − β_t
    alpha_bar_t   ᾱ_t = Π_{s≤t} α_s   so that q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)     (DDPM eq. 4)
    eps           ε ~ N(0, I)
    v             v = √ᾱ_t ε − √(1−ᾱ_t) x_0                                             (Salimans & Ho 2022)

Example::

    sched = DiffusionSchedule.make("cosine", T=100)
    x_t = sched.q_sample(x0, t, eps)
    x0_hat = sched.eps_to_x0(x_t, t, eps)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor


class ScheduleKind(str, Enum):
    LINEAR = "linear"
    COSINE = "cosine"
    SIGMOID = "sigmoid"


class PredictionType(str, Enum):
    EPSILON = "epsilon"
    V = "v_prediction"
    SAMPLE = "sample"


MAX_BETA = 0.999


def make_betas(kind: str | ScheduleKind, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """β_1..β_T (float64, shape (T,)) for any T.

    linear:  β linear in [beta_start, beta_end]·(1000/T) (Nichol & Dhariwal 2021, improved-diffusion), so that ᾱ_T ≈ 0
             for small T too; at T = 1000 it equals diffusers' "linear" exactly.
    cosine:  ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, β capped at 0.999 (diffusers "squaredcos_cap_v2").
    sigmoid: β = sigmoid(linspace(−6, 6, T))·(end − start) + start, with the same 1000/T rescaling (GeoDiff; diffusers
             "sigmoid" at T = 1000).
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    try:
        kind = ScheduleKind(kind)
    except ValueError:
        raise ValueError(f"unknown schedule {kind!r}; accepted: {[k.value for k in ScheduleKind]}") from None
    scale = 1000.0 / T
    if kind is ScheduleKind.LINEAR:
        betas = torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64)
    elif kind is ScheduleKind.SIGMOID:
        betas = torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start
        betas = betas * scale
    else:
        def abar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), MAX_BETA) for i in range(T)], dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def _extract(a: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """a[t] reshaped to (B, 1, …, 1) so it broadcasts against x of shape (B, …)."""
    t = torch.as_tensor(t, device=a.device).long()
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    out = a.to(x.device)[t.to(x.device)].to(x.dtype)
    return out.reshape(-1, *([1] * (x.ndim - 1)))


@dataclass
class DiffusionSchedule:
    """Precomputed ᾱ_t etc. for a fixed β sequence. Tensors are float64; results are cast to the input's dtype."""

    betas: Tensor  # (T,) float64

    def __post_init__(self):
        self.betas = torch.as_tensor(self.betas, dtype=torch.float64)
        if self.betas.ndim != 1 or not ((self.betas > 0) & (self.betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with 0 < β < 1")
        self.alphas = 1.0 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        # Posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I)                                       (DDPM eq. 6–7)
        self.posterior_variance = self.betas * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        self.posterior_coef_x0 = self.betas * self.alpha_bar_prev.sqrt() / (1 - self.alpha_bar)
        self.posterior_coef_xt = (1 - self.alpha_bar_prev) * self.alphas.sqrt() / (1 - self.alpha_bar)

    @classmethod
    def make(cls, kind: str = "linear", T: int = 1000, **kw) -> "DiffusionSchedule":
        return cls(make_betas(kind, T, **kw))

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    # ---- forward process ------------------------------------------------------------------------------------------
    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε                                                                 (DDPM eq. 4)"""
        return _extract(self.alpha_bar.sqrt(), t, x0) * x0 + _extract((1 - self.alpha_bar).sqrt(), t, x0) * eps

    def prior_kl(self, x0: Tensor, t: int | None = None) -> Tensor:
        """Mean per-dimension KL(q(x_t | x_0) ‖ N(0, I)) at t (default the last step), one value per sample.

        KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − ln σ²) with μ = √ᾱ_t x_0, σ² = 1 − ᾱ_t.
        """
        t = self.T - 1 if t is None else t
        ab = self.alpha_bar[t].item()
        mu2 = ab * x0.double().flatten(1) ** 2
        var = 1 - ab
        return (0.5 * (var + mu2 - 1 - math.log(var))).mean(1)

    # ---- conversions between parameterisations ----------------------------------------------------------------------
    def eps_to_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t"""
        return (x_t - _extract((1 - self.alpha_bar).sqrt(), t, x_t) * eps) / _extract(self.alpha_bar.sqrt(), t, x_t)

    def x0_to_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """ε̂ = (x_t − √ᾱ_t x_0) / √(1−ᾱ_t)"""
        return (x_t - _extract(self.alpha_bar.sqrt(), t, x_t) * x0) / _extract((1 - self.alpha_bar).sqrt(), t, x_t)

    def v_target(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """v = √ᾱ_t ε − √(1−ᾱ_t) x_0"""
        return _extract(self.alpha_bar.sqrt(), t, x0) * eps - _extract((1 - self.alpha_bar).sqrt(), t, x0) * x0

    def v_to_eps(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """ε = √ᾱ_t v + √(1−ᾱ_t) x_t"""
        return _extract(self.alpha_bar.sqrt(), t, x_t) * v + _extract((1 - self.alpha_bar).sqrt(), t, x_t) * x_t

    def v_to_x0(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v"""
        return _extract(self.alpha_bar.sqrt(), t, x_t) * x_t - _extract((1 - self.alpha_bar).sqrt(), t, x_t) * v

    def training_target(self, x0: Tensor, t: Tensor, eps: Tensor, prediction_type: str) -> Tensor:
        """What the network regresses for the given parameterisation."""
        p = PredictionType(prediction_type)
        if p is PredictionType.EPSILON:
            return eps
        if p is PredictionType.V:
            return self.v_target(x0, t, eps)
        return x0

    def split_prediction(self, pred: Tensor, x_t: Tensor, t: Tensor, prediction_type: str) -> tuple[Tensor, Tensor]:
        """Network output → (ε̂, x̂_0) for any parameterisation."""
        p = PredictionType(prediction_type)
        if p is PredictionType.EPSILON:
            return pred, self.eps_to_x0(x_t, t, pred)
        if p is PredictionType.V:
            return self.v_to_eps(x_t, t, pred), self.v_to_x0(x_t, t, pred)
        return self.x0_to_eps(x_t, t, pred), pred

    # ---- posterior --------------------------------------------------------------------------------------------------
    def posterior_mean(self, x_t: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """μ̃_t(x_t, x_0) = √ᾱ_{t−1} β_t/(1−ᾱ_t) x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t                       (DDPM eq. 7)"""
        return _extract(self.posterior_coef_x0, t, x_t) * x0 + _extract(self.posterior_coef_xt, t, x_t) * x_t

    def posterior_mean_eps(self, x_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """μ̃_t(x_t, ε) = (x_t − β_t/√(1−ᾱ_t) ε) / √α_t                                               (DDPM eq. 11)"""
        coef = _extract(self.betas / (1 - self.alpha_bar).sqrt(), t, x_t)
        return (x_t - coef * eps) / _extract(self.alphas.sqrt(), t, x_t)


class DataCentering:
    """Optional hook: subtract a mean before diffusion, add it back after sampling.

    mode "none" | "global" (one mean image) | "class" (one mean per integer label; also usable per condition by
    passing any integer key). `scale=True` also divides by the (global) standard deviation so the centred data has σ = 1.
    Means are stored as tensors so they can go into a safetensors checkpoint (`state_dict` / `load_state_dict`).
    """

    MODES = ("none", "global", "class")

    def __init__(self, mode: str = "none", scale: bool = False):
        if mode not in self.MODES:
            raise ValueError(f"unknown centering mode {mode!r}; accepted: {self.MODES}")
        self.mode, self.scale = mode, scale
        self.means: Tensor | None = None  # (K, *sample_shape) ; K = 1 for global
        self.std: Tensor = torch.tensor(1.0)

    def fit(self, x0: Tensor, labels: Tensor | None = None, num_classes: int | None = None) -> "DataCentering":
        x0 = x0.double()
        if self.mode == "class":
            if labels is None:
                raise ValueError("class centering needs labels")
            k = int(num_classes or int(labels.max()) + 1)
            sums = torch.zeros(k, *x0.shape[1:], dtype=torch.float64).index_add_(0, labels.long(), x0)
            counts = torch.bincount(labels.long(), minlength=k).clamp(min=1).double()
            self.means = (sums / counts.view(-1, *[1] * (x0.ndim - 1))).float()
        elif self.mode == "global":
            self.means = x0.mean(0, keepdim=True).float()
        else:
            self.means = torch.zeros(1, *x0.shape[1:])
        if self.scale:
            self.std = (x0 - self._mean(x0, labels).double()).std().float()
        return self

    def _mean(self, x: Tensor, labels: Tensor | None) -> Tensor:
        if self.means is None:
            return torch.zeros_like(x)
        if self.mode == "class":
            if labels is None:
                raise ValueError("class centering needs labels")
            return self.means.to(x.device, x.dtype)[labels.long().to(x.device)]
        return self.means.to(x.device, x.dtype).expand_as(x)

    def center(self, x0: Tensor, labels: Tensor | None = None) -> Tensor:
        return (x0 - self._mean(x0, labels)) / self.std.to(x0.device, x0.dtype)

    def uncenter(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return x * self.std.to(x.device, x.dtype) + self._mean(x, labels)

    def state_dict(self) -> dict[str, Tensor]:
        return {} if self.means is None else {"means": self.means.contiguous(), "std": self.std.reshape(1)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "means" in state:
            self.means, self.std = state["means"].float(), state["std"].float().reshape(())
