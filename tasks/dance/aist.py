"""AIST++ loader (Li et al. 2021, https://google.github.io/aistplusplus_dataset/).

Expected folder (the official annotations plus the AIST music)::

    root/motions/<seq>.pkl        smpl_poses (N, 72) axis-angle, smpl_trans (N, 3), smpl_scaling (1,)  -- 60 FPS
    root/wavs/<music>.wav  or  root/music/<music>.wav       music id = 5th field of the sequence name (mBR0)
    root/splits/crossmodal_{train,val,test}.txt
    root/ignore_list.txt

Motion is resampled 60 -> 30 FPS by taking every other frame; translation is divided by ``smpl_scaling``.
``root_pos`` is SMPL's ``transl`` (as EDGE uses it), not the pelvis joint of a shaped SMPL body.

Security note: AIST++ ships its motions as Python pickles, so loading them is unpickling. ``pickle.load`` is used
only on files inside the user's AIST++ folder; do not point this loader at files you do not trust.
"""
from __future__ import annotations

import os
import pickle

import numpy as np

from . import skeleton as sk

SPLITS = ("train", "val", "test")


def music_id(seq_name: str) -> str:
    """gBR_sBM_cAll_d04_mBR0_ch01 -> mBR0."""
    parts = seq_name.split("_")
    if len(parts) < 5 or not parts[4].startswith("m"):
        raise ValueError(f"not an AIST++ sequence name (expected e.g. gBR_sBM_cAll_d04_mBR0_ch01): {seq_name!r}")
    return parts[4]


class AISTDataset:
    """Index of an AIST++ folder. ``names(split)`` lists sequences; ``load(name)`` returns one sequence."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.motion_dir = os.path.join(self.root, "motions")
        if not os.path.isdir(self.motion_dir):
            raise ValueError(f"AIST++ folder {self.root!r} has no 'motions/' directory")
        ignore = os.path.join(self.root, "ignore_list.txt")
        self.ignore = set(_read_list(ignore)) if os.path.isfile(ignore) else set()

    def names(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = os.path.join(self.root, "splits", f"crossmodal_{split}.txt")
        if not os.path.isfile(path):
            raise ValueError(f"missing split file {path}")
        return [n for n in _read_list(path) if n not in self.ignore]

    def music_path(self, seq_name: str) -> str:
        mid = music_id(seq_name)
        for sub in ("wavs", "music"):
            p = os.path.join(self.root, sub, mid + ".wav")
            if os.path.isfile(p):
                return p
        raise ValueError(f"music {mid}.wav for {seq_name} not found under {self.root}/wavs or {self.root}/music")

    def load(self, seq_name: str) -> dict:
        """dict(name, root_pos (T, 3), rotations (T, 24, 3, 3), poses_aa (T, 24, 3), music_path) at 30 FPS."""
        path = os.path.join(self.motion_dir, seq_name + ".pkl")
        if not os.path.isfile(path):
            raise ValueError(f"motion file not found: {path}")
        with open(path, "rb") as f:
            data = pickle.load(f)  # AIST++ format itself is a pickle; see module docstring
        for k in ("smpl_poses", "smpl_trans", "smpl_scaling"):
            if k not in data:
                raise ValueError(f"{path}: missing key {k!r} (need smpl_poses, smpl_trans, smpl_scaling)")
        poses = np.asarray(data["smpl_poses"], dtype=np.float32)
        trans = np.asarray(data["smpl_trans"], dtype=np.float32)
        scaling = float(np.asarray(data["smpl_scaling"]).reshape(-1)[0])
        if poses.ndim != 2 or poses.shape[1] != 72 or trans.shape != (len(poses), 3):
            raise ValueError(f"{path}: expected smpl_poses (N, 72), smpl_trans (N, 3); got {poses.shape}, {trans.shape}")
        poses, trans = poses[::2], trans[::2] / scaling  # 60 -> 30 FPS
        aa = poses.reshape(-1, 24, 3)
        return dict(name=seq_name, root_pos=trans, rotations=sk.axis_angle_to_matrix(aa), poses_aa=aa,
                    music_path=self.music_path(seq_name))


def _read_list(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]
