"""Shared helpers for the calligraphy tests.

Tests that need the fonts or hanzi-writer-data skip cleanly when they are
absent (install them with `bash data/calligraphy/setup.sh`).
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tasks.calligraphy import data as D  # noqa: E402
from tasks.calligraphy.styles import CONTENT_STYLE, STYLES  # noqa: E402


def have_strokes() -> bool:
    return D.hanzi_writer_dir().is_dir() and D.has_strokes("永")


def have_fonts(*names) -> bool:
    names = names or tuple(STYLES)
    return CONTENT_STYLE.available and all(STYLES[n].available for n in names)


@pytest.fixture
def need_strokes():
    if not have_strokes():
        pytest.skip("hanzi-writer-data missing: run bash data/calligraphy/setup.sh")


@pytest.fixture
def need_fonts():
    if not have_fonts():
        pytest.skip("calligraphy fonts missing: run bash data/calligraphy/setup.sh")
