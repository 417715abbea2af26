"""Music features for dance generation: EDGE's 35-d "baseline" features at 30 FPS.

Follows EDGE (Tseng et al., CVPR 2023) ``data/audio_extraction/baseline_features.py``:
FPS = 30, HOP_LENGTH = 512, SR = FPS * HOP_LENGTH = 15360, and per frame
``[onset envelope (1) | MFCC (20) | chroma CENS (12) | onset peaks one-hot (1) | beats one-hot (1)]``.
Beats come from ``librosa.beat.beat_track(onset_envelope=..., start_bpm=<tempo estimate>, tightness=100)`` (its
numpy port in ``tasks/dance/beats.py``: the same beats, without librosa.beat's start-up JIT).
(EDGE parses the start tempo out of AIST++ music names and falls back to a tempo estimate; we always estimate it
from the same onset envelope.)

Frame alignment rule: librosa frames are centred, so a signal of ``n`` samples at SR gives
``N = 1 + floor(n / 512)`` frames and feature frame ``i`` describes time ``i / 30`` s -- the same instant as motion
frame ``i`` at 30 FPS. A clip of ``s`` seconds therefore has ``30 * s + 1`` frames; trim to the motion length.

    python -c "from tasks.dance.audio import music_features; print(music_features('song.wav').shape)"
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .beats import beat_track

FPS = 30
HOP_LENGTH = 512
SR = FPS * HOP_LENGTH  # 15360
FEATURE_DIM = 35
RHYTHM_DIM = 4  # song-level channels `rhythm_channels` derives from the 35: beat phase sin / cos, beat period, loudness
LOUD_SMOOTH = 15  # frames (0.5 s) of smoothing for the relative loudness channel
MIN_SECONDS = 1.0
MAX_SECONDS = 600.0  # 10 minutes: longer files are rejected (memory / time of CQT chroma)
SILENCE_RMS = 1e-4


def load_audio(path, sr: int = SR, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Read any file librosa can read (wav, mp3, ogg, flac; mono or stereo; any rate), mix to mono and resample
    to ``sr``. Returns y (n,) float32. Raises ValueError naming the file when it cannot be decoded, is shorter
    than 1 s or longer than ``max_seconds``."""
    import librosa

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"audio file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            duration = librosa.get_duration(path=path)
    except Exception as e:  # noqa: BLE001 - decoder errors come in many types
        raise ValueError(f"cannot read audio file {path!r} (unsupported or corrupt; wav/mp3/ogg/flac accepted): "
                         f"{type(e).__name__}: {e}") from None
    if duration > max_seconds:
        raise ValueError(f"audio file {path!r} is {duration:.1f} s long; at most {max_seconds:.0f} s accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot read audio file {path!r} (unsupported or corrupt; wav/mp3/ogg/flac accepted): "
                         f"{type(e).__name__}: {e}") from None
    _check_length(y, sr, path)
    return y.astype(np.float32)


def _check_length(y: np.ndarray, sr: int, name: str) -> None:
    seconds = len(y) / sr
    if seconds < MIN_SECONDS:
        raise ValueError(f"audio {name!r} is {seconds:.2f} s long; at least {MIN_SECONDS:.0f} s is needed")
    if seconds > MAX_SECONDS:
        raise ValueError(f"audio {name!r} is {seconds:.1f} s long; at most {MAX_SECONDS:.0f} s accepted")


