"""Dance model, training script, long-form / masked sampling, CLI outputs and bad inputs (tiny models, CPU)."""
import os
import subprocess

import numpy as np
import pytest
import torch

from gen.config import load_config
from gen.unet import ConditionalUNet
from tasks.dance import generate, train
from tasks.dance.data import DanceWindows, load_song, music_stats
from tasks.dance.model import DanceModel
from tasks.dance.pipeline import LOWER_BODY, DancePipeline, frame_mask, joint_mask
from tasks.dance.synth import make_song, write_wav

TINY = dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("dance_cache"))
    for s in range(2):
        load_song(s, 6.0, d)
    return d


def _perturb(model, seed=0):
    """Give zero-initialised layers random values, so outputs depend on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def pipe(cache):
    ds = DanceWindows("train", 2, 6.0, 30, cache)
    model = DanceModel(unet_config=TINY).set_stats((ds.mean, ds.std), music_stats(2, 6.0, cache))
    return DancePipeline(_perturb(model), steps=3, scheduler="ddim-eta", guidance=2.0)


def test_windows(cache):
    ds = DanceWindows("train", 2, 6.0, 10, cache)
    item = ds[0]
    assert item["x"].shape == (151, 150) and item["music"].shape == (35, 150) and item["genre"].dtype == torch.long
    x = torch.cat([ds.motion[i] for i in range(2)], 1)
    assert x.mean(1).abs().max() < 1e-4  # normalised with the same songs' statistics
    assert len(ds) == 2 * len(range(0, 181 - 150 + 1, 10))


def test_fine_tune_step0_equals_backbone(tmp_path, cache):
    backbone = _perturb(ConditionalUNet(dims=1, in_channels=151, **TINY))
    backbone.save_pretrained(tmp_path / "bb")
    cfg = load_config(None, [f"model.init_from={tmp_path / 'bb'}", "data.num_songs=2", "data.seconds=6.0",
                                   f"data.cache_dir={cache}", "data.stride=30"], train.DEFAULTS)
    task = train.build_task(cfg)
    b = task.dataset[0]
    x, t = torch.randn(2, 151, 150), torch.tensor([10, 700])
    cond = {"music": torch.stack([b["music"]] * 2), "genre": torch.tensor([1, 3]), "music.keep": torch.tensor([1, 0]).bool()}
    with torch.no_grad():
        assert torch.allclose(task.model(x, t, cond), backbone(x, t), atol=1e-6)


def test_train_two_steps_then_generate_files(tmp_path, cache):
    out = tmp_path / "run"
    summary = train.main(["--config", "configs/dance.yaml", f"train.output_dir={out}", "train.steps=2", "model.init_from=", "model.init_dance=",
                          "train.compile=false",  # the config compiles; a 2-step tiny run would spend minutes in inductor
                          "train.batch_size=4", "train.warmup_steps=1", "model.base_channels=16",
                          "model.channel_mult=[1, 2]", "model.attention_levels=[1]", "model.head_dim=16",
                          "data.num_songs=2", "data.seconds=6.0", "data.stride=30", f"data.cache_dir={cache}",
                          f"export.dir={tmp_path / 'export'}"])
    assert summary["step"] == 2 and (tmp_path / "export" / "README.md").exists()
    # odd sample rate, stereo, longer than --seconds
    song = make_song(5, 7.0, genre="rock", sr=22050)
    import soundfile as sf
    sf.write(tmp_path / "song.wav", np.stack([song["audio"]] * 2, 1), 22050)
    o = tmp_path / "o"
    o.mkdir()
    rc = generate.main(["--music", str(tmp_path / "song.wav"), "--out", str(o / "d.mp4"), "--bvh", str(o / "d.bvh"),
                        "--npz", str(o / "d.npz"), "--seconds", "6", "--steps", "2", "--scheduler", "dpm++",
                        "--model", str(tmp_path / "export")])
    assert rc == 0
    assert sorted(os.listdir(o)) == ["d.bvh", "d.mp4", "d.npz"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert {(o / f).stat().st_mode & 0o777 for f in os.listdir(o)} == {0o666 & ~umask}  # not mkstemp's 0600
    z = np.load(o / "d.npz", allow_pickle=False)
    assert z["smpl_poses"].shape == (181, 72) and z["smpl_trans"].shape == (181, 3)  # 6 s · 30 + 1 frames
    from tasks.dance.bvh import read_bvh
    assert read_bvh(o / "d.bvh")[3].shape == (181, 3)
    import imageio_ffmpeg
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(o / "d.mp4")], capture_output=True, text=True)
    assert "Audio:" in info.stderr and "Video:" in info.stderr


def _windows_spy(pipe, monkeypatch):
    calls = []
    orig = pipe._sampler

    def spy(fn, shape, g, known, steps, scheduler, x_T=None, progress=None):
        x = orig(fn, shape, g, known, steps, scheduler, x_T, progress)
        calls.append((x_T.clone(), x.clone()))
        return x
    monkeypatch.setattr(pipe, "_sampler", spy)
    return calls


def test_long_form_length_and_stitching(pipe, cache, monkeypatch):
    music = np.concatenate([load_song(s, 6.0, cache)["music"] for s in range(2)])  # 362 frames
    calls = _windows_spy(pipe, monkeypatch)
    motion = pipe.sample_motion(music, seed=0)
    assert motion.shape == (362, 151)
    (x_T, x), = calls  # one batched sampling run over all windows
    assert x.shape == (4, 151, 150)  # windows at 0, 75, 150, 225 (the last one padded)
    for xs in (x_T, x):  # tied from the initial noise to the result: each first half == previous second half
        assert torch.equal(xs[1:, :, :75], xs[:-1, :, 75:])
    stitched = pipe.model.unnormalize(torch.cat([x[0]] + [w[:, 75:] for w in x[1:]], 1))
    assert np.allclose(stitched.T[:362].numpy(), motion, atol=1e-5)
    # no extra jump at window boundaries: frame-to-frame change there is like anywhere else
    d = np.abs(np.diff(pipe.model.normalize(torch.from_numpy(motion).T).T.numpy(), axis=0)).mean(1)
    boundaries = [149, 224, 299]
    assert d[boundaries].max() < 3 * np.median(d)


def test_long_form_tie_holds_with_every_sampler(pipe, cache):
    music = np.concatenate([load_song(s, 6.0, cache)["music"] for s in range(2)])[:200]  # 2 windows
    for scheduler in ("ancestral", "dpm++", "euler"):
        a = pipe.sample_motion(music, seed=1, scheduler=scheduler)
        assert a.shape == (200, 151) and np.isfinite(a).all()


def test_same_seed_same_output(pipe, cache):
    music = load_song(0, 6.0, cache)["music"]
    a, b = pipe.sample_motion(music, seed=3), pipe.sample_motion(music, seed=3)
    c = pipe.sample_motion(music, seed=4)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_masked_editing_keeps_given_part(pipe, cache):
    song = load_song(1, 6.0, cache)
    given, music = song["motion"], song["music"]
    # keep the given lower body (+ root, contacts), generate the upper body
    m = joint_mask(LOWER_BODY, root=True, contacts=True)
    res = pipe.edit(music, given, m, seed=0)
    assert np.allclose(res["motion"][:, m], given[:, m], atol=1e-4)
    assert not np.allclose(res["motion"][:, ~m], given[:, ~m], atol=1e-2)
    # in-betweening: given poses on frames 0-9 and 170-180, everything else generated
    fm = frame_mask(len(given), [(0, 10), (170, 181)])
    res = pipe.edit(music, given, fm, seed=0)
    assert np.allclose(res["motion"][fm[:, 0]], given[fm[:, 0]], atol=1e-4)
    assert not np.allclose(res["motion"][20:160], given[20:160], atol=1e-2)


@pytest.mark.parametrize("case", ["corrupt", "silent", "short", "long", "seconds", "ext", "nofolder"])
def test_bad_inputs_clear_error_no_files(tmp_path, pipe, case, capsys):
    model_dir = tmp_path / "model"
    pipe.save_pretrained(model_dir)
    inp = tmp_path / "in"
    inp.mkdir()
    wav = inp / "a.wav"
    out = tmp_path / "out"
    out.mkdir()
    args = ["--music", str(wav), "--out", str(out / "d.mp4"), "--bvh", str(out / "d.bvh"), "--npz", str(out / "d.npz"),
            "--model", str(model_dir), "--steps", "1"]
    expect = {"corrupt": "corrupt", "silent": "silent", "short": "at least 1 s", "long": "at most 600 s",
              "seconds": "longer than the music", "ext": "extension", "nofolder": "does not exist"}[case]
    if case == "corrupt":
        wav.write_bytes(b"RIFF0000WAVEnot really audio" * 10)
    elif case == "silent":
        write_wav(wav, np.zeros(15360 * 3, np.float32), 15360)
    elif case == "short":
        write_wav(wav, make_song(0, 2.0)["audio"][:7000], 15360)
    elif case == "long":
        write_wav(wav, np.zeros(8000 * 601, np.float32), 8000)
    else:
        write_wav(wav, make_song(0, 3.0)["audio"], 15360)
        args += {"seconds": ["--seconds", "10"], "ext": ["--pkl", str(out / "d.txt")],
                 "nofolder": ["--gif", str(out / "missing" / "d.gif")]}[case]
    assert generate.main(args) == 2
    assert expect in capsys.readouterr().err
    assert os.listdir(out) == []
