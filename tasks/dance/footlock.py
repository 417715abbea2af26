"""Foot locking: plant a foot where the motion says it is in contact, by two-bone leg IK.

A diffusion model's feet never stand exactly still: on 8 held-out songs the slower foot of a generated dance moved
~1 mm per frame where the ground truth's moved 0.06 mm (the raw network's PFC is `network_raw.pfc` in
`reports/dance_eval.json`). That residual is
high-frequency jitter, not slow sliding, so it cannot be removed by shifting the root smoothly; it has to be taken out
of the legs. This is the standard animation clean-up (e.g. Holden's two-joint IK, the foot-skate clean-up of motion
diffusion toolkits), applied to the motion's own predicted contact labels:

1. per side (left / right), contact = ankle or toe label > 0.5; contact segments are the runs of contact frames;
2. a segment is cut into plants, runs in which the ankle stays within `max_slide` metres of where the plant began
   (a foot labelled "in contact" that keeps travelling is re-planted as it goes rather than dragged);
3. the ankle's target is its plant's mean horizontal position (height unchanged); it moves from one plant to the next
   over 2·`blend` frames and eases in and out over `blend` frames at the segment's ends;
4. hip and knee rotations are solved analytically so that the ankle reaches the target (bone lengths unchanged);
   the ankle's local rotation is recomputed so that the foot keeps its global orientation.

Before the legs are solved, the root follows the supporting foot (`follow_support`): in the v2 world the dancer
travels, and a network that travels slides its "planted" foot along with the body (on six tuning songs, seeds
800000-800005, the locked foot still moved 3-7 mm per frame in half of them: the plants it was re-planted to moved).
Wherever a foot is labelled in contact on two consecutive frames, the slower such foot's horizontal displacement is
taken off the root (so that foot stands exactly still and the body travels by stepping, as in the ground truth); a
labelled foot that still moves faster than `max_speed` after that is stepping, not planted, and is left to the
network. On those tuning songs (the model shipped before this change) PFC went from 1.6e-5 (legs only, blend 3) to
7.4e-7 with the root following (max_speed 1 cm/frame), and to 3.9e-7 with max_speed 5 mm and blend 8 frames, the
defaults (ground truth 1.3e-7; raw network 4.9e-5), travel kept (2.7 → 3.3 m per 30 s). The price: the body no longer
slides back to where the feet did not take it, so it wanders (net displacement over 30 s 0.14 → 0.87 m) and the
support foot's jitter enters the root (mean horizontal root acceleration 6.4 → 7.7 m/s², ground truth 3.9); smoothing
the root correction (tried: Gaussian σ 3-10 frames) left the plants sliding and PFC 20× worse. `follow=False` gives
the legs-only lock. (Chosen on those tuning songs only: not on the evaluation's held-out songs or real recordings.)

Spine, arms and contact labels are unchanged; with `follow=False` the root too. The model's raw output stays
available (`foot_lock=False` in `DancePipeline`), and the evaluation reports both.
"""
from __future__ import annotations

import numpy as np

from tasks.dance import skeleton as sk

