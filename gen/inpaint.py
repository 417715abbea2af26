"""Edits through a diffusion model: known-region sampling from a partly noised input.

`sample_known` regenerates the pixels where ``known = 0`` and keeps those where ``known = 1``:

1. SDEdit start (Meng et al. 2022): the input is noised to t_start = strength · T, x_{t_start} ~ q(x_t | x_0), so
   strength < 1 keeps the input's coarse layout inside the region too, and strength = 1 starts from pure noise;
2. every step is one DDIM σ-family step (Song et al. 2021, eq. 12; eta = 1 is DDPM's ancestral posterior variance);
3. after every step the known pixels are replaced by the input noised to the new level, the "replacement" method of
   RePaint (Lugmayr et al. 2022) / Song et al. 2021, so the generated region is denoised next to a consistent
   surrounding; after the last step by the input itself, so known pixels come back exactly;
4. optional RePaint resampling (`jumps` > 0): at each step the result is re-noised one step and denoised again
   `jumps` times, which harmonises the region with its surrounding at `jumps`× the cost.

Generic: ``model(x_t, t) -> prediction`` is any callable (guidance closed over, as for gen.sampling); nothing here
knows about tasks.

    x = sample_known(guided, x0, known_mask, schedule, strength=0.8, steps=30, generator=gens,
                     prediction_type="v_prediction")     # x0 (B, C, H, W), known_mask broadcastable, 1 = keep
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .sampling import ddim_step, infer_device, make_timesteps
from .schedule import DiffusionSchedule


def _noise_like(x: Tensor, generator) -> Tensor:
    """N(0, I) shaped like x; `generator` one torch.Generator or one per sample (drawn on its own device)."""
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, (list, tuple)):
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}; pass one per sample")
        return torch.cat([torch.randn((1, *x.shape[1:]), generator=g, device=g.device, dtype=x.dtype).to(x.device)
                          for g in generator])
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _q(schedule: DiffusionSchedule, x0: Tensor, t: int, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε for one integer timestep (t < 0: x_0 itself)."""
    if t < 0:
        return x0
    ab = schedule.alpha_bar[t].item()
    return ab ** 0.5 * x0 + (1 - ab) ** 0.5 * noise


@torch.no_grad()
def sample_known(model: Callable[[Tensor, Tensor], Tensor], x_known: Tensor, known: Tensor,
                 schedule: DiffusionSchedule, *, strength: float = 1.0, steps: int = 50, eta: float = 1.0,
                 generator=None, prediction_type: str = "epsilon", jumps: int = 0, device=None,
                 callback: Optional[Callable[[int, int, Tensor], None]] = None) -> Tensor:
    """Regenerate where `known` = 0, keep where it is 1 (soft values blend). x_known (B, C, *S) in the data range;
    known broadcastable to it; strength in (0, 1]. Returns x_0 (B, C, *S)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if eta < 0:
        raise ValueError(f"eta must be ≥ 0, got {eta}")
    if jumps < 0:
        raise ValueError(f"jumps must be ≥ 0, got {jumps}")
    device = infer_device(model, x_known, device)
    x0 = x_known.to(device, torch.float32)
    m = torch.as_tensor(known, dtype=torch.float32, device=device)
    t_start = max(0, int(round(strength * schedule.T)) - 1)
    ts = [t for t in make_timesteps(schedule.T, steps, "trailing") if t <= t_start]
    if not ts or ts[0] != t_start:
        ts = [t_start] + ts
    # 1. SDEdit start: the input noised to t_start everywhere
    x = _q(schedule, x0, ts[0], _noise_like(x0, generator))

    def denoise(x: Tensor, t: int, t_prev: int) -> Tensor:
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
        eps, x0_hat = schedule.split_prediction(model(x, tt), x, tt, prediction_type)
        z = _noise_like(x, generator) if t_prev >= 0 and eta > 0 else None
        return ddim_step(eps, x, t, t_prev, schedule, eta, z, x0_hat)                           # 2. (DDIM eq. 12)

    def replace_known(x: Tensor, t_prev: int) -> Tensor:
        return m * _q(schedule, x0, t_prev, _noise_like(x0, generator)) + (1 - m) * x          # 3. replacement

    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        for j in range(jumps + 1):
            x_prev = replace_known(denoise(x, t, t_prev), t_prev)
            if j < jumps and t_prev >= 0:  # 4. RePaint resampling: back to level t (q(x_t | x_{t_prev})), again
                ab_t, ab_p = schedule.alpha_bar[t].item(), schedule.alpha_bar[t_prev].item()
                a = ab_t / ab_p
                x = a ** 0.5 * x_prev + (1 - a) ** 0.5 * _noise_like(x_prev, generator)
            else:
                break
        x = x_prev
        if callback is not None:
            callback(i, len(ts), x)
    return x
