import numpy as np
import pytest

from tasks.calligraphy.layout import INK, PAPER, compose_work, plan_layout


def _glyphs(n, size=16):
    gs = []
    for k in range(n):
        g = np.zeros((size, size), np.float32)
        g[2:-2, 2 + k % (size - 4)] = 1.0  # distinct per index
        gs.append(g)
    return gs


def test_vertical_reads_right_to_left_top_to_bottom():
    img, boxes = compose_work(_glyphs(7), layout="vertical", chars_per_line=3, gap=2, line_gap=4, margin=5)
    H, W, _ = img.shape
    assert img.dtype == np.uint8 and len(boxes) == 7
    # first character top-right
    x0, y0, x1, y1 = boxes[0]
    assert x1 == W - 5 and y0 == 5
    assert max(b[2] for b in boxes) == x1 and min(b[1] for b in boxes) == y0
    # down the first column, then the next column to the left
    assert boxes[1][0] == x0 and boxes[1][1] > y0
    assert boxes[2][1] > boxes[1][1]
    assert boxes[3][1] == y0 and boxes[3][2] < x0
    assert boxes[6][2] < boxes[3][0]
    assert (W, H) == (5 * 2 + 3 * 16 + 2 * 4, 5 * 2 + 3 * 16 + 2 * 2)


def test_horizontal_reads_left_to_right():
    img, boxes = compose_work(_glyphs(5), layout="horizontal", chars_per_line=2, gap=3, margin=4)
    assert boxes[0][:2] == (4, 4)
    assert boxes[1][0] > boxes[0][0] and boxes[1][1] == boxes[0][1]
    assert boxes[2][0] == boxes[0][0] and boxes[2][1] > boxes[0][1]
    assert img.shape[1] == 4 * 2 + 2 * 16 + 3


def test_colours_and_glyph_placement():
    gs = _glyphs(4)
    img, boxes = compose_work(gs, chars_per_line=2)
    assert tuple(img[0, 0]) == PAPER
    assert np.mean(PAPER) > 200 and np.mean(INK) < 60  # dark ink on light paper
    for g, (x0, y0, x1, y1) in zip(gs, boxes):
        cell = img[y0:y1, x0:x1]
        assert (cell[g == 1] == INK).all() and (cell[g == 0] == PAPER).all()
    img2, _ = compose_work([(g * 255).astype(np.uint8) for g in gs], chars_per_line=2)
    assert np.array_equal(img, img2)  # uint8 glyphs give the same picture


def test_layout_errors():
    with pytest.raises(ValueError):
        compose_work(_glyphs(2), layout="diagonal")
    with pytest.raises(ValueError):
        compose_work([])
    with pytest.raises(ValueError):
        compose_work([np.zeros((8, 8)), np.zeros((9, 9))])
    lay = plan_layout(10, (32, 32))
    assert len(lay.boxes) == 10 and lay.width > 0 and lay.height > 0
