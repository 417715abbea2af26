"""Generate a dance for a music file: a 3-D (or stick-figure) MP4 with the music / GIF, BVH, AIST++-layout NPZ / pkl.

    dance-generate --music song.mp3 --out dance.mp4 [--bvh dance.bvh] [--npz dance.npz] [--pkl dance.pkl]
                   [--gif dance.gif] [--view 3d|2d] [--seconds S] [--seed N] [--steps N] [--scheduler dpm++] [--guidance W]
                   [--genre house] [--model dance]

Bad input (unreadable / corrupt / silent audio, under 1 s or over 10 min, --seconds longer than the music, a wrong
output extension or folder) is reported as ``error: …`` with exit status 2, and no output file is written. Outputs
are all-or-nothing (temp files renamed at the end).
"""
from __future__ import annotations

import argparse
import time

from gen.cli import add_common_args, exit_now, progress_bar, run, setup_runtime

PROG = "dance-generate"
GENRES = ("house", "hiphop", "rock", "waltz")  # = tasks.dance.synth.GENRES (here so --help does not import torch)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--music", required=True, help="audio file (wav, mp3, ogg, flac; any sample rate, mono/stereo)")
    p.add_argument("--out", default=None, help="video: .mp4 (music muxed in) or .gif")
    p.add_argument("--view", default="3d", choices=("3d", "2d"),
                   help="video view: 3d (perspective camera, floor, capsule body, shadows; 512 px) or 2d (stick figure)")
    p.add_argument("--gif", default=None, help="also write a GIF")
    p.add_argument("--bvh", default=None, help="BVH file (Blender-importable)")
    p.add_argument("--npz", default=None, help="AIST++-layout arrays (smpl_poses, smpl_trans, smpl_scaling, motion, …)")
    p.add_argument("--pkl", default=None, help="AIST++-layout pickle (smpl_poses, smpl_trans, smpl_scaling)")
    p.add_argument("--seconds", type=float, default=None, help="use only the first S seconds (default: whole file)")
    p.add_argument("--genre", default=None, choices=GENRES, help="optional genre label")
    p.add_argument("--no-foot-lock", dest="foot_lock", action="store_false",
                   help="keep the network's raw feet (default: plant them where the predicted contacts say, by leg IK)")
    p.add_argument("--no-rest", dest="rest_in_silence", action="store_false",
                   help="keep dancing where the music is silent (default: idle there, tasks/dance/rest.py)")
    p.add_argument("--dynamics", type=float, default=None, metavar="DEPTH",
                   help="how much smaller quiet passages are danced, 0-1 (0 = off; default: the model's, "
                        "tasks/dance/dynamics.py)")
    p.add_argument("--beat-snap", type=int, default=None, metavar="FRAMES",
                   help="retime the dance so kinetic beats up to FRAMES away land on the music's beats (0 = off; "
                        "default: the model's, tasks/dance/beatsnap.py)")
    add_common_args(p, "dance", {"scheduler": "ddim-eta", "steps": 20, "guidance": 2.5}, threads=1)
    return p


def _main(args) -> int:
    from tasks.dance.audio import MusicPrefetch

    # the music is read and its features computed in a second process while this one imports torch and loads the
    # model (each ~2-3 s on this 2-core CPU); same features as in-process
    music = MusicPrefetch(args.music, args.seconds)
    try:
        from tasks.dance.pipeline import DancePipeline, check_output_paths

        paths = check_output_paths(out=args.out, gif=args.gif, bvh=args.bvh, npz=args.npz, pkl=args.pkl)
        if not paths:
            raise ValueError("nothing to write: give at least one of --out, --gif, --bvh, --npz, --pkl")
        device = setup_runtime(args)
        pipe = DancePipeline.from_pretrained(args.model, device=device, steps=args.steps, scheduler=args.scheduler,
                                             guidance=args.guidance, foot_lock=args.foot_lock,
                                             rest_in_silence=args.rest_in_silence, dynamics=args.dynamics,
                                             beat_snap=args.beat_snap)
        t0 = time.time()
        loaded = music.result()
    finally:
        music.cancel()
    res = pipe(loaded, seed=args.seed, genre=None if args.genre is None else GENRES.index(args.genre),
               progress=progress_bar(PROG))
    t1 = time.time()
    written = pipe.save(res, **paths, view=args.view)
    n = len(res["motion"])
    print(f"{n} frames ({n / 30:.1f} s) generated in {t1 - t0:.1f} s; wrote {', '.join(written)}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    exit_now(main())
