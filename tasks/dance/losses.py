"""EDGE's geometric losses on the model's x_0 estimate (Tseng et al. 2023, eq. 3–6), added to L_simple in training.

With x̂ the model's estimate of the normalised motion (B, 151, T) and x the data:

    L_vel  = ‖Δx̂ − Δx‖²                        frame differences of everything but the contact labels (normalised units)
    L_fk   = ‖(FK(x̂) − FK(x̂)_root) − (FK(x) − FK(x)_root)‖²   root-relative joint positions, metres
    L_foot = ‖(FK(x̂)_{f, t+1} − FK(x̂)_{f, t}) · 1[ĉ_{f, t} > 0.95]‖²   foot joints move not while the model itself
                                                                       predicts contact (ĉ: its contact labels)

EDGE weighs L_simple : L_vel : L_fk : L_foot as 0.636 : 2.964 : 0.646 : 10.942; configs give the three auxiliary
weights relative to L_simple = 1 (`loss.velocity`, `loss.fk`, `loss.foot`; 0 turns a term off). Forward kinematics
runs on the unnormalised motion (the model's mean / std buffers), so L_fk and L_foot are in metres whatever the
normalisation.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from . import skeleton as sk

EDGE_WEIGHTS = {"velocity": 2.964 / 0.636, "fk": 0.646 / 0.636, "foot": 10.942 / 0.636}


def _joints(motion: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 151, T) unnormalised → (contacts (B, T, 4), joints (B, T, 24, 3))."""
    contacts, root, rot = sk.unpack_motion(motion.transpose(1, 2))
    return contacts, sk.forward_kinematics(root, rot)


def geometric_losses(x0_hat: Tensor, x0: Tensor, mean: Tensor, std: Tensor) -> dict[str, Tensor]:
    """The three terms (unweighted) for normalised (B, 151, T) motion and the normalisation (mean, std) (151,)."""
    vel = F.mse_loss(x0_hat[:, 4:, 1:] - x0_hat[:, 4:, :-1], x0[:, 4:, 1:] - x0[:, 4:, :-1])
    c_hat, j_hat = _joints(x0_hat * std[:, None] + mean[:, None])
    with torch.no_grad():
        _, j = _joints(x0 * std[:, None] + mean[:, None])
    fk = F.mse_loss(j_hat[:, :, 1:] - j_hat[:, :, :1], j[:, :, 1:] - j[:, :, :1])
    feet = j_hat[:, :, sk.FOOT_JOINTS]                              # (B, T, 4, 3), contact order
    static = (c_hat[:, :-1] > 0.95).detach().to(feet.dtype)[..., None]
    foot = ((feet[:, 1:] - feet[:, :-1]) * static).pow(2).mean()
    return {"velocity": vel, "fk": fk, "foot": foot}


def make_aux_loss(model, weights: Mapping[str, float]) -> Callable[[Tensor, Tensor, Tensor], Tensor] | None:
    """`TrainTask.aux_loss` for a `DanceModel` (its normalisation buffers), or None when every weight is 0."""
    unknown = set(weights) - set(EDGE_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; accepted: {sorted(EDGE_WEIGHTS)}")
    w = {k: float(v) for k, v in weights.items() if float(v)}
    if not w:
        return None

    def aux(x0_hat: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        terms = geometric_losses(x0_hat, x0, model.motion_mean, model.motion_std)
        return sum(w[k] * terms[k] for k in w)
    return aux
