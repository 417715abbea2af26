"""Evaluate dance models on held-out synthetic songs, on real recordings and on a silence probe, in one run.

    python -m tasks.dance.evaluate --quick --out reports/dance_eval_quick.json                      # a few minutes
    python -m tasks.dance.evaluate --model runs/dance/export --previous checkpoints/dance \
        --out reports/dance_eval.json                                                              # new vs shipped

Sets (none of them trained or tuned on):

- ``synthetic``: held-out songs of the v2 world (`data.HELDOUT_SEEDS`, 30 s: FluidSynth-rendered MIDI / numpy synth,
  danced by `tasks.dance.choreo`; ``--world v2e``: the same music danced by the intensity-driven choreographer), with the choreographer's ground truth: PFC (EDGE), BAS (FACT, Bailando),
  FID_k / FID_g, Div_k / Div_g (Bailando) and the measures below, for the pipeline output (feet locked) and the raw
  network (``network_raw``);
- ``real``: the eight 30-s clips of game soundtracks from Debian packages (`tasks.dance.realset`, data/dance/README.md);
- ``silence_probe``: held-out synthetic songs with seconds 10-18 replaced by silence: ``stillness_ratio`` = motion
  energy in the silent seconds (12-17, away from the edges) / energy in the music seconds.

Measures per clip (`tasks.dance.metrics.dance_measures`): foot lifts (≥ 4 cm for ≥ 3 frames) per 4-beat bar,
horizontal travel per 30 s (root sampled once a second), pelvis vertical std, leg joint speed, correlation of 1-s
motion energy with 1-s loudness (MFCC c0), BAS (FACT) and ``bas_other_song``: BAS of the dance made for the *next*
clip of the set against this clip's beats (the music-ignoring control). Music beats: librosa's (feature column 34).
Every model given (``--model``, ``--previous``, ``--compare``) is scored on the same clips with the same seeds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from gen.io import atomic_write_json
from tasks.dance import metrics as M
from tasks.dance.audio import SR, audio_features, beat_frames  # noqa: F401  (beat_frames: research/dance_jitter.py)
from tasks.dance.data import HELDOUT_SEEDS, load_song
from tasks.dance.pipeline import DancePipeline, motion_to_outputs

SECONDS = 30.0
MEASURES = ("lifts_per_bar", "travel_per_30s", "pelvis_vertical_std", "leg_joint_speed", "energy_loudness_corr",
            "bas_fact", "bas_other_song", "pfc")


def _mean(rows: list[dict]) -> dict:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def measure_set(joints: list, clips: list) -> dict:
    """Mean measures over clips (+ per clip): clips have "music" (T, 35); joints[i] is the dance for clip i."""
    rows = []
    for i, (j, c) in enumerate(zip(joints, clips)):
        beats = beat_frames(c["music"])
        row = M.dance_measures(j, c["music"], beats)
        other = joints[(i + 1) % len(joints)]
        n = min(len(other), len(j))
        row["bas_other_song"] = M.bas_fact(other[:n], beats[beats < n]) if len(joints) > 1 else float("nan")
        rows.append(row)
    out = _mean(rows)
    out["per_clip"] = {c.get("name", str(i)): r for i, (c, r) in enumerate(zip(clips, rows))}
    return out


def gt_scores(pred: list, gt: list, beats: list) -> dict:
    """EDGE / Bailando metrics of clips `pred` against the ground-truth clips `gt`."""
    return dict(bas_fact=float(np.mean([M.bas_fact(j, b) for j, b in zip(pred, beats)])),
                bas_bailando=float(np.mean([M.bas_bailando(j, b) for j, b in zip(pred, beats)])),
                pfc=float(np.mean([M.pfc(j) for j in pred])),
                fid_k=M.fid_k(pred, gt), fid_g=M.fid_g(pred, gt), div_k=M.div_k(pred, gt), div_g=M.div_g(pred, gt))


def generate(pipe: DancePipeline, clips: list, seed: int, **kw) -> tuple[list, list]:
    """Joints of the pipeline's dances (its post-passes: rest in silence when on, feet locked; as users get them) and
    of the network's raw samples."""
    raw = [pipe.sample_motion(c["music"], seed=seed + i, **kw) for i, c in enumerate(clips)]
    joints = lambda m: motion_to_outputs(m)["joints"]  # noqa: E731
    return [joints(pipe.post_process(m, c["music"], foot_lock=True)) for m, c in zip(raw, clips)], [joints(m) for m in raw]


def silence_probe_clips(seeds) -> list[dict]:
    """Synthetic songs (30 s) of `seeds` with seconds 10-18 silenced: [{name, music (features of the edited audio),
    song (the edited song, for the choreographer)}]. The evaluation uses held-out seeds, `tasks.dance.tune` its own."""
    from tasks.dance.choreo import make_song_v2

    clips = []
    for s in seeds:
        song = make_song_v2(int(s), SECONDS)
        y = song["audio"].copy()
        y[int(10 * SR):int(18 * SR)] = 0.0
        clips.append(dict(name=f"probe_{s}", music=audio_features(y, SR, name=f"probe {s}"), song=dict(song, audio=y)))
    return clips


