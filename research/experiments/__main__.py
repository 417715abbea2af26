"""CLI: ``python -m research.experiments <name> [--quick] --out docs/experiments/<name>/``."""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

import torch

from . import EXPERIMENTS
from .common import DEFAULT_CACHE, Context, write_json


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
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = a.out or os.path.join("docs", "experiments", a.name)
    os.makedirs(out, exist_ok=True)
    command = "python -m research.experiments " + " ".join(shlex.quote(s) for s in argv)
    ctx = Context(out=out, quick=a.quick, cache=a.cache, seed=a.seed, command=command)
    results = importlib.import_module(f".{a.name}", __package__).run(ctx)
    results["command"] = command
    write_json(os.path.join(out, "results.json"), results)
    return results


if __name__ == "__main__":
    main()
