"""Generate a grid of faces from a composite attribute prompt.

    attributes-generate --prompt "glasses & beard & ~hat" --num 16 --seed 0 --out grid.png
    attributes-generate --prompt "2*glasses & beard" --steps 30 --scheduler ddim --guidance 4 --out grid.png
    attributes-generate --prompt "glasses@eyes & smile" --region smile=0.2,0.5,0.8,0.9 --out grid.png
    attributes-generate --prompt "" --out uncond.png                   # empty prompt: unconditional samples
    attributes-generate --prompt "smile & hat" --attribute-scale smile=2  # override the model's per-attribute scale

A bad prompt (unknown attribute, syntax error) exits with status 2 and a message pointing at the position, listing the
valid attributes.
"""
from __future__ import annotations

import argparse
import os
import sys

from gen.sampling import SCHEDULERS
from tasks.attributes.faces import REGIONS
from tasks.attributes.pipeline import (DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, MODES, NEGATIONS,
                                      AttributesPipeline, save_grid)
from tasks.attributes.prompt import PromptError, parse_region_override

DEFAULT_MODEL = os.environ.get("ATTRIBUTES_MODEL", "runs/attributes")


def _parse_region(text: str, attributes) -> tuple[str, object]:
    """'glasses=x0,y0,x1,y1' | 'glasses=eyes' | 'glasses=mask.png' → (attribute, region)."""
    name, _, value = text.partition("=")
    value = value.strip()
    if value in REGIONS or (value and os.path.exists(value)):
        if name.strip() not in attributes:
            raise PromptError(f"unknown attribute {name.strip()!r}; valid attributes: {', '.join(attributes)}", text, 0)
        return name.strip(), value
    return parse_region_override(text, attributes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prompt", default="", help='composite prompt, e.g. "glasses & 2*beard & ~hat@top"; "" = unconditional')
    p.add_argument("--num", type=int, default=16, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="seed (image i uses noise seeded by (seed, i))")
    p.add_argument("--out", default="grid.png", help="output PNG grid (written atomically)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help=f"sampler: {', '.join(SCHEDULERS)}, ancestral or ddim-eta")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help="guidance scale W multiplying every term's weight")
    p.add_argument("--attribute-scale", action="append", default=[], metavar="ATTR=S",
                   help="per-attribute guidance scale, replacing the model's calibrated one for ATTR (repeatable); "
                        "'none' drops the model's scales")
    p.add_argument("--region", action="append", default=[], metavar="ATTR=REGION",
                   help="restrict a prompt attribute to x0,y0,x1,y1 (in [0, 1]), a region name or a mask image path")
    p.add_argument("--negation", choices=NEGATIONS, default="off",
                   help="~a as the tri-state term a=off (off) or a negative weight on a=on (neg)")
    p.add_argument("--mode", choices=MODES, default="composed",
                   help="composed: one term per attribute; joint: one condition with all unmasked attributes")
    p.add_argument("--model", default=DEFAULT_MODEL, help="run folder, checkpoint folder or exported model folder")
    p.add_argument("--nrow", type=int, default=0, help="images per grid row (0 = square)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipe = AttributesPipeline.from_pretrained(args.model, negation=args.negation)
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
        prompt = pipe.build(args.prompt, regions, args.guidance, args.mode)
        images = pipe.sample(prompt, args.num, args.seed, args.steps, args.scheduler)
    except PromptError as e:
        print(f"attributes-generate: error in prompt:\n{e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"attributes-generate: error: {e}", file=sys.stderr)
        return 2
    save_grid(images, args.out, args.nrow or None)
    print(f"wrote {args.num} images for {args.prompt!r} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
