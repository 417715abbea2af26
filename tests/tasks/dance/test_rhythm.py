"""Song-level rhythm channels (beat phase, period, relative loudness) and 39-channel dance models."""
import numpy as np
import pytest
import torch

from tasks.dance.audio import FEATURE_DIM, RHYTHM_DIM, SR, audio_features, model_music, rhythm_channels
from tasks.dance.data import DanceWindows, load_song, music_stats
from tasks.dance.model import DanceModel
from tasks.dance.pipeline import DancePipeline

TINY = dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=16)


def _clicks(bpm=120.0, seconds=8.0, silent=None):
    """A click track: a 20 ms 1 kHz burst on every beat (0.25 s offset), optionally zeroed over `silent` seconds."""
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for b in np.arange(0.25, seconds, 60.0 / bpm):
        m = (t >= b) & (t < b + 0.02)
        y[m] = 0.8 * np.sin(2 * np.pi * 1000 * (t[m] - b))
    y += 0.01 * np.sin(2 * np.pi * 220 * t)  # a quiet drone, so the silence below is quieter than the music
    if silent:
        y[int(silent[0] * SR):int(silent[1] * SR)] = 0.0
    return y.astype(np.float32)


def test_phase_period_and_loudness_on_a_click_track():
    f = audio_features(_clicks(120.0, 10.0, silent=(5.0, 8.0)), SR)
    r = rhythm_channels(f)
    assert r.shape == (len(f), RHYTHM_DIM) and r.dtype == np.float32
    beats = np.flatnonzero(f[:, -1] > 0.5)
    assert len(beats) >= 6
    np.testing.assert_allclose(r[beats, 1], 1.0, atol=1e-6)          # cos(2π·0) at every tracked beat
    np.testing.assert_allclose(np.hypot(r[:, 0], r[:, 1]), 1.0, atol=1e-5)
    mid = (beats[:-1] + beats[1:]) // 2
    ok = np.diff(beats) % 2 == 0  # an even gap puts `mid` exactly half-way
    assert np.all(r[mid[ok], 1] < -0.99)                             # half a beat: cos π
    loud = np.r_[0:4 * 30]
    assert abs(np.median(r[loud, 2]) - 0.0) < 0.05                   # 120 BPM: a 0.5 s period → 0
    assert r[:, 3].max() == pytest.approx(1.0) and r[:, 3].min() >= 0
    # MFCC c0 is a mean over mel bands of levels floored at 80 dB under the peak: a narrow-band click track keeps
    # much of its silence's level, yet silence stays well under the music
    assert r[int(6.0 * 30):int(7.5 * 30), 3].max() < 0.5 * np.median(r[loud, 3])


def test_phase_extrapolates_before_the_first_and_after_the_last_beat():
    f = np.zeros((100, FEATURE_DIM), np.float32)
    f[[30, 40, 50], -1] = 1.0
    r = rhythm_channels(f)
    np.testing.assert_allclose(r[[0, 10, 20, 60, 70, 80, 90], 1], 1.0, atol=1e-6)  # every 10 frames, both ways
    np.testing.assert_allclose(r[[5, 35, 95], 1], -1.0, atol=1e-6)
    np.testing.assert_allclose(r[:, 2], 10 / 30 - 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="35"):
        rhythm_channels(np.zeros((10, 34)))
    with pytest.raises(ValueError, match="music_dim"):
        model_music(f, 36)


def test_windows_carry_the_song_level_channels(tmp_path):
    d = str(tmp_path)
    load_song(0, 6.0, d)
    ds = DanceWindows("train", 1, 6.0, 30, d, music_dim=FEATURE_DIM + RHYTHM_DIM)
    full = model_music(load_song(0, 6.0, d)["music"], FEATURE_DIM + RHYTHM_DIM)
    a = ds.index[1][1]
    np.testing.assert_array_equal(ds[1]["music"].numpy(), full[a:a + 150].T)  # cut after the song-level computation
    mean, std = music_stats(1, 6.0, d, music_dim=FEATURE_DIM + RHYTHM_DIM)
    assert mean.shape == std.shape == (FEATURE_DIM + RHYTHM_DIM,)


def test_widened_model_equals_the_old_one_until_trained_and_samples_from_35_features():
    g = torch.Generator().manual_seed(0)
    old = DanceModel(unet_config=TINY, prediction_type="sample").eval()
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    new = old.with_music_dim(FEATURE_DIM + RHYTHM_DIM).eval()
    assert new.config.music_dim == 39 and new.unet.config.extra_in_channels == 39
    x, t = torch.randn(2, 151, 150, generator=g), torch.tensor([5, 800])
    m35 = torch.randn(2, FEATURE_DIM, 150, generator=g)
    m39 = torch.cat([m35, torch.randn(2, RHYTHM_DIM, 150, generator=g)], 1)
    for keep in ([True, True], [True, False]):
        c35, c39 = old.condition(m35), new.condition(m39)
        c35["music.keep"] = c39["music.keep"] = torch.tensor(keep)
        with torch.no_grad():
            torch.testing.assert_close(new(x, t, c39), old(x, t, c35), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="only add"):
        new.with_music_dim(FEATURE_DIM)
    with pytest.raises(ValueError, match=r"\(B, 39, T\)"):
        new(x, t, c35)
    # the pipeline takes the same (N, 35) features for either model and adds the channels itself
    feats = audio_features(_clicks(100.0, 6.0), SR)
    pipe = DancePipeline(new, steps=2, scheduler="ddim", guidance=1.0, foot_lock=False)
    a = pipe.sample_motion(feats, seed=3)
    assert a.shape == (len(feats), 151) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, pipe.sample_motion(feats, seed=3))
