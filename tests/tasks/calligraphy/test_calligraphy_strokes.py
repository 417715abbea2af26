import numpy as np
import pytest

from tasks.calligraphy import data as D
from tasks.calligraphy.strokes import HW_Y_FLIP, fit_medians, ink_bbox, medians_to_pixels, outline_points, parse_svg_path


def test_parse_svg_path():
    p = parse_svg_path("M 0 0 L 10 0 Q 20 0 20 10 C 20 20 10 20 0 20 Z", samples_per_curve=4)
    assert p.shape[1] == 2
    assert np.allclose(p[0], [0, 0]) and np.allclose(p[1], [10, 0])
    assert np.allclose(p[5], [20, 10])  # end of the quadratic
    assert p[:, 0].max() <= 20 + 1e-9 and p[:, 1].max() <= 20 + 1e-9  # on the curve, not the control hull
    with pytest.raises(ValueError):
        parse_svg_path("m 0 0 l 1 1")


def test_fit_medians_maps_outline_box_to_target():
    strokes = ["M 100 800 L 900 800 L 900 100 L 100 100 Z"]
    medians = [[[100, 800], [900, 100]]]
    (m,) = fit_medians(strokes, medians, (10.0, 20.0, 50.0, 60.0))
    # (100, 800) is the top-left of the outline in screen coords (y' = 900 - y)
    assert np.allclose(m[0], [10, 20]) and np.allclose(m[1], [50, 60])
    assert HW_Y_FLIP == 900


@pytest.mark.parametrize("style", ["ukai", "wenkai", "mouhitsu", "sosho"])
def test_medians_inside_ink_bbox(need_fonts, need_strokes, style):
    for ch in "永我書一國川丶":
        if not D.has_strokes(ch):
            continue
        g = D.render_glyph(ch, style, 64)
        if g.max() == 0:
            continue
        meds = medians_to_pixels(ch, g)
        assert len(meds) == len(D.load_strokes(ch)["medians"])
        x0, y0, x1, y1 = ink_bbox(g)
        allp = np.concatenate(meds)
        assert allp.dtype == np.float32 and allp.shape[1] == 2
        assert (allp[:, 0] >= x0).all() and (allp[:, 0] <= x1).all()
        assert (allp[:, 1] >= y0).all() and (allp[:, 1] <= y1).all()
        # the medians' extent covers most of the ink box (the fit is not degenerate)
        if ch not in "一丶":
            assert np.ptp(allp[:, 0]) > 0.5 * (x1 - x0) and np.ptp(allp[:, 1]) > 0.5 * (y1 - y0)


def test_medians_follow_the_ink(need_fonts, need_strokes):
    # for a regular-script font most median points lie on or next to ink
    for ch in "永我書國天地":
        g = D.render_glyph(ch, "ukai", 64)
        pts = np.concatenate(medians_to_pixels(ch, g))
        from scipy.ndimage import binary_dilation

        near = binary_dilation(g > 0.3, iterations=2)
        xi = np.clip(np.rint(pts[:, 0]).astype(int), 0, 63)
        yi = np.clip(np.rint(pts[:, 1]).astype(int), 0, 63)
        assert near[yi, xi].mean() > 0.85, ch


def test_stroke_order_starts_top_left_for_yong(need_strokes, need_fonts):
    g = D.render_glyph("永", "ukai", 64)
    meds = medians_to_pixels("永", g)
    assert meds[0][:, 1].mean() < 20  # first stroke of 永 is the top dot


def test_medians_errors(need_fonts, need_strokes):
    with pytest.raises(KeyError):
        medians_to_pixels("A", D.render_glyph("A", "noto_sans", 32))
    with pytest.raises(ValueError):
        medians_to_pixels("永", np.zeros((32, 32), np.float32))
    assert len(outline_points(D.load_strokes("永")["strokes"])) > 50
