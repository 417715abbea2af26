"""Metrics: closed-form checks and the 'unavailable, never made up' contract."""
import numpy as np
import torch

from gen.metrics import fid_inception, frechet_distance, l1, lpips, psnr, rmse, ssim


def test_fidelity_metrics():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(4), atol=1e-5)
    assert torch.equal(rmse(a, a), torch.zeros(4))
    b = (a + 0.2).clamp(-1, 1)
    assert (ssim(a, b) < 1).all()
    c = torch.full_like(a, -1.0)
    d = torch.full_like(a, 1.0)
    assert torch.allclose(rmse(c, d), torch.ones(4)) and torch.allclose(l1(c, d), torch.ones(4))
    assert torch.allclose(psnr(c, torch.full_like(a, 0.0)), torch.full((4,), 20 * np.log10(2)), atol=1e-4)


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    y = rng.normal(size=(20000, 3)) * 2 + np.array([1.0, 0, 0])
    # N(0, I) vs N(μ, 4I): ‖μ‖² + Tr(I + 4I − 2·2I) = 1 + 3
    assert abs(frechet_distance(x, y) - 4.0) < 0.15
    assert abs(frechet_distance(x, x)) < 1e-6


def test_weights_we_cannot_get_are_reported_unavailable(monkeypatch):
    monkeypatch.delenv("GEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GEN_LPIPS_WEIGHTS", raising=False)
    x = torch.zeros(2, 3, 32, 32)
    for r in (fid_inception(x, x), lpips(x, x)):
        assert r["value"] is None and "not computed" in r["unavailable"]
