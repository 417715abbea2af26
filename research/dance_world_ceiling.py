"""What the training world itself does on real music: the procedural choreographer danced to the tuning recordings.

    python -m research.dance_world_ceiling --out reports/dance_world_ceiling.json

The shipped model matches its ground truth on synthetic songs (1-s motion energy vs loudness: 0.56 vs 0.55) but not on
real recordings (0.37). Is that the network failing to carry what it learned to real audio, or what the choreographer
would do there anyway? Here `choreo.make_dance_v2` dances each of the six tuning clips (`realset.TUNING_CLIPS`, Debian
asc-music; never the evaluation's clips) from the beats the model is conditioned on (the features' beat column) and
the clip's audio (its per-beat loudness drives the depth of the moves), once per genre vocabulary, and again with
``intensity="band"`` (``choreographer_band_*``: the v2e world's dancer, moves scaled and chosen by the song-relative
mean mel-band level, `choreo.beat_intensity`); the shipped model dances the same clips (seed 0, its default sampler);
all are scored with the evaluation's `measure_set`. The silence probe is the evaluation's, built on the tuning seeds
(800000-800003): its choreographer row is the ground truth's stillness ratio there.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from gen.io import atomic_write_json

from tasks.dance.audio import SR, beat_frames
from tasks.dance.choreo import make_dance_v2
from tasks.dance.evaluate import generate, measure_set, silence_probe_clips, stillness
from tasks.dance.pipeline import DancePipeline
from tasks.dance.realset import tuning_clips

GENRES = ("house", "hiphop", "rock")
PROBE_SEEDS = (800000, 800001, 800002, 800003)


def choreographed(clip: dict, genre: str, seed: int, intensity: str = "rms") -> np.ndarray:
    beats = beat_frames(clip["music"]) / 30.0
    song = dict(audio=clip["audio"], sr=SR, beat_times=beats, beats_per_bar=4, genre=genre)
    return make_dance_v2(song, seed, intensity=intensity)["joints"]


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "per_clip"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dance")
    p.add_argument("--out", default="reports/dance_world_ceiling.json")
    a = p.parse_args(argv)
    t0 = time.time()
    clips = tuning_clips()
    rep = {"tuning_clips": [c["name"] for c in clips]}
    for g in GENRES:
        rep[f"choreographer_{g}"] = _strip(measure_set([choreographed(c, g, i) for i, c in enumerate(clips)], clips))
    for g in GENRES:  # the v2e world's dancer: moves scaled and chosen by the song-relative band loudness
        rep[f"choreographer_band_{g}"] = _strip(measure_set([choreographed(c, g, i, "band") for i, c in enumerate(clips)],
                                                            clips))
    pipe = DancePipeline.from_pretrained(a.model)
    rep["model"] = _strip(measure_set(generate(pipe, clips, 0)[0], clips))
    probes = silence_probe_clips(PROBE_SEEDS)
    rep["silence_probe"] = {
        "choreographer": stillness([make_dance_v2(c["song"], int(s))["joints"] for c, s in zip(probes, PROBE_SEEDS)]),
        "model": stillness(generate(pipe, probes, 0)[0])}
    rep["total_seconds"] = time.time() - t0
    rep["command"] = "python -m research.dance_world_ceiling " + " ".join(argv if argv is not None else sys.argv[1:])
    atomic_write_json(a.out, rep)
    for k, v in rep.items():
        if isinstance(v, dict) and "energy_loudness_corr" in v:
            print(f"{k:24s} loud {v['energy_loudness_corr']:.3f}  bas {v['bas_fact']:.3f}  other {v['bas_other_song']:.3f}"
                  f"  lifts {v['lifts_per_bar']:.2f}  pelvis {v['pelvis_vertical_std']:.3f}")
    print("stillness", {k: round(v["stillness_ratio"], 3) for k, v in rep["silence_probe"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
