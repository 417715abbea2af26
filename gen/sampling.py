"""Samplers: pure functions that take the model as an argument.

Every sampler has the signature ``sampler(model, shape, schedule, *, steps, generator, callback, ...) -> x_0`` where
``model(x_t, t) -> prediction`` is any callable (conditioning and guidance are closed over, see `gen.guidance`), ``t`` a
(B,) tensor of timesteps, and the prediction is ε, v or x_0 according to ``prediction_type``.

``known=(x0_known, mask)`` turns any sampler into a masked (in-painting / in-betweening) sampler: after every step the
entries where mask = 1 are replaced by the given data noised to the current level (the "replacement" method; Song et
al. 2021, Lugmayr et al. 2022), and by the data itself at the end. ``known`` may instead be a callable
``constraint(x, renoise) -> x`` applied after every step, where ``renoise(x0)`` returns ``x0`` noised to the level of
the current ``x`` (``x0`` itself after the last step): a general projection, e.g. tying overlapping windows of a batch
together (EDGE's long-form sampling, `tasks.dance.pipeline`).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .schedule import DiffusionSchedule, PredictionType

ModelFn = Callable[[Tensor, Tensor], Tensor]
Callback = Optional[Callable[[int, int, Tensor], None]]  # (step index, num steps, x) -> None


def make_timesteps(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """Descending timesteps used by a `steps`-step sampler over a T-step schedule.

    leading:  [0, k, 2k, …] reversed with k = T // steps (diffusers DDIM default; never visits T−1)
    trailing: round(T − i·T/steps) − 1 (Lin et al. 2024: starts at T−1, where x_T ~ N(0, I) holds)
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, T={T}], got {steps}")
    if spacing == "leading":
        k = T // steps
        ts = [i * k for i in range(steps)][::-1]
    elif spacing == "trailing":
        ts = [int(round(T - i * T / steps)) - 1 for i in range(steps)]
    else:
        raise ValueError(f"unknown spacing {spacing!r}; accepted: 'leading', 'trailing'")
    return ts