def stillness(joints: list) -> dict:
    e = [M.motion_energy(j) for j in joints]
    ratio = [float(x[12:17].mean() / max(np.r_[x[1:9], x[20:29]].mean(), 1e-12)) for x in e]
    return dict(stillness_ratio=float(np.mean(ratio)), per_clip=ratio)


def score_model(pipe: DancePipeline, sets: dict, seed: int, **kw) -> dict:
    synth, real, probe = sets["synthetic"], sets["real"], sets["silence_probe"]
    ours, raw = generate(pipe, synth, seed, **kw)
    gt = [c["joints"] for c in synth]
    beats = [beat_frames(c["music"]) for c in synth]
    rep = {"synthetic": gt_scores(ours, gt, beats) | measure_set(ours, synth),
           "synthetic_network_raw": gt_scores(raw, gt, beats) | measure_set(raw, synth)}
    r_ours, r_raw = generate(pipe, real, seed, **kw)
    rep["real"] = measure_set(r_ours, real)
    rep["real_network_raw"] = {k: v for k, v in measure_set(r_raw, real).items() if k != "per_clip"}
    p_ours, p_raw = generate(pipe, probe, seed, **kw)
    rep["silence_probe"] = stillness(p_ours)
    rep["silence_probe_network_raw"] = stillness(p_raw)
    return rep


def targets(rep: dict, gt: dict) -> dict:
    r = rep["real"]
    return dict(
        bas_ge_0_26=r["bas_fact"] >= 0.26,
        bas_0_15_above_other_song=r["bas_fact"] - r["bas_other_song"] >= 0.15,
        lifts_per_bar_ge_1_5=r["lifts_per_bar"] >= 1.5,
        travel_ge_1m_per_30s=r["travel_per_30s"] >= 1.0,
        pelvis_std_ge_3cm=r["pelvis_vertical_std"] >= 0.03,
        energy_loudness_corr_ge_0_5=r["energy_loudness_corr"] >= 0.5,
        stillness_in_silence_le_0_25=rep["silence_probe"]["stillness_ratio"] <= 0.25,
        pfc_within_1_2x_gt=rep["synthetic"]["pfc"] <= 1.2 * gt["pfc"],
        pfc_network_raw_within_2x_gt=rep["synthetic_network_raw"]["pfc"] <= 2.0 * gt["pfc"])


def time_cli(model: str, clip_audio: np.ndarray) -> dict:
    """Wall seconds of `dance-generate` (a fresh process, start-up included) from a 30-s file to MP4 + BVH."""
    from tasks.dance.synth import write_wav

    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "song.wav")
        write_wav(wav, clip_audio, SR)
        cmd = [sys.executable, "-m", "tasks.dance.generate", "--music", wav, "--out", os.path.join(d, "d.mp4"),
               "--bvh", os.path.join(d, "d.bvh"), "--model", model]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
    if r.returncode != 0:
        raise ValueError(f"dance-generate failed: {r.stderr.strip()[-300:]}")
    return dict(cli_seconds_30s_to_mp4_bvh=wall, cli_command="dance-generate --music <30 s wav> --out d.mp4 --bvh d.bvh")


def evaluate(model: str, previous: str | None, num_synth: int, seed: int = 0, compare: dict | None = None,
             threads: int = 1, cli_timing: bool = True, world: str = "v2", **sample_kw) -> dict:
    from tasks.dance.realset import real_clips

    if threads:
        torch.set_num_threads(threads)
    t_start = time.time()
    if world not in ("v2", "v2e"):
        raise ValueError(f"world must be 'v2' or 'v2e' (the synthetic set's ground truth), got {world!r}")
    synth = [dict(load_song(s, SECONDS, world=world), name=str(s)) for s in HELDOUT_SEEDS[:num_synth]]
    real = real_clips()
    sets = dict(synthetic=synth, real=real, silence_probe=silence_probe_clips(HELDOUT_SEEDS[:min(4, num_synth)]))
    gt = [c["joints"] for c in synth]
    beats = [beat_frames(c["music"]) for c in synth]
    gt_rep = gt_scores(gt, gt, beats) | measure_set(gt, synth)
    pipe = DancePipeline.from_pretrained(model)
    report = {"model": score_model(pipe, sets, seed, **sample_kw) | {"path": model}}
    report["ground_truth_synthetic"] = gt_rep
    models = dict(compare or {})
    if previous:
        models = {"previous": previous} | models
    for name, path in models.items():
        report[name] = score_model(DancePipeline.from_pretrained(path), sets, seed, **sample_kw) | {"path": path}
    report["targets"] = targets(report["model"], gt_rep)
    for name in models:
        report[name]["targets"] = targets(report[name], gt_rep)
    if cli_timing:
        report["model"] |= time_cli(model, real[0]["audio"])
        report["targets"]["thirty_s_to_mp4_bvh_in_10s"] = report["model"]["cli_seconds_30s_to_mp4_bvh"] <= 10.0
    report = {"summary": summary(report), "targets": report.pop("targets")} | report
    report["settings"] = dict(
        num_synthetic=num_synth, world=world, seconds=SECONDS, seed=seed, heldout_seeds=list(HELDOUT_SEEDS[:num_synth]),
        real_clips=[dict(name=c["name"], package=c["package"], file=c["file"], start=c["start"]) for c in real],
        sampling={**dict(steps=pipe.steps, scheduler=pipe.scheduler, guidance=pipe.guidance), **sample_kw},
        torch_threads=torch.get_num_threads(), total_seconds=time.time() - t_start)
    return report


