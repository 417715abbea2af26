"""Evaluate the attribute model with a separately trained judge (tasks.attributes.classifier).

    python -m tasks.attributes.evaluate --out reports/attributes_eval.json            # full (≈ 25 min on one core + ~7 per baseline)
    python -m tasks.attributes.evaluate --quick --out /tmp/attr_quick.json            # smoke run, < 2 min
    python -m tasks.attributes.evaluate --baselines-only --out runs/attr_baselines.json  # baselines now, and later:
    python -m tasks.attributes.evaluate --reuse-baselines runs/attr_baselines.json --out reports/attributes_eval.json

Prompts, all with the pipeline's composite algebra (each term specifies one attribute, the rest unspecified):

    per_attribute_accuracy[a]   "a" and "a=off" (single tri-state terms): judge agrees with the requested value
    all_correct.seen.k          k random attributes all on, whose set is not held out (k = 1, 2, 3)
    all_correct.heldout.3       the 8 held-out triples (faces.HELDOUT_COMBOS) all on
    all_correct.heldout.2       pairs inside held-out combinations (every pair occurs in train; reported for symmetry)
    not_accuracy                "b & ~a": a absent, with ~a as the tri-state off-term (negation="off") and as a negative
                                weight on the on-term (negation="neg"); the default of the pipeline is the better one
    region_accuracy             "a@R_a" → a present (R_a = its region), and "~a@R_a & a@(not R_a)" → a absent: the a-term
                                placed outside its region does not bring a back

Sampling uses the pipeline's defaults (its pipeline.json `sampling`: ancestral Euler, 20 steps, W) and the model's
calibrated per-attribute guidance scales. W and the scales are chosen by tasks.attributes.calibrate on prompts and
seeds disjoint from this evaluation's: the evaluation samples with seed 0 (and its text/image/edit section chooses the
edit strength on seed 1), the calibration only with seeds in CALIBRATION_SEEDS, which this evaluation refuses, and on
prompts none of which is in `evaluation_prompt_keys()` (every prompt this evaluation asks, at its full and --quick
settings; checked in calibrate.py and by tests/tasks/attributes/test_attr_calibrate.py). --ablate scores the model
under test again without those scales and with the deterministic dpm++ sampler.

Baselines in the same run: joint conditioning (one condition with all prompt attributes) vs composed single-attribute
terms on the main model; a model trained jointly without per-attribute dropout (--joint-model) and a model trained from
scratch (--scratch-model), when those runs exist (commands in tasks/attributes/train.py).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import shlex
import sys
import time

import torch

from gen.guidance import Prompt, Term, keep_key
from gen.io import atomic_write_json
from tasks.attributes.classifier import classify, load_classifier, train_classifier
from tasks.attributes.faces import ATTRIBUTE_REGION, ATTRIBUTES, CACHE_VERSION, HELDOUT_COMBOS, is_heldout
from tasks.attributes.model import GROUP
from tasks.attributes.pipeline import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, AttributesPipeline, load_mask

TARGETS = {"per_attribute": 0.97, "all_correct.seen.3": 0.90, "all_correct.heldout.3": 0.80, "not": 0.95, "region": 0.85}

# Seeds. The evaluation samples with --seed (default EVAL_SEED); its text/image/edit section also chooses the edit
# strength on --seed + 1. The calibration (tasks.attributes.calibrate) samples only with seeds in CALIBRATION_SEEDS,
# which the evaluation refuses: the per-image noise generators (gen.pipeline.per_sample_generators, seed · 1000003 + i)
# of the two never meet (noise_seeds, check_disjoint_seeds).
EVAL_SEED = 0
CALIBRATION_SEEDS = range(1000, 2000)
QUICK_N_COMBOS, FULL_N_COMBOS = 4, 8  # --n-combos of --quick and of the full evaluation
SEED_STRIDE = 1_000_003  # gen.pipeline.per_sample_generators

# A prompt here: a list of (attribute, on, region); region None (whole image), a region name of faces.REGIONS, ("not",
# name) for its complement, or a mask tensor. `expect`: attribute → value the judge must report.


def _mask(pipe: AttributesPipeline, region):
    if isinstance(region, str):
        return load_mask(region, pipe.size)
    if isinstance(region, tuple) and len(region) == 2 and region[0] == "not":
        return 1.0 - load_mask(region[1], pipe.size)
    return region


def _terms(pipe: AttributesPipeline, prompt) -> Prompt:
    out = []
    for name, on, region in prompt:
        t = pipe.attribute(name) if on else ~pipe.attribute(name)
        out.append(t if region is None else t.within(_mask(pipe, region)))
    return Prompt(tuple(out))


def prompt_key(prompt) -> frozenset:
    """A prompt as a set of (attribute, on, region) — order-free, so "a & ~b" and "~b & a" are one prompt."""
    return frozenset((a, bool(on), r if r is None or isinstance(r, (str, tuple)) else "mask") for a, on, r in prompt)


def noise_seeds(seed: int, num: int) -> range:
    """The generator seeds of `num` images sampled with `seed` (gen.pipeline.per_sample_generators)."""
    if not 0 <= num <= SEED_STRIDE:
        raise ValueError(f"at most {SEED_STRIDE} images per seed keep the noise streams of two seeds apart, got {num}")
    return range(int(seed) * SEED_STRIDE, int(seed) * SEED_STRIDE + num)


def evaluation_seeds(seed: int = EVAL_SEED) -> tuple[int, ...]:
    """Every sampling seed an evaluation at --seed uses (the main sections and the text/image/edit section's edit
    strength selection)."""
    return (seed, seed + 1)


def check_disjoint_seeds(calibration_seed: int, num: int, eval_seed: int = EVAL_SEED, eval_num: int = SEED_STRIDE) -> None:
    """Raise ValueError unless `calibration_seed` is a calibration seed whose first `num` noise generators are none
    of the evaluation's (any number of images up to eval_num at each of evaluation_seeds(eval_seed))."""
    if calibration_seed not in CALIBRATION_SEEDS:
        raise ValueError(f"calibration seed {calibration_seed} is not in the calibration range "
                         f"{CALIBRATION_SEEDS.start}..{CALIBRATION_SEEDS.stop - 1} (the evaluation's seeds are "
                         f"{evaluation_seeds(eval_seed)})")
    mine = noise_seeds(calibration_seed, num)
    for s in evaluation_seeds(eval_seed):
        theirs = noise_seeds(s, eval_num)
        if max(mine.start, theirs.start) < min(mine.stop, theirs.stop):
            raise ValueError(f"calibration seed {calibration_seed} shares noise generators with the evaluation's "
                             f"seed {s}")


