"""Backbone benchmark: our training step vs the diffusers reference loop, side by side in one process.

    python -m apps.bench --json reports/bench_backbone.json          # full (a few minutes)
    python -m apps.bench --quick --json /tmp/bench.json              # < 1 minute

Reference loop = diffusers' `examples/unconditional_image_generation/train_unconditional.py` step: UNet2DModel,
DDPMScheduler.add_noise, MSE on ε, backward, clip_grad_norm 1.0, AdamW, EMAModel.step. Ours = the same step through
gen.train (diffusion_loss, clipping, AdamW, EMA) on a ConditionalUNet of the same parameter count (within 10 %), at the
same resolution and batch. FLOPs are counted by torch.utils.flop_counter for one full step (forward + backward) of each
model; utilisation = achieved training GFLOP/s ÷ the measured fp32 matmul GFLOP/s of this machine. "Ours compiled" is
the same step with the model through `gen.train.compile_model` (torch.compile, inductor): its first step (the
compilation) is reported apart, and its losses on the same inputs must agree with eager ones (`compiled_loss_max_diff`).

    python -m apps.bench --tasks --json reports/bench_tasks.json      # each task's default training config

`--tasks` runs each task's own train script (`tasks/<task>/train.py --config configs/<task>.yaml`, a fresh process
each, the config's batch and model) for a few steps with `train.compile=false` and then `=true`, and reads the step
times the trainer records (`timing.json` → `segment`: first step, median steady step).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from gen.io import atomic_write_json
from gen.sampling import sample_ddim, sample_ddpm, sample_diffusers
from gen.schedule import DiffusionSchedule
from gen.train import EMA, compile_model, diffusion_loss, make_adamw
from gen.unet import ConditionalUNet

# diffusers reference: 4.33 M parameters at 64×64 (the size the backbone issue measured at ~74 GFLOP/s)
DIFFUSERS_UNET = dict(sample_size=64, in_channels=3, out_channels=3, layers_per_block=1,
                      block_out_channels=(32, 64, 128, 128),
                      down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
# ours at the same parameter count: space-to-depth stem (patch 2) so no level runs at full 64×64 resolution
OURS_UNET_2D = dict(dims=2, in_channels=3, base_channels=64, channel_mult=(1, 2, 2), layers_per_block=1,
                    attention_levels=(2,), head_dim=32, patch_size=2)
OURS_UNET_1D = dict(dims=1, in_channels=151, base_channels=128, channel_mult=(1, 2, 2), layers_per_block=1,
                    attention_levels=(2,), head_dim=32)


def params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def count_flops(step) -> float:
    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def time_steps(step, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def diffusers_step_fn(batch: int, res: int):
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    model = UNet2DModel(**{**DIFFUSERS_UNET, "sample_size": res})
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    x0 = torch.randn(batch, 3, res, res)

    def step():
        noise = torch.randn(x0.shape)
        t = torch.randint(0, 1000, (batch,))
        noisy = sched.add_noise(x0, noise, t)
        loss = F.mse_loss(model(noisy, t).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(model.parameters())
    return model, step


def ours_step_fn(cfg: dict, shape: tuple, compiled: bool = False, losses: list | None = None):
    torch.manual_seed(0)
    model = ConditionalUNet(**cfg)
    fwd = compile_model(model) if compiled else model
    schedule = DiffusionSchedule.make("cosine", 1000)
    opt = make_adamw(model.parameters(), lr=1e-4)
    ema = EMA(model, 0.9999)
    x0 = torch.randn(shape)
    g = torch.Generator().manual_seed(0)

    def step():
        loss = diffusion_loss(fwd, schedule, x0, {}, "v_prediction", g, forward=lambda m, x, t, c: m(x, t))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)
        if losses is not None:
            losses.append(loss.item())
    return model, step


def sampling_ms(model: ConditionalUNet, shape: tuple, quick: bool) -> dict:
    """Wall ms per image for our DDPM / DDIM loops and diffusers' DPM-Solver++ on the given (untrained) model."""
    schedule = DiffusionSchedule.make("cosine", 1000)
    f = lambda x, t: model(x, t)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    runs = {"ddpm": (sample_ddpm, dict(steps=100 if quick else 1000)),
            "ddim": (sample_ddim, dict(steps=50)),
            "dpm++": (sample_diffusers, dict(scheduler="dpm++", steps=20))}
    out = {}
    with torch.inference_mode():
        for name, (fn, kw) in runs.items():
            t0 = time.perf_counter()
            fn(f, shape, schedule, generator=g, prediction_type="v_prediction", **kw)
            out[name] = {"steps": kw["steps"], "ms_per_image": 1000 * (time.perf_counter() - t0) / shape[0]}
    return out


