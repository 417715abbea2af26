"""Evaluate the dance model on held-out synthetic music, with ground truth and two controls in the same run.

    python -m tasks.dance.evaluate --quick --out reports/dance_eval_quick.json                  # < 2 min on CPU
    python -m tasks.dance.evaluate --out reports/dance_eval.json \
        --compare scratch=runs/dance_scratch/export                                            # + another model

Sets, each scored with PFC (EDGE), BAS (FACT and Bailando variants), FID_k / FID_g and Div_k / Div_g (Bailando;
features normalised with the ground-truth set's statistics) from `tasks.dance.metrics`:

- the model: dances generated for the held-out songs (`data.HELDOUT_SEEDS`, never trained on), as the pipeline
  returns them (feet planted by `tasks.dance.footlock`); ``network_raw``: the same samples before the foot lock;
- ``ground_truth``: the synthesiser's own dances for those songs;
- ``baselines.random_train_clip``: a music-ignoring baseline, a random training song's dance cut to the same length;
- ``baselines.time_shifted_half_beat``: the model's dances delayed by half a beat (breaks alignment, same motion).

Music beats for BAS are the librosa beats of the features (last column). PFC is the per-clip mean (EDGE prints it
×1e4). ``seconds_per_30s_of_music``: wall time from a 30 s audio file to the motion (features + sampling + FK) in a
warm process; the one-off librosa/numba warm-up of a fresh process is reported separately.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from gen.io import atomic_write_json
from tasks.dance import metrics as M
from tasks.dance.audio import audio_features, beat_frames
from tasks.dance.data import HELDOUT_SEEDS, load_song
from tasks.dance.footlock import lock_feet
from tasks.dance.pipeline import DancePipeline, motion_to_outputs
from tasks.dance.synth import make_song, write_wav

TRAIN_SONG_SECONDS = 12.0  # training songs used for the random-clip baseline (data.seconds default)


def score(pred: list, gt: list, beats: list) -> dict:
    """All metrics of clips `pred` (lists of (T, 24, 3)) against ground-truth clips `gt`."""
    return dict(
        bas_fact=float(np.mean([M.bas_fact(j, b) for j, b in zip(pred, beats)])),
        bas_bailando=float(np.mean([M.bas_bailando(j, b) for j, b in zip(pred, beats)])),
        pfc=float(np.mean([M.pfc(j) for j in pred])),
        fid_k=M.fid_k(pred, gt), fid_g=M.fid_g(pred, gt), div_k=M.div_k(pred, gt), div_g=M.div_g(pred, gt))


def shift_half_beat(joints: np.ndarray, bpm: float) -> np.ndarray:
    """Delay by half a beat (first frame held), keeping the length."""
    k = max(1, int(round(0.5 * 60.0 / bpm * 30)))
    return np.concatenate([np.repeat(joints[:1], k, 0), joints[:-k]])


def generate_set(pipe: DancePipeline, songs: list, seed: int, **kw) -> tuple[list, list]:
    """Joints of the pipeline's dances (feet locked, as users get them) and of the network's raw samples."""
    raw = [pipe.sample_motion(s["music"], seed=seed + i, **kw) for i, s in enumerate(songs)]
    joints = lambda m: motion_to_outputs(m)["joints"]  # noqa: E731
    return [joints(lock_feet(m)) for m in raw], [joints(m) for m in raw]


def score_both(pipe: DancePipeline, songs: list, gt: list, beats: list, seed: int, **kw) -> tuple[dict, list]:
    """Metrics of the pipeline output, with the raw network's under "network_raw"; and the output joints."""
    ours, raw = generate_set(pipe, songs, seed, **kw)
    return score(ours, gt, beats) | {"network_raw": score(raw, gt, beats)}, ours


def time_30s(pipe: DancePipeline, seed: int, **kw) -> dict:
    """Seconds from a 30 s audio file to the motion, cold (first call: librosa/numba warm-up) and warm."""
    song = make_song(HELDOUT_SEEDS[-1], 30.0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "song30.wav")
        write_wav(path, song["audio"], song["sr"])
        t0 = time.time()
        audio_features(make_song(1, 2.0)["audio"], song["sr"])  # warm-up: librosa's lazy imports + numba JIT
        warmup = time.time() - t0
        t0 = time.time()
        res = pipe(path, seed=seed, **kw)
        warm = time.time() - t0
    return dict(seconds_per_30s_of_music=warm, process_warmup_seconds=warmup, frames=len(res["motion"]))


