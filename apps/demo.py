"""`make demo`: run the suite's main jobs on the shipped checkpoints and write everything under --out.

    python -m apps.demo --out outputs/demo

1. Backbone: the shipped label-conditional shapes model (checkpoints/shapes) samples one row per class, a
   composite prompt (disc AND NOT square) and a regional prompt (disc guided in the left half, cross in the right half),
   with DPM-Solver++ through the backbone's guidance algebra.
2. Each task whose checkpoint is shipped runs its generation CLI on a fixed example.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import torch

from gen.guidance import guided_model
from gen.io import atomic_path
from gen.pipeline import ClassConditionalPipeline, shipped_path
from gen.sampling import sample_diffusers

_EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tasks", "attributes", "examples")
# (shipped model name, CLI module, argv builder given the output folder); each CLI finds its shipped model by name
TASK_DEMOS = [
    ("attributes", "tasks.attributes.generate",
     lambda o: ["--prompt", "glasses & beard & ~hat & smile@mouth",
                "--num", "16", "--seed", "0", "--out", os.path.join(o, "attributes_grid.png")]),
    # plain words, an image pair composed with a word, and an edit (tasks/attributes/examples: two procedural faces)
    ("attributes", "tasks.attributes.generate",
     lambda o: ["--prompt", "a smiling man with round glasses, no hat", "--num", "8", "--seed", "0",
                "--out", os.path.join(o, "attributes_text.png")]),
    ("attributes", "tasks.attributes.generate",
     lambda o: ["--image", os.path.join(_EXAMPLES, "soldier.png"), "--image", os.path.join(_EXAMPLES, "badge.png"),
                "--prompt", "earrings", "--num", "8", "--seed", "0", "--out", os.path.join(o, "attributes_images.png")]),
    ("attributes", "tasks.attributes.generate",
     lambda o: ["--edit", os.path.join(_EXAMPLES, "soldier.png"), "--prompt", "sunglasses", "--num", "4", "--seed", "0",
                "--out", os.path.join(o, "attributes_edit.png")]),
    ("calligraphy", "tasks.calligraphy.generate",
     lambda o: ["--text", "永和九年", "--style", "ukai", "--seed", "0", "--cell", "256",
                "--out", os.path.join(o, "calligraphy_work.png"), "--video", os.path.join(o, "calligraphy_work.mp4")]),
    # the same work as vectors (traced outlines), and a small installable font
    ("calligraphy", "tasks.calligraphy.generate",
     lambda o: ["--text", "永和九年", "--style", "ukai", "--seed", "0", "--cell", "256",
                "--out", os.path.join(o, "calligraphy_work.svg")]),
    ("calligraphy", "tasks.calligraphy.font_cli",
     lambda o: ["--chars", "永和九年歲在癸丑暮春之初", "--style", "gyosho", "--seed", "0",
                "--out", os.path.join(o, "calligraphy_font.ttf")]),
    ("dance", "tasks.dance.generate",
     lambda o: ["--music", os.path.join(o, "demo_song.wav"), "--seconds", "10", "--seed", "0",
                "--out", os.path.join(o, "dance.mp4"), "--bvh", os.path.join(o, "dance.bvh"),
                "--npz", os.path.join(o, "dance.npz")]),
]


def save_grid(x: torch.Tensor, path: str, nrow: int) -> None:
    import torchvision

    with atomic_path(path, suffix=".tmp.png") as tmp:  # torchvision/PIL pick the format from the extension
        torchvision.utils.save_image((x.clamp(-1, 1) + 1) / 2, tmp, nrow=nrow, padding=1)


def backbone_demo(out: str, seed: int = 0) -> str:
    pipe = ClassConditionalPipeline.from_pretrained("shapes")
    model, sched, size = pipe.model, pipe.schedule, pipe.image_shape[-1]
    k = model.config.num_classes
    per = 8
    rows = []
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        for c in range(k):  # one row per class, guidance 3
            f = guided_model(model, 3.0 * model.term(c), model.null_cond())
            rows.append(sample_diffusers(f, (per, 3, size, size), sched, scheduler="dpm++", steps=20, generator=g,
                                         prediction_type="v_prediction"))
        # composite: disc AND NOT square
        f = guided_model(model, 3.0 * (model.term(0) & ~model.term(1)), model.null_cond())
        rows.append(sample_diffusers(f, (per, 3, size, size), sched, scheduler="dpm++", steps=20, generator=g,
                                     prediction_type="v_prediction"))
        # regional: disc guided in the left half, cross in the right half
        left = torch.zeros(1, size, size)
        left[..., : size // 2] = 1
        prompt = 3.0 * model.term(0).within(left) & 3.0 * model.term(3).within(1 - left)
        rows.append(sample_diffusers(guided_model(model, prompt, model.null_cond()), (per, 3, size, size), sched,
                                     scheduler="dpm++", steps=20, generator=g, prediction_type="v_prediction"))
    path = os.path.join(out, "backbone_grid.png")
    save_grid(torch.cat(rows), path, nrow=per)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    print(f"backbone: {backbone_demo(a.out, a.seed)} "
          "(rows: disc, square, triangle, cross; disc & ~square; disc@left & cross@right)")
    for name, module, args in TASK_DEMOS:
        if not (shipped_path(name) / "pipeline.json").is_file():
            print(f"{name}: no shipped model at {shipped_path(name)}, skipped")
            continue
        if name == "dance":  # a bundled procedural song played with real instrument samples (FluidSynth, GM)
            from tasks.dance.midi import make_song_gm
            from tasks.dance.synth import write_wav
            song = make_song_gm(seed=7, seconds=10, genre="house")
            write_wav(os.path.join(a.out, "demo_song.wav"), song["audio"], song["sr"])
        t1 = time.time()
        rc = importlib.import_module(module).main(args(a.out))
        if rc not in (None, 0):
            print(f"{name}: failed with exit code {rc}", file=sys.stderr)
            return 1
        print(f"{name}: done in {time.time() - t1:.1f} s")
    print(f"demo outputs in {a.out}/ ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
