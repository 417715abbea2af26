"""A 3-D view of a dance: perspective camera, floor grid, a capsule body, shadows and foot-contact marks (PIL, numpy).

The camera stands in front of the dancer (who faces +z at the start), 1.5 m high, far enough that the whole
trajectory stays in frame, and looks at the trajectory's centre; it does not move, so the floor (a 0.5 m grid, the
centre marked) is drawn once. Per frame: shadows (every bone projected straight down onto the floor, in a darker
floor colour), contact marks (a ring under each foot that is in contact), then the body's capsules (one per bone,
radius per body part) sorted far to near (painter's algorithm) and shaded by their direction to a light.

    from tasks.dance.render3d import frames_3d
    frames = frames_3d(joints, contacts)      # list of (512, 512, 3) uint8
"""
from __future__ import annotations

import numpy as np

from . import skeleton as sk

BG = (236, 238, 242)
FLOOR = (206, 204, 198)
GRID = (176, 174, 168)
SHADOW = (160, 158, 152)
CONTACT = (230, 120, 40)
# bone radius (m) by child joint name
RADIUS = {"left_hip": 0.09, "right_hip": 0.09, "spine1": 0.12, "left_knee": 0.07, "right_knee": 0.07,
          "spine2": 0.12, "left_ankle": 0.052, "right_ankle": 0.052, "spine3": 0.125, "left_foot": 0.04,
          "right_foot": 0.04, "neck": 0.06, "left_collar": 0.06, "right_collar": 0.06, "head": 0.1,
          "left_shoulder": 0.055, "right_shoulder": 0.055, "left_elbow": 0.045, "right_elbow": 0.045,
          "left_wrist": 0.038, "right_wrist": 0.038, "left_hand": 0.034, "right_hand": 0.034}
COLOR = {"left": (214, 92, 80), "right": (74, 110, 200), "mid": (120, 120, 128), "head": (226, 190, 160)}
BONES = [(p, k) for k, p in enumerate(sk.PARENTS) if p >= 0]
SHADOW_BONES = [b for b, (_, k) in enumerate(BONES) if sk.JOINT_NAMES[k] in
                ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot", "spine1",
                 "spine2", "spine3", "left_hip", "right_hip", "left_elbow", "right_elbow", "left_wrist", "right_wrist")]
FEET = {"left": (7, 10), "right": (8, 11)}
RING = 0.11 * np.stack([np.cos(np.linspace(0, 2 * np.pi, 13)), np.zeros(13), np.sin(np.linspace(0, 2 * np.pi, 13))], 1)


class Camera:
    """Pinhole camera at `eye` looking at `target`, y up; `project` maps (..., 3) world points to pixels + depth."""

    def __init__(self, eye, target, size: int, fov_deg: float = 40.0):
        self.eye, self.size = np.asarray(eye, np.float64), size
        f = np.asarray(target, np.float64) - self.eye
        self.f = f / np.linalg.norm(f)
        r = np.cross(self.f, [0.0, 1.0, 0.0])
        self.r = r / np.linalg.norm(r)
        self.u = np.cross(self.r, self.f)
        self.focal = 0.5 * size / np.tan(np.radians(fov_deg) / 2)

    def project(self, X):
        v = np.asarray(X, np.float64) - self.eye
        z = np.maximum(v @ self.f, 1e-3)
        x, y = v @ self.r, v @ self.u
        return np.stack([0.5 * self.size + self.focal * x / z, 0.5 * self.size - self.focal * y / z], -1), z


def camera_for(joints: np.ndarray, size: int) -> Camera:
    """A fixed camera in front of the dance that keeps the whole trajectory (and the body's height) in view."""
    root = joints[:, 0]
    lo, hi = root[:, [0, 2]].min(0), root[:, [0, 2]].max(0)
    c = 0.5 * (lo + hi)
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1], 0.0))
    dist = 3.6 + 1.3 * extent
    target = np.array([c[0], 0.85, c[1]])
    return Camera(target + np.array([0.25 * dist, 0.65 + 0.1 * dist, dist]), target, size, fov_deg=34.0)


def _capsules(p0, p1, r0, r1):
    """Outline polygons (n, 4, 2) of n 2-D capsules' bodies from end points (n, 2) and radii (n,)."""
    d = p1 - p0
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return np.stack([p0 + n * r0[:, None], p1 + n * r1[:, None], p1 - n * r1[:, None], p0 - n * r0[:, None]], 1)


def _draw(draw, polys, ends, fills, order):
    """Draw capsules `order` (polygon + end discs (n, 2, 3) = x, y, r) in that order."""
    for b in order:
        fill = fills[b]
        draw.polygon([tuple(q) for q in polys[b]], fill=fill)
        if ends is not None:
            for x, y, r in ends[b]:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _background(cam: Camera, center: np.ndarray, half: float = 3.0):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (cam.size, cam.size), BG)
    d = ImageDraw.Draw(im)
    # the floor as a polygon (clipped to in front of the camera), then the grid
    corners = np.array([[-half, 0, -half], [half, 0, -half], [half, 0, half], [-half, 0, half]]) + [center[0], 0, center[1]]
    px, _ = cam.project(corners)
    d.polygon([tuple(p) for p in px], fill=FLOOR)
    for k in np.arange(-half, half + 1e-9, 0.5):
        for a, b in (([k, 0, -half], [k, 0, half]), ([-half, 0, k], [half, 0, k])):
            q, _ = cam.project(np.array([a, b]) + [center[0], 0, center[1]])
            d.line([tuple(q[0]), tuple(q[1])], fill=GRID, width=1)
    q, _ = cam.project(np.array([[0.0, 0, 0]]))  # the centre of the dance floor
    d.ellipse([q[0, 0] - 4, q[0, 1] - 2, q[0, 0] + 4, q[0, 1] + 2], fill=GRID)
    return im


