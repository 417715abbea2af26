"""Calibrate per-attribute guidance scales on the judge, on seeds the evaluation does not use.

    python -m tasks.attributes.calibrate --model runs/attributes --out reports/attributes_calibration.json

Some attributes need more guidance than others (at W = 6 the small smile is the weak one, mostly next to other
attributes). For every attribute a, the single-attribute prompts "a" and "a = off" and `--n-combos` random
3-attribute prompts containing a (never a held-out combination, never one of the evaluation's own 3-attribute
prompts) are sampled (`--n-per` images each, seed `--seed`,
default 1: the evaluation samples with seed 0) and judged by the attribute classifier (tasks.attributes.classifier);
a's score is the smaller of its single-prompt accuracy and how often it is present in the combinations. An attribute
scoring below `--target` is tried again at the next scale of `--grid`, until it reaches the target (the first scale
that does is kept) or the grid ends (the scale with the best score is kept, the smaller one on ties). Scales of 1 are
not written. The result goes into the model folder's `pipeline.json` (``task_config: {attribute_scale: {...}}``, read by
`AttributesPipeline.from_pretrained`; for a run folder, `<run>/pipeline.json`), and every accuracy measured into the
`--out` JSON. 15 minutes on one core (the other one busy) with the defaults. The scales belong to the weights they
were measured on: a run folder's pipeline.json also applies to its later checkpoints, so calibrate again after more
training (the `--out` record names the model and the evaluation's `model_info` records the scales it used).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time

from pathlib import Path

import torch

from gen.io import atomic_write_json
from gen.pipeline import PIPELINE_FILE, read_json
from tasks.attributes.classifier import load_classifier
from tasks.attributes.evaluate import evaluation_triples, generate, judge_all_correct
from tasks.attributes.faces import ATTRIBUTES, is_heldout
from tasks.attributes.pipeline import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, AttributesPipeline


def accuracy(pipe: AttributesPipeline, judge, names: list[str], args) -> dict[str, dict[str, float]]:
    """Per attribute a, with pipe's current scales: "single", the mean judge accuracy of "a" (present) and "a = off"
    (absent), n_per images each; "in_combination", how often a is present in `n_combos` random 3-attribute prompts
    that contain it (never a held-out combination), n_per images each; "score", the smaller of the two (an attribute
    can be right alone and get lost next to others, which is where the smile failed)."""
    prompts, expects, spans = [], [], {}
    # never the evaluation's own 3-attribute prompts (evaluate.evaluation_triples at its seed, 0), so the scales are
    # chosen on prompts and seeds disjoint from the evaluation's
    avoid = evaluation_triples(getattr(args, "eval_seed", 0), getattr(args, "eval_n_combos", 8))
    if args.seed == getattr(args, "eval_seed", 0):
        raise ValueError(f"--seed {args.seed} is the evaluation's sampling seed; calibrate on another one")
    for a in names:
        rng = random.Random(args.seed * 1000 + ATTRIBUTES.index(a))
        pool = [c for c in itertools.combinations(ATTRIBUTES, 3) if a in c and not is_heldout(c)
                and tuple(sorted(c)) not in avoid]
        combos = rng.sample(pool, min(args.n_combos, len(pool)))
        spans[a] = (len(prompts), len(prompts) + 2 + len(combos))
        prompts += [[(a, True, None)], [(a, False, None)]] + [[(x, True, None) for x in c] for c in combos]
        expects += [{a: True}, {a: False}] + [{a: True}] * len(combos)
    s = judge_all_correct(judge, generate(pipe, prompts, args.n_per, args), expects, args.n_per)
    out = {}
    for a, (i, j) in spans.items():
        single, combo = (s[i] + s[i + 1]) / 2, sum(s[i + 2:j]) / max(1, j - i - 2)
        out[a] = {"single": single, "in_combination": combo, "score": min(single, combo)}
    return out


def calibrate(pipe: AttributesPipeline, judge, args) -> tuple[dict[str, float], dict]:
    """→ (chosen scales ≠ 1, {attribute: {scale: accuracy(...)[attribute]}} for every scale tried)."""
    if sorted(args.grid) != list(args.grid) or args.grid[0] != 1.0:
        raise ValueError(f"--grid must be increasing and start at 1, got {args.grid}")
    pipe.attribute_scale = {}
    tried: dict[str, dict[str, dict[str, float]]] = {a: {} for a in pipe.attributes}
    todo = list(pipe.attributes)
    for scale in args.grid:
        pipe.attribute_scale = {a: scale for a in todo} if scale != 1.0 else {}
        for a, acc in accuracy(pipe, judge, todo, args).items():
            tried[a][str(scale)] = acc
        print(f"scale {scale:g}: " + ", ".join(f"{a} {tried[a][str(scale)]['single']:.3f}/"
                                                f"{tried[a][str(scale)]['in_combination']:.3f}" for a in todo), flush=True)
        todo = [a for a in todo if tried[a][str(scale)]["score"] < args.target]
        if not todo:
            break
    chosen = {}
    for a, accs in tried.items():
        reached = [float(s) for s, v in accs.items() if v["score"] >= args.target]
        best = min(reached) if reached else max(accs, key=lambda s: (accs[s]["score"], -float(s)))
        if float(best) != 1.0:
            chosen[a] = float(best)
    pipe.attribute_scale = chosen  # the pipeline is left calibrated
    return chosen, tried


def write_scales(path: str, scales: dict[str, float]) -> str:
    """Merge `task_config.attribute_scale` into `path`/pipeline.json (a run folder's overrides, or an exported
    folder's own settings; created if missing), atomically."""
    f = os.path.join(path, PIPELINE_FILE)
    cfg = read_json(Path(f), "pipeline file") if os.path.exists(f) else {}
    cfg.setdefault("task_config", {})["attribute_scale"] = dict(scales)
    atomic_write_json(f, cfg, indent=1)
    return f


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="runs/attributes", help="run folder or exported model folder (scales written here)")
    p.add_argument("--classifier", default="runs/attr_classifier", help="judge folder (python -m tasks.attributes.classifier)")
    p.add_argument("--out", default="reports/attributes_calibration.json", help="record of every accuracy measured")
    p.add_argument("--grid", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0], help="scales to try, from 1 up")
    p.add_argument("--target", type=float, default=0.97, help="accuracy an attribute must reach")
    p.add_argument("--n-per", type=int, default=32, help="images per prompt")
    p.add_argument("--n-combos", type=int, default=2, help="3-attribute prompts per attribute")
    p.add_argument("--seed", type=int, default=1, help="sampling seed (the evaluation uses 0: keep them apart)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="sampler")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help="guidance scale W")
    p.add_argument("--batch", type=int, default=128, help="images per sampling run")
    p.add_argument("--dry-run", action="store_true", help="measure and report, do not write the scales")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.exists(os.path.join(args.classifier, "classifier.safetensors")):
        raise SystemExit(f"no judge at {args.classifier}; train one with python -m tasks.attributes.classifier "
                         f"--out {args.classifier} (or run python -m tasks.attributes.evaluate once)")
    t0 = time.time()
    judge, card = load_classifier(args.classifier)
    pipe = AttributesPipeline.from_pretrained(args.model)
    scales, tried = calibrate(pipe, judge, args)
    record = {"command": "python -m tasks.attributes.calibrate " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "attribute_scale": scales, "accuracy_by_scale": tried,
              "settings": {k: getattr(args, k) for k in ("target", "grid", "n_per", "n_combos", "seed", "steps",
                                                         "scheduler", "guidance")},
              "classifier_card": card, "seconds": time.time() - t0}
    if not args.dry_run:
        record["written_to"] = write_scales(args.model, scales)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_json(args.out, record, suffix=".json.tmp", newline=False)
    print(json.dumps({"attribute_scale": scales, "written_to": record.get("written_to")}))
    return record


if __name__ == "__main__":
    main()
