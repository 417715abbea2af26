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
    "CLASSIC_STYLES",
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
    category: str = ""  # design family: kai, song, hei, fangsong, round, handwriting, brush, cursive, display, pixel
    forms: str = "zh"  # "zh": Chinese glyph forms; "ja": a Japanese font (only JIS X 0208 code points are used)
    licence: str = ""  # licence of the font file (see data/calligraphy/README.md)

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
        "kai", "zh", "Arphic Public License",
    ),
    Style(
        "cwkai",
        f"{_TT}/cwtex/cwkai.ttf",
        0,
        "fonts-cwtex-kai",
        "kaishu",
        "cwTeX Kai: traditional-Chinese regular script (Big5 repertoire; few simplified characters).",
        "cwTeX 楷书：繁体中文楷书（Big5 字集，简体字很少）。",
        "kai", "zh", "GPL-2+",
    ),
    Style(
        "twkai",
        f"{_TT}/cns11643/TW-Kai-98_1.ttf",
        0,
        "fonts-cns11643-kai",
        "kaishu",
        "TW-Kai (CNS 11643): Taiwan's standard textbook regular script, very wide coverage.",
        "全字库正楷体（CNS 11643）：台湾标准楷书，收字很全。",
        "kai", "zh", "OGDL-TW 1.0",
    ),
    Style(
        "wenkai",
        f"{_TT}/lxgw-wenkai/LXGWWenKai-Regular.ttf",
        0,
        "fonts-lxgw-wenkai",
        "kaishu",
        "LXGW WenKai: modern, pen-like regular script derived from Klee One.",
        "霞鹜文楷：源自 Klee One 的现代硬笔风格楷书。",
        "handwriting", "zh", "SIL OFL 1.1",
    ),
    Style(
        "kouzan",
        f"{_TT}/aoyagi-kouzan-t/AoyagiKouzanT.ttf",
        0,
        "fonts-aoyagi-kouzan-t",
        "xingshu",
        "Aoyagi Kouzan Font T: brush calligraphy by Aoyagi Kouzan, regular to semi-cursive (Japanese repertoire).",
        "青柳衡山字体 T：青柳衡山的毛笔书法，介于楷书与行书之间（日文汉字字集）。",
        "brush", "ja", "public domain",
    ),
    Style(
        "soseki",
        f"{_TT}/aoyagi-soseki/aoyagi-soseki.ttf",
        0,
        "fonts-aoyagi-soseki",
        "xingshu",
        "Aoyagi Soseki Font 2: light, flowing semi-cursive brush writing (Japanese repertoire).",
        "青柳疎石字体 2：轻盈流畅的毛笔行书（日文汉字字集）。",
        "brush", "ja", "public domain",
    ),
    Style(
        "mouhitsu",
        f"{_TT}/kouzan-mouhitsu/kouzan-mouhitsu.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "kaishu",
        "Kouzan Brush Font: bold brush-written regular script (kaisho) (Japanese repertoire).",
        "衡山毛笔字体：粗壮的毛笔楷书（日文汉字字集）。",
        "brush", "ja", "public domain",
    ),
    Style(
        "gyosho",
        f"{_TT}/kouzan-mouhitsu/kouzan-mouhitsu-gyosho.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "xingshu",
        "Kouzan Brush Font Gyousyo: brush semi-cursive script (gyosho / xingshu) (Japanese repertoire).",
        "衡山毛笔字体·行书：毛笔行书（日文汉字字集）。",
        "brush", "ja", "public domain",
    ),
    Style(
        "sosho",
        f"{_TT}/kouzan-mouhitsu/KouzanBrushFontSousyo.ttf",
        0,
        "fonts-kouzan-mouhitsu",
        "caoshu",
        "Kouzan Brush Font Sousyo: brush cursive script (sosho / caoshu), strongly abbreviated forms.",
        "衡山毛笔字体·草书：毛笔草书，字形高度简省（日文汉字字集）。",
        "cursive", "ja", "public domain",
    ),
]

_OT = "/usr/share/fonts/opentype"
_NPM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data", "cache", "fonts")
_OFL = "SIL OFL 1.1"

