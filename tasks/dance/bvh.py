"""BVH export / import for the SMPL skeleton (what Blender's BVH importer reads).

Root channels ``Xposition Yposition Zposition Zrotation Yrotation Xrotation``, other joints
``Zrotation Yrotation Xrotation``; angles in degrees with R = Rz @ Ry @ Rx (see ``skeleton``); metres, y up.
"""
from __future__ import annotations


import numpy as np

from gen.io import atomic_write_text

from . import skeleton as sk


def _children(parents):
    ch = {i: [] for i in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            ch[p].append(j)
    return ch


def write_bvh(path, root_pos, rotations, fps: float = 30.0) -> None:
    """root_pos (T, 3) metres, rotations (T, 24, 3, 3) local -> BVH file at ``path`` (atomic write)."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    if root_pos.ndim != 2 or root_pos.shape[1] != 3 or rotations.shape != (len(root_pos), 24, 3, 3):
        raise ValueError(f"write_bvh: expected root_pos (T, 3) and rotations (T, 24, 3, 3), got "
                         f"{root_pos.shape}, {rotations.shape}")
    names, parents, offsets = sk.JOINT_NAMES, sk.PARENTS, sk.REST_OFFSETS
    children = _children(parents)
    order = []
    lines = ["HIERARCHY"]

    def emit(j, depth):
        ind = "  " * depth
        order.append(j)
        if parents[j] < 0:
            lines.append(f"{ind}ROOT {names[j]}")
        else:
            lines.append(f"{ind}JOINT {names[j]}")
        lines.append(f"{ind}{{")
        o = offsets[j]
        lines.append(f"{ind}  OFFSET {o[0]:.8f} {o[1]:.8f} {o[2]:.8f}")
        if parents[j] < 0:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{ind}  CHANNELS 3 Zrotation Yrotation Xrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.append(f"{ind}  End Site")
            lines.append(f"{ind}  {{")
            lines.append(f"{ind}    OFFSET 0.00000000 0.00000000 0.00000000")
            lines.append(f"{ind}  }}")
        lines.append(f"{ind}}}")

    emit(0, 0)
    eul = np.degrees(sk.matrix_to_euler_zyx(rotations))  # (T, 24, 3) z, y, x
    lines += ["MOTION", f"Frames: {len(root_pos)}", f"Frame Time: {1.0 / fps:.8f}"]
    for t in range(len(root_pos)):
        vals = list(root_pos[t]) + [v for j in order for v in eul[t, j]]
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    text = "\n".join(lines) + "\n"
    atomic_write_text(path, text, suffix=".bvh")


def read_bvh(path):
    """Parse a BVH written by ``write_bvh`` (or any Z/Y/X-rotation BVH with a 6-channel root).

    Returns (names list, parents list, offsets (J, 3), root_pos (T, 3), rotations (T, J, 3, 3)), joints in file order.
    """
    with open(path) as f:
        tokens = f.read().split()
    names, parents, offsets, channels = [], [], [], []
    stack, i = [], 0
    in_end = False
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif tok == "End":
            in_end = True
            i += 2
        elif tok == "{":
            if not in_end:
                stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            if in_end:
                in_end = False
            else:
                stack.pop()
            i += 1
        elif tok == "OFFSET":
            if not in_end:
                offsets.append([float(x) for x in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append(tokens[i + 2:i + 2 + n])
            i += 2 + n
        else:
            i += 1
    n_frames = int(tokens[i + 2])
    i += 6  # MOTION Frames: N Frame Time: dt
    width = sum(len(c) for c in channels)
    data = np.array(tokens[i:i + n_frames * width], dtype=np.float64).reshape(n_frames, width)
    J = len(names)
    root_pos = np.zeros((n_frames, 3))
    rots = np.tile(np.eye(3), (n_frames, J, 1, 1))
    col = 0
    axes = {"Xrotation": 0, "Yrotation": 1, "Zrotation": 2}
    for j, ch in enumerate(channels):
        for c in ch:
            v = data[:, col]
            col += 1
            if c.endswith("position"):
                root_pos[:, "XYZ".index(c[0])] = v
            else:
                a = np.radians(v)
                R = np.zeros((n_frames, 3, 3))
                k = axes[c]
                ca, sa = np.cos(a), np.sin(a)
                u, w = [(1, 2), (2, 0), (0, 1)][k]
                R[:, k, k] = 1
                R[:, u, u] = ca
                R[:, w, w] = ca
                R[:, u, w] = -sa
                R[:, w, u] = sa
                rots[:, j] = rots[:, j] @ R
    return names, parents, np.array(offsets), root_pos, rots