def summary(report: dict) -> dict:
    """The headline numbers (means over clips) of every model and the ground truth, without the per-clip rows."""
    keep = MEASURES + ("bas_bailando", "fid_k", "fid_g")
    out = {}
    for name, r in report.items():
        if not isinstance(r, dict) or "real" not in r:
            continue
        out[name] = {k: {m: r[k][m] for m in keep if m in r[k]} for k in ("real", "synthetic", "synthetic_network_raw")}
        out[name]["silence_probe_stillness_ratio"] = r["silence_probe"]["stillness_ratio"]
        if "silence_probe_network_raw" in r:
            out[name]["silence_probe_network_raw_stillness_ratio"] = r["silence_probe_network_raw"]["stillness_ratio"]
        if "cli_seconds_30s_to_mp4_bvh" in r:
            out[name]["cli_seconds_30s_to_mp4_bvh"] = r["cli_seconds_30s_to_mp4_bvh"]
    out["ground_truth_synthetic"] = {m: report["ground_truth_synthetic"][m] for m in keep
                                     if m in report["ground_truth_synthetic"]}
    return out


def _line(name: str, r: dict) -> str:
    return f"{name:28s} " + "  ".join(f"{k}={r[k]:.3g}" for k in MEASURES if k in r)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="checkpoints/dance", help="dance model folder")
    p.add_argument("--previous", default=None, help="the previous model, scored in the same run (e.g. checkpoints/dance)")
    p.add_argument("--out", default="reports/dance_eval.json", help="JSON report (written atomically)")
    p.add_argument("--quick", action="store_true", help="4 synthetic songs, 10 sampling steps, no CLI timing")
    p.add_argument("--songs", type=int, default=16, help="held-out synthetic songs of 30 s (ignored with --quick)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps per window (default: the model's "
                   "pipeline.json, as dance-generate samples; --quick: 10)")
    p.add_argument("--scheduler", default=None, help="sampler: ddim, ddim-eta, ancestral, dpm++, unipc, … (default: "
                   "the model's, chosen by tasks.dance.tune)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (clip i uses seed + i)")
    p.add_argument("--world", default="v2", choices=("v2", "v2e"), help="the synthetic set's ground-truth dancer "
                   "(the same music either way)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=PATH", help="also score another model folder")
    a = p.parse_args(argv)
    try:
        compare = dict(c.split("=", 1) for c in a.compare)
    except ValueError:
        print(f"error: --compare takes NAME=PATH, got {a.compare}", file=sys.stderr)
        return 2
    songs, steps = (4, a.steps or 10) if a.quick else (a.songs, a.steps)
    if songs < 2 or songs > len(HELDOUT_SEEDS):
        print(f"error: --songs must be in [2, {len(HELDOUT_SEEDS)}], got {songs}", file=sys.stderr)
        return 2
    try:
        kw = {k: v for k, v in dict(steps=steps, scheduler=a.scheduler, guidance=a.guidance).items() if v is not None}
        report = evaluate(a.model, a.previous, songs, a.seed, compare, a.threads, cli_timing=not a.quick,
                          world=a.world, **kw)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["command"] = "python -m tasks.dance.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    atomic_write_json(a.out, report, suffix=".json", newline=False)
    for set_name in ("real", "synthetic"):
        print(f"-- {set_name}")
        for name in ["model"] + [k for k in report if isinstance(report[k], dict) and set_name in report[k] and k != "model"]:
            print(_line(name, report[name][set_name]))
        if set_name == "synthetic":
            print(_line("ground_truth", report["ground_truth_synthetic"]))
    print(f"silence probe stillness: " + ", ".join(f"{k}={report[k]['silence_probe']['stillness_ratio']:.3f}"
                                                   for k in report if isinstance(report[k], dict)
                                                   and "silence_probe" in report[k]))
    print(f"targets {report['targets']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