def frames_3d(joints, contacts=None, size: int = 512) -> list:
    """joints (T, 24, 3) (y up, metres); contacts (T, 4) bool/float (left ankle, left toe, right ankle, right toe) or
    None (measured from the motion). Returns T frames (size, size, 3) uint8 (`iter_frames_3d` streams them)."""
    return [f.copy() for f in iter_frames_3d(joints, contacts, size)]


def iter_frames_3d(joints, contacts=None, size: int = 512):
    """The frames of `frames_3d`, one at a time (a 30-s dance at 512 px is 700 MB as a list), in ONE buffer that the
    next frame overwrites (consume or copy each before asking for the next). Each frame is drawn only inside the box
    around the body and its shadow; the rest is the pre-drawn floor."""
    from PIL import Image, ImageDraw

    j = np.asarray(joints, np.float64)
    if j.ndim != 3 or j.shape[1:] != (24, 3) or len(j) < 1:
        raise ValueError(f"frames_3d: joints must be (T, 24, 3), got {j.shape}")
    if contacts is None:
        contacts = sk.foot_contacts_from_positions(j.astype(np.float32)) if len(j) > 1 else np.zeros((len(j), 4))
    contacts = np.asarray(contacts) > 0.5
    floor = float(np.percentile(j[:, [7, 8, 10, 11], 1].min(1), 2))  # the lowest foot joint's usual height
    j = j - [0.0, floor, 0.0]  # feet on the floor (y = 0)
    cam = camera_for(j, size)
    bg = _background(cam, 0.5 * (j[:, 0, [0, 2]].min(0) + j[:, 0, [0, 2]].max(0)))
    radius = np.array([RADIUS[sk.JOINT_NAMES[k]] for _, k in BONES])
    side = [("left" if sk.JOINT_NAMES[k].startswith("left") else "right" if sk.JOINT_NAMES[k].startswith("right")
             else "head" if sk.JOINT_NAMES[k] == "head" else "mid") for _, k in BONES]
    base = np.array([COLOR[s] for s in side], np.float64)
    light = np.array([0.4, 0.8, 0.45])
    light /= np.linalg.norm(light)
    parents = np.array([p for p, _ in BONES])
    kids = np.array([k for _, k in BONES])
    px_all, z_all = cam.project(j)  # (T, 24, 2), (T, 24)
    shadow = j.copy()
    shadow[..., 1] = 0.0
    sh_px, sh_z = cam.project(shadow)
    bg_arr = np.asarray(bg)
    buf = bg_arr.copy()
    box = (0, 0, 0, 0)
    r_px = float(radius.max() * cam.focal / max(z_all.min(), 0.5)) + 4
    sb = np.array(SHADOW_BONES)
    for t in range(len(j)):
        x0, y0, x1, y1 = box  # restore the last frame's box from the floor image
        buf[y0:y1, x0:x1] = bg_arr[y0:y1, x0:x1]
        pts = np.concatenate([px_all[t], sh_px[t]])
        pad = r_px + 0.12 * cam.focal / sh_z[t].min()
        x0, y0 = np.floor(pts.min(0) - pad).astype(int).clip(0, size)
        x1, y1 = np.ceil(pts.max(0) + pad).astype(int).clip(0, size)
        box = (x0, y0, x1, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            yield buf
            continue
        im = Image.fromarray(bg_arr[y0:y1, x0:x1])
        d = ImageDraw.Draw(im)
        off = np.array([x0, y0], np.float64)
        px, z = px_all[t] - off, z_all[t]
        sh = sh_px[t] - off
        # shadows: legs, trunk and arms projected straight down, capsule bodies only
        rs0, rs1 = 0.9 * radius[sb] * cam.focal / sh_z[t, parents[sb]], 0.9 * radius[sb] * cam.focal / sh_z[t, kids[sb]]
        sh_ends = np.stack([np.c_[sh[parents[sb]], rs0], np.c_[sh[kids[sb]], rs1]], 1)
        _draw(d, _capsules(sh[parents[sb]], sh[kids[sb]], rs0, rs1), sh_ends, [SHADOW] * len(sb), range(len(sb)))
        for s, (a, toe) in FEET.items():  # contact marks
            cols = [0, 1] if s == "left" else [2, 3]
            if contacts[t, cols].any():
                q, _ = cam.project(0.5 * (shadow[t, a] + shadow[t, toe]) + RING)
                d.line([tuple(p) for p in q - off], fill=CONTACT, width=2)
        # body: capsules far to near, shaded by the angle between bone and light
        dirs = j[t, kids] - j[t, parents]
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
        shade = 0.62 + 0.38 * np.sqrt(np.clip(1 - (dirs @ light) ** 2, 0, 1))
        cols = np.clip(base * shade[:, None], 0, 255).astype(int)
        r0, r1 = radius * cam.focal / z[parents], radius * cam.focal / z[kids]
        ends = np.stack([np.c_[px[parents], r0], np.c_[px[kids], r1]], 1)
        order = np.argsort(-0.5 * (z[parents] + z[kids]))
        _draw(d, _capsules(px[parents], px[kids], r0, r1), ends, [tuple(c) for c in cols.tolist()], order)
        buf[y0:y1, x0:x1] = np.asarray(im)
        yield buf
