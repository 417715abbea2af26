"""Benchmark calligraphy-adapt: wall time from k reference glyphs and quality on other characters of the same design.

    python -m tasks.calligraphy.adapt_eval --model calligraphy --designs kurenaido twkai --k 16 32 \\
        --threads 1 --out reports/calligraphy_adapt.json

For each held-out few-shot design (never trained on) and each k:
1. k reference characters from the model's *training* characters, valid in the design, are rendered from the
   installed font (tasks.calligraphy.data.render_glyph) and saved as PNG scans (dark ink on grey paper with noise, at
   a random place on a larger page, named after the character) in a temporary folder.
2. The real CLI adapts on those files (`calligraphy-adapt --references DIR`: files → binarise → crop → train), timed.
3. On n *held-out* characters of the design (never among the references, never trained on by the base model), three
   ways of writing them are compared with the real font glyphs, SSIM / RMSE / L1 at the model size (32 px) and the
   output size (64 px, super-resolution stage): the adapted style (`style=NAME`), references only (today's path, the
   same k files) and the plain content glyph. The conditional diffusion loss on those real glyphs (fixed t, ε draws)
   is reported for the adapted style and the references-only model as a lower-variance measure of fit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def page(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A glyph (S, S) ink in [0, 1] → a uint8 'scan': dark ink on grey paper with noise, at a random page position."""
    s = glyph.shape[0]
    h, w = s + int(rng.integers(16, 48)), s + int(rng.integers(16, 48))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    ink = np.zeros((h, w), np.float32)
    ink[y:y + s, x:x + s] = glyph
    paper = 225 + 10 * rng.random() + rng.normal(0, 4, (h, w))
    img = paper * (1 - ink) + (30 + 20 * rng.random()) * ink
    return np.clip(img, 0, 255).astype(np.uint8)


def pick_chars(design: str, pool: list[str], n: int, rng: np.random.Generator) -> list[str]:
    from .data import CONTENT_STYLE, OK, glyph_status
    from .styles import STYLES

    out = []
    for i in rng.permutation(len(pool)):
        c = pool[i]
        if glyph_status(c, STYLES[design]) == OK and glyph_status(c, CONTENT_STYLE) == OK:
            out.append(c)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} usable characters for design {design}")


def real_glyphs(chars, design: str, size: int) -> torch.Tensor:
    """(N, 1, size, size) in [0, 1]: the font's glyphs rendered like the training cache (64 px, area-downsampled)."""
    from .data import render_glyph
    from .pipeline import RENDER_SIZE, to_model_size

    g = np.stack([np.rint(render_glyph(c, design, size=RENDER_SIZE) * 255).astype(np.uint8) for c in chars])
    return to_model_size(g, size).add(1).div(2)


