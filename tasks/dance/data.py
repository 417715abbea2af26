"""Training windows for music-to-dance: synthetic (music, dance) songs cut into 5 s windows of 150 frames at 30 FPS.

Each song comes from `tasks.dance.synth.make_pair(seed, seconds)`; its music features are computed on the synthesised
audio with `tasks.dance.audio.audio_features` (EDGE's 35-d features, frame i = time i/30 s, the same instant as motion
frame i). One song is cached as ``<cache_dir>/song_<seed>_<seconds>s.npz`` (written atomically, read with
``allow_pickle=False``):

    motion (T, 151) float32   [contacts 4 | root translation 3 | 24 × 6D rotations 144]  (skeleton.pack_motion)
    music  (T, 35)  float32   audio features
    joints (T, 24, 3)         FK positions (for metrics)
    beats  (B,)               music beat times from the synthesiser, seconds
    genre  ()       int64     index into synth.GENRES
    bpm    ()       float64

Motion representation: the 151-d EDGE vector with the *absolute* root translation (synthetic dancers stay in place;
EDGE does the same on AIST++), normalised per dimension by `motion_stats()` (a floor on σ keeps constant dimensions at
0). Training songs use seeds 0 … num_songs−1; held-out songs use the fixed `HELDOUT_SEEDS` (never used for training).

    python -c "from tasks.dance.data import DanceWindows; d = DanceWindows(num_songs=4); print(len(d), d[0]['x'].shape)"
"""
from __future__ import annotations

import os
import numpy as np
import torch

from gen.io import atomic_path

from . import skeleton as sk
from .audio import FEATURE_DIM, audio_features, model_music
from .synth import GENRES, make_pair

WINDOW = 150  # frames per training window (5 s at 30 FPS)
FPS = 30
HELDOUT_SEEDS = tuple(range(900_000, 900_064))  # evaluation songs; training seeds are 0 … num_songs−1
DEFAULT_CACHE = os.path.join("data", "cache", "dance")
STD_FLOOR = 1e-2  # σ used for (near-)constant dimensions, so they normalise to 0 instead of blowing up


def _atomic_npz(path: str, **arrays) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:  # a file object: savez adds no ".npz"
        np.savez(f, **arrays)


WORLDS = ("v1", "v2", "v2s", "v2e")  # v1: numpy synth + key-pose dancer (synth.py); v2: FluidSynth / numpy music +
# choreo.py; v2s: v2 with a long silence in one song of four (`silence_span`); v2e: v2's music, the choreographer's moves
# scaled and chosen by the song-relative band loudness (`choreo.beat_intensity`, intensity="band")
SILENCE_EVERY = 4            # v2s: seeds ≡ 1 (mod 4) get a silence ...
SILENCE_SECONDS = (4.5, 8.0)  # ... this long (uniform), placed uniformly in the song


