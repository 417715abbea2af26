"""calligraphy-font: write an installable font (TTF / OTF) in a calligraphy style, one generated glyph per character.

    calligraphy-font --style gyosho --chars 永和九年歲在癸丑 --out Gyosho.ttf
    calligraphy-font --reference my/永.png my/和.png my/九.png --charset chars.txt --out MyHand.otf --seed 1
    calligraphy-font --style-prompt "bold running brush script" --chars 春夏秋冬 --out Seasons.ttf
    calligraphy-font --style myhand --chars 春夏秋冬 --out MyHand.ttf      # an adapted hand (calligraphy-adapt, ./styles)

Glyphs are generated at the model's output size (64 px with the super-resolution stage), traced to outlines (vtracer)
and written with fontTools: 1000 units per em, full-width advances, the ideographic em box (ascender 880, descender
−120) in hhea and OS/2, a name table with the family name (default: the file name). Bad input (no or unreadable
reference, a reference without ink or with several unnamed characters, an empty charset file, characters no training
design covers, an unknown style, a bad extension) is a clear error and writes no file; the font is written atomically.
"""
from __future__ import annotations

import argparse
import time

from gen.cli import add_common_args, exit_now, finite_float, positive_int, progress_bar, run, setup_runtime

PROG = "calligraphy-font"
MAX_FONT_CHARS = 20000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--style", default=None, help="a training style, a mix like '0.7*gyosho+0.3*ukai' or an "
                                                   "adapted style's name (default: the model's first style)")
    src.add_argument("--reference", nargs="+", default=None, metavar="IMG",
                     help="reference glyph images giving the style by example (1-64 glyphs; an image of several "
                          "characters needs them named in its file name, e.g. 永和.png)")
    src.add_argument("--style-prompt", default=None, help="a text description of the style")
    p.add_argument("--style-dir", action="append", default=[], metavar="DIR",
                   help="a folder of adapted styles (calligraphy-adapt) searched for --style NAME before "
                        "$GENSUITE_STYLES and ./styles (repeatable)")
    chars = p.add_mutually_exclusive_group(required=True)
    chars.add_argument("--chars", default=None, help="the characters of the font (whitespace ignored, repeats dropped)")
    chars.add_argument("--charset", default=None, metavar="FILE", help="a UTF-8 text file of the characters")
    p.add_argument("--out", required=True, help="font file to write (.ttf or .otf)")
    p.add_argument("--family", default=None, help="font family name (default: the output file's stem)")
    p.add_argument("--batch", type=positive_int, default=32, help="characters generated per batch")
    p.add_argument("--content-guidance", type=finite_float, default=None,
                   help="guidance scale for content (default: --guidance)")
    add_common_args(p, "calligraphy", {"scheduler": "dpm++", "steps": 20, "guidance": 2.0}, threads=1)
    return p


def read_charset(path: str) -> str:
    """The text of a charset file; an unreadable, non-UTF-8 or empty (whitespace-only) file is a ValueError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(4 * MAX_FONT_CHARS + 1)
    except UnicodeDecodeError as e:
        raise ValueError(f"charset file {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"cannot read charset file {path!r}: {e.strerror or e}") from None
    if not text.strip():
        raise ValueError(f"charset file {path!r} is empty: give the characters of the font (UTF-8 text)")
    return text


def _main(args) -> int:
    from pathlib import Path

    out = Path(args.out)
    if out.suffix.lower() not in (".ttf", ".otf"):
        raise ValueError(f"unsupported font extension {out.suffix!r} for {out.name}; accepted: .ttf, .otf")
    text = read_charset(args.charset) if args.charset is not None else args.chars
    if not text or not text.strip():
        raise ValueError("--chars is empty: give the characters of the font")
    device = setup_runtime(args)
    from .pipeline import CalligraphyPipeline, reference_glyphs

    for r in args.reference or []:  # readable, inked, one (or named) character each: checked before the model loads
        reference_glyphs(r, 32)

    t0 = time.time()
    pipe = CalligraphyPipeline.from_pretrained(args.model, device=device)
    pipe.style_dirs = list(args.style_dir)
    style = args.style
    if style is None and args.reference is None and args.style_prompt is None:
        style = pipe.styles[0]
    info = pipe.font(text, out, family=args.family, batch=args.batch, progress=progress_bar(PROG, unit="char"),
                     seed=args.seed, style=style, references=args.reference, style_prompt=args.style_prompt,
                     steps=args.steps, scheduler=args.scheduler, guidance=args.guidance,
                     content_guidance=args.content_guidance)
    note = f" ({len(info['blank'])} blank: {''.join(info['blank'][:20])})" if info["blank"] else ""
    print(f"wrote {info['font']}: {info['chars']} glyphs, family {info['family']!r}{note} in {time.time() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    exit_now(main())