# (name, font file, face, package, script, category, forms, licence, English, Chinese)
_MORE = [
    # --- Debian: Chinese designs -----------------------------------------------------------------------------------
    ("uming", f"{_TT}/arphic/uming.ttc", 0, "fonts-arphic-uming", "kaishu", "song", "zh", "Arphic Public License",
     "AR PL UMing CN: Arphic's Ming (song) book face, simplified forms.", "文鼎 PL 明体（UMing CN）：书刊明体（宋体），简体字形。"),
    ("bkai", f"{_TT}/arphic-bkai00mp/bkai00mp.ttf", 0, "fonts-arphic-bkai00mp", "kaishu", "kai", "zh", "Arphic Public License",
     "AR PL KaitiM Big5: Arphic's regular script for Big5 (traditional); the source of UKai.", "文鼎 PL 中楷 Big5：繁体楷书，UKai 的来源。"),
    ("bsmi", f"{_TT}/arphic-bsmi00lp/bsmi00lp.ttf", 0, "fonts-arphic-bsmi00lp", "kaishu", "song", "zh", "Arphic Public License",
     "AR PL Mingti2L Big5: Arphic's light Ming face for Big5 (traditional).", "文鼎 PL 细明体 Big5：繁体细明体。"),
    ("gbsn", f"{_TT}/arphic-gbsn00lp/gbsn00lp.ttf", 0, "fonts-arphic-gbsn00lp", "kaishu", "song", "zh", "Arphic Public License",
     "AR PL SungtiL GB: Arphic's light Song face for GB 2312 (simplified).", "文鼎 PL 简报宋：简体细宋体。"),
    ("cwming", f"{_TT}/cwtex/cwming.ttf", 0, "fonts-cwtex-ming", "kaishu", "song", "zh", "GPL-2+",
     "cwTeX Ming: traditional-Chinese Ming (song) face.", "cwTeX 明体：繁体明体（宋体）。"),
    ("cwfs", f"{_TT}/cwtex/cwfs.ttf", 0, "fonts-cwtex-fs", "kaishu", "fangsong", "zh", "GPL-2+",
     "cwTeX FangSong: imitation-Song face with slanted, even strokes.", "cwTeX 仿宋体：笔画匀细、横画上扬的仿宋。"),
    ("cwheib", f"{_TT}/cwtex/cwheib.ttf", 0, "fonts-cwtex-heib", "heiti", "hei", "zh", "GPL-2+",
     "cwTeX HeiBold: bold traditional-Chinese sans (hei).", "cwTeX 粗黑体：繁体粗黑体。"),
    ("cwyen", f"{_TT}/cwtex/cwyen.ttf", 0, "fonts-cwtex-yen", "heiti", "round", "zh", "GPL-2+",
     "cwTeX Yen: rounded traditional-Chinese face (yuan ti).", "cwTeX 圆体：繁体圆体。"),
    ("twsung", f"{_TT}/cns11643/TW-Sung-98_1.ttf", 0, "fonts-cns11643-sung", "kaishu", "song", "zh", "OGDL-TW 1.0",
     "TW-Sung (CNS 11643): Taiwan's standard Song face.", "全字库正宋体（CNS 11643）：台湾标准宋体。"),
    ("babelstone", f"{_TT}/babelstone/BabelStoneHan.ttf", 0, "fonts-babelstone-han", "kaishu", "song", "zh", "Arphic Public License (glyphs) / Expat",
     "BabelStone Han: a Song face covering Unicode Han (based on AR PL Mingti).", "BabelStone Han：覆盖 Unicode 汉字的宋体（基于文鼎明体）。"),
    ("zenhei", f"{_TT}/wqy/wqy-zenhei.ttc", 0, "fonts-wqy-zenhei", "heiti", "hei", "zh", "GPL-2 with font embedding exception",
     "WenQuanYi Zen Hei: a community-drawn sans (hei).", "文泉驿正黑：社区绘制的黑体。"),
    ("microhei", f"{_TT}/wqy/wqy-microhei.ttc", 0, "fonts-wqy-microhei", "heiti", "hei", "zh", "Apache-2.0 or GPL-3+ with font exception",
     "WenQuanYi Micro Hei: a compact screen sans (derived from Droid Sans Fallback).", "文泉驿微米黑：紧凑的屏显黑体（源自 Droid Sans Fallback）。"),
    ("smiley", f"{_TT}/smiley-sans/SmileySans-Oblique.ttf", 0, "fonts-smiley-sans", "heiti", "display", "zh", _OFL,
     "Smiley Sans: condensed, oblique display sans.", "得意黑：窄长、斜体的标题黑体。"),
    ("notoserif", f"{_OT}/noto/NotoSerifCJK-Regular.ttc", 2, "fonts-noto-cjk", "kaishu", "song", "zh", _OFL,
     "Noto Serif CJK SC: modern Song (Source Han Serif), simplified forms.", "思源宋体 SC：现代宋体，简体字形。"),
    ("notosansbold", f"{_OT}/noto/NotoSansCJK-Bold.ttc", 2, "fonts-noto-cjk", "heiti", "hei", "zh", _OFL,
     "Noto Sans CJK SC Bold: heavy modern sans (the content font's bold weight).", "思源黑体 SC 粗体：现代粗黑体（内容字体的粗体）。"),
    # --- Debian: Japanese designs (forms "ja": only JIS X 0208 code points) ------------------------------------------
    ("ipamincho", f"{_OT}/ipafont-mincho/ipam.ttf", 0, "fonts-ipafont-mincho", "kaishu", "song", "ja", "IPA Font License 1.0",
     "IPA Mincho: standard Japanese mincho (song).", "IPA 明朝：标准日文明朝体（宋体）。"),
    ("ipagothic", f"{_OT}/ipafont-gothic/ipag.ttf", 0, "fonts-ipafont-gothic", "heiti", "hei", "ja", "IPA Font License 1.0",
     "IPA Gothic: standard Japanese gothic (sans).", "IPA 哥特体：标准日文黑体。"),
    ("hanazono", f"{_TT}/hanazono/HanaMinA.ttf", 0, "fonts-hanazono", "kaishu", "song", "ja", "Hanazono Font License or SIL OFL 1.1",
     "Hanazono Mincho A: mincho generated by the KAGE glyph system.", "花园明朝 A：KAGE 系统生成的明朝体。"),
    ("umegothic", f"{_TT}/horai-umefont/ume-tgo4.ttf", 0, "fonts-horai-umefont", "heiti", "hei", "ja", "UmeFont licence (free use, modification, redistribution)",
     "Ume Gothic: Japanese gothic with slightly soft corners.", "梅黑体：转角略软的日文黑体。"),
    ("umemincho", f"{_TT}/horai-umefont/ume-tmo3.ttf", 0, "fonts-horai-umefont", "kaishu", "song", "ja", "UmeFont licence (free use, modification, redistribution)",
     "Ume Mincho: light Japanese mincho.", "梅明朝：细日文明朝体。"),
    ("sawarabimincho", f"{_TT}/sawarabi-mincho/sawarabi-mincho-medium.ttf", 0, "fonts-sawarabi-mincho", "kaishu", "song", "ja", "CC-BY-SA-3.0 or SIL OFL 1.1",
     "Sawarabi Mincho: hand-drawn Japanese mincho.", "早蕨明朝：手绘日文明朝体。"),
    ("sawarabigothic", f"{_TT}/sawarabi-gothic/sawarabi-gothic-medium.ttf", 0, "fonts-sawarabi-gothic", "heiti", "hei", "ja", "CC-BY-3.0",
     "Sawarabi Gothic: hand-drawn Japanese gothic.", "早蕨黑体：手绘日文黑体。"),
    ("cedar", f"{_TT}/motoya-l-cedar/MTLc3m.ttf", 0, "fonts-motoya-l-cedar", "kaishu", "song", "ja", "Apache-2.0",
     "Motoya L Cedar: Motoya's Japanese mincho-style text face.", "モトヤ L シーダ：本明朝系日文正文字体。"),
    ("maruberi", f"{_TT}/motoya-l-maruberi/MTLmr3m.ttf", 0, "fonts-motoya-l-maruberi", "heiti", "round", "ja", "Apache-2.0",
     "Motoya L Maruberi: rounded Japanese gothic.", "モトヤ L マルベリ：日文圆体。"),
    ("oradano", f"{_TT}/oradano-mincho/OradanoGSRR.ttf", 0, "fonts-oradano-mincho-gsrr", "kaishu", "song", "ja", "custom free licence (use, embedding, redistribution; see its copyright file)",
     "Oradano Mincho GSRR: retro Meiji-period mincho with rough, inky edges.", "Oradano 明朝：明治时期风格、边缘粗糙的复古明朝体。"),
    ("bizudgothic", f"{_TT}/bizud-gothic/BIZUDGothic-Regular.ttf", 0, "fonts-morisawa-bizud-gothic", "heiti", "hei", "ja", "SIL OFL 1.1",
     "BIZ UDGothic: Morisawa's universal-design gothic.", "BIZ UD 黑体：森泽的通用设计黑体。"),
    ("bizudmincho", f"{_TT}/bizud-mincho/BIZUDMincho-Regular.ttf", 0, "fonts-morisawa-bizud-mincho", "kaishu", "song", "ja", _OFL,
     "BIZ UDMincho: Morisawa's universal-design mincho with even strokes.", "BIZ UD 明朝：森泽的通用设计明朝体，笔画均匀。"),
    ("dotgothic", f"{_TT}/dotgothic16/DotGothic16-Regular.ttf", 0, "fonts-dotgothic16", "heiti", "pixel", "ja", _OFL,
     "DotGothic16: a 16x16 bitmap-style pixel gothic.", "DotGothic16：16×16 点阵风格的像素黑体。"),
    # --- npm @fontsource (merged subsets; tasks/calligraphy/fontsource.py) ---------------------------------------------
    ("mashanzheng", f"{_NPM}/ma-shan-zheng.ttf", 0, "@fontsource/ma-shan-zheng", "kaishu", "brush", "zh", _OFL,
     "Ma Shan Zheng: brush regular script (kaishu) with lively strokes.", "马善政楷书：笔意灵动的毛笔楷书。"),
    ("zhimangxing", f"{_NPM}/zhi-mang-xing.ttf", 0, "@fontsource/zhi-mang-xing", "xingshu", "brush", "zh", _OFL,
     "Zhi Mang Xing: free running-script (xingshu) brush hand.", "钟齐志莽行书：奔放的毛笔行书。"),
    ("liujianmaocao", f"{_NPM}/liu-jian-mao-cao.ttf", 0, "@fontsource/liu-jian-mao-cao", "caoshu", "cursive", "zh", _OFL,
     "Liu Jian Mao Cao: cursive grass script (caoshu) brush hand.", "流江毛草：毛笔草书。"),
    ("longcang", f"{_NPM}/long-cang.ttf", 0, "@fontsource/long-cang", "xingshu", "handwriting", "zh", _OFL,
     "Long Cang: fast running handwriting with a hard pen.", "龙藏体：硬笔快写的行书手写体。"),
    ("xiaowei", f"{_NPM}/zcool-xiaowei.ttf", 0, "@fontsource/zcool-xiaowei", "kaishu", "song", "zh", _OFL,
     "ZCOOL XiaoWei: elegant display Song with tall, thin strokes.", "站酷小薇：清秀修长的标题宋体。"),
    ("kuaile", f"{_NPM}/zcool-kuaile.ttf", 0, "@fontsource/zcool-kuaile", "heiti", "display", "zh", _OFL,
     "ZCOOL KuaiLe: playful, rounded hand-drawn display face.", "站酷快乐体：活泼圆润的手绘标题字体。"),
    ("qingke", f"{_NPM}/zcool-qingke-huangyou.ttf", 0, "@fontsource/zcool-qingke-huangyou", "heiti", "display", "zh", _OFL,
     "ZCOOL QingKe HuangYou: heavy, square-cut display face.", "站酷庆科黄油体：粗重方切的标题字体。"),
    ("huninn", f"{_NPM}/huninn.ttf", 0, "@fontsource/huninn", "heiti", "round", "zh", _OFL,
     "Huninn: rounded traditional-Chinese face (jf open 粉圆).", "jf 粉圆：繁体圆体。"),
    ("cactus", f"{_NPM}/cactus-classical-serif.ttf", 0, "@fontsource/cactus-classical-serif", "kaishu", "song", "zh", _OFL,
     "Cactus Classical Serif: traditional-Chinese Ming in the old woodblock manner.", "仙人掌明体：古籍刻本风格的繁体明体。"),
    ("chironhei", f"{_NPM}/chiron-hei-hk.ttf", 0, "@fontsource/chiron-hei-hk", "heiti", "hei", "zh", _OFL,
     "Chiron Hei HK: Hong Kong-standard modern sans.", "昭源黑体 HK：香港字形的现代黑体。"),
    ("yujisyuku", f"{_NPM}/yuji-syuku.ttf", 0, "@fontsource/yuji-syuku", "kaishu", "brush", "ja", _OFL,
     "Yuji Syuku: brush regular script after old sutra copying.", "佑字肃：仿古写经的毛笔楷书。"),
    ("yujiboku", f"{_NPM}/yuji-boku.ttf", 0, "@fontsource/yuji-boku", "xingshu", "brush", "ja", _OFL,
     "Yuji Boku: the Yuji family's 'boku' face; its Han glyphs are identical to Yuji Syuku's (only kana differ), so it "
     "is not a separate design here.", "佑字朴：其汉字与佑字肃完全相同（仅假名不同），此处不算独立字体。"),
    ("yujimai", f"{_NPM}/yuji-mai.ttf", 0, "@fontsource/yuji-mai", "kaishu", "brush", "ja", _OFL,
     "Yuji Mai: the Yuji family's 'mai' face; its Han glyphs are identical to Yuji Syuku's (only kana differ), so it "
     "is not a separate design here.", "佑字舞：其汉字与佑字肃完全相同（仅假名不同），此处不算独立字体。"),
    ("kurenaido", f"{_NPM}/zen-kurenaido.ttf", 0, "@fontsource/zen-kurenaido", "kaishu", "handwriting", "ja", _OFL,
     "Zen Kurenaido: neat handwriting with a felt pen.", "Zen 红道：工整的签字笔手写体。"),
    ("yusei", f"{_NPM}/yusei-magic.ttf", 0, "@fontsource/yusei-magic", "kaishu", "handwriting", "ja", _OFL,
     "Yusei Magic: marker-pen handwriting.", "油性魔术：记号笔手写体。"),
    ("yomogi", f"{_NPM}/yomogi.ttf", 0, "@fontsource/yomogi", "kaishu", "handwriting", "ja", _OFL,
     "Yomogi: soft, thin pencil handwriting.", "艾草体：柔和纤细的铅笔手写体。"),
    ("kaiseidecol", f"{_NPM}/kaisei-decol.ttf", 0, "@fontsource/kaisei-decol", "kaishu", "display", "ja", _OFL,
     "Kaisei Decol: decorative mincho with curled terminals.", "解星装饰：笔端卷曲的装饰明朝体。"),
    ("zenantique", f"{_NPM}/zen-antique.ttf", 0, "@fontsource/zen-antique", "kaishu", "song", "ja", _OFL,
     "Zen Antique: antique mincho after early letterpress.", "Zen 古风：仿早期活字的古典明朝体。"),
    ("hinamincho", f"{_NPM}/hina-mincho.ttf", 0, "@fontsource/hina-mincho", "kaishu", "song", "ja", _OFL,
     "Hina Mincho: gentle, rounded-stroke mincho.", "雏明朝：笔画柔和的明朝体。"),
    ("delagothic", f"{_NPM}/dela-gothic-one.ttf", 0, "@fontsource/dela-gothic-one", "heiti", "display", "ja", _OFL,
     "Dela Gothic One: ultra-heavy display gothic.", "Dela 黑体：超粗标题黑体。"),
    ("rampart", f"{_NPM}/rampart-one.ttf", 0, "@fontsource/rampart-one", "heiti", "display", "ja", _OFL,
     "Rampart One: outlined, three-dimensional display face.", "Rampart One：空心立体的标题字体。"),
    ("potta", f"{_NPM}/potta-one.ttf", 0, "@fontsource/potta-one", "heiti", "display", "ja", _OFL,
     "Potta One: bold brush-marker display face.", "Potta One：粗笔触的标题字体。"),
    ("kiwimaru", f"{_NPM}/kiwi-maru.ttf", 0, "@fontsource/kiwi-maru", "kaishu", "round", "ja", _OFL,
     "Kiwi Maru: rounded mincho with soft ends.", "奇异果圆：笔端圆润的明朝体。"),
    ("hachimaru", f"{_NPM}/hachi-maru-pop.ttf", 0, "@fontsource/hachi-maru-pop", "heiti", "display", "ja", _OFL,
     "Hachi Maru Pop: round, cute 'maru-moji' handwriting display.", "八丸流行体：圆滚可爱的丸文字标题体。"),
    ("mochiy", f"{_NPM}/mochiy-pop-one.ttf", 0, "@fontsource/mochiy-pop-one", "heiti", "display", "ja", _OFL,
     "Mochiy Pop One: chubby pop display gothic.", "Mochiy Pop：圆胖的流行标题黑体。"),
    ("zenmaru", f"{_NPM}/zen-maru-gothic.ttf", 0, "@fontsource/zen-maru-gothic", "heiti", "round", "ja", _OFL,
     "Zen Maru Gothic: rounded gothic.", "Zen 丸黑体：圆黑体。"),
    ("stick", f"{_NPM}/stick.ttf", 0, "@fontsource/stick", "heiti", "display", "ja", _OFL,
     "Stick: straight-line display face drawn with sticks.", "Stick：直线构成的标题字体。"),
]
_STYLE_LIST += [Style(n, f, i, pkg, scr, en, zh, cat, forms, lic) for n, f, i, pkg, scr, cat, forms, lic, en, zh in _MORE]

# the nine styles registered before issue 16 (the default of GlyphDataset, hence of the backbone's glyph data)
CLASSIC_STYLES: tuple[str, ...] = ("ukai", "cwkai", "twkai", "wenkai", "kouzan", "soseki", "mouhitsu", "gyosho", "sosho")

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