def load_song(seed: int, seconds: float, cache_dir: str = DEFAULT_CACHE, world: str = "v1") -> dict:
    """One synthetic song as arrays (see module docstring), built and cached on first use. ``world`` "v2": music from
    `tasks.dance.choreo.make_song_v2` (FluidSynth renders, cached under ``<cache_dir>/midi``) danced by
    `choreo.make_dance_v2`; its genre is the coarse style label (one of synth.GENRES)."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    if world == "v2s" and int(seed) % SILENCE_EVERY != 1:
        world = "v2"  # the same song as v2 (and the same cache file)
    prefix = {"v1": "", "v2": "v2_", "v2s": "v2s_", "v2e": "v2e_"}[world]
    path = os.path.join(cache_dir, f"song_{prefix}{int(seed)}_{seconds:g}s.npz")
    if not os.path.exists(path):
        if world in ("v2", "v2s", "v2e"):
            from .choreo import make_dance_v2, make_song_v2

            song = make_song_v2(int(seed), float(seconds), cache_dir=os.path.join(cache_dir, "midi"))
            song["genre"], fine = song["coarse_genre"], song["genre"]
            if world == "v2s":
                song["audio"] = silence_span(song["audio"], song["sr"], int(seed))
            dance = make_dance_v2(dict(song, genre=fine), int(seed) + 1_000_003,  # idles where the audio is silent
                                  intensity="band" if world == "v2e" else "rms")
        else:
            pair = make_pair(int(seed), float(seconds))
            song, dance = pair["song"], pair["dance"]
        music = audio_features(song["audio"], song["sr"], name=f"synth seed {seed}")
        motion = sk.pack_motion(dance["contacts"], dance["root_pos"], dance["rotations"]).astype(np.float32)
        n = min(len(music), len(motion))
        _atomic_npz(path, motion=motion[:n], music=music[:n].astype(np.float32), joints=dance["joints"][:n],
                    beats=np.asarray(song["beat_times"], np.float64), genre=np.int64(GENRES.index(song["genre"])),
                    bpm=np.float64(song["bpm"]))
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def silence_span(audio: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """`audio` with one span of `SILENCE_SECONDS` (drawn from `seed`) set to zero, 20-ms fades at its edges: the v2
    world's "stop" sections last 1-2 bars, shorter than a 5-s training window, so a model trained on them alone keeps
    dancing through a longer silence (stillness ratio 0.27 on the evaluation's silence probe, ground truth 0.02)."""
    rng = np.random.default_rng([int(seed), 77])
    y = np.array(audio, np.float32, copy=True)
    n = int(round(rng.uniform(*SILENCE_SECONDS) * sr))
    n = min(n, len(y))
    a = int(rng.integers(0, len(y) - n + 1))
    f = min(int(0.02 * sr), n // 2)
    gain = np.zeros(n, np.float32)
    if f:
        gain[:f], gain[n - f:] = np.linspace(1, 0, f), np.linspace(0, 1, f)
    y[a:a + n] *= gain
    return y


def song_seeds(split: str, num_songs: int) -> list[int]:
    if split == "train":
        return list(range(num_songs))
    if split in ("heldout", "test"):
        if num_songs > len(HELDOUT_SEEDS):
            raise ValueError(f"at most {len(HELDOUT_SEEDS)} held-out songs, got num_songs={num_songs}")
        return list(HELDOUT_SEEDS[:num_songs])
    raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")


def motion_stats(num_songs: int = 64, seconds: float = 12.0, cache_dir: str = DEFAULT_CACHE, world: str = "v1"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (mean (151,), std (151,)) of the training motion, std floored at `STD_FLOOR`."""
    m = np.concatenate([load_song(s, seconds, cache_dir, world)["motion"] for s in song_seeds("train", num_songs)])
    return m.mean(0).astype(np.float32), np.maximum(m.std(0), STD_FLOOR).astype(np.float32)


def music_stats(num_songs: int = 64, seconds: float = 12.0, cache_dir: str = DEFAULT_CACHE, world: str = "v1",
                music_dim: int = FEATURE_DIM) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean (M,), std (M,)) of the training music features (MFCCs span hundreds; one-hots 0/1), M =
    music_dim (35, or 39 with the song-level `audio.rhythm_channels`)."""
    f = np.concatenate([model_music(load_song(s, seconds, cache_dir, world)["music"], music_dim)
                        for s in song_seeds("train", num_songs)])
    return f.mean(0).astype(np.float32), np.maximum(f.std(0), STD_FLOOR).astype(np.float32)


class DanceWindows(torch.utils.data.Dataset):
    """150-frame windows of synthetic songs, cut with `stride`.

    Items: {"x": (151, 150) normalised motion, "music": (M, 150) raw features, "genre": int64 scalar}, M = music_dim
    (35; 39 adds `audio.rhythm_channels`, computed over the whole song before cutting). The model normalises music
    itself (its buffers), so the same raw features go in at generation time.
    stats: (mean, std) for the motion; default `motion_stats` over the same songs.
    """

    def __init__(self, split: str = "train", num_songs: int = 64, seconds: float = 12.0, stride: int = 10,
                 cache_dir: str = DEFAULT_CACHE, stats: tuple[np.ndarray, np.ndarray] | None = None,
                 window: int = WINDOW, world: str = "v1", music_dim: int = FEATURE_DIM):
        if seconds * FPS + 1 < window:
            raise ValueError(f"songs of {seconds} s have fewer than window={window} frames; need ≥ {window / FPS:.1f} s")
        if stride < 1:
            raise ValueError(f"stride must be ≥ 1, got {stride}")
        self.window, self.music_dim = window, music_dim
        songs = [load_song(s, seconds, cache_dir, world) for s in song_seeds(split, num_songs)]
        if stats is None:
            m = np.concatenate([s["motion"] for s in songs])
            stats = (m.mean(0), np.maximum(m.std(0), STD_FLOOR))
        self.mean, self.std = (np.asarray(a, np.float32) for a in stats)
        self.motion = [torch.from_numpy((s["motion"] - self.mean) / self.std).T.contiguous() for s in songs]  # (151, T)
        self.music = [torch.from_numpy(model_music(s["music"], music_dim)).T.contiguous() for s in songs]  # (M, T)
        self.genre = [int(s["genre"]) for s in songs]
        self.index = [(i, a) for i, s in enumerate(songs) for a in range(0, len(s["motion"]) - window + 1, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        i, a = self.index[k]
        x = self.motion[i][:, a:a + self.window]
        music = self.music[i][:, a:a + self.window]
        assert x.shape == (sk.MOTION_DIM, self.window) and music.shape == (self.music_dim, self.window)
        return {"x": x, "music": music, "genre": torch.tensor(self.genre[i], dtype=torch.long)}
