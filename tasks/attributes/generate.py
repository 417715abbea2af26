"""Generate a grid of faces from a composite attribute prompt.

    attributes-generate --prompt "glasses & beard & ~hat" --num 16 --seed 0 --out grid.png
    attributes-generate --prompt "2*glasses & beard" --steps 30 --scheduler ddim --guidance 4 --out grid.png
    attributes-generate --prompt "glasses@eyes & smile" --region smile=0.2,0.5,0.8,0.9 --out grid.png
    attributes-generate --prompt "" --out uncond.png                   # empty prompt: unconditional samples
    attributes-generate --prompt "smile & hat" --attribute-scale smile=2  # override the model's per-attribute scale
    attributes-generate --prompt "a smiling man with round glasses, no hat" --out grid.png   # plain words (the CLIP)
    attributes-generate --image a.png --image b.png --prompt "hat" --out grid.png           # image prompts & text
    attributes-generate --edit face.png --prompt "sunglasses" --edit-region eyes --strength 0.8 --out edited.png

A bad prompt (unknown attribute, syntax error) exits with status 2 and a message pointing at the position, listing the
valid attributes.
"""
from __future__ import annotations

import argparse
import os
import sys

from gen.cli import add_common_args, exit_now, finite_float, positive_int, progress_bar, run, setup_runtime

PROG = "attributes-generate"
MAX_NUM = 1024  # images per call (a 32×32 grid of 1024 faces); more is almost surely a typo


def _parse_region(text: str, attributes) -> tuple[str, object]:
    """'glasses=x0,y0,x1,y1' | 'glasses=eyes' | 'glasses=mask.png' → (attribute, region)."""
    from tasks.attributes.faces import REGIONS
    from tasks.attributes.prompt import PromptError, parse_region_override

    name, _, value = text.partition("=")
    value = value.strip()
    if value in REGIONS or (value and os.path.exists(value)):
        if name.strip() not in attributes:
            raise PromptError(f"unknown attribute {name.strip()!r}; valid attributes: {', '.join(attributes)}", text, 0)
        return name.strip(), value
    return parse_region_override(text, attributes)


def _edit_region(text: str | None):
    """--edit-region: None, a region name, 'x0,y0,x1,y1' or a mask image path."""
    if text is None:
        return None
    from tasks.attributes.faces import REGIONS

    if text in REGIONS or os.path.exists(text):
        return text
    parts = text.split(",")
    try:
        box = tuple(float(v) for v in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"--edit-region {text!r}: expected a region name ({', '.join(REGIONS)}), x0,y0,x1,y1 or a mask "
                         "image path")
    return box


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prompt", default="", help='composite prompt, e.g. "glasses & 2*beard & ~hat@top"; "" = unconditional')
    p.add_argument("--num", type=positive_int, default=16, help=f"number of images (at most {MAX_NUM})")
    p.add_argument("--out", default="grid.png", help="output PNG grid (written atomically)")
    p.add_argument("--attribute-scale", action="append", default=[], metavar="ATTR=S",
                   help="per-attribute guidance scale, replacing the model's calibrated one for ATTR (repeatable); "
                        "'none' drops the model's scales")
    p.add_argument("--region", action="append", default=[], metavar="ATTR=REGION",
                   help="restrict a prompt attribute to x0,y0,x1,y1 (in [0, 1]), a region name or a mask image path")
    p.add_argument("--negation", choices=("off", "neg"), default="off",
                   help="~a as the tri-state term a=off (off) or a negative weight on a=on (neg)")
    p.add_argument("--mode", choices=("composed", "joint"), default="composed",
                   help="composed: one term per attribute; joint: one condition with all unmasked attributes")
    p.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="an image prompt (repeatable): the attributes it shows, composed with --prompt")
    p.add_argument("--edit", default=None, metavar="PATH",
                   help="edit this face: regenerate --edit-region under --prompt, keep every other pixel")
    p.add_argument("--edit-region", default=None, metavar="REGION",
                   help="region to regenerate with --edit: a name (eyes, mouth, ...), x0,y0,x1,y1 or a mask image; "
                        "default: the regions of the attributes the prompt names")
    p.add_argument("--strength", type=finite_float, default=0.8,
                   help="with --edit: how much of the input is noised away before regenerating (0, 1]")
    p.add_argument("--nrow", type=int, default=0, help="images per grid row (0 = square)")
    add_common_args(p, "attributes", {"scheduler": "euler_a", "steps": 20, "guidance": 4.5})
    return p


def _main(args) -> int:
    from tasks.attributes.pipeline import AttributesPipeline, save_grid
    from tasks.attributes.prompt import PromptError

    if args.num > MAX_NUM:
        raise ValueError(f"--num {args.num} is over the limit of {MAX_NUM} images per call")
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out {args.out!r}: the grid is written as PNG; give a path ending in .png")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if os.path.isdir(args.out) or not os.path.isdir(out_dir):
        raise ValueError(f"--out {args.out!r}: expected a file path in an existing folder")
    device = setup_runtime(args)
    try:
        pipe = AttributesPipeline.from_pretrained(args.model, negation=args.negation, device=device)
        for item in args.attribute_scale:
            if item.strip().lower() == "none":
                pipe.attribute_scale = {}
                continue
            name, eq, value = item.partition("=")
            try:
                value = float(value)
            except ValueError:
                eq = ""
            if not eq:
                raise ValueError(f"--attribute-scale expects ATTR=S with S a number > 0 (or 'none'), got {item!r}")
            pipe.attribute_scale = {**pipe.attribute_scale, name.strip(): value}  # validated by the setter
        regions = dict(_parse_region(r, pipe.attributes) for r in args.region)
        if args.edit is not None:
            if args.image or regions:
                raise ValueError("--edit takes --prompt and --edit-region (not --image / --region)")
            region = _edit_region(args.edit_region)
            images = pipe.edit(args.edit, args.prompt, region, args.strength, args.num, args.seed, args.steps,
                               args.guidance, progress=progress_bar(PROG))
        else:
            if args.edit_region is not None:
                raise ValueError("--edit-region needs --edit IMAGE")
            prompt = args.prompt
            if args.image:
                from tasks.attributes.terms import Img, T

                prompt = Img(args.image[0])
                for path in args.image[1:]:
                    prompt = prompt & Img(path)
                if args.prompt.strip():
                    prompt = prompt & T(args.prompt)
            prompt = pipe.build(prompt, regions, args.guidance, args.mode)
            for line in pipe.understood:
                print(f"understood: {line}", file=sys.stderr)
            images = pipe.sample(prompt, args.num, args.seed, args.steps, args.scheduler, progress=progress_bar(PROG))
        for note in pipe.notes:
            print(f"{PROG}: note: {note}", file=sys.stderr)
    except PromptError as e:
        print(f"{PROG}: error in prompt:\n{e}", file=sys.stderr)
        return 2
    save_grid(images, args.out, args.nrow or None)
    what = f"edits of {args.edit!r}" if args.edit else "images"
    print(f"wrote {args.num} {what} for {args.prompt!r} -> {args.out}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    exit_now(main())
