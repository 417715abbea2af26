"""Dynamics: the dance is as big as the music is loud, relative to the song's own loud passages.

The network's motion energy follows loudness on the synthetic songs (1-s correlation 0.57, the choreographer's 0.54)
but much less on recorded music it never heard (0.41 on the evaluation's clips, 0.36 on the tuning clips): a quiet
intro or a breakdown is danced as hard as the chorus. Like the rest in silence (`tasks.dance.rest`), of which it is
the continuous form, this post-pass fixes what users see without touching the network:

- **relative loudness** r(t) ∈ [0, 1] (`relative_loudness`): the mean mel-band level (MFCC c0 / √128, column 1 of
  the EDGE features), smoothed over `smooth_seconds` (0.5 s), in dB under the clip's 95th percentile, mapped linearly
  from 1 at that top to 0 at `range_db` (20 dB) under it; a song that is equally loud throughout is r ≈ 1 everywhere
  and is left alone;
- **follow loudness** (`loudness_weight`): the motion is blended into its own 0.5-s Gaussian low-pass (the rest's
  `settle`) by depth · (1 − r(t)): at the song's loudest unchanged, 20 dB under it reduced to (1 − depth) of its
  beat-rate motion, the slow sway and the travel kept. depth was chosen on the tuning set only
  (`research/dance_dynamics_sweep.py`, reports/dance_dynamics_sweep.json).
"""
from __future__ import annotations

import numpy as np

FPS = 30
RANGE_DB = 20.0       # r = 0 this many dB under the clip's 95th-percentile level
SMOOTH_SECONDS = 0.5  # Gaussian σ of the level before it is compared


def relative_loudness(features: np.ndarray, range_db: float = RANGE_DB, smooth_seconds: float = SMOOTH_SECONDS,
                      fps: int = FPS) -> np.ndarray:
    """(N,) in [0, 1]: 1 at (and above) the clip's 95th-percentile mean mel-band level, 0 at `range_db` under it."""
    from scipy.ndimage import gaussian_filter1d

    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[1] < 2:
        raise ValueError(f"relative_loudness: features must be (N, ≥2) EDGE music features, got {f.shape}")
    if not range_db > 0:
        raise ValueError(f"relative_loudness: range_db must be > 0, got {range_db}")
    level = f[:, 1] / np.sqrt(128.0)  # MFCC c0 (orthonormal DCT over 128 mel bands) = √128 · mean band dB
    if smooth_seconds > 0:
        level = gaussian_filter1d(level, smooth_seconds * fps, mode="nearest")
    top = np.percentile(level, 95)
    return np.clip((level - (top - range_db)) / range_db, 0.0, 1.0)


def loudness_weight(features: np.ndarray, n: int, depth: float, range_db: float = RANGE_DB,
                    fps: int = FPS) -> np.ndarray:
    """(n,) blend weight into the low-pass: depth · (1 − relative loudness), cut or edge-padded to n frames."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"dynamics depth must be in [0, 1] (0 = off), got {depth}")
    if depth == 0.0 or n == 0:
        return np.zeros(n)
    w = depth * (1.0 - relative_loudness(features, range_db, fps=fps))
    return w[:n] if len(w) >= n else np.r_[w, np.full(n - len(w), w[-1] if len(w) else 0.0)]
