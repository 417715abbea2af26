"""SMPL 24-joint skeleton, batched rotation utilities (torch) and forward kinematics.

Conventions
-----------
* y is up, SMPL faces +z, the subject's left is +x; lengths in metres.
* Rotations act on column vectors: ``v_world = R @ v_local``.
* 6D rotation (Zhou et al., "On the Continuity of Rotation Representations", CVPR 2019): the first two
  *columns* of the matrix, ``[R[:, 0], R[:, 1]]``. (pytorch3d / EDGE take the first two rows; transpose to convert.)
* Euler ZYX: ``R = Rz(z) @ Ry(y) @ Rx(x)``, which is what a BVH channel list ``Zrotation Yrotation Xrotation`` means.

Motion vector (151-d per frame, EDGE layout):
``[contacts 4 (left_ankle, left_foot, right_ankle, right_foot) | root translation 3 | 24 x 6D rotations 144]``.

All rotation functions accept ``torch.Tensor`` or ``numpy.ndarray`` and return the same kind.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
]
NUM_JOINTS = 24
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# SMPL neutral-model joint offsets from the parent joint (metres, y up), as used by EDGE (vis.py).
REST_OFFSETS = np.array([
    [0.0, 0.0, 0.0],
    [0.05858135, -0.08228004, -0.01766408],
    [-0.06030973, -0.09051332, -0.01354254],
    [0.00443945, 0.12440352, -0.03838522],
    [0.04345142, -0.38646945, 0.008037],
    [-0.04325663, -0.38368791, -0.00484304],
    [0.00448844, 0.1379564, 0.02682033],
    [-0.01479032, -0.42687458, -0.037428],
    [0.01905555, -0.4200455, -0.03456167],
    [-0.00226458, 0.05603239, 0.00285505],
    [0.04105436, -0.06028581, 0.12204243],
    [-0.03483987, -0.06210566, 0.13032329],
    [-0.0133902, 0.21163553, -0.03346758],
    [0.07170245, 0.11399969, -0.01889817],
    [-0.08295366, 0.11247234, -0.02370739],
    [0.01011321, 0.08893734, 0.05040987],
    [0.12292141, 0.04520509, -0.019046],
    [-0.11322832, 0.04685326, -0.00847207],
    [0.2553319, -0.01564902, -0.02294649],
    [-0.26012748, -0.01436928, -0.03126873],
    [0.26570925, 0.01269811, -0.00737473],
    [-0.26910836, 0.00679372, -0.00602676],
    [0.08669055, -0.01063603, -0.01559429],
    [-0.0887537, -0.00865157, -0.01010708],
], dtype=np.float32)
FOOT_JOINTS = [7, 10, 8, 11]  # contact order: left_ankle, left_foot, right_ankle, right_foot
MOTION_DIM = 4 + 3 + NUM_JOINTS * 6  # 151


def _torch_io(fn):
    """Run ``fn`` on torch tensors; numpy inputs come back as numpy (float32 unless float64 given)."""

    @functools.wraps(fn)
    def wrapper(x, *args, **kwargs):
        if isinstance(x, torch.Tensor):
            return fn(x, *args, **kwargs)
        arr = np.asarray(x)
        dtype = torch.float64 if arr.dtype == np.float64 else torch.float32
        out = fn(torch.as_tensor(arr, dtype=dtype), *args, **kwargs)
        return out.numpy()

    return wrapper


def _check_last(x: torch.Tensor, shape: tuple, name: str) -> None:
    if tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"{name}: expected trailing shape {shape}, got {tuple(x.shape)}")


@_torch_io
def axis_angle_to_matrix(aa):
    """Rodrigues' formula. aa (..., 3) axis * angle (radians) -> (..., 3, 3)."""
    _check_last(aa, (3,), "axis_angle_to_matrix")
    theta = aa.norm(dim=-1, keepdim=True)  # (..., 1)
    small = theta < 1e-8
    axis = aa / torch.where(small, torch.ones_like(theta), theta)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    R = eye + s * K + (1 - c) * (K @ K)
    # first-order expansion near zero keeps gradients finite
    Kaa = torch.stack([zero, -aa[..., 2], aa[..., 1], aa[..., 2], zero, -aa[..., 0], -aa[..., 1], aa[..., 0], zero],
                      dim=-1).reshape(K.shape)
    return torch.where(small[..., None], eye + Kaa, R)


