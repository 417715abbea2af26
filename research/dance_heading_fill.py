"""How often the shipped dance model's pelvis flips, and what `tasks.dance.heading` does about it (tuning set only).

    python -m research.dance_heading_fill --out reports/dance_heading_fill.json

The shipped model samples the tuning songs (v2 world, seeds 800000-800005, `tasks.dance.tune.tuning_sets`; its own
sampler settings, seed i for song i) once; each variant post-processes the same raw samples with the pipeline's other
passes (`DancePipeline.post_process` without its own heading fill: rest in silence and dynamics, beat snap, foot
lock) and is scored on: root rotation steps > 45° and > 25° per frame (the ground truth's
choreographer turns at most a full turn over two beats), the ankles' 99th / 99.9th-percentile horizontal speed, PFC
(EDGE; it divides by the clip's largest root acceleration, so removing a flip can raise it; also reported without
that division) and BAS (FACT). Variants:
no fill; the heading column interpolated below min_norm 0.3 / 0.5 / 0.7 as unit vectors ("vector": a half turn passes
through a flip), or below 0.5 / 0.7 / 0.9 by its heading angle about the vertical ("yaw": the shorter way round);
Gaussian smoothing of the column (σ 1-3 frames) as the simpler alternative.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from gen.io import atomic_write_json
from tasks.dance import metrics as M
from research.dance_footlock_sweep import ankle_speeds
from tasks.dance.audio import beat_frames
from tasks.dance.heading import fill_uncertain_heading
from tasks.dance.pipeline import DancePipeline, motion_to_outputs
from tasks.dance.tune import tuning_sets


def rot_steps(R: np.ndarray) -> np.ndarray:
    """Angle (degrees) between consecutive rotation matrices (T, 3, 3) → (T-1,)."""
    return np.degrees(np.arccos(np.clip((np.einsum("tij,tij->t", R[1:], R[:-1]) - 1) / 2, -1, 1)))


def pfc_unnormalised(joints: np.ndarray, fps: float = 30.0) -> float:
    """`metrics.pfc` without dividing the root acceleration by its clip maximum (m/s² · m² per frame²)."""
    j = np.asarray(joints, np.float64)
    root_a = np.diff(j[:, 0], 2, axis=0) * fps * fps
    root_a[:, 1] = np.maximum(root_a[:, 1], 0)
    feet = j[:, [7, 10, 8, 11]][..., [0, 2]]
    v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)
    return float((np.minimum(v[:, 0], v[:, 1]) * np.minimum(v[:, 2], v[:, 3]) * np.linalg.norm(root_a, axis=-1)).mean())


def smooth_heading(m: np.ndarray, sigma: float) -> np.ndarray:
    m = m.copy()
    m[:, 7:10] = gaussian_filter1d(m[:, 7:10].astype(np.float64), sigma, axis=0, mode="nearest")
    return m


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="checkpoints/dance")
    p.add_argument("--out", default="reports/dance_heading_fill.json")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    synth = tuning_sets()["synthetic"]
    pipe = DancePipeline.from_pretrained(a.model, heading_fill=False)  # each variant's fill, then the other passes
    raw = [pipe.sample_motion(c["music"], seed=i) for i, c in enumerate(synth)]
    gt = [c["joints"] for c in synth]
    gt_pfc = float(np.mean([M.pfc(j) for j in gt]))
    gt_pfc_u = float(np.mean([pfc_unnormalised(j) for j in gt]))
    variants = {"none": lambda m: m}
    variants |= {f"fill_below_{t}": (lambda t: lambda m: fill_uncertain_heading(m, t, mode="vector"))(t)
                 for t in (0.3, 0.5, 0.7)}
    variants |= {f"yaw_fill_below_{t}": (lambda t: lambda m: fill_uncertain_heading(m, t, mode="yaw"))(t)
                 for t in (0.5, 0.7, 0.9)}
    variants |= {f"smooth_sigma_{s}": (lambda s: lambda m: smooth_heading(m, s))(s) for s in (1, 2, 3)}
    rows = {}
    for name, f in variants.items():
        outs = [motion_to_outputs(pipe.post_process(f(m), c["music"], foot_lock=True)) for m, c in zip(raw, synth)]
        steps = np.concatenate([rot_steps(o["rotations"][:, 0]) for o in outs])
        v = ankle_speeds([o["joints"] for o in outs])
        pfc = float(np.mean([M.pfc(o["joints"]) for o in outs]))
        rows[name] = dict(root_steps_over_45deg=int((steps > 45).sum()), root_steps_over_25deg=int((steps > 25).sum()),
                          ankle_speed_p99=float(np.percentile(v, 99)), ankle_speed_p999=float(np.percentile(v, 99.9)),
                          pfc=pfc, pfc_over_gt=pfc / gt_pfc,
                          pfc_unnormalised_over_gt=float(np.mean([pfc_unnormalised(o["joints"]) for o in outs])) / gt_pfc_u,
                          bas_fact=float(np.mean([M.bas_fact(o["joints"], beat_frames(c["music"]))
                                                  for o, c in zip(outs, synth)])))
        r = rows[name]
        print(f"{name:16s} root steps >45° {r['root_steps_over_45deg']:3d} >25° {r['root_steps_over_25deg']:4d}  ankle p99 "
              f"{r['ankle_speed_p99']:.3f} p99.9 {r['ankle_speed_p999']:.3f}  PFC {r['pfc_over_gt']:.1f}x GT "
              f"(unnormalised {r['pfc_unnormalised_over_gt']:.1f}x)  BAS "
              f"{r['bas_fact']:.3f}")
    gt_steps = ankle_speeds(gt)
    norms = np.linalg.norm(np.concatenate([m[:, 7:10] for m in raw]), axis=1)
    rep = dict(model=a.model, tuning_seeds=[c["name"] for c in synth], frames=int(sum(len(m) for m in raw)),
               raw_heading_column_norm=dict(p1=float(np.percentile(norms, 1)), min=float(norms.min())),
               ground_truth=dict(pfc=gt_pfc, ankle_speed_p99=float(np.percentile(gt_steps, 99))),
               variants=rows, sampling=pipe.sampling, seconds=time.time() - t0,
               command="python -m research.dance_heading_fill " + " ".join(argv if argv is not None else sys.argv[1:]))
    atomic_write_json(a.out, rep)
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
