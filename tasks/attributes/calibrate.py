"""Calibrate the guidance scale W and per-attribute guidance scales on the judge, on prompts and seeds disjoint from
the evaluation's.

    python -m tasks.attributes.calibrate --model checkpoints/attributes --out reports/attributes_calibration.json

Disjoint from the evaluation (tasks.attributes.evaluate), checked before any sampling:
* seeds: the calibration samples only with seeds in evaluate.CALIBRATION_SEEDS (default `--seed` 1000), whose noise
  generators are none of the evaluation's (evaluate.check_disjoint_seeds; the evaluation refuses those seeds);
* prompts: none of the prompts asked is one the evaluation asks at its full or --quick settings
  (evaluate.evaluation_prompt_keys: its single-attribute prompts, 2- and 3-attribute combinations, NOT pairs, region
  prompts and the named sets of its text/image/edit section). So the single prompts "a" / "a = off" that the
  evaluation scores are not used: attribute a is scored in pairs and triples instead.

For every attribute a: `--n-pairs` prompts "a & ~b" (a present?) and as many "~a & b" (a absent?), b another attribute,
and `--n-combos` 3-attribute prompts with a on (never a held-out combination), `--n-per` images each, judged by the
attribute classifier (tasks.attributes.classifier); a's score is the smaller of its pair accuracy (mean of present and
absent) and how often it is present in the triples. For each W of `--guidance-grid`: an attribute scoring below
`--target` is tried again at the next scale of `--grid`, until it reaches the target (the first scale that does is kept)
or the grid ends (the scale with the best score is kept, the smaller one on ties). W: the smallest of the grid at which
every attribute reaches the target with its scale; when none does, the W with the best (lowest attribute score, mean
score). Scales of 1 are not written. W goes into the model folder's `pipeline.json` `sampling.guidance` and the scales
into `task_config.attribute_scale` (read by `AttributesPipeline.from_pretrained`; for a run folder, `<run>/pipeline.json`),
and every accuracy measured into the `--out` JSON. The values belong to the weights they were measured on: calibrate
again after more training (the evaluation's `model_info` records the scales it used, its `settings` the W).
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
from tasks.attributes.evaluate import (CALIBRATION_SEEDS, EVAL_SEED, check_disjoint_seeds, evaluation_prompt_keys,
                                       evaluation_seeds, generate, judge_all_correct, prompt_key)
from tasks.attributes.faces import ATTRIBUTES, is_heldout
from tasks.attributes.pipeline import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, AttributesPipeline


def calibration_prompts(names: list[str], args) -> tuple[list, list[dict], dict[str, tuple[int, int, int]]]:
    """(prompts, expects, {attribute: (start, end of its pair prompts, end of its triples)}) for `names` at args.seed:
    per attribute `n_pairs` "a & ~b", `n_pairs` "~a & b" and `n_combos` 3-attribute prompts with a on, never a held-out
    combination and never a prompt of the evaluation (evaluate.evaluation_prompt_keys); raises ValueError if a prompt
    of the evaluation would be asked anyway."""
    avoid = evaluation_prompt_keys(getattr(args, "eval_seed", EVAL_SEED))
    prompts, expects, spans = [], [], {}
    for a in names:
        rng = random.Random(args.seed * 1000 + ATTRIBUTES.index(a))
        others = [b for b in ATTRIBUTES if b != a]
        on = [p for p in ([(a, True, None), (b, False, None)] for b in others) if prompt_key(p) not in avoid]
        off = [p for p in ([(a, False, None), (b, True, None)] for b in others) if prompt_key(p) not in avoid]
        pool = [c for c in itertools.combinations(ATTRIBUTES, 3) if a in c and not is_heldout(c)
                and prompt_key([(x, True, None) for x in c]) not in avoid]
        on, off = rng.sample(on, min(args.n_pairs, len(on))), rng.sample(off, min(args.n_pairs, len(off)))
        combos = rng.sample(pool, min(args.n_combos, len(pool)))
        i = len(prompts)
        prompts += on + off + [[(x, True, None) for x in c] for c in combos]
        expects += [{a: True}] * len(on) + [{a: False}] * len(off) + [{a: True}] * len(combos)
        spans[a] = (i, i + len(on) + len(off), len(prompts), len(on))
    shared = {prompt_key(p) for p in prompts} & avoid
    if shared:
        raise ValueError(f"calibration prompts {sorted(map(sorted, shared))} are the evaluation's")
    return prompts, expects, spans


def accuracy(pipe: AttributesPipeline, judge, names: list[str], args) -> dict[str, dict[str, float]]:
    """Per attribute a, with pipe's current scales and args.guidance: "paired", the mean judge accuracy of a in
    "a & ~b" (present) and "~a & b" (absent); "in_combination", how often a is present in 3-attribute prompts that
    contain it; "score", the smaller of the two (an attribute can be right next to one other and get lost next to two,
    which is where the smile failed). Prompts: calibration_prompts; seed: args.seed (evaluate.check_disjoint_seeds)."""
    prompts, expects, spans = calibration_prompts(names, args)
    per_run = max(1, args.batch // args.n_per) * args.n_per  # images per sampling run (the largest noise index)
    check_disjoint_seeds(args.seed, max(per_run, len(prompts) * args.n_per), getattr(args, "eval_seed", EVAL_SEED))
    s = judge_all_correct(judge, generate(pipe, prompts, args.n_per, args), expects, args.n_per)
    out = {}
    for a, (i, j, k, n_on) in spans.items():
        present, absent = sum(s[i:i + n_on]) / max(1, n_on), sum(s[i + n_on:j]) / max(1, j - i - n_on)
        paired, combo = (present + absent) / 2, sum(s[j:k]) / max(1, k - j)
        out[a] = {"paired": paired, "present_in_pair": present, "absent_in_pair": absent, "in_combination": combo,
                  "score": min(paired, combo)}
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
        print(f"W {args.guidance:g} scale {scale:g}: " + ", ".join(f"{a} {tried[a][str(scale)]['paired']:.3f}/"
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


def choose_guidance(pipe: AttributesPipeline, judge, args) -> tuple[float, dict[str, float], dict]:
    """Calibrate the scales at every W of args.guidance_grid → (W, its scales, {W: {"attribute_scale", "accuracy_by_scale",
    "min_score", "mean_score", "all_reach_target"}}). W: the smallest at which every attribute reaches the target,
    else the best (min_score, mean_score)."""
    grid = [float(w) for w in args.guidance_grid]
    if not grid or sorted(grid) != grid or grid[0] <= 0:
        raise ValueError(f"--guidance-grid must be increasing and > 0, got {args.guidance_grid}")
    by_w: dict[str, dict] = {}
    for w in grid:
        scales, tried = calibrate(pipe, judge, argparse.Namespace(**{**vars(args), "guidance": w}))
        final = {a: accs[str(scales.get(a, 1.0))]["score"] for a, accs in tried.items()}
        by_w[str(w)] = {"attribute_scale": scales, "accuracy_by_scale": tried, "score_at_chosen_scale": final,
                        "min_score": min(final.values()), "mean_score": sum(final.values()) / len(final),
                        "all_reach_target": all(v >= args.target for v in final.values())}
        print(f"W {w:g}: scales {scales}, min {by_w[str(w)]['min_score']:.3f}, mean {by_w[str(w)]['mean_score']:.3f}",
              flush=True)
    reach = [w for w in grid if by_w[str(w)]["all_reach_target"]]
    best = min(reach) if reach else max(grid, key=lambda w: (by_w[str(w)]["min_score"], by_w[str(w)]["mean_score"], -w))
    pipe.attribute_scale = by_w[str(best)]["attribute_scale"]
    return best, by_w[str(best)]["attribute_scale"], by_w


def write_scales(path: str, scales: dict[str, float], guidance: float | None = None) -> str:
    """Merge `task_config.attribute_scale` (and, when given, `sampling.guidance`) into `path`/pipeline.json (a run
    folder's overrides, or an exported folder's own settings; created if missing), atomically."""
    f = os.path.join(path, PIPELINE_FILE)
    cfg = read_json(Path(f), "pipeline file") if os.path.exists(f) else {}
    cfg.setdefault("task_config", {})["attribute_scale"] = dict(sorted(scales.items()))
    if guidance is not None:
        cfg.setdefault("sampling", {})["guidance"] = float(guidance)
    atomic_write_json(f, cfg, indent=1)
    return f


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="checkpoints/attributes",
                   help="run folder or exported model folder (W and scales written to its pipeline.json)")
    p.add_argument("--classifier", default="runs/attr_classifier", help="judge folder (python -m tasks.attributes.classifier)")
    p.add_argument("--out", default="reports/attributes_calibration.json", help="record of every accuracy measured")
    p.add_argument("--grid", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0], help="scales to try, from 1 up")
    p.add_argument("--guidance-grid", type=float, nargs="+", default=[DEFAULT_GUIDANCE],
                   help="guidance scales W to try (increasing); the smallest at which every attribute reaches the target")
    p.add_argument("--target", type=float, default=0.97, help="accuracy an attribute must reach")
    p.add_argument("--n-per", type=int, default=16, help="images per prompt")
    p.add_argument("--n-pairs", type=int, default=2, help="'a & ~b' prompts per attribute (and as many '~a & b')")
    p.add_argument("--n-combos", type=int, default=2, help="3-attribute prompts per attribute")
    p.add_argument("--seed", type=int, default=CALIBRATION_SEEDS.start,
                   help=f"sampling seed, in {CALIBRATION_SEEDS.start}..{CALIBRATION_SEEDS.stop - 1} (the evaluation "
                        "refuses those)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="sampler")
    p.add_argument("--batch", type=int, default=128, help="images per sampling run")
    p.add_argument("--dry-run", action="store_true", help="measure and report, do not write W and the scales")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_disjoint_seeds(args.seed, args.batch)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if not os.path.exists(os.path.join(args.classifier, "classifier.safetensors")):
        raise SystemExit(f"no judge at {args.classifier}; train one with python -m tasks.attributes.classifier "
                         f"--out {args.classifier} (or run python -m tasks.attributes.evaluate once)")
    t0 = time.time()
    judge, card = load_classifier(args.classifier)
    pipe = AttributesPipeline.from_pretrained(args.model)
    before = {"guidance": pipe.sampling.get("guidance"), "attribute_scale": dict(pipe.attribute_scale)}
    w, scales, by_w = choose_guidance(pipe, judge, args)
    record = {"command": "python -m tasks.attributes.calibrate " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "guidance": w, "attribute_scale": scales, "before": before,
              "accuracy_by_scale": by_w[str(w)]["accuracy_by_scale"], "by_guidance": by_w,
              "settings": {k: getattr(args, k) for k in ("target", "grid", "guidance_grid", "n_per", "n_pairs",
                                                         "n_combos", "seed", "steps", "scheduler")},
              "disjoint_from_evaluation": {
                  "calibration_seeds": [CALIBRATION_SEEDS.start, CALIBRATION_SEEDS.stop - 1],
                  "evaluation_seeds": list(evaluation_seeds(EVAL_SEED)),
                  "evaluation_prompts_avoided": len(evaluation_prompt_keys(EVAL_SEED)),
                  "checked_by": "evaluate.check_disjoint_seeds, calibrate.calibration_prompts (raise before sampling)"},
              "classifier_card": card, "seconds": time.time() - t0}
    if not args.dry_run:
        record["written_to"] = write_scales(args.model, scales, w)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_json(args.out, record, suffix=".json.tmp", newline=False)
    print(json.dumps({"guidance": w, "attribute_scale": scales, "written_to": record.get("written_to")}))
    return record


if __name__ == "__main__":
    main()