def _noise(shape, generator, device, dtype=torch.float32) -> Tensor:
    """Standard normal noise; `generator` is one torch.Generator, or a list with one per sample (as in diffusers'
    randn_tensor) so that sample i's noise depends only on its own generator, not on the batch it is drawn in."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per sample")
        return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _apply_known(x: Tensor, known, schedule: DiffusionSchedule, t_prev: int, generator) -> Tensor:
    if known is None:
        return x

    def renoise(x0: Tensor) -> Tensor:
        if t_prev < 0:
            return x0
        t = torch.full((x0.shape[0],), t_prev, dtype=torch.long, device=x0.device)
        return schedule.q_sample(x0, t, _noise(x0.shape, generator, x0.device, x0.dtype))
    return _constrain(x, known, renoise)


def _constrain(x: Tensor, known, renoise: Callable[[Tensor], Tensor]) -> Tensor:
    if callable(known):
        return known(x, renoise)
    x0_known, mask = known
    return mask * renoise(x0_known) + (1 - mask) * x


def _alpha_bars(schedule: DiffusionSchedule, t: int, t_prev: int) -> tuple[float, float]:
    ab_prev = schedule.alpha_bar[t_prev].item() if t_prev >= 0 else 1.0
    return schedule.alpha_bar[t].item(), ab_prev


def ddpm_step(eps: Tensor, x_t: Tensor, t: int, t_prev: int, schedule: DiffusionSchedule, noise: Tensor | None,
              x0: Tensor | None = None) -> Tensor:
    """One ancestral step x_t → x_{t_prev} (DDPM Algorithm 2, generalised to skipped steps).

    With α = ᾱ_t / ᾱ_prev and β = 1 − α (equal to α_t, β_t when t_prev = t − 1):
        x_prev = (x_t − β/√(1−ᾱ_t) ε_θ) / √α + σ z,     σ² = β̃ = (1−ᾱ_prev)/(1−ᾱ_t) β,   z = 0 at the last step
    When the model's x̂_0 is given (v/x_0 parameterisations, or a clipped x̂_0), the same mean is computed in its x_0 form
    μ̃ = √ᾱ_prev β/(1−ᾱ_t) x̂_0 + √α (1−ᾱ_prev)/(1−ᾱ_t) x_t (DDPM eq. 7), which avoids dividing by √ᾱ_t ≈ 0.
    """
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev)
    alpha = ab_t / ab_prev
    beta = 1 - alpha
    # 1. posterior mean μ̃_t
    if x0 is None:
        mean = (x_t - beta / (1 - ab_t) ** 0.5 * eps) / alpha ** 0.5                                # (DDPM eq. 11)
    else:
        mean = ab_prev ** 0.5 * beta / (1 - ab_t) * x0 + alpha ** 0.5 * (1 - ab_prev) / (1 - ab_t) * x_t
    if t_prev < 0 or noise is None:
        return mean
    # 2. add σ_t z with the "fixed small" variance β̃
    var = max((1 - ab_prev) / (1 - ab_t) * beta, 1e-20)
    return mean + var ** 0.5 * noise


def ddim_sigma(schedule: DiffusionSchedule, t: int, t_prev: int, eta: float) -> float:
    """σ_t(η) = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)                                              (DDIM eq. 16)"""
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev)
    return eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5


def ddim_step(eps: Tensor, x_t: Tensor, t: int, t_prev: int, schedule: DiffusionSchedule, eta: float,
              noise: Tensor | None, x0: Tensor | None = None) -> Tensor:
    """One step of the DDIM σ-family (DDIM eq. 12):

        x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ_t²) ε_θ + σ_t z,     x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t

    η = 0 is deterministic DDIM; η = 1 gives DDPM's posterior variance. x̂_0 may be passed in directly.
    """
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev)
    sigma = ddim_sigma(schedule, t, t_prev, eta)
    # 1. predicted x_0
    if x0 is None:
        x0 = (x_t - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
    # 2. direction pointing to x_t
    dir_xt = max(1 - ab_prev - sigma ** 2, 0.0) ** 0.5 * eps
    x_prev = ab_prev ** 0.5 * x0 + dir_xt
    # 3. random noise
    if sigma > 0 and noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev


def _predict(model: ModelFn, x: Tensor, t: int, schedule: DiffusionSchedule, prediction_type: str,
             clip_x0: float | None) -> tuple[Tensor, Tensor | None]:
    """(ε̂, x̂_0) from the model; x̂_0 is None for a plain ε-model (the steps then use the paper's ε form).

    clip_x0 = c clamps x̂_0 to [−c, c] and recomputes ε̂ from it (Ho et al.'s reference sampler clips to the data range).
    """
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    pred = model(x, tt)
    if PredictionType(prediction_type) is PredictionType.EPSILON and clip_x0 is None:
        return pred, None
    eps, x0 = schedule.split_prediction(pred, x, tt, prediction_type)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = schedule.x0_to_eps(x, tt, x0)
    return eps, x0


@torch.no_grad()
def sample_ddpm(model: ModelFn, shape, schedule: DiffusionSchedule, *, steps: int | None = None,
                generator: torch.Generator | None = None, callback: Callback = None, x_T: Tensor | None = None,
                prediction_type: str = "epsilon", known=None, device=None, spacing: str = "trailing",
                clip_x0: float | None = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2); with steps < T, the skipped-step generalisation."""
    device = device or (x_T.device if x_T is not None else "cpu")
    ts = make_timesteps(schedule.T, steps or schedule.T, spacing)
    x = x_T if x_T is not None else _noise(shape, generator, device)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps, x0 = _predict(model, x, t, schedule, prediction_type, clip_x0)
        z = _noise(x.shape, generator, x.device, x.dtype) if t_prev >= 0 else None
        x = ddpm_step(eps, x, t, t_prev, schedule, z, x0)
        x = _apply_known(x, known, schedule, t_prev, generator)
        if callback is not None:
            callback(i, len(ts), x)
    return x


@torch.no_grad()
def sample_ddim(model: ModelFn, shape, schedule: DiffusionSchedule, *, steps: int = 50, eta: float = 0.0,
                generator: torch.Generator | None = None, callback: Callback = None, x_T: Tensor | None = None,
                prediction_type: str = "epsilon", known=None, device=None, spacing: str = "trailing",
                clip_x0: float | None = None) -> Tensor:
    """DDIM sampling with the σ-family (Song et al. 2021, eq. 12 and 16) and step skipping."""
    if eta < 0:
        raise ValueError(f"eta must be ≥ 0, got {eta}")
    device = device or (x_T.device if x_T is not None else "cpu")
    ts = make_timesteps(schedule.T, steps, spacing)
    x = x_T if x_T is not None else _noise(shape, generator, device)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps, x0 = _predict(model, x, t, schedule, prediction_type, clip_x0)
        z = _noise(x.shape, generator, x.device, x.dtype) if eta > 0 and t_prev >= 0 else None
        x = ddim_step(eps, x, t, t_prev, schedule, eta, z, x0)
        x = _apply_known(x, known, schedule, t_prev, generator)
        if callback is not None:
            callback(i, len(ts), x)
    return x


# ---- any diffusers scheduler ---------------------------------------------------------------------------------------
SCHEDULERS = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpm++sde": "DPMSolverSDEScheduler",
    "dpm": "DPMSolverSinglestepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "pndm": "PNDMScheduler",
    "deis": "DEISMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
}


def make_diffusers_scheduler(name: str, schedule: DiffusionSchedule, prediction_type: str = "epsilon", **kwargs):
    """A diffusers scheduler by short name (or class name) over exactly our betas."""
    import diffusers

    cls_name = SCHEDULERS.get(name, name)
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not cls_name.endswith("Scheduler"):
        raise ValueError(f"unknown scheduler {name!r}; accepted: {sorted(SCHEDULERS)} or a diffusers scheduler class name")
    cfg = dict(num_train_timesteps=schedule.T, trained_betas=schedule.betas.float().numpy().tolist(),
               prediction_type=prediction_type)
    if "clip_sample" in cls.__init__.__code__.co_varnames:
        cfg["clip_sample"] = False
    if "timestep_spacing" in cls.__init__.__code__.co_varnames:
        cfg["timestep_spacing"] = "trailing"
    cfg.update(kwargs)
    return cls(**cfg)


@torch.no_grad()
def sample_diffusers(model: ModelFn, shape, schedule: DiffusionSchedule, *, scheduler: str = "dpm++", steps: int = 20,
                     generator: torch.Generator | None = None, callback: Callback = None, x_T: Tensor | None = None,
                     prediction_type: str = "epsilon", known=None, device=None, **scheduler_kwargs) -> Tensor:
    """Run any diffusers scheduler: x ← init_noise_sigma·z; per step scale_model_input → model → scheduler.step."""
    sched = scheduler if not isinstance(scheduler, str) else make_diffusers_scheduler(
        scheduler, schedule, prediction_type, **scheduler_kwargs)
    device = device or (x_T.device if x_T is not None else "cpu")
    sched.set_timesteps(steps, device=device)
    x = (x_T if x_T is not None else _noise(shape, generator, device)) * sched.init_noise_sigma
    timesteps = sched.timesteps
    step_kwargs = {"generator": generator} if "generator" in sched.step.__code__.co_varnames else {}
    for i, t in enumerate(timesteps):
        x_in = sched.scale_model_input(x, t)
        pred = model(x_in, t.expand(x.shape[0]).to(device))
        x = sched.step(pred, t, x, **step_kwargs).prev_sample
        if known is not None:
            last = i + 1 == len(timesteps)
            t_next = timesteps[i + 1:i + 2]
            x = _constrain(x, known, lambda x0: x0 if last else sched.add_noise(
                x0, _noise(x0.shape, generator, x0.device, x0.dtype), t_next))
        if callback is not None:
            callback(i, len(timesteps), x)
    return x


def sample(model: ModelFn, shape, schedule: DiffusionSchedule, *, sampler: str = "ddim", steps: int = 50,
           eta: float = 0.0, **kw) -> Tensor:
    """Dispatch: 'ddpm-ancestral' and 'ddim-eta' are our own loops (the note's formulas); anything else goes through
    diffusers by name (ddpm, ddim, dpm++, unipc, euler, …)."""
    if sampler == "ancestral":
        return sample_ddpm(model, shape, schedule, steps=steps, **kw)
    if sampler == "ddim-eta":
        return sample_ddim(model, shape, schedule, steps=steps, eta=eta, **kw)
    return sample_diffusers(model, shape, schedule, scheduler=sampler, steps=steps, **kw)