def run(quick: bool) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    res, batch = (64, 32) if not quick else (64, 8)
    n = 3 if quick else 10
    report = {"machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "platform": platform.platform(), "load_avg_before": os.getloadavg()},
              "quick": quick, "resolution": res, "batch": batch}
    report["matmul_gflops"] = matmul_gflops(seconds=1.0 if quick else 3.0)

    d_model, d_step = diffusers_step_fn(batch, res)
    o_model, o_step = ours_step_fn(OURS_UNET_2D, (batch, 3, res, res))
    report["params"] = {"diffusers": params(d_model), "ours": params(o_model)}
    flops = {"diffusers": count_flops(d_step), "ours": count_flops(o_step)}
    # interleave the two timings so a background load hits both alike
    secs = {"diffusers": [], "ours": []}
    for _ in range(1 if quick else 3):
        secs["diffusers"].append(time_steps(d_step, n))
        secs["ours"].append(time_steps(o_step, n))
    best = {k: min(v) for k, v in secs.items()}
    report["train_step_s"] = best
    report["train_img_per_s"] = {k: batch / v for k, v in best.items()}
    report["train_speedup_vs_diffusers"] = best["diffusers"] / best["ours"]
    report["train_gflop_per_step"] = {k: v / 1e9 for k, v in flops.items()}
    report["train_gflops_diffusers"] = flops["diffusers"] / best["diffusers"] / 1e9
    report["train_gflops_ours"] = flops["ours"] / best["ours"] / 1e9
    report["train_utilisation"] = report["train_gflops_ours"] / report["matmul_gflops"]
    report["train_utilisation_diffusers"] = report["train_gflops_diffusers"] / report["matmul_gflops"]

    # compiled: same model, same inputs; the first steps' losses must match eager ones (same weights, same noise)
    eager_losses, comp_losses = [], []
    _, e_step = ours_step_fn(OURS_UNET_2D, (batch, 3, res, res), losses=eager_losses)
    c_model, c_step = ours_step_fn(OURS_UNET_2D, (batch, 3, res, res), compiled=True, losses=comp_losses)
    t0 = time.perf_counter()
    c_step()
    compile_s = time.perf_counter() - t0
    for _ in range(2):
        c_step()
    for _ in range(3):
        e_step()
    c_secs = []
    for _ in range(1 if quick else 3):
        secs["ours"].append(time_steps(o_step, n, warmup=0))
        c_secs.append(time_steps(c_step, n, warmup=0))
    best["ours"] = min(secs["ours"])
    report["compiled"] = {"compile_seconds": compile_s, "train_step_s": min(c_secs),
                          "train_img_per_s": batch / min(c_secs),
                          "speedup_vs_eager": best["ours"] / min(c_secs),
                          "speedup_vs_diffusers": best["diffusers"] / min(c_secs),
                          "utilisation": flops["ours"] / min(c_secs) / 1e9 / report["matmul_gflops"],
                          "compiled_loss_max_diff": max(abs(a - b) for a, b in zip(eager_losses, comp_losses))}
    report["train_step_s"]["ours"] = best["ours"]
    report["train_img_per_s"]["ours"] = batch / best["ours"]
    report["train_speedup_vs_diffusers"] = best["diffusers"] / best["ours"]
    report["train_gflops_ours"] = flops["ours"] / best["ours"] / 1e9
    report["train_utilisation"] = report["train_gflops_ours"] / report["matmul_gflops"]

    seq = (batch, OURS_UNET_1D["in_channels"], 150)
    m1, s1 = ours_step_fn(OURS_UNET_1D, seq)
    f1 = count_flops(s1)
    t1 = time_steps(s1, n)
    report["train_1d"] = {"params": params(m1), "shape": list(seq), "seq_per_s": batch / t1,
                          "gflops": f1 / t1 / 1e9, "utilisation": f1 / t1 / 1e9 / report["matmul_gflops"]}
    report["sampling_2d"] = sampling_ms(o_model.eval(), (4, 3, res, res), quick)
    report["machine"]["load_avg_after"] = os.getloadavg()
    return report


