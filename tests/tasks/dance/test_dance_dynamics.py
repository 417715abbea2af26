"""Dynamics (tasks/dance/dynamics.py) and beat snap (tasks/dance/beatsnap.py): quiet passages danced smaller, kinetic
beats moved onto the music's beats, and both leave what they should not touch exactly as it was."""
import numpy as np
import pytest

from tasks.dance import metrics as M
from tasks.dance import skeleton as sk
from tasks.dance.beatsnap import snap_to_beats, warp_anchors
from tasks.dance.dynamics import loudness_weight, relative_loudness
from tasks.dance.rest import settle

FPS = 30


def _features(n, quiet=(), level_db=-20.0, beats=()):
    """(n, 35) features: mean mel-band level `level_db` (c0 / √128), d dB lower on frames [a, b); beat one-hots."""
    f = np.zeros((n, 35), np.float32)
    f[:, 1] = level_db * np.sqrt(128.0)
    for a, b, d in quiet:
        f[a:b, 1] -= d * np.sqrt(128.0)
    f[list(beats), -1] = 1.0
    return f


def test_relative_loudness_is_song_relative_and_spans_range_db():
    assert np.allclose(relative_loudness(_features(300)), 1.0)  # equally loud throughout: left alone
    assert np.allclose(relative_loudness(_features(300, level_db=-60.0)), 1.0)  # a quiet recording too
    r = relative_loudness(_features(900, quiet=[(300, 600, 10.0)]), range_db=20.0)
    assert np.allclose(r[:240], 1.0, atol=1e-3) and np.allclose(r[360:540], 0.5, atol=1e-3) and np.allclose(r[660:], 1.0, atol=1e-3)
    r = relative_loudness(_features(900, quiet=[(300, 600, 30.0)]))
    assert np.allclose(r[360:540], 0.0)
    with pytest.raises(ValueError, match="features"):
        relative_loudness(np.zeros(10))


def test_loudness_weight_depth_and_length():
    f = _features(900, quiet=[(300, 600, 10.0)])
    assert not loudness_weight(f, 900, 0.0).any()
    w = loudness_weight(f, 950, 0.8)
    assert len(w) == 950 and np.allclose(w[360:540], 0.4, atol=1e-3) and np.allclose(w[:240], 0.0, atol=1e-3)
    assert len(loudness_weight(f, 100, 0.8)) == 100
    with pytest.raises(ValueError, match="depth"):
        loudness_weight(f, 900, 1.5)


def test_quiet_passage_is_danced_smaller_and_the_loud_one_as_before():
    n = 900
    t = np.arange(n) / FPS
    motion = (np.sin(2 * np.pi * 2.0 * t)[:, None] * np.ones((1, 151))).astype(np.float32)
    f = _features(n, quiet=[(300, 600, 10.0)])
    out = settle(motion, loudness_weight(f, n, 0.8))
    amp = lambda x, s: np.abs(x[s, 5]).max()  # noqa: E731
    assert np.allclose(out[:240], motion[:240], atol=1e-3) and np.allclose(out[660:], motion[660:], atol=1e-3)
    assert amp(out, slice(350, 550)) == pytest.approx((1 - 0.4) * amp(motion, slice(350, 550)), rel=0.02)


def _swaying(n, period, phase=0.5):
    """(n, 151) motion: the root swings sideways with period `period` frames, turning at phase + k·period/2: its
    frame-to-frame speed is smallest at frame 1 + k·period/2 (phase 0.5)."""
    root = np.zeros((n, 3), np.float32)
    root[:, 1] = 0.9
    root[:, 0] = 0.1 * np.cos(2 * np.pi * (np.arange(n) - phase) / period)
    rot = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 24, 3, 3)).copy()
    return sk.pack_motion(np.ones((n, 4), np.float32), root, rot)


def _kinetic(motion):
    _, root, rot = sk.unpack_motion(motion)
    return M.motion_beats_fact(sk.forward_kinematics(root, rot))


def test_warp_anchors_are_monotone_fixed_at_the_ends_and_rate_bounded():
    o, s = warp_anchors(np.array([15, 30, 45, 80]), np.array([18, 33, 40, 50, 200]), 120, max_shift=4)
    assert o[0] == s[0] == 0 and o[-1] == s[-1] == 119
    assert (np.diff(o) > 0).all() and (np.diff(s) > 0).all()
    assert all(abs(a - b) <= 4 for a, b in zip(o[1:-1], s[1:-1]))
    assert {(18, 15), (33, 30)} <= set(zip(o.astype(int), s.astype(int)))  # 40, 50: no kinetic beat within 4
    rate = np.diff(s) / np.diff(o)
    assert rate.min() >= 0.5 and rate.max() <= 2.0


def test_beat_snap_moves_kinetic_beats_onto_the_music_beats():
    n, period = 300, 30
    motion = _swaying(n, period)               # kinetic beats at 1, 16, 31, ...
    beats = np.arange(19, n - 5, 15)           # music beats 3 frames later
    f = _features(n, beats=beats)
    before = _kinetic(motion)
    assert np.abs(before[:, None] - beats[None]).min(1).mean() >= 2.5
    out = snap_to_beats(motion, f, max_shift=4)
    after = _kinetic(out)
    inner = after[(after > 20) & (after < n - 20)]
    assert np.abs(inner[:, None] - beats[None]).min(1).max() <= 1
    assert M.bas_fact(sk.forward_kinematics(*sk.unpack_motion(out)[1:]), beats) > \
        M.bas_fact(sk.forward_kinematics(*sk.unpack_motion(motion)[1:]), beats) + 0.3
    assert out.shape == motion.shape and np.allclose(out[0], motion[0]) and np.allclose(out[-1], motion[-1])
    assert np.array_equal(snap_to_beats(motion, f, max_shift=0), motion)   # off
    assert np.array_equal(snap_to_beats(motion, f, max_shift=2), motion)   # beats out of reach: untouched
    with pytest.raises(ValueError, match="max_shift"):
        snap_to_beats(motion, f, max_shift=-1)


def test_pipeline_takes_and_checks_the_two_settings():
    import torch

    from tasks.dance.model import DanceModel
    from tasks.dance.pipeline import DancePipeline

    tiny = dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=16)
    model = DanceModel(unet_config=tiny)
    pipe = DancePipeline(model, dynamics=0.5, beat_snap=3)
    assert pipe.sampling["dynamics"] == 0.5 and pipe.sampling["beat_snap"] == 3
    for bad in (dict(dynamics=-0.1), dict(dynamics=1.5), dict(beat_snap=-2), dict(beat_snap=2.5)):
        with pytest.raises(ValueError, match="dynamics|beat_snap"):
            DancePipeline(model, **bad)
    n = 300
    motion = _swaying(n, 30)
    f = _features(n, quiet=[(100, 200, 10.0)], beats=np.arange(19, n - 5, 15))
    off = DancePipeline(model, dynamics=0.0, beat_snap=0, rest_in_silence=False, heading_fill=False)
    assert np.array_equal(off.post_process(motion, f, foot_lock=False), motion)
    on = DancePipeline(model, dynamics=0.8, beat_snap=4, rest_in_silence=False, heading_fill=False)
    out = on.post_process(motion, f, foot_lock=False)
    e_in, e_out = M.motion_energy(sk.forward_kinematics(*sk.unpack_motion(motion)[1:])), \
        M.motion_energy(sk.forward_kinematics(*sk.unpack_motion(out)[1:]))
    assert e_out[4] < 0.75 * e_in[4]  # seconds 3-4 of the quiet passage: smaller
    del torch
