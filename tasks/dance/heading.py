"""Fill the body's heading where the network is unsure of it.

The root rotation is predicted in the 6-D representation (two columns of the matrix, orthonormalised by Gram-Schmidt,
`skeleton.rotation_6d_to_matrix`). The second column (the pelvis' up axis) always comes out at unit length; the first
(its sideways axis, i.e. the heading) comes out short where the network does not know which way the dancer faces -- an
x₀-prediction averages the headings it finds plausible (mid-turn, or which of two turns) -- down to |a₁| ≈ 0.04 on the
tuning songs, and there its direction is noise: the pelvis flips by 45-160° from one frame to the next (77 such frames
over six 30-s tuning songs, seeds 800000-800005), swinging the legs with it.

`fill_uncertain_heading` keeps every frame whose first column is at least `min_norm` long and, between them, replaces
the first column by the linear interpolation of its neighbours' unit vectors (normalised again by Gram-Schmidt): the
dancer turns smoothly from the last heading it was sure of to the next. On the tuning songs (min_norm 0.7, chosen there
among 0.3 / 0.5 / 0.7): root steps > 45° per frame 77 → 23, 99th-percentile ankle speed 0.105 → 0.088 m/frame, BAS
0.517 → 0.529, though PFC rises 15.3x → 15.8x the ground truth's (`python -m research.dance_heading_fill`,
reports/dance_heading_fill.json). Runs before the rest pass and the foot lock.
"""
from __future__ import annotations

import numpy as np

MIN_NORM = 0.7


def fill_uncertain_heading(motion: np.ndarray, min_norm: float = MIN_NORM, joint: int = 0) -> np.ndarray:
    """`motion` (N, 151) with `joint`'s first 6-D column interpolated across frames where it is shorter than
    `min_norm` (unchanged when every frame is sure, or none is)."""
    m = np.array(motion, np.float32)
    if m.ndim != 2 or m.shape[1] < 7 + 6 * (joint + 1):
        raise ValueError(f"fill_uncertain_heading: motion must be (N, 151), got {m.shape}")
    sl = slice(7 + 6 * joint, 7 + 6 * joint + 3)
    a = m[:, sl].astype(np.float64)
    n = np.linalg.norm(a, axis=1)
    sure = n >= min_norm
    if sure.all() or not sure.any():
        return m
    u = a / np.maximum(n, 1e-12)[:, None]
    t, idx = np.arange(len(a)), np.flatnonzero(sure)
    filled = np.stack([np.interp(t, idx, u[idx, d]) for d in range(3)], 1)
    a[~sure] = filled[~sure]
    m[:, sl] = a
    return m
