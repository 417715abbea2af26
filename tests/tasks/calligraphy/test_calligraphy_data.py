import os
import random
import time

import numpy as np
import pytest

from tasks.calligraphy import data as D
from tasks.calligraphy.styles import CLASSIC_STYLES, CONTENT_STYLE, STYLE_NAMES, STYLES, Style, available_styles, get_style

SAMPLE = "永我書國字天地人山水火木金土日月風雲雨雪花鳥魚龍春夏秋冬東西南北上下左右大小中心手口目耳一二三"


# ---------------------------------------------------------------- styles


def test_style_registry():
    assert set(STYLE_NAMES) >= {"ukai", "twkai", "wenkai", "gyosho", "sosho"}
    s = get_style("ukai")
    assert isinstance(s, Style) and s.font_path.endswith(".ttc") and s.face_index == 0
    assert s.description_en and s.description_zh
    assert get_style("noto_sans") is CONTENT_STYLE
    assert CONTENT_STYLE.name not in STYLE_NAMES  # content font is not a training style


def test_unknown_style_lists_known_names():
    with pytest.raises(ValueError) as e:
        get_style("comic_sans")
    for name in STYLE_NAMES:
        assert name in str(e.value)


def test_all_styles_installed(need_fonts):
    assert available_styles() == list(STYLE_NAMES)


# ---------------------------------------------------------------- hanzi-writer-data


def test_characters_and_strokes(need_strokes):
    chars = D.load_characters()
    assert len(chars) > 9000
    assert chars == sorted(chars) and all(len(c) == 1 for c in chars)
    assert "永" in chars and "國" in chars and "国" in chars
    d = D.load_strokes("永")
    assert len(d["strokes"]) == len(d["medians"]) == 5
    assert all(isinstance(s, str) and s.startswith("M") for s in d["strokes"])
    for m in d["medians"]:
        assert len(m) >= 2 and all(len(p) == 2 for p in m)
    with pytest.raises(KeyError):
        D.load_strokes("A")
    assert not D.has_strokes("A")


# ---------------------------------------------------------------- rendering


