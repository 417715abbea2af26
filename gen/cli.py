"""What every generation CLI shares: the same flags, the same defaults, one error path, a progress bar.

    p = argparse.ArgumentParser(...)
    add_common_args(p, task="calligraphy", sampling=CalligraphyPipeline.default_sampling)
    ...
    def main(argv=None): return run(lambda: _main(p.parse_args(argv)), prog="calligraphy-generate")

Flags: ``--model`` (default: the shipped model of the task, found from any folder), ``--seed``, ``--steps``,
``--scheduler``, ``--guidance`` (default: the model's own sampling settings, from its pipeline.json), ``--device``
(auto: cuda when present), ``--threads``. Bad input exits with status 2 and one ``prog: error: …`` line saying what
is accepted; no traceback reaches the user. Nothing heavy (torch) is imported here, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable, Mapping


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {lo}, got {v}")
        return v
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


def finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


MAX_GUIDANCE = 1000.0


def guidance_float(text: str) -> float:
    v = finite_float(text)
    if abs(v) > MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(f"expected a guidance weight in [-{MAX_GUIDANCE:g}, {MAX_GUIDANCE:g}], got {v:g}")
    return v


def add_common_args(p: argparse.ArgumentParser, task: str, sampling: Mapping, threads: int = 0) -> None:
    """The flags every generation CLI has; `sampling` holds the task's defaults (shown in --help; the model's own
    pipeline.json settings apply when a flag is not given)."""
    g = p.add_argument_group("model and sampling (common to every generate CLI)")
    g.add_argument("--model", default=task,
                   help=f"shipped model name ('{task}'), exported pipeline folder, run folder or checkpoint folder")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (same seed, same machine: same output)")
    g.add_argument("--steps", type=positive_int, default=None,
                   help=f"sampler steps (default: the model's, {sampling.get('steps')} for the shipped one)")
    g.add_argument("--scheduler", default=None,
                   help=f"sampler name from gen.sampling's registry (default: the model's, "
                        f"{sampling.get('scheduler')!r} for the shipped one; `python -m gen.sampling` lists them), or "
                        "'distilled' for the model's few-step distilled student where it ships one (also chosen by "
                        "--steps equal to the student's step count when the model's default is another)")
    g.add_argument("--guidance", type=guidance_float, default=None,
                   help=f"classifier-free guidance weight (default: the model's, {sampling.get('guidance')} for the "
                        "shipped one)")
    g.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu, cuda or cuda:N")
    g.add_argument("--threads", type=nonnegative_int, default=threads, help="torch CPU threads (0 = torch's default)")
    g.add_argument("--checkpoint", dest="model", help=argparse.SUPPRESS)  # the old name of --model


def setup_runtime(args) -> object:
    """Apply --threads and resolve --device (ValueError on a device that is not there). Returns the torch.device."""
    import torch

    from .pipeline import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def progress_bar(desc: str, unit: str = "step") -> Callable[[int, int], None]:
    """A ProgressFn (done, total) drawing a tqdm bar on stderr, shown only when the work takes over a second."""
    from tqdm.auto import tqdm

    state: dict = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, delay=1.0, leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            state.pop("bar", None)
    return update


def run(fn: Callable[[], int | None], prog: str) -> int:
    """Run a CLI body: ValueError / OSError (bad input, unreadable files) → `prog: error: …` on stderr, status 2.
    In the CLI's own process (the console script `prog`), the process ends here through `exit_now`."""
    try:
        rc = fn()
        rc = 0 if rc is None else int(rc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        rc = 130
    except (ValueError, OSError) as e:
        msg = str(e).strip() or type(e).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        rc = 2
    if os.path.basename(sys.argv[0]) == prog:  # the console script itself, not a caller of main()
        exit_now(rc)
    return rc


def exit_now(rc: int | None) -> None:
    """End a CLI process at once with status rc, after flushing stdout / stderr: every output is written and closed
    by then (atomically, `gen.io`), and the interpreter's own teardown (freeing torch, diffusers and their modules)
    costs 0.3-0.9 s on this CPU, paid after the user's files exist. For `python -m <cli>` (`if __name__ ==
    "__main__": exit_now(main())`) and console scripts (`run`); never for a caller of `main()` in its own process."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    os._exit(0 if rc is None else int(rc))
