"""Rest in silence (tasks/dance/rest.py): silent spans found from the features, motion settled there and only there."""
import numpy as np
import pytest
import torch

from tasks.dance import metrics as M
from tasks.dance.rest import rest_in_silence, rest_weight, silent_frames

FPS = 30


def _features(n, quiet=(), level_db=-20.0):
    """(n, 35) features whose mean mel-band level (c0 / √128) is `level_db`, lowered by d dB on frames [a, b)."""
    f = np.zeros((n, 35), np.float32)
    f[:, 1] = level_db * np.sqrt(128.0)
    for a, b, d in quiet:
        f[a:b, 1] -= d * np.sqrt(128.0)
    return f


def test_silent_frames_finds_long_silences_only():
    f = _features(600, quiet=[(100, 160, 60.0),    # 2 s of silence: found
                               (300, 315, 60.0),    # 0.5 s: too short (a rest in the music)
                               (400, 500, 15.0)])   # a quiet passage, 15 dB down: music
    s = silent_frames(f)
    assert s[100:160].all() and s.sum() == 60
    assert not silent_frames(_features(300)).any()
    with pytest.raises(ValueError, match="features"):
        silent_frames(np.zeros(10))


def test_rest_weight_ramps_in_and_out():
    s = np.zeros(200, bool)
    s[50:150] = True
    w = rest_weight(s)
    assert w[:50].max() == 0 and w[150:].max() == 0
    assert np.allclose(w[59:141], 1.0) and 0 < w[50] < w[55] < 1 and 0 < w[149] < w[145] < 1


def test_rest_settles_the_silence_and_leaves_the_music_exact():
    n = 600
    t = np.arange(n) / FPS
    motion = (np.sin(2 * np.pi * 2.0 * t)[:, None] * np.ones((1, 151)) + 0.01 * t[:, None]).astype(np.float32)
    f = _features(n, quiet=[(200, 440, 60.0)])
    out = rest_in_silence(motion, f)
    assert np.array_equal(out[:200], motion[:200]) and np.array_equal(out[440:], motion[440:])
    inner = slice(230, 410)
    beat_motion = np.abs(np.diff(motion[inner, 5])).mean()
    assert np.abs(np.diff(out[inner, 5])).mean() < 0.05 * beat_motion   # the 2-Hz beat motion is gone ...
    assert abs(out[inner, 5].mean() - motion[inner, 5].mean()) < 0.02   # ... the slow drift stays
    assert np.array_equal(rest_in_silence(motion, _features(n)), motion)  # music throughout: unchanged


def test_pipeline_idles_in_silence_and_rest_can_be_turned_off(tmp_path):
    from tasks.dance.data import DanceWindows, load_song, music_stats
    from tasks.dance.model import DanceModel
    from tasks.dance.pipeline import DancePipeline

    cache = str(tmp_path)
    for s in range(2):
        load_song(s, 6.0, cache)
    ds = DanceWindows("train", 2, 6.0, 30, cache)
    tiny = dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=16)
    model = DanceModel(unet_config=tiny).set_stats((ds.mean, ds.std), music_stats(2, 6.0, cache))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    song = load_song(0, 6.0, cache)
    feats = np.array(song["music"], np.float32)
    feats[60:150, 1] -= 60 * np.sqrt(128.0)  # seconds 2-5 silent
    on = DancePipeline(model, steps=3, scheduler="ddim", guidance=1.0)(feats, seed=0)
    off = DancePipeline(model, steps=3, scheduler="ddim", guidance=1.0, rest_in_silence=False)(feats, seed=0)
    e_on, e_off = M.motion_energy(on["joints"]), M.motion_energy(off["joints"])
    assert e_on[3] < 0.3 * e_off[3]             # the silent second in the middle: settled
    assert np.allclose(e_on[0], e_off[0], rtol=0.05, atol=1e-6)  # the music before it: as before


def test_heading_fill_interpolates_unsure_frames_only():
    from tasks.dance import skeleton as sk
    from tasks.dance.heading import fill_uncertain_heading

    n = 60
    yaw = np.linspace(0, np.pi / 2, n)  # a quarter turn over 2 s
    R = np.zeros((n, 24, 3, 3), np.float32)
    R[:] = np.eye(3)
    c, s = np.cos(yaw), np.sin(yaw)
    R[:, 0] = np.stack([np.stack([c, 0 * c, s], -1), np.tile([0.0, 1.0, 0.0], (n, 1)), np.stack([-s, 0 * c, c], -1)], -1)
    motion = sk.pack_motion(np.zeros((n, 4)), np.zeros((n, 3)), R)
    noisy = motion.copy()
    rng = np.random.default_rng(0)
    noisy[20:30, 7:10] = 0.05 * rng.standard_normal((10, 3))  # the heading column collapses: direction is noise
    out = fill_uncertain_heading(noisy)
    assert np.array_equal(out[:20], noisy[:20]) and np.array_equal(out[30:], noisy[30:])
    got = sk.unpack_motion(out)[2][:, 0]
    err = np.degrees(np.arccos(np.clip((np.einsum("tij,tij->t", got, R[:, 0]) - 1) / 2, -1, 1)))
    assert err.max() < 1.0  # the turn is recovered through the unsure frames
    assert np.array_equal(fill_uncertain_heading(motion), motion)


def test_yaw_fill_turns_through_a_half_turn_the_vector_fill_flips():
    """The network's unsure frames are mostly mid-half-turn: the heading column shrinks through zero and comes back
    reversed. The yaw fill turns the pelvis there step by step; interpolating the unit vectors flips it in one frame."""
    from tasks.dance import skeleton as sk
    from tasks.dance.heading import fill_uncertain_heading

    n = 40
    R = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 24, 3, 3)).copy()
    motion = sk.pack_motion(np.zeros((n, 4)), np.zeros((n, 3)), R)
    s = np.clip((np.arange(n) - 15) / 10.0, 0, 1)                        # frames 15-25: a half turn ...
    turn = np.radians(170.0) * s
    col = np.stack([np.cos(turn), 0 * turn, -np.sin(turn)], 1)           # ... as the true heading column
    blend = (1 - s)[:, None] * col[0] + s[:, None] * col[-1]             # the x0-average the network gives: through 0
    motion[:, 7:10] = blend
    steps = {}
    for mode in ("yaw", "vector"):
        rot = sk.unpack_motion(fill_uncertain_heading(motion, mode=mode))[2][:, 0]
        fwd = rot[:, :, 0]
        yaw = np.degrees(np.unwrap(np.arctan2(-fwd[:, 2], fwd[:, 0])))
        steps[mode] = np.abs(np.diff(yaw))
    assert steps["yaw"].max() < 45 and abs(steps["yaw"].sum() - 170) < 1   # a turn, frame by frame
    assert steps["vector"].max() > 60                                       # a flip (> 45°: counted as one)
    with pytest.raises(ValueError, match="mode"):
        fill_uncertain_heading(motion, mode="slerp")