LEGS = {"left": (1, 4, 7, (0, 1)), "right": (2, 5, 8, (2, 3))}  # hip, knee, ankle, contact label columns
HORIZONTAL = [0, 2]  # y is up


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 3) unit axes, (T,) angles → (T, 3, 3) (Rodrigues)."""
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((_normalise(u) * _normalise(v)).sum(-1), -1.0, 1.0))


def two_bone_ik(rot: np.ndarray, G: np.ndarray, P: np.ndarray, leg: str, target: np.ndarray,
                frames: np.ndarray) -> None:
    """Solve hip and knee of `leg` in place (rot: local rotations) so that its ankle reaches target[frames]."""
    hip, knee, ankle, _ = LEGS[leg]
    f = frames
    a, b, c, t = P[f, hip], P[f, knee], P[f, ankle], target[f]
    l_ab, l_bc = np.linalg.norm(b - a, axis=-1), np.linalg.norm(c - b, axis=-1)
    eps = 1e-4
    l_at = np.clip(np.linalg.norm(t - a, axis=-1), np.abs(l_ab - l_bc) + eps, l_ab + l_bc - eps)
    ac_ab_0, ba_bc_0 = _angle(c - a, b - a), _angle(a - b, c - b)
    ac_at_0 = _angle(c - a, t - a)
    ac_ab_1 = np.arccos(np.clip((l_bc ** 2 - l_ab ** 2 - l_at ** 2) / (-2 * l_ab * l_at), -1, 1))
    ba_bc_1 = np.arccos(np.clip((l_at ** 2 - l_ab ** 2 - l_bc ** 2) / (-2 * l_ab * l_bc), -1, 1))
    # bending axis: normal of the leg plane; a straight leg has none, so use the hip's lateral (x) axis: knees bend
    # about it
    bend = np.cross(c - a, b - a)
    straight = np.linalg.norm(bend, axis=-1) < 1e-8
    bend[straight] = G[f, hip][straight][:, :, 0]
    axis0 = _normalise(bend)
    swing = np.cross(c - a, t - a)
    axis1 = np.where((np.linalg.norm(swing, axis=-1) < 1e-12)[:, None], axis0, _normalise(swing))
    inv_a, inv_b = np.swapaxes(G[f, hip], -1, -2), np.swapaxes(G[f, knee], -1, -2)
    r0 = _rotation(_normalise((inv_a @ axis0[..., None])[..., 0]), ac_ab_1 - ac_ab_0)
    r1 = _rotation(_normalise((inv_b @ axis0[..., None])[..., 0]), ba_bc_1 - ba_bc_0)
    r2 = _rotation(_normalise((inv_a @ axis1[..., None])[..., 0]), ac_at_0)
    g_ankle = G[f, ankle].copy()
    rot[f, hip] = rot[f, hip] @ r2 @ r0
    rot[f, knee] = rot[f, knee] @ r1
    g_hip = G[f, sk.PARENTS[hip]] @ rot[f, hip]
    g_knee = g_hip @ rot[f, knee]
    rot[f, ankle] = np.swapaxes(g_knee, -1, -2) @ g_ankle  # the foot keeps its global orientation


def _segments(on: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True: [(start, end_exclusive), ...]."""
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _plants(pos: np.ndarray, max_slide: float) -> list[tuple[int, int]]:
    """Split one contact segment's horizontal ankle positions (n, 2) into plants: maximal runs that stay within
    `max_slide` of their first frame. Returns [(start, end_exclusive), ...] relative to the segment."""
    plants, p0 = [], 0
    for i in range(1, len(pos)):
        if np.linalg.norm(pos[i] - pos[p0]) > max_slide:
            plants.append((p0, i))
            p0 = i
    return plants + [(p0, len(pos))]


