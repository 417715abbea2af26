"""The held-out real recordings: eight 30-s clips of game soundtracks by human composers, from Debian packages.

Chosen once (before any training on the v2 world) and never trained or tuned on: only `tasks.dance.evaluate` reads
them. `data/dance/setup.sh` unpacks the packages' music into ``data/cache/dance/realmusic/`` (nothing is installed).
None of the music the developers' guide reserves for independent checks is here or used.
See data/dance/README.md for the list, licences and why these.

    python -c "from tasks.dance.realset import real_clips; print([c['name'] for c in real_clips()])"
"""
from __future__ import annotations

import os

import numpy as np

REAL_DIR = os.path.join("data", "cache", "dance", "realmusic")
CLIP_SECONDS = 30.0
# (name, Debian package, file in it, start second)
REAL_CLIPS = (
    ("a7xpg_bgm1", "a7xpg-data", "bgm1.ogg", 15.0),
    ("a7xpg_bgm3", "a7xpg-data", "bgm3.ogg", 15.0),
    ("torus_trooper_tt1", "torus-trooper-data", "tt1.ogg", 15.0),
    ("torus_trooper_tt3", "torus-trooper-data", "tt3.ogg", 15.0),
    ("frozen_bubble_main_1p", "frozen-bubble-data", "frozen-mainzik-1p.ogg", 30.0),
    ("frozen_bubble_intro", "frozen-bubble-data", "introzik.ogg", 30.0),
    ("abe_game", "abe-data", "game.ogg", 15.0),
    ("pangzero_upipang", "pangzero", "UPiPang.mp3", 15.0),
)


def clip_audio(name: str, real_dir: str = REAL_DIR) -> np.ndarray:
    """The 30-s clip `name` as mono float32 at 15360 Hz."""
    from .audio import SR, load_audio

    entry = {c[0]: c for c in REAL_CLIPS}.get(name)
    if entry is None:
        raise ValueError(f"unknown clip {name!r}; known: {[c[0] for c in REAL_CLIPS]}")
    _, pkg, fname, start = entry
    path = os.path.join(real_dir, fname)
    if not os.path.isfile(path):
        raise ValueError(f"{path} missing (from Debian {pkg}): run `make setup` (data/dance/setup.sh)")
    y = load_audio(path)
    a = int(start * SR)
    y = y[a:a + int(CLIP_SECONDS * SR)]
    if len(y) < int(CLIP_SECONDS * SR):
        raise ValueError(f"{path} is shorter than {start + CLIP_SECONDS:.0f} s")
    return y


def real_clips(real_dir: str = REAL_DIR, cache_dir: str = os.path.join("data", "cache", "dance", "real_features")
               ) -> list[dict]:
    """[{name, package, audio (N,), music (901, 35) EDGE features}] for the eight clips (features cached)."""
    from gen.io import atomic_path

    from .audio import SR, audio_features

    out = []
    for name, pkg, fname, start in REAL_CLIPS:
        path = os.path.join(cache_dir, f"{name}.npz")
        y = clip_audio(name, real_dir)
        if not os.path.exists(path):
            feats = audio_features(y, SR, name=name)
            os.makedirs(cache_dir, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
                np.savez(f, music=feats)
        with np.load(path, allow_pickle=False) as z:
            out.append(dict(name=name, package=pkg, file=fname, start=start, audio=y, music=z["music"]))
    return out
