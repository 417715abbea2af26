"""Choose the dance sampler and guidance weight on a tuning set disjoint from the evaluation's.

    python -m tasks.dance.tune --model checkpoints/dance --out reports/dance_tuning.json [--write]

Tuning set (none of it in training or in `tasks.dance.evaluate`):
* real: the six 30-s clips of `realset.TUNING_CLIPS` (Debian asc-music: another composer than the evaluation's
  eight clips, unpacked by data/dance/setup.sh);
* synthetic: v2-world songs of seeds `TUNING_SEEDS` (800000-800005; training songs are 0 … num_songs−1, the
  evaluation's 900000-900063), with the choreographer's ground truth, and the first four with seconds 10-18
  silenced (the silence probe, as the evaluation builds it).

Every (scheduler, guidance) of the grid is scored with the evaluation's own measures and the issue-17 target checks
(`evaluate.targets`, on the tuning clips). Chosen: the setting meeting the most checks; ties broken by the mean of
min(value / target, 1) over the real-music ratio targets (BAS gap, foot lifts, travel, pelvis std, loudness
correlation, stillness), then by the smaller guidance (a guidance of 1 costs one network pass, more cost two).
`--write` puts the choice into the model folder's pipeline.json `sampling` (the evaluation reads it from there).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from gen.io import atomic_write_json

from .data import load_song
from .evaluate import SECONDS, beat_frames, generate, gt_scores, measure_set, silence_probe_clips, stillness, targets

TUNING_SEEDS = tuple(range(800_000, 800_006))
SCHEDULERS = ("ddim", "ddim-eta")
GUIDANCE = (1.0, 1.5, 2.0, 2.5, 3.0)


def tuning_sets(num_synth: int = len(TUNING_SEEDS)) -> dict:
    from .realset import tuning_clips

    synth = [dict(load_song(s, SECONDS, world="v2"), name=str(s)) for s in TUNING_SEEDS[:num_synth]]
    return dict(synthetic=synth, real=tuning_clips(), silence_probe=silence_probe_clips(TUNING_SEEDS[:4]))


def ratios(rep: dict, gt: dict) -> dict:
    """min(value / target, 1) of each real-music ratio target (stillness: target / value)."""
    r = rep["real"]
    still = rep["silence_probe"]["stillness_ratio"]
    return dict(bas_gap=(r["bas_fact"] - r["bas_other_song"]) / 0.15, lifts=r["lifts_per_bar"] / 1.5,
                travel=r["travel_per_30s"] / 1.0, pelvis=r["pelvis_vertical_std"] / 0.03,
                loudness=r["energy_loudness_corr"] / 0.5, stillness=0.25 / max(still, 1e-9))


def score(pipe, sets: dict, gt_rep: dict, seed: int, **kw) -> dict:
    synth, real, probe = sets["synthetic"], sets["real"], sets["silence_probe"]
    ours, raw = generate(pipe, synth, seed, **kw)
    gt = [c["joints"] for c in synth]
    beats = [beat_frames(c["music"]) for c in synth]
    rep = {"synthetic": gt_scores(ours, gt, beats) | measure_set(ours, synth),
           "synthetic_network_raw": gt_scores(raw, gt, beats) | measure_set(raw, synth),
           "real": measure_set(generate(pipe, real, seed, **kw)[0], real),
           "silence_probe": stillness(generate(pipe, probe, seed, **kw)[0])}
    for k in ("synthetic", "synthetic_network_raw", "real"):
        rep[k].pop("per_clip", None)
    checks = targets(rep, gt_rep)
    rat = {k: float(min(v, 1.0)) for k, v in ratios(rep, gt_rep).items()}
    return rep | {"checks": checks, "checks_met": int(sum(checks.values())), "ratios": rat,
                  "ratio_mean": float(np.mean(list(rat.values())))}


def tune(model: str, schedulers=SCHEDULERS, guidance=GUIDANCE, steps: int | None = None, seed: int = 0,
         threads: int = 1) -> dict:
    from .pipeline import DancePipeline

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    sets = tuning_sets()
    gt = [c["joints"] for c in sets["synthetic"]]
    beats = [beat_frames(c["music"]) for c in sets["synthetic"]]
    gt_rep = gt_scores(gt, gt, beats) | measure_set(gt, sets["synthetic"])
    gt_rep.pop("per_clip", None)
    pipe = DancePipeline.from_pretrained(model)
    before = dict(pipe.sampling)
    rows = []
    for sch in schedulers:
        for w in guidance:
            t = time.time()
            r = score(pipe, sets, gt_rep, seed, scheduler=sch, guidance=float(w), steps=steps or pipe.steps)
            rows.append(dict(scheduler=sch, guidance=float(w), steps=int(steps or pipe.steps), seconds=time.time() - t,
                             **r))
            print(f"{sch:9s} w={w:<4g} checks {r['checks_met']}  ratio_mean {r['ratio_mean']:.3f}  "
                  + "  ".join(f"{k}={v:.2f}" for k, v in r["ratios"].items()), flush=True)
    best = max(rows, key=lambda r: (r["checks_met"], round(r["ratio_mean"], 6), -r["guidance"]))
    return dict(model=model, sampling_before=before,
                chosen=dict(scheduler=best["scheduler"], guidance=best["guidance"], steps=best["steps"]),
                rule="most issue-17 checks met on the tuning set; then the mean of min(value/target, 1) over the "
                     "real-music ratio targets; then the smaller guidance",
                tuning_set=dict(real=[c["name"] for c in sets["real"]], real_package="asc-music",
                                synthetic_seeds=list(TUNING_SEEDS), silence_probe_seeds=list(TUNING_SEEDS[:4]),
                                seconds=SECONDS),
                ground_truth_synthetic=gt_rep, grid=rows, sampling_seed=seed, torch_threads=torch.get_num_threads(),
                total_seconds=time.time() - t0)


def write_choice(model: str, chosen: dict, keys=("scheduler", "guidance")) -> None:
    """Put the chosen `keys` of `chosen` (the sampler and guidance) into `model`/pipeline.json `sampling`
    (atomically)."""
    path = os.path.join(model, "pipeline.json")
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: --write needs a pipeline folder (e.g. checkpoints/dance)")
    with open(path) as f:
        meta = json.load(f)
    meta.setdefault("sampling", {}).update({k: chosen[k] for k in keys})
    atomic_write_json(path, meta, suffix=".json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="checkpoints/dance", help="dance model folder")
    p.add_argument("--out", default="reports/dance_tuning.json", help="JSON report (written atomically)")
    p.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), help="samplers to try")
    p.add_argument("--guidance", nargs="+", type=float, default=list(GUIDANCE), help="guidance weights to try")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (clip i uses seed + i)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="write the choice into the model's pipeline.json")
    a = p.parse_args(argv)
    if any(w <= 0 for w in a.guidance):
        print(f"error: --guidance weights must be > 0, got {a.guidance}", file=sys.stderr)
        return 2
    try:
        rep = tune(a.model, a.schedulers, a.guidance, a.steps, a.seed, a.threads)
        rep["command"] = "python -m tasks.dance.tune " + " ".join(argv if argv is not None else sys.argv[1:])
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        atomic_write_json(a.out, rep, suffix=".json", newline=False)
        if a.write:
            write_choice(a.model, rep["chosen"])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"chosen {rep['chosen']} (before {rep['sampling_before']}); wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
