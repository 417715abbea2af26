"""Image/sequence quality metrics. Every number is computed; what cannot be computed here is reported as unavailable.

- `ssim`, `psnr`, `rmse`, `l1`: per-pair fidelity, each → (N,). SSIM is torchmetrics' (Wang et al. 2004, Gaussian
  window 11, σ 1.5, data range 1, the map over the whole image with a reflection-padded border). Inputs are in
  `value_range` (default (−1, 1), the models' range; (0, 1) for images already on the [0, 1] scale, e.g. the
  calligraphy glyphs), clamped to it and mapped to [0, 1]; `rmse`/`l1` also take value_range=None: the raw values,
  no clamping or rescaling (the research code's errors on the [−1, 1] scale).
- `gen.metrics` is the suite's one SSIM / RMSE / Fréchet-distance implementation (tasks and research call it).
- `frechet_distance(feats_a, feats_b)`: ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½) over any feature extractor (FID when
  the features are Inception pool3). `fid_inception` needs torchmetrics' FID weights at a user-given path
  (`GEN_INCEPTION_WEIGHTS` or `weights=`): none can be downloaded here, so without them it returns `unavailable(...)`.
- `lpips(...)` likewise needs backbone weights at a user-given path; otherwise `unavailable(...)`.
Tasks pass their own trained feature networks to `frechet_distance` and label the number accordingly.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from scipy import linalg
from torch import Tensor


def unavailable(reason: str) -> dict:
    """The value a metric reports when it could not be computed (never a made-up number)."""
    return {"value": None, "unavailable": reason}


def _to01(x: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """x in value_range → [0, 1] (clamped first); with (0, 1) in-range values stay bit for bit the same."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return (x.float().clamp(lo, hi) - lo) / (hi - lo)


def _diff(a: Tensor, b: Tensor, value_range) -> Tensor:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a - b if value_range is None else _to01(a, value_range) - _to01(b, value_range)


def ssim(a: Tensor, b: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Per-image SSIM of (N, C, H, W) images in `value_range` → (N,), on the [0, 1] scale (data range 1)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(_to01(a, value_range), _to01(b, value_range), data_range=1.0,
                                               reduction="none")


def rmse(a: Tensor, b: Tensor, value_range: tuple[float, float] | None = (-1.0, 1.0)) -> Tensor:
    """Per-sample root mean squared error → (N,): on the [0, 1] scale, or of the raw values with value_range=None."""
    return _diff(a, b, value_range).pow(2).flatten(1).mean(1).sqrt()


def l1(a: Tensor, b: Tensor, value_range: tuple[float, float] | None = (-1.0, 1.0)) -> Tensor:
    """Per-sample mean absolute error → (N,): on the [0, 1] scale, or of the raw values with value_range=None."""
    return _diff(a, b, value_range).abs().flatten(1).mean(1)


def psnr(a: Tensor, b: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Per-sample PSNR in dB on the [0, 1] scale → (N,)."""
    return -20 * torch.log10(rmse(a, b, value_range).clamp(min=1e-8))


def frechet_distance(feats_a: Tensor | np.ndarray, feats_b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (Heusel et al. 2017, eq. 6)."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("need at least 2 samples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():  # regularise a singular product (Heusel et al.'s reference code does the same)
        eps = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def fid_inception(real: Tensor, fake: Tensor, weights: str | None = None) -> dict:
    """Inception-v3 FID via torchmetrics when its FID weights file exists at `weights` or $GEN_INCEPTION_WEIGHTS."""
    path = weights or os.environ.get("GEN_INCEPTION_WEIGHTS")
    if not path or not os.path.exists(path):
        return unavailable("Inception weights not supplied (set GEN_INCEPTION_WEIGHTS to pt_inception-2015-12-05 "
                           "weights); FID in Inception space not computed")
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=path)
    for x, real_flag in ((real, True), (fake, False)):
        x = _to01(x)
        fid.update(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x, real=real_flag)
    return {"value": float(fid.compute())}


def lpips(a: Tensor, b: Tensor, weights: str | None = None) -> dict:
    """Mean LPIPS (AlexNet) via torchmetrics when `weights` / $GEN_LPIPS_WEIGHTS names a TORCH_HOME folder that holds
    hub/checkpoints/alexnet-owt-7be5be79.pth (torchvision's ImageNet AlexNet); otherwise unavailable (no downloads)."""
    home = weights or os.environ.get("GEN_LPIPS_WEIGHTS")
    ckpt = os.path.join(home or "", "hub", "checkpoints", "alexnet-owt-7be5be79.pth")
    if not home or not os.path.exists(ckpt):
        return unavailable("LPIPS backbone weights not supplied (set GEN_LPIPS_WEIGHTS to a TORCH_HOME folder with "
                           "hub/checkpoints/alexnet-owt-7be5be79.pth); LPIPS not computed")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    os.environ["TORCH_HOME"] = home
    metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
    a3, b3 = (_to01(x).expand(-1, 3, -1, -1) if x.shape[1] == 1 else _to01(x) for x in (a, b))
    return {"value": float(metric(a3, b3))}
