"""tasks/dance/beats.py is librosa.beat.beat_track, ported: the same beat frames on songs of several tempi, meters
and noise levels, and the feature path no longer imports librosa.beat (its numba JIT ran on every start)."""
import subprocess
import sys

import librosa
import numpy as np
import pytest

from tasks.dance.audio import HOP_LENGTH, SR
from tasks.dance.beats import beat_track


def song(seed: int, bpm: float, seconds: float = 12.0, beats_per_bar: int = 4, noise: float = 0.0) -> np.ndarray:
    """Clicks with an accented downbeat, a bass tone per beat and optional noise (numpy only)."""
    t = np.arange(int(seconds * SR)) / SR
    beat = 60.0 / bpm
    k = np.floor(t / beat)
    phase = t - k * beat
    accent = np.where(k % beats_per_bar == 0, 1.0, 0.5)
    y = accent * np.sin(2 * np.pi * 80 * t) * np.exp(-phase * 25) + 0.2 * np.sin(2 * np.pi * 220 * t) * np.exp(-phase * 6)
    y = y + noise * np.random.default_rng(seed).standard_normal(len(t))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("seed,bpm,bpb,noise", [(0, 72.0, 4, 0.0), (1, 100.0, 3, 0.05), (2, 128.0, 4, 0.1),
                                                (3, 174.0, 4, 0.0), (4, 93.0, 3, 0.2)])
def test_same_beats_as_librosa(seed, bpm, bpb, noise):
    y = song(seed, bpm, beats_per_bar=bpb, noise=noise)
    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP_LENGTH)
    start = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=HOP_LENGTH))[0])
    _, ref = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP_LENGTH, start_bpm=start, tightness=100)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=HOP_LENGTH,
                                                      start_bpm=start))[0])
    ours = beat_track(env, tempo, SR / HOP_LENGTH, tightness=100)
    assert len(ref) > 5 and np.array_equal(ours, ref)


def test_silent_envelope_has_no_beats_and_bad_input_is_refused():
    assert beat_track(np.zeros(100, np.float32), 120.0, 30.0).size == 0
    with pytest.raises(ValueError, match="must be 1-D"):
        beat_track(np.ones((2, 50), np.float32), 120.0, 30.0)


def test_features_do_not_import_librosa_beat():
    code = ("import sys, numpy as np; from tasks.dance.audio import audio_features, SR; t = np.arange(3 * SR) / SR; "
            "y = (np.sin(2 * np.pi * 80 * t) * np.exp(-(t % 0.5) * 20)).astype('float32'); "
            "f = audio_features(y, SR); assert f[:, -1].sum() >= 3; print('librosa.beat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
