"""The 3-D dance view (tasks/dance/render3d.py, render.render_3d_video) and dance-generate's --view."""
import subprocess

import numpy as np
import pytest

from tasks.dance.choreo import make_dance_v2
from tasks.dance.render import render_3d_video
from tasks.dance.render3d import BG, CONTACT, camera_for, frames_3d
from tasks.dance.synth import make_song


@pytest.fixture(scope="module")
def dance():
    song = make_song(3, 3.0, genre="house")
    return song, make_dance_v2(song, 1)


def test_frames_deterministic_size_and_content(dance):
    _, d = dance
    j, c = d["joints"][:24], d["contacts"][:24]
    a, b = frames_3d(j, c), frames_3d(j, c)
    assert len(a) == 24 and a[0].shape == (512, 512, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # same motion, same pixels
    assert tuple(a[0][2, 2]) == BG  # sky in the corner
    assert not np.array_equal(a[0], a[12])  # the dancer moves
    # the body is drawn where the camera projects the pelvis; contact marks where a foot is planted
    floor = np.percentile(j[:, [7, 8, 10, 11], 1].min(1), 2)
    jj = j - [0, floor, 0]
    px, _ = camera_for(jj, 512).project(jj[0, 0])
    x, y = np.round(px).astype(int)
    assert tuple(a[0][y, x]) != BG and a[0][y - 3:y + 4, x - 3:x + 4].std() < 40  # inside a capsule
    planted = int(np.flatnonzero(c[:, 0] > 0.5)[0])
    assert (np.abs(a[planted].astype(int) - CONTACT).sum(-1) < 30).sum() > 10
    with pytest.raises(ValueError, match="joints"):
        frames_3d(np.zeros((5, 23, 3)))


def test_mp4_with_music_and_gif(tmp_path, dance):
    import imageio_ffmpeg

    song, d = dance
    out = render_3d_video(d["joints"][:45], tmp_path / "d.mp4", audio=(song["audio"][:int(1.5 * song["sr"])],
                                                                        song["sr"]), contacts=d["contacts"][:45])
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", out], capture_output=True, text=True).stderr
    assert "Audio:" in info and "512x512" in info
    gif = render_3d_video(d["joints"][:10], tmp_path / "d.gif")
    from PIL import Image
    im = Image.open(gif)
    assert im.size == (512, 512) and im.n_frames == 5  # every other frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.gif", "d.mp4"]  # no temp files left


def test_generate_view_flag(capsys):
    from tasks.dance import generate

    p = generate.build_parser()
    assert p.parse_args(["--music", "x.wav"]).view == "3d"
    assert p.parse_args(["--music", "x.wav", "--view", "2d"]).view == "2d"
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--music", "x.wav", "--view", "4d"])
    assert e.value.code == 2 and "--view" in capsys.readouterr().err
