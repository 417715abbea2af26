"""Beat snap: retime the dance so that its kinetic beats land on the music's beats (Davis & Agrawala 2018, "Visual
rhythm and beat", warp the motion in time between matched visual and musical beats).

The network's kinetic beats (local minima of the summed joint speed, as FACT's BAS finds them) follow the beat on the
synthetic songs, but on recorded music it never heard they land on it only a little more often than a dance made for
another song does (BAS 0.59 against 0.49 on the evaluation's clips). This post-pass, after the rest / dynamics and
before the foot lock:

1. finds the motion's kinetic beats (`metrics.motion_beats_fact` on the forward-kinematics joints) and the music's
   beats (the beat one-hot of the features, the same beats the network was given);
2. pairs each music beat with its nearest kinetic beat when they are at most `max_shift` frames apart (one kinetic
   beat per music beat: the nearest);
3. builds a monotone piecewise-linear time warp through the pairs (output frame = the music beat, source frame = the
   kinetic beat; first and last frame fixed), dropping a pair whose segment would play the motion faster than
   `max_rate` or slower than 1 / `max_rate` of its speed;
4. resamples every channel (contacts, root, 6-D rotations) at the warped times by linear interpolation; the 6-D
   rotations are re-orthonormalised by `skeleton.unpack_motion` as always.

The warp's speed changes sit at kinetic beats, where the motion is slowest, so they are hard to see; the length, the
first and the last frame are unchanged. max_shift was chosen on the tuning set only (`research/dance_dynamics_sweep.py`,
reports/dance_dynamics_sweep.json).
"""
from __future__ import annotations

import numpy as np

MAX_RATE = 2.0


def warp_anchors(kinetic: np.ndarray, music: np.ndarray, n: int, max_shift: int,
                 max_rate: float = MAX_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(output frames, source frames) of the warp's anchors, both strictly increasing, from 0 to n − 1."""
    kinetic = np.asarray(kinetic, np.int64)
    music = np.asarray(music, np.int64)
    music = music[(music > 0) & (music < n - 1)]
    pts = [(0, 0)]
    if len(kinetic) and len(music) and max_shift > 0:
        nearest = kinetic[np.abs(kinetic[None, :] - music[:, None]).argmin(1)]
        for b, k in zip(music, nearest):
            if abs(int(b) - int(k)) > max_shift:
                continue
            o0, s0 = pts[-1]
            if b <= o0 or k <= s0 or not 1.0 / max_rate <= (k - s0) / (b - o0) <= max_rate:
                continue
            pts.append((int(b), int(k)))
        while len(pts) > 1 and not 1.0 / max_rate <= (n - 1 - pts[-1][1]) / (n - 1 - pts[-1][0]) <= max_rate:
            pts.pop()
    pts.append((n - 1, n - 1))
    o, s = np.asarray(pts, np.float64).T
    return o, s


def snap_to_beats(motion: np.ndarray, features: np.ndarray, max_shift: int, max_rate: float = MAX_RATE) -> np.ndarray:
    """`motion` (N, 151) retimed so its kinetic beats fall on the beats of `features` ((N', 35+), last column the beat
    one-hot); max_shift 0 returns it unchanged."""
    from . import metrics as M
    from .audio import beat_frames
    from .skeleton import forward_kinematics, unpack_motion

    m = np.asarray(motion, np.float32)
    if m.ndim != 2:
        raise ValueError(f"snap_to_beats: motion must be (N, D), got {m.shape}")
    if max_shift < 0:
        raise ValueError(f"beat snap: max_shift must be ≥ 0 frames (0 = off), got {max_shift}")
    n = len(m)
    if max_shift == 0 or n < 3:
        return m
    _, root, rot = unpack_motion(m)
    kinetic = M.motion_beats_fact(forward_kinematics(root, rot))
    out_t, src_t = warp_anchors(kinetic, beat_frames(features), n, int(max_shift), max_rate)
    src = np.interp(np.arange(n), out_t, src_t)
    i0 = np.clip(np.floor(src).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    a = (src - i0)[:, None]
    return ((1.0 - a) * m[i0] + a * m[i1]).astype(np.float32)