def evaluation_prompts(seed: int = EVAL_SEED, n_combos: int = FULL_N_COMBOS, full: bool = True) -> dict[str, list]:
    """The prompts evaluate_model asks at this seed and --n-combos, by section, in the order it asks them (the random
    draws are those of evaluate_model; full=False: the per-attribute and 3-attribute sets of the baselines)."""
    rng = random.Random(seed)
    out: dict[str, list] = {"per_attribute": [[(a, on, None)] for a in ATTRIBUTES for on in (True, False)]}
    sets = [("seen", 3), ("heldout", 3)] + ([("seen", 2), ("heldout", 2)] if full else [])
    for split, k in sets:
        out[f"all_correct.{split}.{k}"] = [[(a, True, None) for a in c]
                                           for c in _combos(k, split == "heldout", n_combos, rng)]
    if not full:
        return out
    pairs = rng.sample([p for p in itertools.permutations(ATTRIBUTES, 2)], n_combos)
    out["not"] = [[(b, True, None), (a, False, None)] for b, a in pairs]
    out["region.inside"] = [[(a, True, ATTRIBUTE_REGION[a])] for a in ATTRIBUTES]
    out["region.outside"] = [[(a, False, ATTRIBUTE_REGION[a]), (a, True, ("not", ATTRIBUTE_REGION[a]))]
                             for a in ATTRIBUTES]
    return out


