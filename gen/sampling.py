"""Samplers: pure functions that take the model as an argument, and the one registry of sampler names.

Every sampler has the signature ``sampler(model, shape, schedule, *, steps, generator, callback, ...) -> x_0`` where
``model(x_t, t) -> prediction`` is any callable (conditioning and guidance are closed over, see `gen.guidance`), ``t`` a
(B,) tensor of timesteps, and the prediction is ε, v or x_0 according to ``prediction_type``.

``known=(x0_known, mask)`` turns any sampler into a masked (in-painting / in-betweening) sampler: after every step the
entries where mask = 1 are replaced by the given data noised to the current level (the "replacement" method; Song et
al. 2021, Lugmayr et al. 2022), and by the data itself at the end. ``known`` may instead be a callable
``constraint(x, renoise) -> x`` applied after every step, where ``renoise(x0)`` returns ``x0`` noised to the level of
the current ``x`` (``x0`` itself after the last step): a general projection, e.g. tying overlapping windows of a batch
together (EDGE's long-form sampling, `tasks.dance.pipeline`).

Devices: a sampler works on ``device`` if given, else on ``x_T``'s device, else on the model's (`infer_device`: a
``device`` attribute, as diffusers models and `gen.guidance.guided_model` carry, or an nn.Module's first parameter),
else on the CPU. Every tensor it makes (noise, timesteps, the known data and mask) is on that device. Noise is drawn on
the generator's own device and moved (as diffusers' ``randn_tensor`` does), so CPU generators give the same numbers
whatever device the model runs on.

The registry (`SAMPLERS`, `sampler_table()`, `check_sampler`; `sample` dispatches on it): each name is one sampler.
``steps`` ranges are for a T-step schedule; "spacing" is how the visited timesteps are spread (see `make_timesteps`;
diffusers' own default for its schedulers, "linspace" being round(linspace(0, T − 1, steps)) reversed); "model calls"
counts evaluations per sampling run.

| name | sampler | stochastic | `steps` (over a T-step schedule) | spacing | model calls |
|---|---|---|---|---|---|
| `ancestral` | the project's DDPM loop `sample_ddpm` (Ho et al. 2020, Algorithm 2) | yes | 1…T; None = T: exactly Algorithm 2; fewer: the skipped-step generalisation | trailing | steps |
| `ddim-eta` | the project's DDIM σ-family loop `sample_ddim` (Song et al. 2021, eq. 12/16); eta = 0 (default) is deterministic DDIM, eta = 1 DDPM's posterior variance | if eta > 0 | 1…T; timesteps visited | trailing | steps |
| `ddpm` | diffusers `DDPMScheduler` (ancestral DDPM, fixed-small variance; clips x̂_0 to [−1, 1]) | yes | 1…T; inference steps, set_timesteps(steps) | leading | steps |
| `ddim` | diffusers `DDIMScheduler` (clips x̂_0 to [−1, 1]); eta goes to its step | if eta > 0 | 1…T; inference steps, set_timesteps(steps) | leading | steps |
| `dpm++` | diffusers `DPMSolverMultistepScheduler` (DPM-Solver++ 2M; at its defaults run by `DPMSolverPP2M`, the same arithmetic without importing diffusers' scheduler module) | no | 1…T−1; inference steps, set_timesteps(steps) | linspace | steps |
| `dpm++sde` | diffusers `DPMSolverSDEScheduler` (needs the torchsde package); its Brownian tree is seeded from the generator(s) and draws on the model's device | yes | 1…T; inference steps, set_timesteps(steps) | linspace | 2·steps − 1 |
| `dpm` | diffusers `DPMSolverSinglestepScheduler` | no | 1…T; inference steps, set_timesteps(steps) | linspace | steps |
| `unipc` | diffusers `UniPCMultistepScheduler` | no | 1…T−1; inference steps, set_timesteps(steps) | linspace | steps |
| `euler` | diffusers `EulerDiscreteScheduler` | no | 1…T; inference steps, set_timesteps(steps) | linspace | steps |
| `euler_a` | diffusers `EulerAncestralDiscreteScheduler` | yes | 1…T; inference steps, set_timesteps(steps) | linspace | steps |
| `heun` | diffusers `HeunDiscreteScheduler` (2nd order) | no | 1…T; inference steps, set_timesteps(steps) | linspace | 2·steps − 1 |
| `pndm` | diffusers `PNDMScheduler` (Runge–Kutta warm-up, then linear multistep) | no | 4…T−1; inference steps, set_timesteps(steps) | leading | steps + 9 |
| `deis` | diffusers `DEISMultistepScheduler` | no | 1…T−1; inference steps, set_timesteps(steps) | linspace | steps |
| `lms` | diffusers `LMSDiscreteScheduler` | no | 1…T; inference steps, set_timesteps(steps) | linspace | steps |

A diffusers class name is accepted as the same sampler as its short name (``DDIMScheduler`` is ``ddim``); other
diffusers schedulers are not accepted by name (pass an instance to `sample_diffusers` to run one).
"""
from __future__ import annotations