# each task's default training config; overrides only where the config needs a run this benchmark does not make
TASK_CONFIGS = {"attributes": ["model.init_from="], "calligraphy": [], "dance": []}


def task_bench(task: str, steps: int, compiled: bool, extra: list[str]) -> dict:
    """Run tasks/<task>/train.py --config configs/<task>.yaml for `steps` steps in a fresh process; its timing.json."""
    import subprocess
    import sys
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, os.path.join(root, "tasks", task, "train.py"), "--config",
                os.path.join(root, "configs", f"{task}.yaml"), f"train.steps={steps}", f"train.output_dir={tmp}",
                f"train.ckpt_every={steps}", "train.sample_every=0", f"train.compile={str(compiled).lower()}", *extra]
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:], "command": " ".join(argv[1:])}
        with open(os.path.join(tmp, "timing.json")) as f:
            seg = json.load(f)["segment"]
    return {"first_step_s": seg["first_step_seconds"], "median_step_s": seg["median_step_seconds"],
            "compiled": seg["compiled"], "process_wall_s": wall}


def run_tasks(steps: int, only: list[str] | None = None) -> dict:
    out = {"machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform(),
                       "load_avg_before": os.getloadavg()}, "steps": steps, "tasks": {}}
    for task, extra in TASK_CONFIGS.items():
        if only and task not in only:
            continue
        e = task_bench(task, steps, False, extra)
        c = task_bench(task, steps, True, extra)
        row = {"eager": e, "compiled": c}
        if "error" not in e and "error" not in c:
            row["it_per_s"] = {"eager": 1 / e["median_step_s"], "compiled": 1 / c["median_step_s"]}
            row["speedup"] = e["median_step_s"] / c["median_step_s"]
            row["compile_seconds"] = c["first_step_s"] - e["median_step_s"]
        out["tasks"][task] = row
        print(task, json.dumps(row), flush=True)
    out["machine"]["load_avg_after"] = os.getloadavg()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small batch, few repetitions (< 1 minute)")
    p.add_argument("--tasks", action="store_true", help="benchmark each task's default training config instead")
    p.add_argument("--steps", type=int, default=12, help="with --tasks: training steps per run (the first compiles)")
    p.add_argument("--task", action="append", choices=sorted(TASK_CONFIGS), help="with --tasks: only this task")
    p.add_argument("--json", default="reports/bench_backbone.json", help="where to write the report")
    args = p.parse_args(argv)
    if args.tasks:
        report = run_tasks(args.steps, args.task)
        report["command"] = (f"python -m apps.bench --tasks --steps {args.steps}"
                             + "".join(f" --task {t}" for t in args.task or []) + f" --json {args.json}")
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        atomic_write_json(args.json, report, newline=False)
        return report
    report = run(args.quick)
    report["command"] = "python -m apps.bench" + (" --quick" if args.quick else "") + f" --json {args.json}"
    d = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(d, exist_ok=True)
    atomic_write_json(args.json, report, newline=False)
    keys = ["train_img_per_s", "train_speedup_vs_diffusers", "train_gflops_ours", "matmul_gflops", "train_utilisation",
            "compiled"]
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    return report


if __name__ == "__main__":
    main()
