"""Tests for tasks/dance: audio features, skeleton/FK, BVH, synthetic data, AIST++ loader, metrics, rendering."""
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from tasks.dance import skeleton as sk
from tasks.dance import metrics as M
from tasks.dance.audio import audio_features, beat_frames, load_audio, music_features
from tasks.dance.bvh import read_bvh, write_bvh
from tasks.dance.synth import make_pair, make_song, write_wav


@pytest.fixture(scope="module")
def pair():
    return make_pair(1, 8.0, genre="house")


def _shift(j, frames):
    return np.concatenate([j[:1].repeat(frames, 0), j[:-frames]])


# ---------------------------------------------------------------- audio
def test_features_shape_and_beats(pair):
    song = pair["song"]
    f = audio_features(song["audio"], song["sr"])
    assert f.shape[1] == 35 and f.dtype == np.float32
    assert abs(f.shape[0] - 8.0 * 30) <= 1
    bf = beat_frames(f)
    d = np.array([np.abs(bf - b).min() for b in song["beat_times"] * 30])
    assert (d <= 2).mean() >= 0.8


@pytest.mark.parametrize("sr,stereo", [(22050, True), (44100, False), (8000, True)])
def test_load_any_rate_and_channels(tmp_path, sr, stereo):
    import soundfile as sf
    song = make_song(2, 3.0, genre="rock", sr=sr)
    y = np.stack([song["audio"], song["audio"]], 1) if stereo else song["audio"]
    p = tmp_path / "a.wav"
    sf.write(p, y, sr)
    f = music_features(p)
    assert f.shape == (3 * 30 + 1, 35)


def test_bad_audio(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF0000WAVEnot really audio" * 10)
    with pytest.raises(ValueError, match="corrupt.wav"):
        load_audio(bad)
    with pytest.raises(ValueError, match="silent"):
        audio_features(np.zeros(15360 * 2, np.float32))
    with pytest.raises(ValueError, match="at least 1 s"):
        audio_features(np.random.default_rng(0).standard_normal(5000).astype(np.float32))


def test_music_prefetch_is_load_music_in_another_process(tmp_path):
    """The CLI's background loading gives load_music's arrays exactly, and its errors with their messages."""
    import soundfile as sf

    from tasks.dance.audio import MusicPrefetch, load_music

    song = make_song(3, 3.0, genre="house", sr=22050)
    p = tmp_path / "s.wav"
    sf.write(p, song["audio"], 22050)
    direct, pre = load_music(p, 2.5), MusicPrefetch(p, 2.5).result()
    assert pre["source"] == str(p) and pre["seconds"] == direct["seconds"] == 2.5
    assert np.array_equal(pre["features"], direct["features"]) and np.array_equal(pre["audio"], direct["audio"])
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF0000WAVEnot really audio" * 10)
    with pytest.raises(ValueError, match="corrupt.wav"):
        MusicPrefetch(bad).result()
    with pytest.raises(ValueError, match="longer than the music"):
        MusicPrefetch(p, 9.0).result()
    m = MusicPrefetch(p)
    m.cancel()            # the caller failed first: the process is stopped, nothing left running
    assert m._proc is None


# ---------------------------------------------------------------- skeleton
def test_rest_pose_fk():
    rot = torch.eye(3).expand(24, 3, 3)
    j = sk.forward_kinematics(torch.zeros(3), rot)
    for k, p in enumerate(sk.PARENTS[1:], start=1):
        assert torch.allclose(j[k] - j[p], torch.as_tensor(sk.REST_OFFSETS[k]), atol=1e-6)


def test_rotation_round_trips():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(100, 3, generator=g)
    R = sk.axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5)
    assert torch.allclose(sk.rotation_6d_to_matrix(sk.matrix_to_rotation_6d(R)), R, atol=1e-5)
    assert torch.allclose(sk.axis_angle_to_matrix(sk.matrix_to_axis_angle(R)), R, atol=1e-4)
    assert torch.allclose(sk.euler_zyx_to_matrix(sk.matrix_to_euler_zyx(R)), R, atol=1e-4)


def test_pack_unpack(pair):
    d = pair["dance"]
    m = sk.pack_motion(d["contacts"], d["root_pos"], d["rotations"])
    assert m.shape == (len(d["root_pos"]), 151)
    c, r, R = sk.unpack_motion(m)
    assert np.allclose(R, d["rotations"], atol=1e-5) and np.allclose(r, d["root_pos"])


# ---------------------------------------------------------------- BVH
def test_bvh_round_trip(tmp_path, pair):
    d = pair["dance"]
    path = tmp_path / "a.bvh"
    write_bvh(path, d["root_pos"], d["rotations"])
    names, parents, offsets, root, rots = read_bvh(path)
    joints = sk.forward_kinematics(root, rots, offsets=offsets, parents=parents)
    perm = [names.index(n) for n in sk.JOINT_NAMES]
    assert np.abs(joints[:, perm] - d["joints"]).max() < 1e-4