def audio_features(y: np.ndarray, sr: int = SR, name: str = "<array>") -> np.ndarray:
    """EDGE baseline features. y (n,) mono at ``sr`` (resampled to 15360 Hz if different).

    Returns (N, 35) float32 with N = 1 + floor(n' / 512), n' the sample count at 15360 Hz; columns
    0 onset envelope, 1:21 MFCC, 21:33 chroma CENS, 33 onset peak one-hot, 34 beat one-hot.
    Raises ValueError on silence / no detectable beats, and on clips shorter than 1 s or longer than 10 min.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:  # (channels, n) or (n, channels) -> mono
        y = y.mean(axis=0 if y.shape[0] <= 8 else 1)
    if y.ndim != 1:
        raise ValueError(f"audio_features: y must be (n,) or (channels, n), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"audio {name!r} contains NaN or inf samples")
    _check_length(y, sr, name)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    if np.sqrt(np.mean(y ** 2)) < SILENCE_RMS:
        raise ValueError(f"audio {name!r} is silent (RMS < {SILENCE_RMS}); no beats can be found")
    envelope = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP_LENGTH)  # (N,)
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, hop_length=HOP_LENGTH).T  # (N, 20)
    chroma = librosa.feature.chroma_cens(y=y, sr=SR, hop_length=HOP_LENGTH, n_chroma=12).T  # (N, 12)
    peak_idxs = librosa.onset.onset_detect(onset_envelope=envelope.flatten(), sr=SR, hop_length=HOP_LENGTH)
    peak_onehot = np.zeros_like(envelope, dtype=np.float32)
    peak_onehot[peak_idxs] = 1.0
    start_bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=HOP_LENGTH))[0])
    if not np.isfinite(start_bpm) or start_bpm <= 0:
        start_bpm = 120.0
    # = librosa.beat.beat_track(onset_envelope=envelope, sr=SR, hop_length=HOP_LENGTH, start_bpm=start_bpm,
    # tightness=100): its tempo step here, its DP in numpy (tasks/dance/beats.py; importing librosa.beat JIT-compiles
    # numba kernels on every start)
    bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=HOP_LENGTH,
                                                    start_bpm=start_bpm))[0])
    beat_idxs = beat_track(envelope, bpm, SR / HOP_LENGTH, tightness=100) if bpm > 0 else np.array([], dtype=int)
    if len(beat_idxs) == 0:
        raise ValueError(f"audio {name!r} has no detectable beats (silent or without rhythm)")
    beat_onehot = np.zeros_like(envelope, dtype=np.float32)
    beat_onehot[beat_idxs] = 1.0
    n = min(len(envelope), len(mfcc), len(chroma))
    feats = np.concatenate([envelope[:n, None], mfcc[:n], chroma[:n], peak_onehot[:n, None], beat_onehot[:n, None]],
                           axis=-1)
    return feats.astype(np.float32)


def music_features(path, seconds: float | None = None) -> np.ndarray:
    """Load ``path`` and return its (N, 35) features; with ``seconds`` only the first ``seconds`` are used and
    N = floor(seconds * 30) + 1."""
    y = load_audio(path)
    if seconds is not None:
        if seconds < MIN_SECONDS:
            raise ValueError(f"music_features: seconds must be >= {MIN_SECONDS}, got {seconds}")
        y = y[: int(round(seconds * SR))]
    return audio_features(y, SR, name=os.fspath(path))


def load_music(path, seconds: float | None = None) -> dict:
    """Read + validate audio and compute its features (no torch): dict(audio (n,) at 15360 Hz, features (N, 35),
    seconds, source = the path). ValueError on bad input (unreadable, silent, < 1 s, > 10 min, `seconds` longer than
    the music or < 1)."""
    y = load_audio(path)
    duration = len(y) / SR
    if seconds is not None:
        if not 1.0 <= seconds:
            raise ValueError(f"seconds must be ≥ 1, got {seconds}")
        if seconds > duration + 1e-3:
            raise ValueError(f"seconds={seconds:g} is longer than the music ({duration:.2f} s in {os.fspath(path)!r})"
                             f"; pass seconds ≤ {duration:.2f} or leave it out to use the whole file")
        y = y[: int(round(seconds * SR))]
    feats = audio_features(y, SR, name=os.fspath(path))
    return dict(audio=y, features=feats, seconds=len(y) / SR, source=os.fspath(path))


def _load_music_child(conn, path, seconds) -> None:
    try:
        conn.send((True, load_music(path, seconds)))
    except Exception as e:  # noqa: BLE001 - sent back and raised in the parent
        conn.send((False, e))
    finally:
        conn.close()


class MusicPrefetch:
    """`load_music(path, seconds)` in a forked process, started before the caller imports torch and loads its model:
    on this 2-core CPU librosa's import (scipy.signal, numba) + decoding + features take ~2-3 s, as long as torch +
    diffusers + the model, and the two now run side by side. `result()` returns load_music's dict or raises its error
    (same message). Where fork is not the platform's safe default (not Linux) it just runs load_music in `result()`.

        music = MusicPrefetch("song.mp3")      # at once, before `import torch`
        ...                                    # imports, model loading
        res = pipe(music.result())
    """

    def __init__(self, path, seconds: float | None = None):
        import sys

        self._args, self._proc = (os.fspath(path), seconds), None
        if sys.platform.startswith("linux"):
            import multiprocessing as mp

            ctx = mp.get_context("fork")
            self._conn, child = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=_load_music_child, args=(child, *self._args), daemon=True)
            self._proc.start()
            child.close()

    def result(self) -> dict:
        if self._proc is None:
            return load_music(*self._args)
        try:
            ok, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the music-loading process for {self._args[0]!r} died "
                               f"(exit code {self._proc.exitcode})") from None
        finally:
            self._conn.close()
            self._proc.join()
            self._proc = None
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Stop the loading process (when the caller fails before it needs the music)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join()
            self._conn.close()
            self._proc = None


def rhythm_channels(features: np.ndarray) -> np.ndarray:
    """Song-level rhythm channels from (N, 35) EDGE features, (N, 4) float32: what the choreographer dances to, in a
    form a convolutional network can read at every frame rather than only at a one-frame beat impulse.

    - 0, 1: sin / cos of the beat phase 2π·φ, φ ∈ [0, 1) the fraction of the way from the last tracked beat (column 34)
      to the next one (before the first / after the last beat: extrapolated with the median beat period);
    - 2: the local beat period in seconds, minus 0.5 (120 BPM → 0);
    - 3: loudness relative to the song's loudest moment, as an amplitude ratio in [0, 1]: MFCC c0 (column 1) is
      √128 × the mean mel band level in dB, so 10^((c̄0 − max c̄0) / (20 √128)) with c̄0 smoothed over 0.5 s (the
      choreographer scales its moves by each beat's RMS over the song's loudest beat; silence → ~0).

    Computed over the whole song, before any windowing, so a window sees the same values it would inside its song."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != FEATURE_DIM:
        raise ValueError(f"rhythm_channels: features must be (N, {FEATURE_DIM}), got {f.shape}")
    n = len(f)
    idx = np.arange(n, dtype=np.float64)
    beats = np.flatnonzero(f[:, -1] > 0.5).astype(np.float64)
    period = float(np.median(np.diff(beats))) if len(beats) >= 2 else float(FPS)  # frames; 1 s when unknown
    if len(beats) == 0:
        beats = np.array([0.0])
    # every frame between two beats: the tracked ones, extended at the median period to cover frames -1 … n
    pre = beats[0] - period * np.arange(np.ceil((beats[0] + 1) / period), 0, -1)
    post = beats[-1] + period * np.arange(1, np.ceil((n - beats[-1]) / period) + 2)
    knots = np.r_[pre, beats, post]
    b = np.interp(idx, knots, np.arange(len(knots), dtype=np.float64))  # beat number, fractional
    phase = b - np.floor(b)
    local = np.diff(knots)[np.clip(np.floor(b).astype(int), 0, len(knots) - 2)]
    c0 = np.convolve(np.pad(f[:, 1], LOUD_SMOOTH // 2, mode="edge"), np.ones(LOUD_SMOOTH) / LOUD_SMOOTH, "valid")[:n]
    loud = 10.0 ** ((c0 - c0.max()) / (20.0 * np.sqrt(128.0)))
    out = np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase), local / FPS - 0.5, loud], axis=1)
    return out.astype(np.float32)


def model_music(features: np.ndarray, music_dim: int) -> np.ndarray:
    """The (N, music_dim) input a dance model reads: the 35 EDGE features, plus `rhythm_channels` when music_dim is 39."""
    f = np.asarray(features, dtype=np.float32)
    if music_dim == FEATURE_DIM:
        return f
    if music_dim == FEATURE_DIM + RHYTHM_DIM:
        return np.concatenate([f, rhythm_channels(f)], axis=1)
    raise ValueError(f"music_dim must be {FEATURE_DIM} (EDGE features) or {FEATURE_DIM + RHYTHM_DIM} (+ rhythm), "
                     f"got {music_dim}")


def beat_frames(features: np.ndarray) -> np.ndarray:
    """Indices of the beat one-hot (last column) of (N, 35) features."""
    return np.flatnonzero(np.asarray(features)[:, -1] > 0.5)
