"""Rest in silence: where the music stops, the dancer idles instead of dancing on.

The network hears silence rarely in training (the v2 world's songs play throughout; the v2s world with silences was
tried and not shipped, reports/dance_eval_world_v2s.json), and on the silence probe it keeps ~27 % of its dancing
motion through 8 s of silence (the choreographer's ground truth: ~2 %). This post-pass, like the foot lock, fixes what
users see without touching the network:

- **silent frames** (`silent_frames`): the mean mel-band level (MFCC c0 / √128, column 1 of the EDGE features) is more
  than `below_db` (35 dB) under the clip's 95th percentile, in runs of at least `min_seconds` (1 s); a quiet passage
  of music is 10-20 dB under the loud ones, digital silence ~80 dB (librosa's floor);
- **rest** (`rest_in_silence`): there, the motion (all 151 channels: contacts, root, 6-D rotations) is blended into its
  own Gaussian low-pass (σ = 0.5 s: beat-rate motion removed, a slow sway and the drift of the weight kept), with a
  0.3-s ramp in and out, so the dance settles at the silence and starts again with the music. The 6-D rotations are
  re-orthonormalised by `skeleton.unpack_motion` as always; the foot lock runs after this.
"""
from __future__ import annotations

import numpy as np

from .footlock import _segments

FPS = 30
BELOW_DB = 35.0      # silent: this many dB under the clip's 95th-percentile mean mel-band level ...
MIN_SECONDS = 1.0    # ... for at least this long
SIGMA_SECONDS = 0.5  # the low-pass the motion settles into
RAMP_SECONDS = 0.3   # blend in / out


def silent_frames(features: np.ndarray, below_db: float = BELOW_DB, min_seconds: float = MIN_SECONDS,
                  fps: int = FPS) -> np.ndarray:
    """(N,) bool: frames in runs of ≥ `min_seconds` whose mean mel-band level is `below_db` under the clip's top."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[1] < 2:
        raise ValueError(f"silent_frames: features must be (N, ≥2) EDGE music features, got {f.shape}")
    level = f[:, 1] / np.sqrt(128.0)  # MFCC c0 (orthonormal DCT over 128 mel bands) = √128 · mean band dB
    quiet = level < np.percentile(level, 95) - below_db
    out = np.zeros(len(quiet), bool)
    n_min = max(1, int(round(min_seconds * fps)))
    for a, b in _segments(quiet):
        if b - a >= n_min:
            out[a:b] = True
    return out


def rest_weight(silent: np.ndarray, ramp_seconds: float = RAMP_SECONDS, fps: int = FPS) -> np.ndarray:
    """(N,) in [0, 1]: 1 inside silent runs, ramping linearly from 0 at a run's first frame over `ramp_seconds` (and
    back to 0 at its last), 0 elsewhere."""
    s = np.asarray(silent, bool)
    w = np.zeros(len(s))
    ramp = max(1, int(round(ramp_seconds * fps)))
    for a, b in _segments(s):
        i = np.arange(b - a)
        w[a:b] = np.minimum(1.0, np.minimum(i + 1, b - a - i) / ramp)
    return w


def settle(motion: np.ndarray, weight: np.ndarray, sigma_seconds: float = SIGMA_SECONDS, fps: int = FPS) -> np.ndarray:
    """`motion` (N, D) blended frame by frame into its own Gaussian low-pass (σ = `sigma_seconds`) by `weight` (N,) in
    [0, 1] (0: unchanged, 1: the low-pass); the motion itself when the weight is 0 everywhere."""
    from scipy.ndimage import gaussian_filter1d

    m = np.asarray(motion, np.float32)
    if m.ndim != 2:
        raise ValueError(f"settle: motion must be (N, D), got {m.shape}")
    w = np.zeros(len(m))
    w[:min(len(m), len(weight))] = np.clip(np.asarray(weight, np.float64)[:len(m)], 0.0, 1.0)
    if not w.any():
        return m
    low = gaussian_filter1d(m.astype(np.float64), sigma_seconds * fps, axis=0, mode="nearest")
    return ((1.0 - w[:, None]) * m + w[:, None] * low).astype(np.float32)


def silence_weight(features: np.ndarray, n: int, fps: int = FPS, **silence_kw) -> np.ndarray:
    """(n,) rest weight of `rest_weight(silent_frames(features))`, cut or zero-padded to the motion's n frames."""
    silent = silent_frames(features, fps=fps, **silence_kw)
    w = np.zeros(n)
    k = min(n, len(silent))
    w[:k] = rest_weight(silent[:k], fps=fps)
    return w


def rest_in_silence(motion: np.ndarray, features: np.ndarray, sigma_seconds: float = SIGMA_SECONDS,
                    fps: int = FPS, **silence_kw) -> np.ndarray:
    """`motion` (N, D) with its silent frames (from `features`, (N', 35+)) settled into the motion's own low-pass;
    unchanged where the music plays (and entirely when it never stops)."""
    m = np.asarray(motion, np.float32)
    if m.ndim != 2:
        raise ValueError(f"rest_in_silence: motion must be (N, D), got {m.shape}")
    return settle(m, silence_weight(features, len(m), fps=fps, **silence_kw), sigma_seconds, fps)
