"""Registry of calligraphy styles (one font face per style).

Every style is a font installed from a Debian package by
``data/calligraphy/setup.sh``; see ``data/calligraphy/README.md`` for sources
and licences. The content reference (the "what character" conditioning glyph)
is Noto Sans CJK SC, a plain sans/hei face that is *not* a training style.

The Debian paths are fixed; ``Style.available`` tells whether a font file is
installed on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "Style",
    "STYLES",
    "STYLE_NAMES",
    "CONTENT_STYLE",
    "get_style",
    "available_styles",
]


@dataclass(frozen=True)
class Style:
    """One calligraphy style: a font face plus human-readable descriptions."""

    name: str
    font_path: str
    face_index: int  # face inside a .ttc collection (0 for .ttf/.otf)
    package: str  # Debian package that ships the font
    script: str  # kaishu (regular), xingshu (semi-cursive), caoshu (cursive), heiti (sans)
    description_en: str
    description_zh: str

    @property
    def available(self) -> bool:
        return os.path.isfile(self.font_path)


_TT = "/usr/share/fonts/truetype"

_STYLE_LIST = [
    Style(
        "ukai",
        f"{_TT}/arphic/ukai.ttc",
        0,  # "AR PL UKai CN" (simplified-Chinese glyph forms)
        "fonts-arphic-ukai",
        "kaishu",
        "AR PL UKai CN: Arphic's brush-like regular script (kaishu), simplified-Chinese forms.",
        "文鼎 PL 中楷（UKai CN）：毛笔风格的楷书，简体字形。",
    ),
    Style(
        "cwkai",
        f"{_TT}/cwtex/cwkai.ttf",
        0,
        "fonts-cwtex-kai",
        "kaishu",
        "cwTeX Kai: traditional-Chinese regular script (Big5 repertoire; few simplified characters).",
        "cwTeX 楷书：繁体中文楷书（Big5 字集，简体字很少）。",
    ),
    Style(
        "twkai",
        f"{_TT}/cns11643/TW-Kai-98_1.ttf",
        0,
        "fonts-cns11643-kai",
        "kaishu",
        "TW-Kai (CNS 11643): Taiwan's standard textbook regular script, very wide coverage.",
        "全字库正楷体（CNS 11643）：台湾标准楷书，收字很全。",
    ),
    Style(
        "wenkai",
        f"{_TT}/lxgw-wenkai/LXGWWenKai-Regular.ttf",
        0,
        "fonts-lxgw-wenkai",
        "kaishu",
        "LXGW WenKai: modern, pen-like regular script derived from Klee One.",
        "霞鹜文楷：源自 Klee One 的现代硬笔风格楷书。",
    ),
    Style(
        "kouzan",
        f"{_TT}/aoyagi-kouzan-t/AoyagiKouzanT.ttf",
        0,
        "fonts-aoyagi-kouzan-t",
        "xingshu",
        "Aoyagi Kouzan Font T: brush calligraphy by Aoyagi Kouzan, regular to semi-cursive (Japanese repertoire).",
        "青柳衡山字体 T：青柳衡山的毛笔书法，介于楷书与行书之间（日文汉字字集）。",
    ),
    Style(
        "soseki",
        f"{_TT}/aoyagi-soseki/aoyagi-soseki.ttf",
        0,
        "fonts-aoyagi-soseki",
        "xingshu",
        "Aoyagi Soseki Font 2: light, flowing semi-cursive brush writing (Japanese repertoire).",
        "青柳疎石字体 2：轻盈流畅的毛笔行书（日文汉字字集）。",
    ),
    Style(
        "mouhitsu",
        f"{_TT}/kouzan-mouhitsu/kouzan-mouhitsu.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "kaishu",
        "Kouzan Brush Font: bold brush-written regular script (kaisho) (Japanese repertoire).",
        "衡山毛笔字体：粗壮的毛笔楷书（日文汉字字集）。",
    ),
    Style(
        "gyosho",
        f"{_TT}/kouzan-mouhitsu/kouzan-mouhitsu-gyosho.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "xingshu",
        "Kouzan Brush Font Gyousyo: brush semi-cursive script (gyosho / xingshu) (Japanese repertoire).",
        "衡山毛笔字体·行书：毛笔行书（日文汉字字集）。",
    ),
    Style(
        "sosho",
        f"{_TT}/kouzan-mouhitsu/KouzanBrushFontSousyo.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "caoshu",
        "Kouzan Brush Font Sousyo: brush cursive script (sosho / caoshu), strongly abbreviated forms.",
        "衡山毛笔字体·草书：毛笔草书，字形高度简省（日文汉字字集）。",
    ),
]

STYLES: dict[str, Style] = {s.name: s for s in _STYLE_LIST}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)

CONTENT_STYLE = Style(
    "noto_sans",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    2,  # "Noto Sans CJK SC"
    "fonts-noto-cjk",
    "heiti",
    "Noto Sans CJK SC Regular: plain sans-serif (heiti) content reference glyph; not a training style.",
    "思源黑体 SC 常规体：无衬线黑体，用作内容参考字形，不是训练风格。",
)


def get_style(name: str) -> Style:
    """Look up a style by short name; ``noto_sans`` gives the content font."""
    if isinstance(name, Style):
        return name
    if name in STYLES:
        return STYLES[name]
    if name == CONTENT_STYLE.name:
        return CONTENT_STYLE
    raise ValueError(
        f"unknown calligraphy style {name!r}; known styles: {', '.join(STYLE_NAMES)}"
        f" (content font: {CONTENT_STYLE.name})"
    )


def available_styles() -> list[str]:
    """Names of the registered styles whose font file is installed here."""
    return [n for n, s in STYLES.items() if s.available]
