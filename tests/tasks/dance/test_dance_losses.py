"""EDGE's geometric losses (tasks.dance.losses) on real synthetic motion."""
import numpy as np
import pytest
import torch

from tasks.dance import skeleton as sk
from tasks.dance.losses import EDGE_WEIGHTS, geometric_losses, make_aux_loss
from tasks.dance.synth import make_pair


@pytest.fixture(scope="module")
def motion():
    d = make_pair(3, 6.0)["dance"]
    m = torch.from_numpy(sk.pack_motion(d["contacts"], d["root_pos"], d["rotations"]).astype(np.float32))
    x = m[:150].T[None]  # (1, 151, 150), unnormalised
    mean, std = x.mean((0, 2)), x.std((0, 2)).clamp_min(1e-2)
    return (x - mean[:, None]) / std[:, None], mean, std


def test_zero_on_the_data_and_feet_planted(motion):
    x, mean, std = motion
    terms = geometric_losses(x, x, mean, std)
    assert terms["velocity"] == 0 and terms["fk"] == 0
    assert terms["foot"] < 1e-8  # the synthetic dancer's feet do not move while in contact


def test_each_term_sees_its_error(motion):
    x, mean, std = motion
    g = torch.Generator().manual_seed(0)
    jitter = x + 0.05 * torch.randn(x.shape, generator=g)
    t = geometric_losses(jitter, x, mean, std)
    assert t["velocity"] > 1e-3 and t["fk"] > 0 and t["foot"] > 0
    # a constant offset of the root translation moves no frame difference and no root-relative joint
    shifted = x.clone()
    shifted[:, 4:7] += 1.0
    t = geometric_losses(shifted, x, mean, std)
    assert t["velocity"] < 1e-10 and t["fk"] < 1e-10
    # sliding feet while the model says "contact" is penalised; the same slide without contact is not
    slide = x.clone()
    slide[:, 4] += torch.linspace(0, 5, x.shape[-1]) / std[4]  # root drifts 5 m sideways
    on, off = slide.clone(), slide.clone()
    on[:, :4], off[:, :4] = (1 - mean[:4, None]) / std[:4, None], (0 - mean[:4, None]) / std[:4, None]
    assert geometric_losses(on, x, mean, std)["foot"] > 1e-4
    assert geometric_losses(off, x, mean, std)["foot"] == 0


def test_aux_loss_weights_and_gradients(motion):
    x, mean, std = motion

    class M:
        motion_mean, motion_std = mean, std
    assert make_aux_loss(M, {"velocity": 0, "fk": 0, "foot": 0}) is None
    with pytest.raises(ValueError, match="accepted"):
        make_aux_loss(M, {"speed": 1.0})
    aux = make_aux_loss(M, EDGE_WEIGHTS)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).requires_grad_()
    loss = aux(x_hat, x, torch.tensor([10]))
    terms = geometric_losses(x_hat, x, mean, std)
    assert torch.allclose(loss, sum(EDGE_WEIGHTS[k] * terms[k] for k in terms))
    loss.backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