def run(args) -> dict:
    from . import adapt
    from .data import common_characters, load_characters, split_characters
    from .evaluate import metrics
    from .pipeline import CalligraphyPipeline
    from .styles import STYLES

    load0 = os.getloadavg()
    torch.set_num_threads(args.threads) if args.threads else None
    pipe = CalligraphyPipeline.from_pretrained(args.model)
    S, O = pipe.size, pipe.output_size
    train_c, held_c = split_characters(common_characters(), 0.1, 0)
    _, held_all = split_characters(load_characters(), 0.1, 0)
    held = sorted(set(held_c) & set(held_all))
    report = {"command": "python -m tasks.calligraphy.adapt_eval " + " ".join(sys.argv[1:] if args.argv is None
                                                                              else args.argv),
              "model": args.model, "model_fingerprint": adapt.fingerprint(pipe.model), "model_size": S,
              "output_size": O, "threads": torch.get_num_threads(), "nice": os.nice(0),
              "load_average_start": [round(x, 2) for x in load0],
              "sampling": {"scheduler": pipe.sampling["scheduler"], "steps": pipe.sampling["steps"],
                           "guidance": pipe.sampling["guidance"], "seed": args.seed},
              "adapt_options": {"steps": args.steps, "time_limit": args.time_limit}, "runs": []}
    kw = dict(seed=args.seed)
    for design in args.designs:
        if design in pipe.styles:
            raise ValueError(f"{design} is a training design of this model; pick a held-out (few-shot) design")
        if not STYLES[design].available:
            raise ValueError(f"the font of {design} is not installed; run bash data/calligraphy/setup.sh")
        rng = np.random.default_rng(args.seed)
        ref_chars = pick_chars(design, train_c, max(args.k), rng)
        eval_chars = pick_chars(design, held, args.n_eval, rng)
        assert not set(ref_chars) & set(eval_chars)
        content_S, content_O = pipe.content_glyphs(eval_chars), pipe.content_glyphs(eval_chars, O)
        real = {z: real_glyphs(eval_chars, design, z) for z in {S, O}}
        with tempfile.TemporaryDirectory(prefix="adapt_eval_") as tmp:
            from PIL import Image

            from .data import render_glyph

            for k in sorted(args.k):
                refdir = Path(tmp) / f"refs{k}"
                refdir.mkdir()
                prng = np.random.default_rng(args.seed + k)
                for c in ref_chars[:k]:
                    Image.fromarray(page(render_glyph(c, design, size=96), prng)).save(refdir / f"{c}.png")
                name = f"{design}_k{k}"
                out = Path(tmp) / "styles" / name
                argv = ["--references", str(refdir), "--name", name, "--out", str(out), "--model", args.model,
                        "--steps", str(args.steps), "--time-limit", str(args.time_limit), "--seed", str(args.seed),
                        "--threads", str(args.threads), "--quiet"]
                t0 = time.time()
                rc = adapt.main(argv)
                wall = time.time() - t0
                if rc != 0:
                    raise RuntimeError(f"calligraphy-adapt failed ({rc}) for {name}")
                meta = json.loads((out / adapt.STYLE_JSON).read_text(encoding="utf-8"))
                pipe.load_style(out)
                files = sorted(refdir.iterdir())
                g_ad = torch.from_numpy(pipe.glyphs("", style=name, content=content_S, content_hr=content_O, size=O,
                                                    **kw))[:, None]
                g_rf = torch.from_numpy(pipe.glyphs("", references=files, content=content_S, content_hr=content_O,
                                                    size=O, **kw))[:, None]
                refs = pipe.load_references(files)
                real_m = list(real[S].mul(2).sub(1))
                loss_ad = adapt.reference_loss(pipe, pipe.adapted[name], real_m, eval_chars, seed=args.seed)
                loss_rf = adapt.reference_loss(pipe, None, real_m, eval_chars, seed=args.seed, refs=refs)
                q = {}
                for z in sorted({S, O}):
                    rs = (lambda x: x if x.shape[-1] == z else
                          torch.nn.functional.interpolate(x, size=(z, z), mode="area"))
                    m_ad, m_rf = metrics(rs(g_ad), real[z]), metrics(rs(g_rf), real[z])
                    m_co = metrics((content_S if z == S else content_O).add(1).div(2), real[z])
                    q[f"{z}px"] = {"adapted": m_ad, "references_only": m_rf, "content_glyph": m_co,
                                   "adapted_beats_references": m_ad["ssim"] > m_rf["ssim"] and m_ad["l1"] < m_rf["l1"],
                                   "adapted_beats_content": m_ad["ssim"] > m_co["ssim"] and m_ad["l1"] < m_co["l1"]}
                r = {"design": design, "category": STYLES[design].category, "k": k,
                     "reference_chars": "".join(ref_chars[:k]), "eval_chars": "".join(eval_chars),
                     "wall_seconds_cli": round(wall, 1), "wall_seconds_adapt": meta["wall_seconds"],
                     "train_seconds": meta["train_seconds"], "steps_run": meta["steps_run"], "best_step": meta["steps"],
                     "heldout_refs": meta["heldout_characters"], "loss_on_heldout_refs": meta["loss"],
                     "diffusion_loss_eval_chars": {"adapted": loss_ad, "references_only": loss_rf},
                     "quality": q, "load_average": [round(x, 2) for x in os.getloadavg()]}
                report["runs"].append(r)
                print(json.dumps({k_: r[k_] for k_ in ("design", "k", "wall_seconds_cli", "steps_run", "best_step",
                                                       "diffusion_loss_eval_chars")}), flush=True)
                print(json.dumps(q), flush=True)
                pipe.adapted.pop(name), pipe._denoisers.pop(name, None)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    rs_ = report["runs"]
    report["summary"] = {
        "max_wall_seconds_cli": max(r["wall_seconds_cli"] for r in rs_),
        "under_5_minutes": all(r["wall_seconds_cli"] <= 300 for r in rs_),
        **{f"{z}px_mean_ssim": {m: float(np.mean([r["quality"][f"{z}px"][m]["ssim"] for r in rs_]))
                                for m in ("adapted", "references_only", "content_glyph")} for z in sorted({S, O})},
        "runs_adapted_beats_references_64px": sum(r["quality"][f"{O}px"]["adapted_beats_references"] for r in rs_),
        "runs": len(rs_)}
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="calligraphy", help="base model (shipped name or folder)")
    p.add_argument("--designs", nargs="+", default=["kurenaido", "twkai"], help="held-out few-shot designs")
    p.add_argument("--k", nargs="+", type=int, default=[16, 32], help="reference glyph counts")
    p.add_argument("--n-eval", type=int, default=16, help="held-out characters scored per design")
    p.add_argument("--steps", type=int, default=300, help="calligraphy-adapt --steps")
    p.add_argument("--time-limit", type=float, default=240.0, help="calligraphy-adapt --time-limit (s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the CLI's --threads too)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/calligraphy_adapt.json")
    args = p.parse_args(argv)
    args.argv = argv
    report = run(args)
    from gen.io import atomic_write_json

    atomic_write_json(args.out, report, ensure_ascii=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
