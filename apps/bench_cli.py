"""Time to first output of each generate CLI, as a user runs it: a fresh process per call, start-up included.

    python -m apps.bench_cli --json reports/bench_cli.json            # 3 runs of each command (~2 minutes)
    python -m apps.bench_cli --repeats 1 --json /tmp/bench_cli.json    # one run each

Each command is run as a subprocess (`python -m <module> …`, which is what the console scripts call) on the shipped
models; the report keeps every run's wall time, the median, and, for each CLI, the split between start-up (the same
process answering `--help`, and importing the module without running it) and the rest, and `warm`: the same command
run a second time inside one process (imports done, the model loaded again), which is what the web app and the Python
API pay per request. The targets of the speed
issue are written next to the medians: a 9-character work + its video ≤ 1 s, 30 s of music → MP4 + BVH ≤ 6 s,
`attributes-generate --num 16` ≤ 2 s. The load average before and after is recorded: a loaded machine inflates every
wall time, so compare runs of one report, not across reports; `generate_cpu` (user + sys CPU seconds of the process)
is much less sensitive to other load than the wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {"calligraphy": 1.0, "calligraphy_distilled": 1.0, "dance": 6.0, "attributes": 2.0,
           "attributes_distilled": 2.0}  # s, the speed issue


def write_test_song(path: str, seconds: float = 30.0, bpm: float = 120.0, sr: int = 22050) -> None:
    """A 30-s drum-and-bass loop (numpy only, deterministic): kicks on the beat, a bass note per beat."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 60.0 / bpm
    phase = (t % beat) / beat
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-phase * beat * 18)
    notes = np.array([55.0, 55.0, 65.4, 49.0])[(t // beat).astype(int) % 4]
    bass = 0.3 * np.sign(np.sin(2 * np.pi * notes * t)) * np.exp(-phase * beat * 4)
    hat = 0.05 * np.random.default_rng(0).standard_normal(n) * (((t + beat / 2) % beat) / beat < 0.05)
    audio = 0.6 * (kick + bass + hat) / 1.5
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def commands(tmp: str) -> dict[str, dict]:
    song = os.path.join(tmp, "song30.wav")
    write_test_song(song)
    return {
        "calligraphy": {"module": "tasks.calligraphy.generate",
                        "args": ["--text", "永和九年歲在癸丑暮", "--out", os.path.join(tmp, "work.png"),
                                 "--video", os.path.join(tmp, "work.mp4"), "--seed", "0"],
                        "what": "9-character work (PNG) + writing video (MP4)"},
        "calligraphy_distilled": {"module": "tasks.calligraphy.generate",
                                  "args": ["--text", "永和九年歲在癸丑暮", "--out", os.path.join(tmp, "work4.png"),
                                           "--video", os.path.join(tmp, "work4.mp4"), "--seed", "0",
                                           "--scheduler", "distilled"],
                                  "what": "the same work with the shipped 4-step distilled student",
                                  "needs": "distilled"},
        "dance": {"module": "tasks.dance.generate",
                  "args": ["--music", song, "--out", os.path.join(tmp, "dance.mp4"),
                           "--bvh", os.path.join(tmp, "dance.bvh"), "--seed", "0"],
                  "what": "30 s of music → MP4 (music muxed) + BVH"},
        "attributes": {"module": "tasks.attributes.generate",
                       "args": ["--prompt", "glasses & beard", "--num", "16", "--out", os.path.join(tmp, "grid.png"),
                                "--seed", "0"],
                       "what": "16 faces from a composite prompt (PNG grid)"},
        "attributes_distilled": {"module": "tasks.attributes.generate",
                                 "args": ["--prompt", "glasses & beard", "--num", "16", "--out",
                                          os.path.join(tmp, "grid4.png"), "--seed", "0", "--scheduler", "distilled"],
                                 "what": "the same grid with the shipped 4-step distilled student",
                                 "needs": "distilled"},
    }


CPU: dict[str, list[float]] = {}  # command name → CPU seconds (user + sys) of each `generate` run


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(argv: list[str], env: dict, cpu_key: str | None = None) -> float:
    t0, c0 = time.perf_counter(), _child_cpu()
    r = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench_cli: {' '.join(argv)} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    if cpu_key:
        CPU.setdefault(cpu_key, []).append(_child_cpu() - c0)
    return dt


WARM = """import importlib, sys, time
main = importlib.import_module(sys.argv[1]).main
main(sys.argv[2:])                      # first call: imports, JIT, file caches
t0 = time.perf_counter()
rc = main(sys.argv[2:])                 # second call: what a warm process (the web app, the Python API) pays
print(f"WARM {time.perf_counter() - t0:.4f}")
sys.exit(rc or 0)
"""


def warm(py: str, c: dict, env: dict) -> float:
    """The same command's second run inside one process (model loaded again from disk, imports already done)."""
    r = subprocess.run([py, "-c", WARM, c["module"], *c["args"]], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_cli: warm run of {c['module']} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    return float(r.stdout.strip().splitlines()[-1].split()[1])


def _ships_student(module: str) -> bool:
    task = module.split(".")[1]
    with open(os.path.join(ROOT, "checkpoints", task, "pipeline.json"), encoding="utf-8") as f:
        return bool(json.load(f).get("distilled"))


def run(repeats: int, only: list[str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    py = sys.executable
    report = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                          "load_avg_before": os.getloadavg()}, "repeats": repeats, "targets_s": TARGETS, "cli": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, c in commands(tmp).items():
            if only and name not in only:
                continue
            if c.get("needs") == "distilled" and not _ships_student(c["module"]):
                print(f"{name}: skipped (the shipped model has no distilled student)", flush=True)
                continue
            full = [py, "-m", c["module"], *c["args"]]
            runs = {"help": [timed([py, "-m", c["module"], "--help"], env) for _ in range(repeats)],
                    "import": [timed([py, "-c", f"import {c['module']}"], env) for _ in range(repeats)],
                    "generate": [timed(full, env, cpu_key=name) for _ in range(repeats)],
                    "warm": [warm(py, c, env) for _ in range(repeats)]}
            runs["generate_cpu"] = CPU[name]
            med = {k: statistics.median(v) for k, v in runs.items()}
            report["cli"][name] = {"what": c["what"], "command": f"python -m {c['module']} " + " ".join(
                a.replace(tmp, "$TMP") for a in c["args"]), "runs_s": runs, "median_s": med,
                "target_s": TARGETS[name], "meets_target": med["generate"] <= TARGETS[name]}
            print(f"{name}: generate {med['generate']:.2f} s (target ≤ {TARGETS[name]} s), warm {med['warm']:.2f} s, "
                  f"--help {med['help']:.2f} s, import {med['import']:.2f} s", flush=True)
    report["machine"]["load_avg_after"] = os.getloadavg()
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="runs of each command (the median is reported)")
    p.add_argument("--only", nargs="*", choices=sorted(TARGETS), help="only these CLIs")
    p.add_argument("--json", default="reports/bench_cli.json", help="where to write the report")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be ≥ 1")
    from gen.io import atomic_write_json
    report = run(args.repeats, args.only)
    report["command"] = ("python -m apps.bench_cli" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
                         + (f" --only {' '.join(args.only)}" if args.only else "") + f" --json {args.json}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    atomic_write_json(args.json, report, newline=False)
    print(json.dumps({k: v["median_s"] for k, v in report["cli"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