@_torch_io
def matrix_to_quaternion(R):
    """(..., 3, 3) -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0 (Shepperd's method)."""
    _check_last(R, (3, 3), "matrix_to_quaternion")
    m = R
    t = torch.stack([
        1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
        1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
    ], dim=-1).clamp_min(1e-12)  # (..., 4) = 4 * (w^2, x^2, y^2, z^2)
    r = torch.sqrt(t)
    candidates = torch.stack([
        torch.stack([r[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], r[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], r[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], r[..., 3] ** 2], -1),
    ], dim=-2) / (2 * r[..., None])  # (..., 4 candidates, 4)
    best = t.argmax(dim=-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@_torch_io
def matrix_to_axis_angle(R):
    """(..., 3, 3) -> axis * angle (..., 3), angle in [0, pi]."""
    q = matrix_to_quaternion(R)
    w, xyz = q[..., :1], q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, w)
    scale = torch.where(s < 1e-8, 2.0 / w.clamp_min(1e-8), angle / s.clamp_min(1e-12))
    return xyz * scale


@_torch_io
def matrix_to_rotation_6d(R):
    """Zhou et al. 6D: first two columns. (..., 3, 3) -> (..., 6) = [R[:,0], R[:,1]]."""
    _check_last(R, (3, 3), "matrix_to_rotation_6d")
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


@_torch_io
def rotation_6d_to_matrix(d6):
    """Gram-Schmidt (Zhou et al. eq. in sec. 4). (..., 6) -> (..., 3, 3) with columns b1, b2, b1 x b2."""
    _check_last(d6, (6,), "rotation_6d_to_matrix")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


@_torch_io
def euler_zyx_to_matrix(angles):
    """angles (..., 3) = (z, y, x) radians -> Rz(z) @ Ry(y) @ Rx(x)  (..., 3, 3)."""
    _check_last(angles, (3,), "euler_zyx_to_matrix")
    z, y, x = angles.unbind(-1)
    cz, sz, cy, sy, cx, sx = z.cos(), z.sin(), y.cos(), y.sin(), x.cos(), x.sin()
    R = torch.stack([
        cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
        sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
        -sy, cy * sx, cy * cx,
    ], dim=-1)
    return R.reshape(*angles.shape[:-1], 3, 3)


@_torch_io
def matrix_to_euler_zyx(R):
    """(..., 3, 3) -> (z, y, x) radians with R = Rz Ry Rx; y in [-pi/2, pi/2] (gimbal lock sets x = 0)."""
    _check_last(R, (3, 3), "matrix_to_euler_zyx")
    sy = (-R[..., 2, 0]).clamp(-1.0, 1.0)
    y = torch.asin(sy)
    lock = (1 - sy.abs()) < 1e-7
    z = torch.where(lock, torch.atan2(-R[..., 0, 1], R[..., 1, 1]), torch.atan2(R[..., 1, 0], R[..., 0, 0]))
    x = torch.where(lock, torch.zeros_like(y), torch.atan2(R[..., 2, 1], R[..., 2, 2]))
    return torch.stack([z, y, x], dim=-1)