# ---------------------------------------------------------------- synthetic data
def test_synth_deterministic_and_beat_locked(pair):
    a, b = make_pair(1, 8.0, genre="house"), pair
    assert np.array_equal(a["song"]["audio"], b["song"]["audio"])
    assert np.array_equal(a["dance"]["rotations"], b["dance"]["rotations"])
    assert not np.array_equal(make_song(2, 8.0, genre="house")["audio"], a["song"]["audio"])
    for seed, genre in [(1, "house"), (2, "hiphop"), (1, "rock"), (0, "waltz")]:
        p = pair if (seed, genre) == (1, "house") else make_pair(seed, 8.0, genre=genre)
        j, mb = p["dance"]["joints"], p["song"]["beat_times"] * 30
        half = int(round(15 * 60 / p["song"]["bpm"]))
        assert M.bas_fact(j, mb) > 0.9 > 0.3 > M.bas_fact(_shift(j, half), mb)
        assert M.bas_bailando(j, mb) > 2 * M.bas_bailando(_shift(j, half), mb)


def test_synth_feet_planted_and_energy(pair):
    d = pair["dance"]
    feet = d["joints"][:, sk.FOOT_JOINTS]
    speed = np.linalg.norm(np.diff(feet, axis=0)[..., [0, 2]], axis=-1) * 30  # (T-1, 4) m/s
    c = d["contacts"][1:] > 0.5
    assert c.mean() > 0.5 and speed[c].mean() < 0.05
    assert d["contacts"].shape == (len(d["joints"]), 4)


# ---------------------------------------------------------------- AIST++
def test_aist_fixture(tmp_path):
    from tasks.dance.aist import AISTDataset
    root = tmp_path / "aist"
    for sub in ("motions", "wavs", "splits"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["gBR_sBM_cAll_d04_mBR0_ch01", "gPO_sBM_cAll_d10_mPO1_ch02"]
    for n in names:
        with open(root / "motions" / f"{n}.pkl", "wb") as f:
            pickle.dump(dict(smpl_poses=rng.normal(0, 0.2, (60, 72)).astype(np.float32),
                             smpl_trans=np.full((60, 3), 90.0, np.float32), smpl_scaling=np.array([90.0])), f)
    write_wav(root / "wavs" / "mBR0.wav", make_song(0, 2.0)["audio"], 15360)
    (root / "splits" / "crossmodal_train.txt").write_text("\n".join(names) + "\n")
    (root / "ignore_list.txt").write_text(names[1] + "\n")
    ds = AISTDataset(root)
    assert ds.names("train") == [names[0]]
    s = ds.load(names[0])
    assert s["root_pos"].shape == (30, 3) and np.allclose(s["root_pos"], 1.0)
    assert s["rotations"].shape == (30, 24, 3, 3) and s["music_path"].endswith("mBR0.wav")


# ---------------------------------------------------------------- metrics
def test_pfc_sliding_worse_than_planted(pair):
    j = pair["dance"]["joints"].astype(np.float64)
    T = len(j)
    slide = j.copy()
    slide += np.stack([0.5 * np.sin(np.arange(T) / 5.0), np.zeros(T), np.zeros(T)], 1)[:, None]
    assert M.pfc(slide) > 10 * M.pfc(j)


def test_fid_self_zero_and_diversity():
    joints = [make_pair(s, 4.0)["dance"]["joints"] for s in range(6)]
    assert abs(M.fid_k(joints, joints)) < 1e-3 and abs(M.fid_g(joints, joints)) < 1e-3
    assert M.div_k(joints, joints) > 0 and M.div_g(joints, joints) >= 0
    assert M.kinetic_features(joints[0]).shape == (72,) and M.geometric_features(joints[0]).shape == (32,)


# ---------------------------------------------------------------- rendering
def test_mp4_with_unreadable_audio_is_an_error_and_leaves_no_file(tmp_path, pair):
    from tasks.dance.render import render_stick_video
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 20)
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        render_stick_video(pair["dance"]["joints"][:30], tmp_path / "a.mp4", audio=str(bad))
    assert sorted(os.listdir(tmp_path)) == ["bad.wav"]


def test_mp4_with_audio_and_atomic(tmp_path, pair):
    import imageio_ffmpeg
    from tasks.dance.render import render_stick_video, save_npz, save_pkl
    j = pair["dance"]["joints"][:60]
    out = tmp_path / "a.mp4"
    render_stick_video(j, out, audio=(pair["song"]["audio"][:2 * 15360], 15360))
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True).stderr
    assert "Video: h264" in info and "Audio: aac" in info
    render_stick_video(j[:10], tmp_path / "a.gif")
    assert (tmp_path / "a.gif").stat().st_size > 0
    with pytest.raises(ValueError, match="extension"):
        render_stick_video(j, tmp_path / "a.avi")
    assert sorted(os.listdir(tmp_path)) == ["a.gif", "a.mp4"]
    d = pair["dance"]
    save_npz(tmp_path / "m.npz", d["root_pos"], d["rotations"])
    z = np.load(tmp_path / "m.npz")
    assert z["smpl_poses"].shape == (len(d["root_pos"]), 72) and z["smpl_scaling"][0] == 1.0
    R = sk.axis_angle_to_matrix(z["smpl_poses"].reshape(-1, 24, 3))
    assert np.allclose(R, d["rotations"], atol=1e-4)
    save_pkl(tmp_path / "m.pkl", d["root_pos"], d["rotations"])
    assert (tmp_path / "m.pkl").exists()