def evaluation_prompt_keys(seed: int = EVAL_SEED) -> set[frozenset]:
    """prompt_key of every attribute-name prompt the evaluation asks at `seed`, at its full and --quick settings: the
    main sections (evaluation_prompts) and the named prompts of the text/image/edit section
    (evaluate_prompts.attribute_sets). The calibration asks none of them."""
    from tasks.attributes.evaluate_prompts import DEFAULT_N_SETS, QUICK_N_SETS, attribute_sets

    keys: set[frozenset] = set()
    for n in (QUICK_N_COMBOS, FULL_N_COMBOS):
        for prompts in evaluation_prompts(seed, n, full=True).values():
            keys |= {prompt_key(p) for p in prompts}
    for n in (QUICK_N_SETS, DEFAULT_N_SETS, 32):  # the first n sets of a longer list are the shorter list (up to 32)
        keys |= {prompt_key([(a, v, None) for a, v in spec.items()]) for spec in attribute_sets(n, seed)}
    return keys


def generate(pipe: AttributesPipeline, prompts: list, n_per: int, args, mode: str = "composed") -> torch.Tensor:
    """Sample n_per images for every prompt, batching prompts with the same number of resolved terms into one run.
    Returns (len(prompts) · n_per, 3, H, W) in prompt order."""
    built = [pipe.build(_terms(pipe, p), None, args.guidance, mode) for p in prompts]
    out: list = [None] * len(prompts)
    ones = torch.ones(1, 1, pipe.size, pipe.size)
    groups: dict[tuple, list[int]] = {}  # same number of terms and the same weights (per-attribute scales differ)
    for i, b in enumerate(built):
        groups.setdefault(tuple(t.weight for t in b.terms), []).append(i)
    for weights, idx in sorted(groups.items()):
        for chunk in [idx[j:j + max(1, args.batch // n_per)] for j in range(0, len(idx), max(1, args.batch // n_per))]:
            terms = []
            for k, weight in enumerate(weights):  # a group's prompts share every term weight by construction
                ts = [built[i].terms[k] for i in chunk]
                cond = {key: torch.cat([t.cond[key].expand(n_per, -1) for t in ts]) for key in (GROUP, keep_key(GROUP))}
                masked = any(t.mask is not None for t in ts)
                mask = None if not masked else torch.cat(
                    [(ones if t.mask is None else t.mask.reshape(1, 1, pipe.size, pipe.size)).expand(n_per, -1, -1, -1)
                     for t in ts])
                terms.append(Term(cond, weight, mask))
            x = pipe.sample(Prompt(tuple(terms)), len(chunk) * n_per, args.seed, args.steps, args.scheduler)
            for j, i in enumerate(chunk):
                out[i] = x[j * n_per:(j + 1) * n_per]
    return torch.cat(out)


def judge_all_correct(judge, images: torch.Tensor, expects: list[dict], n_per: int) -> list[float]:
    """Per prompt: fraction of its images where every expected attribute has the expected value."""
    present = classify(judge, images)  # (N, K)
    scores = []
    for i, exp in enumerate(expects):
        p = present[i * n_per:(i + 1) * n_per]
        ok = torch.ones(n_per, dtype=torch.bool)
        for name, value in exp.items():
            ok &= p[:, ATTRIBUTES.index(name)] == value
        scores.append(ok.float().mean().item())
    return scores


def _mean(v):
    return float(sum(v) / len(v)) if v else float("nan")


def _combos(k: int, heldout: bool, limit: int, rng: random.Random) -> list[tuple[str, ...]]:
    if heldout and k == 3:
        return [tuple(sorted(c)) for c in HELDOUT_COMBOS if len(c) == 3][:limit]
    if heldout and k == 2:
        pairs = sorted({tuple(sorted(p)) for c in HELDOUT_COMBOS for p in itertools.combinations(c, 2)})
        return rng.sample(pairs, min(limit, len(pairs)))
    pool = [c for c in itertools.combinations(ATTRIBUTES, k) if not is_heldout(c)]
    return rng.sample(pool, min(limit, len(pool)))


def evaluation_triples(seed: int = 0, n_combos: int = 8) -> set[tuple[str, ...]]:
    """The 3-attribute prompts evaluate_model asks at this seed (seen and held out): calibration keeps away from
    them."""
    rng = random.Random(seed)
    return set(_combos(3, False, n_combos, rng)) | set(_combos(3, True, n_combos, rng))


def evaluate_model(pipe: AttributesPipeline, judge, args, full: bool = True, joint: bool = True) -> dict:
    """The metric set for one model. full=False: per-attribute and 3-attribute all-correct only (for baselines);
    joint=False: without the joint-conditioning variant of the all-correct prompts. The prompts are
    evaluation_prompts(args.seed, args.n_combos, full)."""
    asked = evaluation_prompts(args.seed, args.n_combos, full)
    n = args.n_per
    res: dict = {}
    # 1. per-attribute: single tri-state terms, on and off
    singles = asked["per_attribute"]
    imgs = generate(pipe, singles, n, args)
    scores = judge_all_correct(judge, imgs, [{a: on} for [(a, on, _)] in singles], n)
    res["per_attribute_accuracy"] = {a: _mean(scores[2 * i:2 * i + 2]) for i, a in enumerate(ATTRIBUTES)}
    res["per_attribute_accuracy_mean"] = _mean(list(res["per_attribute_accuracy"].values()))
    # 2. all-correct on seen / held-out combinations, composed (default) and joint conditioning
    res["all_correct"] = {"seen": {"1": _mean(scores[0::2])}, "heldout": {}}
    res["joint_conditioning"] = {"seen": {}, "heldout": {}}
    sets = [("seen", 3), ("heldout", 3)] + ([("seen", 2), ("heldout", 2)] if full else [])
    for split, k in sets:
        prompts = asked[f"all_correct.{split}.{k}"]
        expects = [{a: True for a, _, _ in p} for p in prompts]
        for mode, key in (("composed", "all_correct"), ("joint", "joint_conditioning"))[:2 if joint else 1]:
            s = judge_all_correct(judge, generate(pipe, prompts, n, args, mode), expects, n)
            res[key][split][str(k)] = _mean(s)
    if not full:
        return res
    # 3. NOT: "b & ~a", both negation implementations
    prompts = asked["not"]
    res["not_accuracy_by_negation"] = {}
    default = pipe.negation
    for neg in ("off", "neg"):
        pipe.negation = neg
        s = judge_all_correct(judge, generate(pipe, prompts, n, args), [{p[1][0]: False} for p in prompts], n)
        res["not_accuracy_by_negation"][neg] = _mean(s)
    pipe.negation = default
    res["not_accuracy"] = res["not_accuracy_by_negation"][default]
    # 4. regions: inside its own region → present; off inside, on outside → absent
    s_in = judge_all_correct(judge, generate(pipe, asked["region.inside"], n, args), [{a: True} for a in ATTRIBUTES], n)
    s_out = judge_all_correct(judge, generate(pipe, asked["region.outside"], n, args), [{a: False} for a in ATTRIBUTES],
                              n)
    res["region_accuracy"] = _mean(s_in + s_out)
    res["region_detail"] = {"present_inside": _mean(s_in), "absent_when_only_outside": _mean(s_out)}
    return res


def _summary(r: dict) -> dict:
    return {"per_attribute_accuracy": r["per_attribute_accuracy"],
            "per_attribute_min": min(r["per_attribute_accuracy"].values()), "all_correct": r["all_correct"]}


def _model_info(path: str) -> dict:
    """init_from / configured steps / dropout from the run config, and the step of the checkpoint actually loaded."""
    import yaml

    from gen.train import latest_checkpoint

    ck = latest_checkpoint(path) if os.path.isdir(os.path.join(path, "checkpoints")) else path
    info = {}
    for d in (path, ck):
        p = os.path.join(d or "", "config.yaml")
        if d and os.path.exists(p):
            with open(p) as f:
                cfg = yaml.safe_load(f)
            info = {"init_from": cfg["model"].get("init_from", ""), "configured_steps": cfg["train"]["steps"],
                    "attribute_dropout": cfg["data"].get("attribute_dropout")}
    state = os.path.join(ck or "", "trainer_state.json")
    if ck and os.path.exists(state):
        with open(state) as f:
            info["checkpoint_step"] = json.load(f)["step"]
    from gen.pipeline import resolve_pretrained

    r = resolve_pretrained(path)
    info["attribute_scale"] = ((r.meta or r.overrides).get("task_config") or {}).get("attribute_scale", {})
    return info


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few prompts/images/steps, no baseline models (< 2 min)")
    p.add_argument("--out", default="reports/attributes_eval.json", help="report JSON (written atomically)")
    p.add_argument("--model", default="runs/attributes", help="the model under test (run/checkpoint/export folder)")
    p.add_argument("--joint-model", default="runs/attributes_joint", help="baseline: no per-attribute dropout")
    p.add_argument("--scratch-model", default="runs/attributes_scratch", help="baseline: trained from scratch")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                   help="another model for baselines.NAME (repeatable), e.g. the fine-tuned run at the scratch run's "
                        "step count for an equal-steps comparison")
    p.add_argument("--reuse-baselines", default=None, metavar="REPORT",
                   help="take a baseline's numbers from an earlier report when its model, checkpoint step, judge and "
                        "sampling settings are the same (saves most of the run's time)")
    p.add_argument("--baselines-only", action="store_true",
                   help="evaluate only the baseline models (a partial report for a later --reuse-baselines)")
    p.add_argument("--classifier", default="runs/attr_classifier", help="judge folder (trained here if missing)")
    p.add_argument("--steps", type=int, default=None, help=f"sampler steps (default {DEFAULT_STEPS}, quick 8)")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="sampler")
    p.add_argument("--guidance", type=float, default=None,
                   help="guidance scale W (default: the model's pipeline.json sampling.guidance, as calibrated)")
    p.add_argument("--guidance-sweep", type=float, nargs="*", default=[], metavar="W",
                   help="also score the model under test at these W (per-attribute and 3-attribute all-correct)")
    p.add_argument("--ablate", action="store_true",
                   help="also score the model under test without its per-attribute guidance scales and with the "
                        "deterministic dpm++ sampler (per-attribute and 3-attribute all-correct)")
    p.add_argument("--n-per", type=int, default=None, help="images per prompt (default 16, quick 2)")
    p.add_argument("--n-combos", type=int, default=None, help="prompts per combination set (default 8, quick 4)")
    p.add_argument("--batch", type=int, default=128, help="images per sampling run")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--note", default=None, help="a remark recorded in the report (e.g. why settings were reduced)")
    g = p.add_argument_group("text, image and edit prompts (tasks.attributes.evaluate_prompts)")
    g.add_argument("--prompts", action="store_true",
                   help="evaluate only plain-words prompts, image prompts and edits, and put them into --out as its "
                        "'text_image_edit' section (the other sections of an existing --out are kept)")
    g.add_argument("--n-sets", type=int, default=None, help="attribute sets asked in words and by name (default 12, "
                                                             "quick 3)")
    g.add_argument("--n-images", type=int, default=None, help="source faces per image / edit measurement (default 8, "
                                                               "quick 2)")
    g.add_argument("--strengths", type=float, nargs="+", default=[0.6, 0.8, 1.0], help="edit strengths to choose from "
                                                                                     "(on the selection seed)")
    g.add_argument("--clip-report", default="reports/attributes_clip.json", help="the CLIP's report (copied)")
    return p


def parse_args(argv=None) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """Step 1: the arguments with the --quick defaults filled in, and the --compare (NAME, PATH) pairs."""
    args = _parser().parse_args(argv)
    from tasks.attributes.evaluate_prompts import DEFAULT_N_SETS, QUICK_N_SETS

    args.steps = args.steps or (8 if args.quick else DEFAULT_STEPS)
    args.n_per = args.n_per or (2 if args.quick else 16)
    args.n_combos = args.n_combos or (QUICK_N_COMBOS if args.quick else FULL_N_COMBOS)
    args.n_sets = args.n_sets or (QUICK_N_SETS if args.quick else DEFAULT_N_SETS)
    if set(evaluation_seeds(args.seed)) & set(CALIBRATION_SEEDS):
        raise SystemExit(f"--seed {args.seed}: seeds {CALIBRATION_SEEDS.start}..{CALIBRATION_SEEDS.stop - 1} are the "
                         "calibration's (tasks.attributes.calibrate); evaluate on another one")
    args.n_images = args.n_images or (2 if args.quick else 8)
    extra = []
    for c in args.compare:
        if "=" not in c:
            raise SystemExit(f"--compare expects NAME=PATH, got {c!r}")
        extra.append(tuple(c.split("=", 1)))
    return args, extra


def get_judge(args) -> tuple:
    """Step 2: (judge, card) from --classifier, trained there first when missing or trained on another rendering."""
    why = None
    if not os.path.exists(os.path.join(args.classifier, "classifier.safetensors")):
        why = f"no judge at {args.classifier}"
    else:
        judge, card = load_classifier(args.classifier)
        if card.get("render_version", 1) != CACHE_VERSION:  # cards without the key: rendering 1
            why = (f"the judge at {args.classifier} was trained on another face rendering than the current one "
                   f"(faces.CACHE_VERSION = {CACHE_VERSION})")
    if why:
        print(f"{why}; training one", file=sys.stderr)
        train_classifier(args.classifier, steps=300 if args.quick else 600, n_train=3000 if args.quick else 8000)
        judge, card = load_classifier(args.classifier)
    return judge, card


def evaluate_main_model(report: dict, pipe: AttributesPipeline, judge, args) -> dict:
    """Step 3: the model under test (full metric set, guidance sweep, ablation) into `report`; returns its results."""
    main_res = evaluate_model(pipe, judge, args, full=True)
    report.update(main_res)
    better = max(("off", "neg"), key=lambda k: main_res["not_accuracy_by_negation"][k])
    report["baselines"] = {
        "joint_vs_composed": {"composed": main_res["all_correct"], "joint": main_res["joint_conditioning"]},
        "negation": {**main_res["not_accuracy_by_negation"], "better": better, "pipeline_default": pipe.negation},
    }
    if args.guidance_sweep:
        report["guidance_sweep"] = {}
    for w in args.guidance_sweep:
        r = evaluate_model(pipe, judge, argparse.Namespace(**{**vars(args), "guidance": w}), full=False, joint=False)
        report["guidance_sweep"][str(w)] = _summary(r)
    if args.ablate:
        unscaled = copy.copy(pipe)
        unscaled.attribute_scale = {}
        dpm = argparse.Namespace(**{**vars(args), "scheduler": "dpm++"})
        report["ablation"] = {
            "settings": {"scheduler": args.scheduler, "attribute_scale": pipe.attribute_scale},
            "without_attribute_scale": _summary(evaluate_model(unscaled, judge, args, full=False, joint=False)),
            "scheduler_dpm++": _summary(evaluate_model(pipe, judge, dpm, full=False, joint=False))}
    return main_res


def _earlier_baselines(args, report: dict, card: dict) -> dict:
    """The baselines of --reuse-baselines' report when its sampling settings and judge are this run's."""
    if args.reuse_baselines and not os.path.isfile(args.reuse_baselines):
        print(f"--reuse-baselines: no report at {args.reuse_baselines}; evaluating every baseline", file=sys.stderr)
    elif args.reuse_baselines:
        with open(args.reuse_baselines) as f:
            old = json.load(f)
        if old.get("settings") == report["settings"] and old.get("classifier_card") == card:
            return old.get("baselines", {})
        print(f"--reuse-baselines: {args.reuse_baselines} used other sampling settings or another judge; "
              "evaluating every baseline again", file=sys.stderr)
    return {}


def evaluate_baselines(report: dict, judge, card: dict, args, extra: list) -> None:
    """Step 4: the baseline models (reused from an earlier report where everything matches) into report["baselines"]."""
    earlier = _earlier_baselines(args, report, card)
    for key, path in [("joint_model_no_attribute_dropout", args.joint_model), ("from_scratch", args.scratch_model)] + extra:
        if args.quick or not os.path.isdir(path):
            report["baselines"][key] = {"skipped": "--quick" if args.quick else f"no run at {path}",
                                        "command": "see tasks/attributes/train.py docstring"}
            continue
        info = _model_info(path)
        prev = next((b for b in earlier.values() if b.get("model") == path and b.get("model_info") == info), None)
        if prev is not None:
            report["baselines"][key] = {**prev, "reused_from": args.reuse_baselines}
            continue
        res = evaluate_model(AttributesPipeline.from_pretrained(path), judge, args, full=False)
        report["baselines"][key] = {"model": path, "model_info": info, **res}


def targets(main_res: dict) -> dict:
    """Step 5: each target with its value and whether it is met."""
    out = {k: {"target": v} for k, v in TARGETS.items()}
    got = {"per_attribute": min(main_res["per_attribute_accuracy"].values()),
           "all_correct.seen.3": main_res["all_correct"]["seen"]["3"],
           "all_correct.heldout.3": main_res["all_correct"]["heldout"]["3"],
           "not": main_res["not_accuracy"], "region": main_res["region_accuracy"]}
    for k, v in got.items():
        out[k].update(value=v, met=bool(v >= TARGETS[k]))
    return out


def main(argv=None) -> dict:
    args, extra = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.time()
    judge, card = get_judge(args)
    pipe = AttributesPipeline.from_pretrained(args.model)
    if args.guidance is None:
        args.guidance = float(pipe.sampling.get("guidance", DEFAULT_GUIDANCE))
    if args.prompts:
        return prompts_main(argv, args, pipe, judge, card)
    report = {"command": "python -m tasks.attributes.evaluate " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "model_info": _model_info(args.model),
              "settings": {k: getattr(args, k) for k in ("steps", "scheduler", "guidance", "n_per", "n_combos", "seed")},
              "classifier_card": card,
              "classifier_accuracy": card["accuracy"], "classifier_heldout_accuracy": card["heldout_accuracy"],
              "classifier_per_attribute_accuracy": card["per_attribute_accuracy"]}
    if args.note:
        report["note"] = args.note
    report["baselines"] = {}
    if not args.baselines_only:
        main_res = evaluate_main_model(report, pipe, judge, args)
    evaluate_baselines(report, judge, card, args, extra)
    if args.baselines_only:
        report["seconds"] = time.time() - t0
        atomic_write_json(args.out, report, suffix=".json.tmp", newline=False)
        print(json.dumps({k: v.get("per_attribute_accuracy_mean") for k, v in report["baselines"].items()}, indent=2))
        return report
    report["targets"] = targets(main_res)
    report["seconds"] = time.time() - t0
    if os.path.exists(args.out):  # the text/image/edit section (--prompts, its own command) is kept
        with open(args.out) as f:
            old = json.load(f)
        if "text_image_edit" in old:
            report["text_image_edit"] = old["text_image_edit"]
    atomic_write_json(args.out, report, suffix=".json.tmp", newline=False)
    print(json.dumps({k: report[k] for k in ("classifier_accuracy", "per_attribute_accuracy_mean", "all_correct",
                                             "not_accuracy", "region_accuracy", "seconds")}, indent=2))
    return report


def prompts_main(argv, args, pipe, judge, card) -> dict:
    """--prompts: the text / image / edit section alone, merged into --out."""
    from tasks.attributes.evaluate_prompts import evaluate_prompts

    sec = evaluate_prompts(pipe, judge, args)
    sec["command"] = "python -m tasks.attributes.evaluate " + shlex.join(argv if argv is not None else sys.argv[1:])
    sec["model"], sec["classifier_card"] = args.model, card
    if args.note:
        sec["note"] = args.note
    report = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            report = json.load(f)
    report["text_image_edit"] = sec
    atomic_write_json(args.out, report, suffix=".json.tmp", newline=False)
    print(json.dumps(sec["targets"], indent=1))
    return report


if __name__ == "__main__":
    main()