def ankle_targets(P: np.ndarray, contacts: np.ndarray, leg: str, max_slide: float, blend: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Target ankle positions (T, 3) and blend weights (T,) in [0, 1] (0: leave the frame alone).

    Each contact segment is cut into plants (`_plants`); a plant holds the ankle at its mean horizontal position.
    Between two plants of one segment the target moves linearly over 2·`blend` frames (the foot re-plants); at the
    segment's ends the target eases in and out over `blend` frames. A target is never more than 2·`max_slide` from
    the ankle's own position."""
    _, _, ankle, cols = LEGS[leg]
    T = len(P)
    pos = P[:, ankle][:, HORIZONTAL]
    anchor = pos.copy()
    w = np.zeros(T)
    for s, e in _segments((contacts[:, list(cols)] > 0.5).any(1)):
        plants = [(a + s, b + s) for a, b in _plants(pos[s:e], max_slide)]
        means = [pos[a:b].mean(0) for a, b in plants]
        for (a, b), m in zip(plants, means):
            anchor[a:b] = m
        for k in range(1, len(plants)):  # re-plant: slide from one anchor to the next
            bnd = plants[k][0]
            lo, hi = max(plants[k - 1][0], bnd - blend), min(plants[k][1], bnd + blend)
            u = (np.arange(lo, hi) - lo + 0.5)[:, None] / (hi - lo)
            anchor[lo:hi] = (1 - u) * means[k - 1] + u * means[k]
        w[s:e] = 1.0
        for k in range(1, blend + 1):  # ease in before the segment and out after it
            for i, m in ((s - k, means[0]), (e - 1 + k, means[-1])):
                if 0 <= i < T and w[i] < 1 - k / (blend + 1):
                    w[i] = 1 - k / (blend + 1)
                    anchor[i] = m
    target = P[:, ankle].copy()
    target[:, HORIZONTAL] = (1 - w[:, None]) * pos + w[:, None] * anchor
    return target, w


def follow_support(motion: np.ndarray, max_speed: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """The root follows the supporting foot: (motion with a corrected root, (T, 4) contacts to plant).

    For each frame step t → t+1 on which a foot is labelled in contact at both frames, the horizontal displacement of
    the slower such ankle is subtracted from the root from t+1 on (joints move rigidly with the root, so that ankle's
    displacement becomes exactly zero). The contacts to plant are the labels, less frames where the corrected ankle
    still moves faster than `max_speed` metres per frame (entering or leaving the frame)."""
    contacts, root, rot = sk.unpack_motion(np.asarray(motion, np.float32))
    rot64, root = rot.astype(np.float64), root.astype(np.float64)
    ankles = [LEGS[s][2] for s in ("left", "right")]
    on = np.stack([(contacts[:, list(LEGS[s][3])] > 0.5).any(1) for s in ("left", "right")], 1)  # (T, 2)
    pos = sk.forward_kinematics(root, rot64)[:, ankles][..., HORIZONTAL]  # (T, 2 sides, 2)
    v = np.diff(pos, axis=0)  # (T-1, 2, 2)
    held = on[1:] & on[:-1]
    speed = np.where(held, np.linalg.norm(v, axis=-1), np.inf)
    k = speed.argmin(1)
    corr = np.where(held.any(1)[:, None], v[np.arange(len(v)), k], 0.0)
    root = root.copy()
    root[1:, HORIZONTAL] -= np.cumsum(corr, axis=0)
    fixed = sk.forward_kinematics(root, rot64)[:, ankles][..., HORIZONTAL]
    fast = np.linalg.norm(np.diff(fixed, axis=0), axis=-1) > max_speed  # (T-1, 2)
    none = np.zeros((1, 2), dtype=bool)
    fast = np.r_[none, fast] | np.r_[fast, none]  # (T, 2): the frame was entered or left fast
    plant = contacts.copy()
    for i, s in enumerate(("left", "right")):
        cols = list(LEGS[s][3])
        plant[np.ix_(fast[:, i], cols)] = 0.0
    out = np.array(motion, dtype=np.float32)
    out[:, 4:7] = root  # [contacts 4 | root 3 | rotations]: only the root changes
    return out, plant


def lock_feet(motion: np.ndarray, max_slide: float = 0.05, blend: int = 8, follow: bool = True,
              max_speed: float = 0.005) -> np.ndarray:
    """Motion (T, 151) → the same motion with planted feet (see the module docstring). Pure function.
    follow: first let the root follow the supporting foot (`follow_support`, `max_speed`); False: legs only."""
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[1] != sk.MOTION_DIM:
        raise ValueError(f"lock_feet: motion must be (T, {sk.MOTION_DIM}), got {motion.shape}")
    if follow:
        motion, plant = follow_support(motion, max_speed)
    contacts, root, rot = sk.unpack_motion(motion)
    if not follow:
        plant = contacts
    rot = rot.astype(np.float64)
    root = root.astype(np.float64)
    P, G = sk.forward_kinematics(root, rot, return_global=True)  # the legs are separate chains: one FK serves both
    for leg in LEGS:
        target, w = ankle_targets(P, plant, leg, max_slide, blend)
        frames = np.flatnonzero(w > 0)
        if len(frames):
            two_bone_ik(rot, G, P, leg, target, frames)
    return sk.pack_motion(contacts, root.astype(np.float32), rot.astype(np.float32))