import importlib.util
import inspect
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from .guidance import model_device
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


def infer_device(model=None, x_T: Tensor | None = None, device=None) -> torch.device:
    """Where a sampler works: `device` if given, else x_T's, else the model's (`gen.guidance.model_device`), else CPU."""
    if device is not None:
        return torch.device(device)
    if x_T is not None:
        return x_T.device
    return model_device(model) or torch.device("cpu")


def _randn(shape, generator: torch.Generator | None, device, dtype) -> Tensor:
    """N(0, I) on `device`, drawn on the generator's own device and moved there (diffusers' randn_tensor does the same),
    so a CPU generator gives the same numbers whatever device the model runs on."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def _noise(shape, generator, device, dtype=torch.float32) -> Tensor:
    """Standard normal noise on `device`; `generator` is one torch.Generator, or a list with one per sample (as in
    diffusers' randn_tensor) so that sample i's noise depends only on its own generator, not on the batch it is drawn
    in. Each generator draws on its own device (see `_randn`)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per sample")
        return torch.cat([_randn((1, *shape[1:]), g, device, dtype) for g in generator])
    return _randn(shape, generator, device, dtype)


def _start(shape, generator, x_T: Tensor | None, device: torch.device) -> Tensor:
    return x_T.to(device) if x_T is not None else _noise(shape, generator, device)


def _known_to(known, device: torch.device):
    """The known data and mask on the sampling device (a constraint callable is left as it is)."""
    if known is None or callable(known):
        return known
    x0_known, mask = known
    return torch.as_tensor(x0_known, device=device), torch.as_tensor(mask, device=device)


def _apply_known(x: Tensor, known, schedule: DiffusionSchedule, t_prev: int, generator) -> Tensor:
    if known is None:
        return x

    def renoise(x0: Tensor) -> Tensor:
        x0 = x0.to(x.device)
        if t_prev < 0:
            return x0
        # the timestep as a plain index: q_sample looks it up in the schedule's own (CPU) table, then moves the values
        return schedule.q_sample(x0, t_prev, _noise(x0.shape, generator, x.device, x0.dtype))
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
    device = infer_device(model, x_T, device)
    ts = make_timesteps(schedule.T, steps or schedule.T, spacing)
    x = _start(shape, generator, x_T, device)
    known = _known_to(known, device)
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
    device = infer_device(model, x_T, device)
    ts = make_timesteps(schedule.T, steps, spacing)
    x = _start(shape, generator, x_T, device)
    known = _known_to(known, device)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps, x0 = _predict(model, x, t, schedule, prediction_type, clip_x0)
        z = _noise(x.shape, generator, x.device, x.dtype) if eta > 0 and t_prev >= 0 else None
        x = ddim_step(eps, x, t, t_prev, schedule, eta, z, x0)
        x = _apply_known(x, known, schedule, t_prev, generator)
        if callback is not None:
            callback(i, len(ts), x)
    return x


# ---- the registry: one name, one sampler ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler. `steps` says how the `steps` argument is read; `calls` how many model evaluations a run
    makes; accepted steps are `min_steps` … T − `below_T` (`steps_range`)."""

    name: str
    description: str
    stochastic: bool               # draws fresh noise at every step (at eta = 0 where the sampler takes eta)
    steps: str
    calls: str = "steps"
    spacing: str = "linspace"      # how the timesteps are spread (diffusers' default for its schedulers)
    backend: str = "diffusers"     # "project" (our own loops) or "diffusers"
    scheduler_class: str | None = None
    takes_eta: bool = False        # eta > 0 makes it stochastic
    min_steps: int = 1
    below_T: int = 0               # 1 where steps = T is broken (NaN or far off the data)
    requires: str | None = None    # an optional package it needs

    def steps_range(self, T: int) -> tuple[int, int]:
        return self.min_steps, T - self.below_T

    def is_stochastic(self, eta: float = 0.0) -> bool:
        return self.stochastic or (self.takes_eta and eta > 0)


_D = "inference steps, set_timesteps(steps)"
SAMPLERS: dict[str, SamplerSpec] = {s.name: s for s in [
    SamplerSpec("ancestral", "the project's DDPM loop `sample_ddpm` (Ho et al. 2020, Algorithm 2)", True,
                "None = T: exactly Algorithm 2; fewer: the skipped-step generalisation", spacing="trailing",
                backend="project"),
    SamplerSpec("ddim-eta", "the project's DDIM σ-family loop `sample_ddim` (Song et al. 2021, eq. 12/16); eta = 0 "
                "(default) is deterministic DDIM, eta = 1 DDPM's posterior variance", False,
                "timesteps visited", spacing="trailing", backend="project", takes_eta=True),
    SamplerSpec("ddpm", "diffusers `DDPMScheduler` (ancestral DDPM, fixed-small variance; clips x̂_0 to [−1, 1])",
                True, _D, spacing="leading", scheduler_class="DDPMScheduler"),
    SamplerSpec("ddim", "diffusers `DDIMScheduler` (clips x̂_0 to [−1, 1]); eta goes to its step", False, _D,
                spacing="leading", scheduler_class="DDIMScheduler", takes_eta=True),
    SamplerSpec("dpm++", "diffusers `DPMSolverMultistepScheduler` (DPM-Solver++ 2M; at its defaults run by "
                "`DPMSolverPP2M`, the same arithmetic without importing diffusers' scheduler module)", False, _D,
                scheduler_class="DPMSolverMultistepScheduler", below_T=1),
    SamplerSpec("dpm++sde", "diffusers `DPMSolverSDEScheduler` (needs the torchsde package); its Brownian tree is "
                "seeded from the generator(s) and draws on the model's device", True, _D, "2·steps − 1",
                scheduler_class="DPMSolverSDEScheduler",
                requires="torchsde"),
    SamplerSpec("dpm", "diffusers `DPMSolverSinglestepScheduler`", False, _D,
                scheduler_class="DPMSolverSinglestepScheduler"),
    SamplerSpec("unipc", "diffusers `UniPCMultistepScheduler`", False, _D, scheduler_class="UniPCMultistepScheduler",
                below_T=1),
    SamplerSpec("euler", "diffusers `EulerDiscreteScheduler`", False, _D, scheduler_class="EulerDiscreteScheduler"),
    SamplerSpec("euler_a", "diffusers `EulerAncestralDiscreteScheduler`", True, _D,
                scheduler_class="EulerAncestralDiscreteScheduler"),
    SamplerSpec("heun", "diffusers `HeunDiscreteScheduler` (2nd order)", False, _D, "2·steps − 1",
                scheduler_class="HeunDiscreteScheduler"),
    SamplerSpec("pndm", "diffusers `PNDMScheduler` (Runge–Kutta warm-up, then linear multistep)", False, _D,
                "steps + 9", spacing="leading", scheduler_class="PNDMScheduler", min_steps=4, below_T=1),
    SamplerSpec("deis", "diffusers `DEISMultistepScheduler`", False, _D, scheduler_class="DEISMultistepScheduler",
                below_T=1),
    SamplerSpec("lms", "diffusers `LMSDiscreteScheduler`", False, _D, scheduler_class="LMSDiscreteScheduler"),
]}
del _D

# short name → diffusers class name (kept for callers that list or look up the diffusers samplers)
SCHEDULERS: dict[str, str] = {n: s.scheduler_class for n, s in SAMPLERS.items() if s.scheduler_class}
_CLASS_NAMES: dict[str, str] = {c: n for n, c in SCHEDULERS.items()}


def sampler_table() -> str:
    """The registry as a Markdown table (the module docstring holds the same table; the README and `--help` print it)."""
    rows = ["| name | sampler | stochastic | `steps` (over a T-step schedule) | spacing | model calls |",
            "|---|---|---|---|---|---|"]
    for s in SAMPLERS.values():
        lo, hi = s.min_steps, "T" if not s.below_T else f"T−{s.below_T}"
        stoch = "yes" if s.stochastic else "if eta > 0" if s.takes_eta else "no"
        rows.append(f"| `{s.name}` | {s.description} | {stoch} | {lo}…{hi}; {s.steps} | {s.spacing} | {s.calls} |")
    return "\n".join(rows)


def sampler_names() -> str:
    return ", ".join(SAMPLERS)


def _unknown(name) -> ValueError:
    return ValueError(f"unknown sampler {name!r}; accepted: {sampler_names()} (or the diffusers class name of one of "
                      f"them: {', '.join(_CLASS_NAMES)}); see gen.sampling.sampler_table()")


def resolve_sampler(name: str) -> SamplerSpec:
    """The registered sampler a name means: a short name, or the diffusers class name of a registered one."""
    if isinstance(name, str):
        spec = SAMPLERS.get(name) or SAMPLERS.get(_CLASS_NAMES.get(name, ""))
        if spec is not None:
            return spec
    raise _unknown(name)


def check_sampler(name: str, steps, T: int) -> tuple[SamplerSpec, int]:
    """Validate a sampler name and step count for a T-step schedule; return (spec, steps) with steps resolved
    (`ancestral` with steps=None is T). Raises ValueError naming the accepted names or the accepted range."""
    spec = resolve_sampler(name)
    if steps is None and spec.name == "ancestral":
        steps = T
    lo, hi = spec.steps_range(T)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"steps must be an int in [{lo}, {hi}] for sampler {spec.name!r} over T={T}"
                         f"{' (or None for T)' if spec.name == 'ancestral' else ''}, got {steps!r}")
    if not lo <= steps <= hi:
        why = f"; {spec.name} needs at least {lo}" if lo > 1 else ""
        why += f"; {spec.name} breaks at steps = T" if spec.below_T else ""
        raise ValueError(f"steps must be in [{lo}, {hi}] for sampler {spec.name!r} over T={T}{why}, got {steps}")
    return spec, int(steps)


# ---- any diffusers scheduler ---------------------------------------------------------------------------------------
def _params(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


def make_diffusers_scheduler(name: str, schedule: DiffusionSchedule, prediction_type: str = "epsilon", **kwargs):
    """A diffusers scheduler by short name (or the class name of a registered one) over exactly our betas."""
    spec = resolve_sampler(name)
    if spec.scheduler_class is None:
        raise ValueError(f"sampler {spec.name!r} is the project's own loop, not a diffusers scheduler; run it with "
                         f"gen.sampling.sample(sampler={spec.name!r}); diffusers samplers: {', '.join(SCHEDULERS)}")
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise ImportError(f"sampler {spec.name!r} ({spec.scheduler_class}) needs the {spec.requires} package: "
                          f"pip install {spec.requires}")
    import diffusers

    cls = getattr(diffusers, spec.scheduler_class)
    # Everything else is diffusers' default for the class, as these names have always run: spacing "leading" for
    # ddpm/ddim/pndm and "linspace" for the rest, and x̂_0 clipped to [−1, 1] in ddpm/ddim (clip_sample=True). (An
    # earlier version meant to set trailing spacing and clip_sample=False, but looked the parameters up in
    # cls.__init__.__code__, which diffusers' register_to_config wrapper hides, so it never did.) Pass
    # timestep_spacing= / clip_sample= as keywords to choose otherwise.
    cfg = dict(num_train_timesteps=schedule.T, trained_betas=schedule.betas.float().numpy().tolist(),
               prediction_type=prediction_type)
    cfg.update(kwargs)
    return cls(**cfg)


class DPMSolverPP2M:
    """DPM-Solver++(2M) (Lu et al. 2022) exactly as diffusers' `DPMSolverMultistepScheduler` runs it at its defaults
    (data prediction, midpoint, first-order first and last steps, "linspace" timesteps, final σ = 0), written out so
    that the `dpm++` sampler does not import diffusers' scheduler module (and scipy.stats with it: ~1.4 s of a CLI's
    start-up on this CPU). Same interface as a diffusers scheduler for `sample_diffusers`; the same float32 arithmetic,
    so it matches diffusers to float rounding (tests/gen/test_schedule_sampling.py). Any other constructor keyword runs
    diffusers' own class instead."""

    init_noise_sigma = 1.0

    def __init__(self, schedule: DiffusionSchedule, prediction_type: str = "epsilon"):
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type {prediction_type!r}; accepted: 'epsilon', 'v_prediction', 'sample'")
        self.T, self.prediction_type = schedule.T, prediction_type
        betas = torch.tensor(schedule.betas.float().cpu().numpy().tolist(), dtype=torch.float32, device="cpu")
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def set_timesteps(self, steps: int, device=None) -> None:
        import numpy as np

        ts = np.linspace(0, self.T - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
        sig = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sig = np.interp(ts, np.arange(0, len(sig)), sig)
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(ts).to(device=device, dtype=torch.int64)
        self._i, self._prev = 0, None

    def scale_model_input(self, x: Tensor, t) -> Tensor:
        return x

    @staticmethod
    def _alpha_sigma(sigma: Tensor) -> tuple[Tensor, Tensor]:
        alpha = 1 / ((sigma ** 2 + 1) ** 0.5)
        return alpha, sigma * alpha

    def step(self, pred: Tensor, t, x: Tensor, **_):
        i, n = self._i, len(self.timesteps)
        a_s0, s_s0 = self._alpha_sigma(self.sigmas[i])
        if self.prediction_type == "epsilon":
            x0 = (x - s_s0 * pred) / a_s0
        elif self.prediction_type == "v_prediction":
            x0 = a_s0 * x - s_s0 * pred
        else:
            x0 = pred
        sample = x.to(torch.float32)
        a_t, s_t = self._alpha_sigma(self.sigmas[i + 1])
        lam = lambda a, s: torch.log(a) - torch.log(s)  # noqa: E731
        lam_s0 = lam(a_s0, s_s0)
        h = lam(a_t, s_t) - lam_s0
        coef = a_t * (torch.exp(-h) - 1.0)
        out = (s_t / s_s0) * sample - coef * x0  # first order (DDIM in λ): the first step and, to σ = 0, the last
        if self._prev is not None and i < n - 1:  # midpoint second-order correction from the previous x̂_0
            a_s1, s_s1 = self._alpha_sigma(self.sigmas[i - 1])
            r0 = (lam_s0 - lam(a_s1, s_s1)) / h
            out = out - 0.5 * coef * ((1.0 / r0) * (x0 - self._prev))
        self._prev, self._i = x0, i + 1
        return _StepOutput(out.to(x0.dtype))

    def add_noise(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        idx = [int((self.timesteps.cpu() == int(t)).nonzero()[0]) for t in timesteps]
        sigma = self.sigmas.to(device=x0.device, dtype=x0.dtype)[idx].flatten()
        sigma = sigma.view(-1, *[1] * (x0.dim() - 1))
        a, s = self._alpha_sigma(sigma)
        return a * x0 + s * noise


@dataclass
class _StepOutput:
    prev_sample: Tensor


def _seed_from(generator) -> int | list[int] | None:
    """A seed (one per sample for a list of generators) drawn from the generator(s), for schedulers that seed their own
    noise (DPMSolverSDEScheduler's Brownian tree)."""
    if generator is None:
        return None
    draw = lambda g: int(torch.randint(0, 2 ** 63 - 1, (), generator=g, device=g.device))
    return [draw(g) for g in generator] if isinstance(generator, (list, tuple)) else draw(generator)


@torch.no_grad()
def sample_diffusers(model: ModelFn, shape, schedule: DiffusionSchedule, *, scheduler: str = "dpm++", steps: int = 20,
                     generator: torch.Generator | None = None, callback: Callback = None, x_T: Tensor | None = None,
                     prediction_type: str = "epsilon", known=None, device=None, eta: float = 0.0,
                     **scheduler_kwargs) -> Tensor:
    """Run any diffusers scheduler: x ← init_noise_sigma·z; per step scale_model_input → model → scheduler.step.
    `scheduler` is a registered name (checked with its step range, see `check_sampler`) or a scheduler instance."""
    if isinstance(scheduler, str):
        spec, _ = check_sampler(scheduler, steps, schedule.T)
        if spec.name == "dpm++" and not scheduler_kwargs:
            sched = DPMSolverPP2M(schedule, prediction_type)
        else:
            sched = make_diffusers_scheduler(scheduler, schedule, prediction_type, **scheduler_kwargs)
    else:
        sched = scheduler
    step_params = _params(sched.step)
    if eta < 0 or (eta and "eta" not in step_params):
        raise ValueError(f"eta = {eta} is not accepted by {type(sched).__name__} (eta ≥ 0, and only for samplers that "
                         f"take it: {', '.join(n for n, s in SAMPLERS.items() if s.takes_eta)})")
    device = infer_device(model, x_T, device)
    sched.set_timesteps(steps, device=device)
    x = _start(shape, generator, x_T, device) * sched.init_noise_sigma
    known = _known_to(known, device)
    if getattr(sched, "noise_sampler_seed", 0) is None:
        sched.noise_sampler_seed = _seed_from(generator)
    timesteps = sched.timesteps
    step_kwargs = {"generator": generator} if "generator" in step_params else {}
    if eta:
        step_kwargs["eta"] = eta
    for i, t in enumerate(timesteps):
        x_in = sched.scale_model_input(x, t)
        pred = model(x_in, t.expand(x.shape[0]).to(device))
        x = sched.step(pred, t, x, **step_kwargs).prev_sample
        if known is not None:
            last = i + 1 == len(timesteps)
            t_next = timesteps[i + 1:i + 2]
            x = _constrain(x, known, lambda x0: x0.to(x.device) if last else sched.add_noise(
                x0.to(x.device), _noise(x0.shape, generator, x.device, x0.dtype), t_next))
        if callback is not None:
            callback(i, len(timesteps), x)
    return x


def sample(model: ModelFn, shape, schedule: DiffusionSchedule, *, sampler: str = "ddim", steps: int | None = 50,
           eta: float = 0.0, generator=None, callback: Callback = None, x_T: Tensor | None = None,
           prediction_type: str = "epsilon", known=None, device=None, **kw) -> Tensor:
    """Run the sampler a registered name means (see `sampler_table()`); name, steps and eta are checked before any
    work. `ancestral` and `ddim-eta` are our own loops (extra keywords: spacing, clip_x0); every other name is a
    diffusers scheduler (extra keywords go to its constructor). A diffusers scheduler instance is also accepted."""
    if eta < 0:
        raise ValueError(f"eta must be ≥ 0, got {eta}")
    common = dict(generator=generator, callback=callback, x_T=x_T, prediction_type=prediction_type, known=known,
                  device=device)
    if not isinstance(sampler, str) and hasattr(sampler, "step") and hasattr(sampler, "set_timesteps"):
        return sample_diffusers(model, shape, schedule, scheduler=sampler, steps=steps, eta=eta, **common, **kw)
    spec, steps = check_sampler(sampler, steps, schedule.T)
    if eta and not spec.takes_eta:
        raise ValueError(f"sampler {spec.name!r} takes no eta (got {eta}); samplers with eta: "
                         f"{', '.join(n for n, s in SAMPLERS.items() if s.takes_eta)}")
    if spec.name == "ancestral":
        return sample_ddpm(model, shape, schedule, steps=steps, **common, **kw)
    if spec.name == "ddim-eta":
        return sample_ddim(model, shape, schedule, steps=steps, eta=eta, **common, **kw)
    return sample_diffusers(model, shape, schedule, scheduler=spec.name, steps=steps, eta=eta, **common, **kw)


if __name__ == "__main__":  # python -m gen.sampling: the registry table
    print(sampler_table())
