"""How much of the faces' variety survives guidance: within-prompt diversity of samples vs real renders.

    python -m tasks.attributes.diversity --model runs/attributes --out reports/attributes_diversity.json

Strong guidance buys attribute accuracy (reports/attributes_eval.json) with variety: the nuisances a prompt leaves
open (skin, hair, face shape, background, the unspecified attributes) collapse towards a few typical values. For the
evaluation's seen 3-attribute prompts (same combinations and seed as tasks.attributes.evaluate) and the demo prompt,
this samples n images per prompt under several sampling settings and reports the mean pairwise RMSE between images of
one prompt (pixels in [0, 1]), on the whole 32×32 image and on its central 16×16 (the face without most of the
background). The reference is the same statistic on procedural renders with the prompt's attributes on and every
other attribute and nuisance drawn as in the training data. Higher = more varied; real renders are the ceiling.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
import torch

from gen.io import atomic_write_json
from tasks.attributes.evaluate import _combos, generate
from tasks.attributes.faces import render_face, sample_attributes, vector_to_attrs
from tasks.attributes.pipeline import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, AttributesPipeline

DEMO_PROMPT = "glasses & beard & ~hat & smile@mouth"


def pairwise_rmse(x: torch.Tensor, crop: bool = False) -> float:
    """Mean RMSE over all ordered pairs of distinct images; x (n, 3, H, W) in [-1, 1], distances in [0, 1] units.
    crop=True: the central half of the image in each direction."""
    if len(x) < 2:
        raise ValueError("pairwise diversity needs at least 2 images")
    if crop:
        h, w = x.shape[-2:]
        x = x[..., h // 4:h - h // 4, w // 4:w - w // 4]
    f = ((x.float() + 1) / 2).flatten(1)
    d = torch.cdist(f, f) / f.shape[1] ** 0.5
    n = len(f)
    return float(d.sum() / (n * (n - 1)))


def real_renders(combo, n: int, index: int, size: int = 32) -> torch.Tensor:
    """n procedural faces with `combo` on and everything else drawn as in training (seeded by the prompt index)."""
    out = []
    for i in range(n):
        attrs = set(vector_to_attrs(sample_attributes(np.random.default_rng([77, index, i]), "all"))) | set(combo)
        img = render_face(attrs, np.random.default_rng([78, index, i]), size)
        out.append(torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1)
    return torch.stack(out)


def _score(batches: list[torch.Tensor]) -> dict:
    return {"image": float(np.mean([pairwise_rmse(b) for b in batches])),
            "face_crop": float(np.mean([pairwise_rmse(b, crop=True) for b in batches]))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="runs/attributes", help="run folder or exported model folder")
    p.add_argument("--out", default="reports/attributes_diversity.json", help="report JSON (written atomically)")
    p.add_argument("--n-per", type=int, default=16, help="images per prompt")
    p.add_argument("--n-combos", type=int, default=8, help="seen 3-attribute prompts")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help="guidance scale W")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (and the evaluation's combination choice)")
    p.add_argument("--batch", type=int, default=128, help="images per sampling run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    combos = _combos(3, False, args.n_combos, random.Random(args.seed))  # the evaluation's first draw: its seen-3 set
    pipe = AttributesPipeline.from_pretrained(args.model)
    shipped = dict(pipe.attribute_scale)
    variants = {"default": (DEFAULT_SCHEDULER, shipped), "dpm++": ("dpm++", shipped),
                "no_attribute_scale": (DEFAULT_SCHEDULER, {}), "dpm++_no_attribute_scale": ("dpm++", {})}
    report = {"command": "python -m tasks.attributes.diversity " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "combos": [list(c) for c in combos], "demo_prompt": DEMO_PROMPT,
              "settings": {k: getattr(args, k) for k in ("n_per", "n_combos", "steps", "guidance", "seed")},
              "real_renders": {"seen_3": _score([real_renders(c, args.n_per, i) for i, c in enumerate(combos)])},
              "variants": {}}
    prompts = [[(a, True, None) for a in c] for c in combos]
    for name, (scheduler, scale) in variants.items():
        pipe.attribute_scale = scale
        run = argparse.Namespace(**{**vars(args), "scheduler": scheduler})
        x = generate(pipe, prompts, args.n_per, run)
        demo = pipe(DEMO_PROMPT, num=args.n_per, seed=args.seed, steps=args.steps, scheduler=scheduler,
                    guidance=args.guidance)
        report["variants"][name] = {"scheduler": scheduler, "attribute_scale": scale,
                                    "seen_3": _score(list(x.split(args.n_per))), "demo_prompt": _score([demo])}
        print(name, json.dumps(report["variants"][name]["seen_3"]), flush=True)
    report["seconds"] = time.time() - t0
    atomic_write_json(args.out, report, suffix=".json.tmp", newline=False)
    return report


if __name__ == "__main__":
    main()
