"""Vector works and installable fonts: tracing keeps holes and shape, an SVG / crisp PNG work, and calligraphy-font
writes a TTF / OTF that fontTools loads, whose cmap covers the characters and whose glyphs PIL draws like the generated
rasters (IoU ≥ 0.9); bad inputs exit 2 with one error line and leave no file."""
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

torch.set_num_threads(1)

from conftest import have_fonts  # noqa: E402
from tasks.calligraphy import font_cli  # noqa: E402
from tasks.calligraphy.font import ASCENDER, UPM, build_font  # noqa: E402
from tasks.calligraphy.pipeline import CalligraphyPipeline, character_cells  # noqa: E402
from tasks.calligraphy.vector import rasterize, trace_glyph, work_svg  # noqa: E402

need_fonts = pytest.mark.skipif(not have_fonts("ukai", "gyosho"), reason="fonts missing: run data/calligraphy/setup.sh")


def ring(size=64, r0=10, r1=22):
    """A synthetic glyph with a hole: an annulus (ink = 1) and a dot in the hole (an island)."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    d = np.hypot(yy, xx)
    return (((d > r0) & (d < r1)) | (d < 4)).astype(np.float32)


def iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / max(1, (a | b).sum())


def font_raster(path, char, size):
    """PIL's rendering of `char` from the font file, the em box (1000 px) onto size × size."""
    f = ImageFont.truetype(str(path), UPM)
    im = Image.new("L", (UPM, UPM), 0)
    ImageDraw.Draw(im).text((0, ASCENDER), char, font=f, fill=255, anchor="ls")
    return np.asarray(im.resize((size, size), Image.Resampling.BOX), np.float32) / 255


def test_trace_keeps_holes_islands_and_renders_crisply_at_any_size():
    g = ring()
    o = trace_glyph(g)
    assert iou(rasterize(o, 64), g) > 0.9
    big = rasterize(o, 256)
    assert big[128, 128] > 0.9 and big[128, 128 - 28] < 0.1 and big[128, 128 - 64] > 0.9  # dot, hole, ring
    # crisp: at 256 px almost every pixel is paper or ink (a bicubic upsampling of the 64-px raster is not)
    up = np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((256, 256), Image.Resampling.BICUBIC)) / 255
    mid = lambda x: float(((x > 0.1) & (x < 0.9)).mean())
    assert mid(big) < 0.5 * mid(up)
    svg = work_svg([o, o], layout="vertical", cell=128, chars="回回")
    assert svg.count("<path") >= 2 and 'fill-rule="evenodd"' in svg and "<title>回</title>" in svg
    assert trace_glyph(np.zeros((32, 32), np.float32)).empty


@pytest.mark.parametrize("flavor", ["ttf", "otf"])
def test_built_font_has_metrics_names_and_draws_the_outlines(tmp_path, flavor):
    from fontTools.ttLib import TTFont

    g = [ring(), np.pad(np.ones((40, 20), np.float32), ((12, 12), (22, 22)))]
    data = build_font([trace_glyph(x) for x in g], ["回", "丨"], "Test Hand", flavor=flavor)
    p = tmp_path / f"t.{flavor}"
    p.write_bytes(data)
    f = TTFont(str(p))
    assert f["head"].unitsPerEm == 1000 and f["hhea"].ascent == 880 and f["hhea"].descent == -120
    assert f["OS/2"].sTypoAscender == 880 and f["hmtx"]["uni56DE"][0] == 1000
    assert f["name"].getDebugName(1) == "Test Hand" and f["name"].getDebugName(6) == "TestHand-Regular"
    assert {ord("回"), ord("丨"), 0x3000} <= set(f.getBestCmap())
    for c, x in zip("回丨", g):
        r = font_raster(p, c, 64)
        assert r.sum() > 10 and iou(r, x) >= 0.9, c


def test_character_cells_split_a_line_but_not_a_gappy_glyph():
    line = np.zeros((40, 130), np.float32)
    for x0 in (5, 50, 95):
        line[5:35, x0:x0 + 30] = 1
    assert len(character_cells(line)) == 3
    chuan = np.zeros((40, 40), np.float32)  # 川: three strokes with gaps, square overall
    for x0 in (5, 17, 29):
        chuan[4:36, x0:x0 + 4] = 1
    assert len(character_cells(chuan)) == 1


@pytest.fixture(scope="module")
def shipped():
    return CalligraphyPipeline.from_pretrained("calligraphy")


@need_fonts
def test_calligraphy_font_cli_writes_an_installable_font(tmp_path, shipped, monkeypatch):
    from fontTools.ttLib import TTFont

    chars = "永和九年"
    out = tmp_path / "Gyosho.ttf"
    assert font_cli.main(["--style", "gyosho", "--chars", chars + " 永", "--out", str(out), "--steps", "5",
                          "--seed", "3"]) == 0
    f = TTFont(str(out))
    assert {ord(c) for c in chars} <= set(f.getBestCmap()) and f["name"].getDebugName(1) == "Gyosho"
    # the font draws what the pipeline generates for the same seed / batch
    g = shipped.glyphs(chars, style="gyosho", seed=3, steps=5)
    for c, x in zip(chars, g):
        r = font_raster(out, c, x.shape[-1])
        assert r.sum() > 5, c
        assert iou(r, x) >= 0.9, (c, iou(r, x))
    assert not [p for p in os.listdir(tmp_path) if p != "Gyosho.ttf"]  # no temp file left


@need_fonts
def test_calligraphy_font_bad_inputs_fail_clearly_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "x.ttf"
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    line = tmp_path / "ref_line.png"
    a = np.full((64, 220), 255, np.uint8)
    for x0 in (10, 80, 150):
        a[10:54, x0:x0 + 50] = 0
    Image.fromarray(a).save(line)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    cases = [
        (["--reference", str(not_image), "--chars", "永"], "reference image"),
        (["--reference", str(blank), "--chars", "永"], "no ink"),
        (["--reference", str(line), "--chars", "永"], "3 characters"),
        (["--style", "ukai", "--charset", str(empty)], "empty"),
        (["--style", "ukai", "--charset", str(tmp_path / "missing.txt")], "cannot read"),
        (["--style", "ukai", "--chars", "永abc"], "not Chinese characters"),
        (["--style", "ukai", "--chars", "永\U0002A6A5"], "U+2A6A5"),
        (["--style", "nope", "--chars", "永"], "unknown style"),
    ]
    for args, msg in cases:
        rc = font_cli.main([*args, "--out", str(out), "--steps", "2"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("error:") == 1, (args, err)
        assert not out.exists()
    assert font_cli.main(["--style", "ukai", "--chars", "永", "--out", str(tmp_path / "x.woff")]) == 2
    assert "accepted: .ttf, .otf" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["blank.png", "empty.txt", "notes.png", "ref_line.png"]



@need_fonts
def test_characters_no_training_design_covers_are_named():
    from tasks.calligraphy.model import CalligraphyModel

    tiny = CalligraphyModel(style_names=("sosho",), image_size=16, cond_dim=16, style_encoder_width=8,
                            unet_config=dict(base_channels=8, channel_mult=(1, 2), layers_per_block=1,
                                             attention_levels=(1,), head_dim=8))
    pipe = CalligraphyPipeline(tiny, {})
    assert pipe.font_characters("永 永和") == ["永", "和"]
    with pytest.raises(ValueError, match="no training design covers: 们 .*U\\+4EEC"):
        pipe.font_characters("永们")  # 们: not a JIS X 0208 kanji, so the Japanese sosho design never drew it