def evaluate(model: str, num_songs: int, seconds: float, seed: int = 0, compare: dict | None = None,
             threads: int = 0, guidance_sweep: tuple = (), **sample_kw) -> dict:
    if threads:
        torch.set_num_threads(threads)
    t_start = time.time()
    songs = [load_song(s, seconds) for s in HELDOUT_SEEDS[:num_songs]]
    gt = [s["joints"] for s in songs]
    beats = [beat_frames(s["music"]) for s in songs]
    pipe = DancePipeline.from_pretrained(model)
    main, ours = score_both(pipe, songs, gt, beats, seed, **sample_kw)
    rng = np.random.default_rng(seed)
    n = len(gt[0])
    train_clips = [load_song(int(s), TRAIN_SONG_SECONDS)["joints"] for s in rng.choice(64, num_songs, replace=False)]
    random_clips = [c[(o := int(rng.integers(0, len(c) - n + 1))):o + n] for c in train_clips]
    shifted = [shift_half_beat(j, float(s["bpm"])) for j, s in zip(ours, songs)]
    report = dict(main)
    report["ground_truth"] = score(gt, gt, beats)
    report["baselines"] = dict(random_train_clip=score(random_clips, gt, beats),
                               time_shifted_half_beat=score(shifted, gt, beats))
    if compare:
        report["comparison"] = {name: score_both(DancePipeline.from_pretrained(path), songs, gt, beats, seed,
                                                 **sample_kw)[0] | {"model": path} for name, path in compare.items()}
    if guidance_sweep:
        report["guidance_sweep"] = {f"{w:g}": score_both(pipe, songs, gt, beats, seed, **(sample_kw | {"guidance": w}))[0]
                                    for w in guidance_sweep}
    report.update(time_30s(pipe, seed, **sample_kw))
    report["targets"] = dict(
        bas_ge_0_26=report["bas_fact"] >= 0.26 or report["bas_bailando"] >= 0.26,
        bas_above_shifted=all(report[k] > report["baselines"]["time_shifted_half_beat"][k]
                              for k in ("bas_fact", "bas_bailando")),  # both variants, not the better one
        pfc_within_1_2x_gt=report["pfc"] <= 1.2 * report["ground_truth"]["pfc"],
        pfc_within_1_2x_gt_network_raw=report["network_raw"]["pfc"] <= 1.2 * report["ground_truth"]["pfc"],
        thirty_s_in_10s=report["seconds_per_30s_of_music"] <= 10.0)
    report["settings"] = dict(model=model, num_songs=num_songs, seconds=seconds, seed=seed, heldout_seeds=
                              list(HELDOUT_SEEDS[:num_songs]), sampling={**dict(steps=pipe.steps, scheduler=pipe.scheduler,
                                                                              guidance=pipe.guidance), **sample_kw},
                              torch_threads=torch.get_num_threads(), total_seconds=time.time() - t_start)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="checkpoints/dance", help="dance model folder")
    p.add_argument("--out", default="reports/dance_eval.json", help="JSON report (written atomically)")
    p.add_argument("--quick", action="store_true", help="8 songs × 10 s, 10 sampling steps (< 2 min)")
    p.add_argument("--songs", type=int, default=32, help="held-out songs (ignored with --quick)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each held-out song")
    p.add_argument("--steps", type=int, default=20, help="sampling steps per window (--quick: 10)")
    p.add_argument("--scheduler", default="ddim", help="sampler: ddim, ancestral, dpm++, unipc, …")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance weight")
    p.add_argument("--guidance-sweep", type=float, nargs="*", default=[], metavar="W",
                   help="also score the model at these guidance weights (report key guidance_sweep)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (song i uses seed + i)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default; 1 is fastest on a shared CPU)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                   help="also score another model folder, e.g. scratch=runs/dance_scratch/export")
    a = p.parse_args(argv)
    try:
        compare = dict(c.split("=", 1) for c in a.compare)
    except ValueError:
        print(f"error: --compare takes NAME=PATH, got {a.compare}", file=sys.stderr)
        return 2
    songs, steps = (8, 10) if a.quick else (a.songs, a.steps)
    try:
        report = evaluate(a.model, songs, a.seconds, a.seed, compare, a.threads, tuple(a.guidance_sweep), steps=steps,
                          scheduler=a.scheduler, guidance=a.guidance)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["command"] = "python -m tasks.dance.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    atomic_write_json(a.out, report, suffix=".json", newline=False)
    keys = ("bas_fact", "bas_bailando", "pfc", "fid_k", "fid_g", "div_k", "div_g")
    for name, r in [("model", report), ("ground_truth", report["ground_truth"])] + list(report["baselines"].items()) + \
            list(report.get("comparison", {}).items()):
        print(f"{name:24s} " + "  ".join(f"{k}={r[k]:.4g}" for k in keys))
    print(f"30 s of music -> dance in {report['seconds_per_30s_of_music']:.1f} s (+{report['process_warmup_seconds']:.1f} s "
          f"one-off warm-up); targets {report['targets']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
