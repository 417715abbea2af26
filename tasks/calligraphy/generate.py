"""calligraphy-generate: write a text as a calligraphy work (PNG) and optionally its writing video (GIF/MP4).

    calligraphy-generate --text 永和九年 --style gyosho --out work.png --video work.gif
    calligraphy-generate --text 永和九年 --style "0.7*gyosho+0.3*ukai" --out mix.png --layout horizontal
    calligraphy-generate --text 永和九年 --reference a.png b.png c.png d.png --out few.png   # a style given by examples
    calligraphy-generate --text 永和九年 --style-prompt "bold running brush script" --out text.png
    calligraphy-generate --text 永和九年 --style gyosho --out work.svg             # a vector work (traced outlines)
    calligraphy-generate --text 永和九年 --style gyosho --out big.png --cell 256    # PNG rendered from the outlines
    calligraphy-generate --text 永和九年 --style myhand --out mine.png   # an adapted hand (calligraphy-adapt, ./styles)

Vertical columns read right to left by default. Bad input (empty text, more than MAX_CHARS characters, characters the
content font cannot draw, an unknown style, an unreadable reference image) is a clear error and writes no file.
"""
from __future__ import annotations

import argparse
import time

from gen.cli import add_common_args, exit_now, finite_float, positive_int, progress_bar, run, setup_runtime

PROG = "calligraphy-generate"
MAX_CHARS = 64  # = tasks.calligraphy.pipeline.MAX_CHARS (kept here so --help does not import torch)
MAX_CELL = 1024


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--text", required=True, help=f"characters to write (whitespace ignored; at most {MAX_CHARS})")
    p.add_argument("--style", default=None,
                   help="a training style, a mix like '0.7*gyosho+0.3*ukai', or an adapted style's name "
                        "(calligraphy-adapt; see --style-dir) (default: the model's first style)")
    p.add_argument("--reference", nargs="+", default=None, metavar="IMG",
                   help="k ≥ 1 reference glyph images giving the style by example (instead of --style)")
    p.add_argument("--style-prompt", default=None, help="a text description of the style (instead of --style)")
    p.add_argument("--style-dir", action="append", default=[], metavar="DIR",
                   help="a folder of adapted styles (calligraphy-adapt) searched for --style NAME before "
                        "$GENSUITE_STYLES and ./styles (repeatable)")
    p.add_argument("--out", required=True, help="output work: an image (.png, .jpg, .webp, .bmp) rendered from the "
                   "traced outlines at --cell px per character, or a vector work (.svg)")
    p.add_argument("--video", default=None, help="also write the writing video (.gif or .mp4)")
    p.add_argument("--layout", default="vertical", choices=["vertical", "horizontal"],
                   help="vertical: columns top to bottom, read right to left; horizontal: rows left to right")
    p.add_argument("--chars-per-line", type=positive_int, default=None, help="characters per column/row (default ≈ √n)")
    p.add_argument("--content-guidance", type=finite_float, default=None,
                   help="guidance scale for content (default: --guidance)")
    p.add_argument("--cell", type=positive_int, default=96, help=f"pixels per character in the work (≤ {MAX_CELL})")
    add_common_args(p, "calligraphy", {"scheduler": "dpm++", "steps": 4, "guidance": 2.0}, threads=1)
    return p


def _main(args) -> int:
    if args.cell > MAX_CELL:
        raise ValueError(f"--cell {args.cell} is over the limit of {MAX_CELL} pixels per character")
    device = setup_runtime(args)
    from .pipeline import CalligraphyPipeline

    t0 = time.time()
    pipe = CalligraphyPipeline.from_pretrained(args.model, device=device)
    pipe.style_dirs = list(args.style_dir)
    style = args.style
    if style is None and args.reference is None and args.style_prompt is None:
        style = pipe.styles[0]
    info = pipe.write(args.text, args.out, video=args.video, layout=args.layout, style=style,
                      references=args.reference, style_prompt=args.style_prompt, seed=args.seed, steps=args.steps,
                      scheduler=args.scheduler, guidance=args.guidance, content_guidance=args.content_guidance,
                      cell=args.cell, chars_per_line=args.chars_per_line, progress=progress_bar(PROG))
    print(f"wrote {info['image']}" + (f" and {info['video']}" if info["video"] else "") + f" in {time.time() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    exit_now(main())
