import os
import warnings

import numpy as np
import pytest

from tasks.calligraphy import data as D
from tasks.calligraphy import video as V
from tasks.calligraphy.layout import compose_work
from tasks.calligraphy.strokes import medians_to_pixels

TEXT = "永和九年"


def _glyphs(text, style="ukai", size=48):
    return [D.render_glyph(c, style, size) for c in text]


@pytest.mark.parametrize("style", ["ukai", "gyosho", "sosho"])
def test_reveal_monotone_and_complete(need_fonts, need_strokes, style):
    g = D.render_glyph("永", style, 64)
    meds = medians_to_pixels("永", g)
    masks = V.stroke_reveal_masks(g, meds, brush_radius=3, steps_per_stroke=4)
    assert masks.shape == (len(meds) * 4, 64, 64) and masks.dtype == bool
    assert (masks[1:] >= masks[:-1]).all()  # monotone
    assert np.array_equal(masks[-1], g > 0)  # complete: all ink revealed at the end
    assert not (masks & ~(g > 0)).any()  # only ink is revealed
    counts = masks.reshape(len(masks), -1).sum(1)
    assert counts[0] > 0 and counts[len(masks) // 2] < counts[-1]
    # the first stroke of 永 (the dot) is revealed first, near the top
    rows = np.flatnonzero(masks[3].any(axis=1))
    assert rows.max() < 32


def test_reveal_handles_unreached_ink():
    g = np.zeros((32, 32), np.float32)
    g[4:28, 14:18] = 1.0
    g[2, 30] = 0.4  # a stray speck far from any stroke
    meds = [np.array([[16, 6], [16, 10]], np.float32)]  # covers only the top
    masks = V.stroke_reveal_masks(g, meds, brush_radius=2, steps_per_stroke=3)
    assert np.array_equal(masks[-1], g > 0)
    assert (masks[1:] >= masks[:-1]).all()
    assert V.stroke_reveal_masks(g, [], 2, 3).shape == (1, 32, 32)


def test_fallback_warns_and_wipes(need_fonts, need_strokes):
    assert not D.has_strokes("歳")  # Japanese form: no hanzi-writer data
    g = D.render_glyph("歳", "noto_sans", 48)
    with pytest.warns(UserWarning, match="歳"):
        masks = V.glyph_reveal_masks("歳", g, fallback_frames=5)
    assert masks.shape == (5, 48, 48)
    assert (masks[1:] >= masks[:-1]).all() and np.array_equal(masks[-1], g > 0)
    first_rows = np.flatnonzero(masks[0].any(axis=1))
    assert first_rows.max() < 48 // 2  # top first
    with pytest.warns(UserWarning, match="歳"):
        frames = V.writing_frames([g, D.render_glyph("永", "ukai", 48)], ["歳", "永"], hold_frames=2)
    work, _ = compose_work([g, D.render_glyph("永", "ukai", 48)])
    assert np.array_equal(frames[-1], work)


@pytest.mark.parametrize("layout", ["vertical", "horizontal"])
def test_writing_frames_end_on_the_work(need_fonts, need_strokes, layout):
    gs = _glyphs(TEXT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all four have stroke data: no warning
        frames = V.writing_frames(gs, TEXT, layout=layout, chars_per_line=2, hold_frames=5, steps_per_stroke=2)
    work, boxes = compose_work(gs, layout=layout, chars_per_line=2)
    assert all(f.shape == work.shape and f.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[-1], work)
    for f in frames[-6:]:
        assert np.array_equal(f, work)  # hold frames
    assert np.array_equal(frames[0], np.broadcast_to(work[0, 0], work.shape))  # blank paper first
    n_strokes = sum(len(D.load_strokes(c)["medians"]) for c in TEXT)
    assert len(frames) == 1 + 2 * n_strokes + 5
    # characters appear in reading order: once a later cell has ink, earlier ones are done
    def ink_in(f, b):
        x0, y0, x1, y1 = b
        return (f[y0:y1, x0:x1] != f[0, 0]).any(axis=-1).sum()
    final = [ink_in(work, b) for b in boxes]
    for f in frames:
        got = [ink_in(f, b) for b in boxes]
        for k in range(1, len(boxes)):
            if got[k] > 0:
                assert got[k - 1] == final[k - 1]
    # monotone darkening: a pixel, once inked, stays as it is in the work
    paper = work[0, 0]
    for a, b in zip(frames, frames[1:]):
        changed = (a != b).any(-1)
        assert ((a[changed] == paper).all(-1)).all()


def _small_frames(n=6, h=21, w=17):
    frames = []
    for k in range(n):
        f = np.full((h, w, 3), 240, np.uint8)
        f[: 2 + 3 * k, 3:9] = (20, 20, 20)
        frames.append(f)
    frames.append(frames[-1].copy())
    return frames


def test_write_gif_roundtrip(tmp_path, need_fonts, need_strokes):
    import imageio.v3 as iio

    gs = _glyphs(TEXT[:2], size=32)
    frames = V.writing_frames(gs, TEXT[:2], hold_frames=4)
    path = tmp_path / "work.gif"
    n = V.write_video(frames, path, fps=10)
    assert path.is_file() and sorted(os.listdir(tmp_path)) == ["work.gif"]
    back = iio.imread(path, index=None)
    assert back.shape[0] == n
    # identical consecutive frames are stored once: count distinct runs
    runs = 1 + sum(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    assert n == runs and n < len(frames)
    assert np.array_equal(back[-1][..., :3], frames[-1])  # lossless palette
    assert np.array_equal(back[0][..., :3], frames[0])


def test_write_mp4_roundtrip_odd_size(tmp_path):
    import imageio.v2 as iio2

    frames = _small_frames()
    path = tmp_path / "w.mp4"
    n = V.write_video(frames, path, fps=8)
    assert n == len(frames)
    assert sorted(os.listdir(tmp_path)) == ["w.mp4"]
    r = iio2.get_reader(str(path), format="FFMPEG")
    try:
        assert r.count_frames() == len(frames)
        f0 = r.get_data(0)
        assert f0.shape == (22, 18, 3)  # padded to even sides
        meta = r.get_meta_data()
        assert abs(meta["fps"] - 8) < 1e-6
    finally:
        r.close()


def test_bad_extension_and_failed_write_leave_no_file(tmp_path, monkeypatch):
    frames = _small_frames()
    with pytest.raises(ValueError) as e:
        V.write_video(frames, tmp_path / "w.avi")
    assert ".gif" in str(e.value) and ".mp4" in str(e.value)
    assert os.listdir(tmp_path) == []

    def boom(frames, path, fps):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(V, "_write_gif", boom)
    with pytest.raises(RuntimeError):
        V.write_video(frames, tmp_path / "w.gif")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        V.write_video([np.zeros((4, 4), np.uint8)], tmp_path / "x.mp4")
    assert os.listdir(tmp_path) == []
