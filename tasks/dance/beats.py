"""librosa's dynamic-programming beat tracker (``librosa.beat.beat_track``, librosa 0.11, static tempo) in numpy.

Why a port: importing ``librosa.beat`` JIT-compiles its numba kernels on every start (two of them with
``cache=False``), which was the largest single cost of ``dance-generate``'s start-up. The algorithm is Ellis (2007)
as librosa implements it, step for step, in the same float32/float64 arithmetic: local score = the std-normalised
onset envelope convolved with a Gaussian of ±1 beat (librosa's same-mode loop, which skips frame 0); the DP over
predecessors ``i − round(fpb/2) … i − 2·fpb`` with the log-interval penalty; the last beat = the last local maximum
of the cumulative score above half its median; backtracking; trimming of weak leading/trailing frames.
``tests/tasks/dance/test_beats.py`` checks that the beats equal librosa's on songs of several tempi and genres.
"""
from __future__ import annotations

import numpy as np


def _normalize(onsets: np.ndarray) -> np.ndarray:
    norm = onsets.std(ddof=1, axis=-1, keepdims=True)
    return onsets / (norm + np.finfo(onsets.dtype).tiny)


def _local_score(env: np.ndarray, fpb: float) -> np.ndarray:
    """Same-mode convolution with a Gaussian window, accumulated term by term in env's precision like librosa's
    loop: localscore[i] = Σ_k window[k]·env[i + K//2 − k] over k ascending, for 1 ≤ i + K//2 − k ≤ N − 1."""
    n = len(env)
    window = np.exp(-0.5 * (np.arange(-fpb, fpb + 1) * 32.0 / fpb) ** 2)
    K = len(window)
    half = K // 2
    out = np.zeros(n, dtype=env.dtype)
    idx = np.arange(n)
    e64 = env.astype(np.float64)
    for k in range(K):
        j = idx + half - k
        ok = (j >= 1) & (j <= n - 1)
        term = np.zeros(n)
        term[ok] = window[k] * e64[j[ok]]
        out = (out.astype(np.float64) + term).astype(env.dtype)
    return out


def _dp(localscore: np.ndarray, fpb: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(localscore)
    dtype = localscore.dtype
    backlink = np.full(n, -1, dtype=np.int64)
    cumscore = np.zeros(n, dtype=dtype)
    score_thresh = 0.01 * localscore.max()
    first_beat = True
    tight = float(np.float32(tightness))
    log_fpb = float(np.log(dtype.type(fpb)))
    start_off = int(np.round(fpb / 2))
    stop_off = int(2 * fpb + 1)
    for i in range(n):
        score_i = localscore[i]
        hi = i - start_off            # first (nearest) candidate predecessor
        lo = max(i - stop_off + 1, 0)  # farthest one (the range stops before i − 2·fpb − 1), clipped at the start
        best_score, beat_location = -np.inf, -1
        if hi >= 0 and hi >= lo:
            locs = np.arange(hi, lo - 1, -1)  # nearest first: ties keep the nearest, as librosa's strict `>`
            scores = cumscore[locs].astype(np.float64) - tight * (np.log(i - locs) - log_fpb) ** 2
            b = int(np.argmax(scores))
            best_score, beat_location = scores[b], int(locs[b])
        cumscore[i] = score_i + best_score if beat_location >= 0 else score_i
        if first_beat and score_i < score_thresh:
            backlink[i] = -1
        else:
            backlink[i] = beat_location
            first_beat = False
    return backlink, cumscore


def _localmax(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x), dtype=bool)
    out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    out[-1] = x[-1] > x[-2]
    return out


def _last_beat(cumscore: np.ndarray) -> int:
    peaks = _localmax(cumscore)
    threshold = 0.5 * np.median(cumscore[peaks]) if peaks.any() else 0.0
    for n in range(len(cumscore) - 1, -1, -1):
        if peaks[n] and cumscore[n] >= threshold:
            return n
    return len(cumscore) - 1


def _trim(localscore: np.ndarray, beats: np.ndarray) -> np.ndarray:
    out = beats.copy()
    w = np.hanning(5)
    smooth = np.convolve(localscore[beats], w)[len(w) // 2:len(localscore) + len(w) // 2]
    threshold = 0.5 * ((smooth ** 2).mean() ** 0.5)
    n = 0
    while n < len(localscore) and localscore[n] <= threshold:
        out[n] = False
        n += 1
    n = len(localscore) - 1
    while n >= 0 and localscore[n] <= threshold:
        out[n] = False
        n -= 1
    return out


def beat_track(onset_envelope: np.ndarray, bpm: float, frame_rate: float, tightness: float = 100.0) -> np.ndarray:
    """Beat frame indices of a 1-D onset envelope at a given tempo: ``librosa.beat.beat_track(onset_envelope=…,
    bpm=bpm, sr=…, hop_length=…, tightness=…)[1]`` with ``frame_rate = sr / hop_length``."""
    env = np.asarray(onset_envelope)
    if env.ndim != 1:
        raise ValueError(f"beat_track: the onset envelope must be 1-D, got shape {env.shape}")
    if not env.any():
        return np.array([], dtype=int)
    if not bpm > 0 or tightness <= 0:
        raise ValueError(f"beat_track: bpm ({bpm}) and tightness ({tightness}) must be > 0")
    if env.dtype not in (np.float32, np.float64):
        env = env.astype(np.float64)
    fpb = float(np.round(frame_rate * 60.0 / bpm))
    fpb = float(env.dtype.type(fpb))
    localscore = _local_score(_normalize(env), fpb)
    backlink, cumscore = _dp(localscore, fpb, tightness)
    beats = np.zeros(len(env), dtype=bool)
    n = _last_beat(cumscore)
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    return np.flatnonzero(_trim(localscore, beats))
