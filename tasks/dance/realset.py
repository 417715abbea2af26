"""The held-out real recordings: eight 30-s clips of game soundtracks by human composers, from Debian packages.

Chosen once (before any training on the v2 world) and never trained or tuned on: only `tasks.dance.evaluate` reads
them. `data/dance/setup.sh` unpacks the packages' music into ``data/cache/dance/realmusic/`` (nothing is installed).
None of the music the developers' guide reserves for independent checks is here or used.
See data/dance/README.md for the list, licences and why these.

A separate *tuning* set (`TUNING_CLIPS`, `tuning_clips()`): six 30-s clips of another composer's soundtrack (Debian
`asc-music`, unpacked into ``data/cache/dance/tunemusic/``), read only by `tasks.dance.tune` to choose the sampling
defaults, so that the evaluation's recordings are never tuned on.

    python -c "from tasks.dance.realset import real_clips; print([c['name'] for c in real_clips()])"
"""
from __future__ import annotations

import os

import numpy as np

REAL_DIR = os.path.join("data", "cache", "dance", "realmusic")
TUNE_DIR = os.path.join("data", "cache", "dance", "tunemusic")
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

# the tuning set (tasks.dance.tune only): Michael Kievernagel's three tracks for ASC, two clips each
TUNING_CLIPS = (
    ("asc_frontiers_a", "asc-music", "frontiers.mp3", 30.0),
    ("asc_frontiers_b", "asc-music", "frontiers.mp3", 200.0),
    ("asc_machine_wars_a", "asc-music", "machine_wars.mp3", 30.0),
    ("asc_machine_wars_b", "asc-music", "machine_wars.mp3", 150.0),
    ("asc_time_to_strike_a", "asc-music", "time_to_strike.mp3", 30.0),
    ("asc_time_to_strike_b", "asc-music", "time_to_strike.mp3", 170.0),
)


def clip_audio(name: str, real_dir: str = REAL_DIR, table=REAL_CLIPS) -> np.ndarray:
    """The 30-s clip `name` (of `table`) as mono float32 at 15360 Hz."""
    from .audio import SR, load_audio

    entry = {c[0]: c for c in table}.get(name)
    if entry is None:
        raise ValueError(f"unknown clip {name!r}; known: {[c[0] for c in table]}")
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


def tuning_clips(tune_dir: str = TUNE_DIR) -> list[dict]:
    """The six tuning clips, as `real_clips` gives the held-out ones (features cached apart from them)."""
    return real_clips(tune_dir, os.path.join("data", "cache", "dance", "tune_features"), table=TUNING_CLIPS)


def real_clips(real_dir: str = REAL_DIR, cache_dir: str = os.path.join("data", "cache", "dance", "real_features"),
               table=REAL_CLIPS) -> list[dict]:
    """[{name, package, audio (N,), music (901, 35) EDGE features}] for the eight clips (features cached)."""
    from gen.io import atomic_path

    from .audio import SR, audio_features

    out = []
    for name, pkg, fname, start in table:
        path = os.path.join(cache_dir, f"{name}.npz")
        y = clip_audio(name, real_dir, table)
        if not os.path.exists(path):
            feats = audio_features(y, SR, name=name)
            os.makedirs(cache_dir, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
                np.savez(f, music=feats)
        with np.load(path, allow_pickle=False) as z:
            out.append(dict(name=name, package=pkg, file=fname, start=start, audio=y, music=z["music"]))
    return out