def _ink_box(g, thr=0.5):
    rows = np.flatnonzero((g > thr).any(axis=1))
    cols = np.flatnonzero((g > thr).any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


@pytest.mark.parametrize("style", ["ukai", "twkai", "wenkai", "mouhitsu", "sosho"])
@pytest.mark.parametrize("char", ["永", "一", "川", "國"])
def test_render_glyph_centred_and_scaled(need_fonts, style, char):
    size, margin = 64, 4
    g = D.render_glyph(char, style, size=size, margin=margin)
    assert g.shape == (size, size) and g.dtype == np.float32
    assert 0.0 <= g.min() and g.max() <= 1.0 and g.max() > 0.9  # ink = 1 on 0
    nz = np.flatnonzero(g.any(axis=1)), np.flatnonzero(g.any(axis=0))
    # all ink inside the margin
    assert nz[0][0] >= margin and nz[0][-1] < size - margin
    assert nz[1][0] >= margin and nz[1][-1] < size - margin
    r0, r1, c0, c1 = _ink_box(g, 0.0)
    h, w = r1 - r0 + 1, c1 - c0 + 1
    assert max(h, w) >= size - 2 * margin - 1  # larger side fills the box
    # centred by ink bounding box (within a pixel)
    assert abs((r0 + r1) / 2 - (size - 1) / 2) <= 1.0
    assert abs((c0 + c1) / 2 - (size - 1) / 2) <= 1.0


def test_render_glyph_font_arguments_agree(need_fonts):
    s = STYLES["ukai"]
    a = D.render_glyph("永", s.font_path, 48, index=s.face_index)
    b = D.render_glyph("永", (s.font_path, s.face_index), 48)
    c = D.render_glyph("永", s, 48)
    d = D.render_glyph("永", "ukai", 48)
    assert np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(a, d)
    assert D.render_glyph("\u3000", "ukai", 32).max() == 0.0


# ---------------------------------------------------------------- validation


def test_every_registered_design_maps_no_private_use_and_draws_yong(need_fonts):
    """Every design (the .notdef of the ones added in issue 16 may be blank or a box, and BabelStone maps U+E000 to
    a drawing of its own .notdef): a private-use probe is never a valid glyph, 永 always is."""
    for name in STYLES:
        assert D.glyph_status(D.NOTDEF_PROBES[0], name) != D.OK, name
        assert D.glyph_status("永", name) == D.OK, name


def test_kouzan_sui_is_rejected(need_fonts):
    # 歲 is not in the Kouzan fonts' cmap; drawing it anyway shows their .notdef
    # (a small filled square): the cmap check and the picture check both catch it.
    for style in ("kouzan", "soseki", "mouhitsu", "gyosho", "sosho"):
        s = STYLES[style]
        assert D.glyph_status("歲", style) == D.NO_CMAP
        assert not D.is_valid_glyph("歲", style)
        # drawing it anyway: the renderer shows .notdef, which is recognised
        assert D.glyph_status("歲", style, check_cmap=False) == D.NOTDEF
        crop = D._render_raw("歲", s.font_path, s.face_index, 128)
        assert crop.size > 0 and D._is_box(crop)
    assert D.glyph_status("歲", "ukai") == D.OK


@pytest.mark.parametrize("style", list(CLASSIC_STYLES) + ["noto_sans"])
def test_notdef_blank_and_real_glyphs(need_fonts, style):
    s = get_style(style)
    for pua in D.NOTDEF_PROBES:
        assert D.glyph_status(pua, style) == D.NO_CMAP
        # even without the cmap check, the drawing is recognised as tofu
        assert D.glyph_status(pua, style, check_cmap=False) == D.NOTDEF
        crop = D._render_raw(pua, s.font_path, s.face_index, 128)
        assert D._is_box(crop), "the .notdef of every font here is a plain box"
    assert D.glyph_status("\u3000", style) == D.BLANK  # ideographic space: mapped, no ink
    for ch in "永口囗日田":
        if ord(ch) in D._cmap(s.font_path, s.face_index):
            st = D.glyph_status(ch, style)
            # box-like characters are not mistaken for tofu (the Kouzan fonts
            # leave some mapped glyphs empty, e.g. 囗 in kouzan: BLANK is right)
            assert st in (D.OK, D.BLANK), ch
            if s.package not in ("fonts-aoyagi-kouzan-t", "fonts-aoyagi-soseki", "fonts-kouzan-mouhitsu"):
                assert st == D.OK, ch


def test_box_detector_on_synthetic_shapes():
    outline = np.zeros((120, 80), np.uint8)
    outline[:6] = outline[-6:] = 255
    outline[:, :6] = outline[:, -6:] = 255
    assert D._is_box(outline)
    crossed = outline.copy()
    yy, xx = np.mgrid[:120, :80]
    crossed[np.abs(yy * 80 - xx * 120) < 300] = 255
    crossed[np.abs(yy * 80 - (79 - xx) * 120) < 300] = 255
    assert D._is_box(crossed)
    assert D._is_box(np.full((50, 50), 255, np.uint8))
    assert not D._is_box(np.full((10, 200), 255, np.uint8))  # a bar like 一 is not a box
    kou = outline.copy()
    kou[60:66, 10:70] = 255  # a stroke inside: a character, not a box
    assert not D._is_box(kou)


# ---------------------------------------------------------------- dataset


def _sample_chars(n=50):
    chars = [c for c in D.load_characters() if c in SAMPLE]
    rng = random.Random(0)
    rest = rng.sample([c for c in D.load_characters() if c not in chars], n - len(chars))
    return sorted(chars + rest)


def test_build_dataset_small_and_cached(need_fonts, need_strokes, tmp_path):
    chars = sorted(set(_sample_chars(50)) | {"歲"})
    styles = ["ukai", "kouzan", "sosho"]
    t0 = time.time()
    d = D.build_dataset(styles, chars, size=32, cache_dir=tmp_path)
    first = time.time() - t0
    assert d.images.shape == (3, len(chars), 32, 32) and d.images.dtype == np.uint8
    assert d.valid.shape == (3, len(chars)) and d.valid.dtype == bool
    assert d.content.shape == (len(chars), 32, 32) and d.content_valid.all()
    assert d.styles == styles and d.chars == chars
    # invalid glyphs are empty, valid ones are not; mask agrees with glyph_status
    assert (d.images[~d.valid] == 0).all()
    assert (d.images[d.valid].reshape(int(d.valid.sum()), -1).max(axis=1) > 200).all()
    k = chars.index("歲")
    assert d.valid[0, k] and not d.valid[1, k] and not d.valid[2, k]
    for si, st in enumerate(styles):
        for ci in range(0, len(chars), 7):
            assert d.valid[si, ci] == (D.glyph_status(chars[ci], st) == D.OK)
    g = D.render_glyph(chars[0], "ukai", 32)
    assert np.abs(d.images[0, 0].astype(np.float32) / 255 - g).max() <= 0.5 / 255 + 1e-6
    # cached atomically: one .npz, no temporary left, reload is identical
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz") and not files[0].startswith(".")
    t0 = time.time()
    d2 = D.build_dataset(styles, chars, size=32, cache_dir=tmp_path)
    assert time.time() - t0 < max(1.0, first)
    assert d2.path == d.path
    for name in ("images", "valid", "status", "content", "content_valid"):
        assert np.array_equal(getattr(d, name), getattr(d2, name))
    # a different key (size) gives a different file
    D.build_dataset(styles, chars[:5], size=16, cache_dir=tmp_path)
    assert len(os.listdir(tmp_path)) == 2


def test_build_dataset_parallel_matches_serial(need_fonts, need_strokes, monkeypatch):
    chars = _sample_chars(50)
    a = D.build_dataset(["wenkai", "gyosho"], chars, size=24, cache_dir=None, workers=1)
    monkeypatch.setattr(D, "PARALLEL_MIN_GLYPHS", 0)
    monkeypatch.setattr(D, "RENDER_CHUNK", 16)
    b = D.build_dataset(["wenkai", "gyosho"], chars, size=24, cache_dir=None, workers=2)
    for name in ("images", "valid", "status", "content", "content_valid"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_unknown_style_in_build(need_fonts):
    with pytest.raises(ValueError):
        D.build_dataset(["nope"], ["永"], cache_dir=None)


# ---------------------------------------------------------------- split


def test_split_deterministic_disjoint_and_large_enough(need_strokes):
    chars = D.load_characters()
    tr, ho = D.split_characters(chars, 0.1, seed=0)
    assert set(tr).isdisjoint(ho) and set(tr) | set(ho) == set(chars)
    assert len(ho) >= 0.1 * len(chars)
    assert len(ho) < 0.12 * len(chars)
    shuffled = list(chars)
    random.Random(3).shuffle(shuffled)
    assert D.split_characters(shuffled, 0.1, seed=0) == (tr, ho)
    assert D.split_characters(chars, 0.1, seed=0) == (tr, ho)
    assert D.split_characters(chars, 0.1, seed=1)[1] != ho
    # a held-out character stays held out in any subset containing it
    sub = chars[::7]
    _, ho_sub = D.split_characters(sub, 0.1, seed=0)
    assert set(ho) & set(sub) <= set(ho_sub)
    assert len(ho_sub) >= 0.1 * len(sub)


def test_split_small_sets():
    tr, ho = D.split_characters("永我書國字天地人山水", 0.1, seed=0)
    assert len(ho) >= 1 and len(tr) + len(ho) == 10
    tr, ho = D.split_characters("永我書", 0.5, seed=0)
    assert len(ho) >= 2
    with pytest.raises(ValueError):
        D.split_characters("永", 1.0)


# ---------------------------------------------------------------- torch Dataset


def test_glyph_dataset(need_fonts, need_strokes, tmp_path):
    torch = pytest.importorskip("torch")
    chars = _sample_chars(50)
    train = D.GlyphDataset("train", styles=["ukai", "kouzan"], chars=chars, size=32, cache_dir=tmp_path)
    held = D.GlyphDataset("heldout", styles=["ukai", "kouzan"], chars=chars, size=32, cache_dir=tmp_path)
    assert len(os.listdir(tmp_path)) == 1  # both splits share one cache file
    assert set(train.chars).isdisjoint(held.chars)
    assert len(held.chars) >= 5
    d = train.data
    assert len(train) + len(held) == int((d.valid & d.content_valid[None]).sum())
    item = train[0]
    assert set(item) == {"image", "content", "style", "char"}
    for key in ("image", "content"):
        x = item[key]
        assert isinstance(x, torch.Tensor) and x.shape == (1, 32, 32) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.5 and x.min() == -1
    assert train.styles == ["ukai", "kouzan"] and item["style"] in (0, 1)
    assert item["char"] in train.chars
    seen = {(train[i]["style"], train[i]["char"]) for i in range(len(train))}
    assert all(d.valid[s, d.char_index(c)] for s, c in seen)
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 32, 32) and batch["style"].shape == (8,)
