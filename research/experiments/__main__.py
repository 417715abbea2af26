"""CLI: ``python -m research.experiments <name> [--quick] --out docs/experiments/<name>/``."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time

import torch

from . import EXPERIMENTS
from .common import DEFAULT_CACHE, Context, machine, write_json


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m research.experiments", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment to run")
    p.add_argument("--out", default=None, help="output folder (default docs/experiments/<name>/)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests); numbers are not meaningful")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="folder for the cached judge and shared model (safetensors)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--render", action="store_true",
                   help="only rewrite README.md from the folder's existing results.json (no computation)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = a.out or os.path.join("docs", "experiments", a.name)
    os.makedirs(out, exist_ok=True)
    module = importlib.import_module(f".{a.name}", __package__)
    if a.render:
        return render(module, out)
    command = "python -m research.experiments " + " ".join(shlex.quote(s) for s in argv)
    ctx = Context(out=out, quick=a.quick, cache=a.cache, seed=a.seed, command=command)
    results = module.run(ctx)
    results["command"] = command
    results.setdefault("wall_seconds", round(time.time() - ctx.started, 1))
    results.setdefault("machine", machine())
    write_json(os.path.join(out, "results.json"), results)
    return results


def render(module, out: str) -> dict:
    """README.md from results.json alone: every number and every sentence of the conclusion is a function of it."""
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    machine_line = results.get("machine")
    readme = os.path.join(out, "README.md")
    if machine_line is None and os.path.exists(readme):   # older runs recorded the machine only in the README
        with open(readme) as f:
            old = next((ln for ln in f if ln.startswith("**Machine.** ")), None)
        machine_line = old[len("**Machine.** "):].split(" (README re-rendered")[0].strip() if old else None
    ctx = Context(out=out, quick=results.get("quick", False), command=results.get("command", ""),
                  wall_seconds=results.get("wall_seconds"), rendered=True, machine=machine_line)
    module._readme(ctx, results)
    return results


if __name__ == "__main__":
    main()