def forward_kinematics(root_pos, rotations, offsets=None, parents=None, return_global: bool = False):
    """Global joint positions from local rotations (and, with return_global, the global rotations (..., J, 3, 3)).

    root_pos (..., 3) pelvis position; rotations (..., J, 3, 3) local (parent-relative) rotations, joint 0 global;
    offsets (J, 3) rest offsets from the parent (default SMPL ``REST_OFFSETS``); parents (J,) default ``PARENTS``.
    Returns joints (..., J, 3): p_j = p_parent + G_parent @ offset_j,  G_j = G_parent @ R_j.
    Accepts torch or numpy (returns the same kind).
    """
    is_np = not isinstance(rotations, torch.Tensor)
    rot = torch.as_tensor(np.asarray(rotations) if is_np else rotations)
    dtype = rot.dtype if rot.is_floating_point() else torch.float32
    rot = rot.to(dtype)
    root = torch.as_tensor(np.asarray(root_pos) if is_np else root_pos).to(dtype)
    parents = PARENTS if parents is None else list(parents)
    J = len(parents)
    offs = torch.as_tensor(REST_OFFSETS if offsets is None else np.asarray(offsets), dtype=dtype)
    if rot.shape[-3:] != (J, 3, 3):
        raise ValueError(f"forward_kinematics: rotations must be (..., {J}, 3, 3), got {tuple(rot.shape)}")
    if root.shape[-1] != 3 or root.shape[:-1] != rot.shape[:-3]:
        raise ValueError(f"forward_kinematics: root_pos must be (..., 3) matching rotations' batch "
                         f"{tuple(rot.shape[:-3])}, got {tuple(root.shape)}")
    G = [rot[..., 0, :, :]]
    P = [root + offs[0]]
    for j in range(1, J):
        p = parents[j]
        P.append(P[p] + (G[p] @ offs[j][:, None])[..., 0])
        G.append(G[p] @ rot[..., j, :, :])
    joints = torch.stack(P, dim=-2)  # (..., J, 3)
    if return_global:
        G = torch.stack(G, dim=-3)  # (..., J, 3, 3)
        return (joints.numpy(), G.numpy()) if is_np else (joints, G)
    return joints.numpy() if is_np else joints


def pack_motion(contacts, root_pos, rotations):
    """contacts (..., 4), root_pos (..., 3), rotations (..., 24, 3, 3) -> motion (..., 151). torch or numpy."""
    is_np = not isinstance(rotations, torch.Tensor)
    to_t = (lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))) if is_np else (lambda a: a)
    c, r, R = to_t(contacts), to_t(root_pos), to_t(rotations)
    if c.shape[-1] != 4 or r.shape[-1] != 3 or R.shape[-3:] != (NUM_JOINTS, 3, 3):
        raise ValueError(f"pack_motion: expected contacts (...,4), root_pos (...,3), rotations (...,24,3,3); "
                         f"got {tuple(c.shape)}, {tuple(r.shape)}, {tuple(R.shape)}")
    d6 = matrix_to_rotation_6d(R).reshape(*R.shape[:-3], NUM_JOINTS * 6)
    out = torch.cat([c.to(d6.dtype), r.to(d6.dtype), d6], dim=-1)
    return out.numpy() if is_np else out


def unpack_motion(motion):
    """motion (..., 151) -> (contacts (..., 4), root_pos (..., 3), rotations (..., 24, 3, 3))."""
    if motion.shape[-1] != MOTION_DIM:
        raise ValueError(f"unpack_motion: last dim must be {MOTION_DIM}, got {tuple(motion.shape)}")
    contacts, root = motion[..., :4], motion[..., 4:7]
    d6 = motion[..., 7:].reshape(*motion.shape[:-1], NUM_JOINTS, 6)
    return contacts, root, rotation_6d_to_matrix(d6)


def foot_contacts_from_positions(joints, vel_thresh: float = 0.3, height_thresh: float = 0.05, fps: float = 30.0):
    """Binary foot contacts (T, 4) for (left_ankle, left_foot, right_ankle, right_foot).

    joints (T, 24, 3) numpy, y up. A foot joint is in contact at frame t when its horizontal speed
    (central difference, m/s) is below ``vel_thresh`` and its height above that joint's lowest height in the
    clip is below ``height_thresh`` metres.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"foot_contacts_from_positions: joints must be (T, 24, 3), got {joints.shape}")
    feet = joints[:, FOOT_JOINTS]  # (T, 4, 3)
    horiz = feet[:, :, [0, 2]]
    vel = np.gradient(horiz, axis=0) * fps if len(feet) > 1 else np.zeros_like(horiz)
    speed = np.linalg.norm(vel, axis=-1)  # (T, 4)
    height = feet[:, :, 1] - feet[:, :, 1].min(axis=0, keepdims=True)
    return ((speed < vel_thresh) & (height < height_thresh)).astype(np.float32)
