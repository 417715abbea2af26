"""The one training loop every task uses; the only module that touches accelerate.

A task hands over a `TrainTask`: the model (``model(x_t, t, cond) -> prediction``), a dataset, a function that turns a
collated batch into ``(x_0, cond)``, its condition groups with their dropout probabilities, and optionally a function
that draws a sample grid for TensorBoard. The loop does the rest:

    accelerate (prepare, gradient accumulation, gather) · AdamW · linear warmup · gradient clipping · EMA ·
    atomic safetensors checkpoints every N steps (model, EMA, optimizer, RNG, resolved config) · --resume ·
    progress bar · TensorBoard loss + sample grids.

Data order and noise are functions of (seed, step, rank), so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .config import save_yaml
from .guidance import drop_conditions
from .io import atomic_write_json
from .schedule import DiffusionSchedule

TRAIN_DEFAULTS = dict(
    output_dir="runs/default",  # checkpoints/, logs/ and config.yaml go here
    steps=1000,                 # optimizer steps
    batch_size=32,              # per process and micro-batch; global batch = batch_size × processes × grad_accum
    grad_accum=1,               # micro-batches per optimizer step
    lr=2e-4,                    # AdamW peak learning rate
    weight_decay=0.0,           # AdamW decoupled weight decay
    warmup_steps=100,           # linear warmup from 0 to lr
    lr_schedule="constant",     # after warmup: constant | cosine (to 0 at `steps`)
    max_grad_norm=1.0,          # gradient clipping (0 = off)
    ema_decay=0.999,            # EMA of weights used for sampling (0 = no EMA)
    ckpt_every=500,             # checkpoint interval in steps (the last step is always saved)
    keep_checkpoints=2,         # how many step_* folders to keep
    sample_every=0,             # TensorBoard sample grid interval (0 = never)
    log_every=10,               # TensorBoard scalar interval
    seed=0,                     # data order, noise, timesteps, dropout
    num_workers=0,              # DataLoader workers
    threads=0,                  # torch.set_num_threads (0 = torch's default)
)
DIFFUSION_DEFAULTS = dict(
    schedule="linear",          # linear (1000/T-rescaled) | cosine | sigmoid
    T=1000,                     # training timesteps
    prediction_type="v_prediction",  # v_prediction (well-conditioned at every SNR) | epsilon | sample
)


@dataclass
class TrainTask:
    model: nn.Module
    dataset: torch.utils.data.Dataset
    batch_to: Callable[[Mapping], tuple[Tensor, dict]]    # collated batch → (x_0 (B, C, *S), cond dict)
    dropout: Mapping[str, float] = field(default_factory=dict)  # condition group → drop probability
    elementwise: Mapping[str, int] = field(default_factory=dict)  # groups dropped per element: name → K
    sample_grid: Callable[[nn.Module, int], Tensor] | None = None  # (ema model, step) → (N, 3, H, W) in [-1, 1]
    config: dict = field(default_factory=dict)            # the resolved config, saved with every checkpoint
    forward: Callable | None = None                       # (model, x_t, t, cond) → prediction; default model(x_t, t, cond)
    aux_loss: Callable | None = None                      # (x̂_0, x_0, t) → extra loss on the model's x_0 estimate


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: call before building a model so its initialisation is reproducible."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class StepBatches:
    """Batch indices as a pure function of (seed, micro-batch counter, rank): epoch-wise seeded permutations of the
    dataset, cut into consecutive global batches, each process taking its slice."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int, start: int = 0):
        if n == 0:
            raise ValueError("the dataset is empty")
        self.n, self.bs, self.seed, self.rank, self.world, self.start = n, batch_size, seed, rank, world, start

    def _perm(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        cache: dict[int, Tensor] = {}
        while True:
            first = (k * self.world + self.rank) * self.bs
            idx = []
            for p in range(first, first + self.bs):
                e = p // self.n
                if e not in cache:
                    cache.clear()
                    cache[e] = self._perm(e)
                idx.append(int(cache[e][p % self.n]))
            yield idx
            k += 1


class EMA:
    """θ_ema ← d θ_ema + (1 − d) θ on every optimizer step (with the usual (1+n)/(10+n) warm-up of d)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.n = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def make_adamw(params, **kw) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one pass over all parameters; CPU and CUDA in torch ≥ 2.4), else the foreach one."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kw)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, **kw)


def diffusion_loss(model: nn.Module, schedule: DiffusionSchedule, x0: Tensor, cond: dict, prediction_type: str,
                   generator: torch.Generator | None, forward: Callable | None = None,
                   aux_loss: Callable | None = None) -> Tensor:
    """L_simple (DDPM eq. 14): E_{t, ε} ‖target − model(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t, c)‖², t ~ U{0..T−1};
    plus ``aux_loss(x̂_0, x_0, t)`` on the model's x_0 estimate when given (e.g. EDGE's geometric losses)."""
    b = x0.shape[0]
    t = torch.randint(0, schedule.T, (b,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = schedule.q_sample(x0, t, eps)
    pred = model(x_t, t, cond) if forward is None else forward(model, x_t, t, cond)
    loss = F.mse_loss(pred, schedule.training_target(x0, t, eps, prediction_type))
    if aux_loss is not None:
        loss = loss + aux_loss(schedule.split_prediction(pred, x_t, t, prediction_type)[1], x0, t)
    return loss


# ---- checkpoints (safetensors only; nothing is unpickled) -----------------------------------------------------------
CKPT_RE = re.compile(r"^step_(\d{7})$")


def latest_checkpoint(output_dir: str) -> str | None:
    d = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(d):
        return None
    steps = sorted(int(m.group(1)) for n in os.listdir(d) if (m := CKPT_RE.match(n)))
    return os.path.join(d, f"step_{steps[-1]:07d}") if steps else None


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    sd = opt.state_dict()
    tensors = {f"state.{pid}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
               for pid, st in sd["state"].items() for k, v in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: str, model: nn.Module, ema: EMA | None, opt: torch.optim.Optimizer, step: int, cfg: dict,
                    generator: torch.Generator, extra: dict[str, Tensor] | None = None) -> None:
    """Write everything into `path`.tmp, then rename: a crash never leaves a half-written step folder."""
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_pretrained(os.path.join(tmp, "model"), safe_serialization=True)
    if ema is not None:
        ema.model.save_pretrained(os.path.join(tmp, "ema"), safe_serialization=True)
    tensors, meta = _optimizer_tensors(opt)
    save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
    rng = {"torch_rng": torch.get_rng_state(), "data_rng": generator.get_state()}
    save_file({**rng, **(extra or {})}, os.path.join(tmp, "state.safetensors"))
    with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
        json.dump({"step": step, "ema_n": ema.n if ema else 0, **meta}, f)
    save_yaml(cfg, os.path.join(tmp, "config.yaml"))
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


def _prune(output_dir: str, keep: int) -> None:
    d = os.path.join(output_dir, "checkpoints")
    steps = sorted(n for n in os.listdir(d) if CKPT_RE.match(n))
    for n in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(d, n), ignore_errors=True)


def load_weights(model: nn.Module, folder: str) -> nn.Module:
    """Load `folder/diffusion_pytorch_model.safetensors` (a save_pretrained folder) into `model` strictly."""
    path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    if not os.path.exists(path):
        raise ValueError(f"no safetensors weights at {path}")
    model.load_state_dict(load_file(path))
    return model


def _lr_lambda(cfg: dict):
    warm, total, kind = cfg["warmup_steps"], cfg["steps"], cfg["lr_schedule"]
    if kind not in ("constant", "cosine"):
        raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got {kind!r}")

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        return 1.0
    return f


def _grid(images: Tensor, nrow: int | None = None) -> Tensor:
    import torchvision

    images = images.detach().float().clamp(-1, 1).add(1).div(2)
    return torchvision.utils.make_grid(images, nrow=nrow or int(math.ceil(math.sqrt(images.shape[0]))))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or platform.machine()


def _record_timing(out: str, seconds: float, step: int, processes: int) -> None:
    """Accumulate wall time over resumed segments in out/timing.json (read by apps.export for model cards)."""
    path = os.path.join(out, "timing.json")
    prev = {}
    if os.path.exists(path):
        with open(path) as f:
            prev = json.load(f)
    rec = {"seconds": prev.get("seconds", 0.0) + seconds, "step": step, "processes": processes,
           "threads": torch.get_num_threads(), "machine": f"{cpu_name()} ({os.cpu_count()} cores)"}
    atomic_write_json(path, rec, indent=None, newline=False)


def train(task: TrainTask, train_cfg: Mapping, diffusion_cfg: Mapping, resume: bool = False) -> dict:
    """Run the loop; returns a summary {step, loss, seconds, output_dir}. Works single-process and under
    `accelerate launch` (CPU gloo, multi-GPU, multi-node) unchanged."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cfg = {**TRAIN_DEFAULTS, **dict(train_cfg)}
    dcfg = {**DIFFUSION_DEFAULTS, **dict(diffusion_cfg)}
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    out = cfg["output_dir"]
    acc = Accelerator(gradient_accumulation_steps=cfg["grad_accum"], log_with="tensorboard", project_dir=out)
    schedule = DiffusionSchedule.make(dcfg["schedule"], dcfg["T"])
    model = task.model
    opt = make_adamw(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    ema = EMA(model, cfg["ema_decay"]) if cfg["ema_decay"] > 0 else None
    gen = torch.Generator().manual_seed(cfg["seed"] * 7919 + acc.process_index)

    step = 0
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None:
        acc.print(f"--resume: no checkpoint in {out}/checkpoints, starting from step 0")
    if ckpt:
        load_weights(model, os.path.join(ckpt, "model"))
        with open(os.path.join(ckpt, "trainer_state.json")) as f:
            st = json.load(f)
        _load_optimizer(opt, load_file(os.path.join(ckpt, "optimizer.safetensors")), st)
        if ema is not None:
            load_weights(ema.model, os.path.join(ckpt, "ema"))
            ema.n = st["ema_n"]
        rng = load_file(os.path.join(ckpt, "state.safetensors"))
        gen.set_state(rng["data_rng"])
        torch.set_rng_state(rng["torch_rng"])
        step = st["step"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg), last_epoch=step - 1)
        acc.print(f"resumed from {ckpt} at step {step}")

    # the LR schedule is stepped by hand once per optimizer step (accelerate's wrapper would step it once per process)
    model, opt = acc.prepare(model, opt)
    sampler = StepBatches(len(task.dataset), cfg["batch_size"], cfg["seed"], acc.process_index, acc.num_processes,
                          start=step * cfg["grad_accum"])
    loader = torch.utils.data.DataLoader(task.dataset, batch_sampler=sampler, num_workers=cfg["num_workers"])
    batches = iter(loader)
    if acc.is_main_process:
        os.makedirs(out, exist_ok=True)
        save_yaml(task.config, os.path.join(out, "config.yaml"))
    acc.init_trackers("logs")
    writer = acc.get_tracker("tensorboard", unwrap=True) if acc.is_main_process else None

    t0, loss_avg, last_loss = time.time(), None, float("nan")
    bar = tqdm(total=cfg["steps"], initial=step, disable=not acc.is_local_main_process, desc="train")
    model.train()
    while step < cfg["steps"]:
        for _ in range(cfg["grad_accum"]):
            batch = next(batches)
            x0, cond = task.batch_to(batch)
            x0 = x0.to(acc.device)
            cond = {k: v.to(acc.device) for k, v in cond.items()}
            cond = drop_conditions(cond, task.dropout, x0.shape[0], gen, task.elementwise, device=None)
            cond = {k: v.to(acc.device) for k, v in cond.items()}
            with acc.accumulate(model):
                loss = diffusion_loss(model, schedule, x0, cond, dcfg["prediction_type"], gen, task.forward,
                                      task.aux_loss)
                acc.backward(loss)
                if acc.sync_gradients and cfg["max_grad_norm"] > 0:
                    acc.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
                opt.step()
                opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        if ema is not None:
            ema.update(acc.unwrap_model(model))
        last_loss = acc.gather(loss.detach().reshape(1)).mean().item()
        loss_avg = last_loss if loss_avg is None else 0.98 * loss_avg + 0.02 * last_loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.4f}")
        if step % cfg["log_every"] == 0:
            acc.log({"loss": last_loss, "loss_ema": loss_avg, "lr": sched.get_last_lr()[0]}, step=step)
        sample_model = ema.model if ema is not None else acc.unwrap_model(model)
        if writer is not None and task.sample_grid and cfg["sample_every"] and step % cfg["sample_every"] == 0:
            writer.add_image("samples", _grid(task.sample_grid(sample_model, step)), step)
        if step % cfg["ckpt_every"] == 0 or step == cfg["steps"]:
            acc.wait_for_everyone()
            if acc.is_main_process:
                path = os.path.join(out, "checkpoints", f"step_{step:07d}")
                save_checkpoint(path, acc.unwrap_model(model), ema, opt, step, task.config, gen)
                _prune(out, cfg["keep_checkpoints"])
            acc.wait_for_everyone()
    bar.close()
    acc.end_training()
    if acc.is_main_process:
        _record_timing(out, time.time() - t0, step, acc.num_processes)
    return {"step": step, "loss": loss_avg, "last_loss": last_loss, "seconds": time.time() - t0, "output_dir": out}


def run_cli(argv, description: str, default_config: str, defaults: dict, build_task: Callable[[dict], TrainTask]):
    """The body of every train script: parse `--config file key=value …`, print the resolved config on --dry-run
    (and return it), else seed, build the task and train. Returns (cfg, summary or None)."""
    from .config import load_config, train_argparser

    args = train_argparser(description, default_config).parse_args(argv)
    cfg = load_config(args.config, args.overrides, defaults)
    if args.dry_run:
        import yaml
        print(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        return cfg, None
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    seed_everything(cfg["train"]["seed"])
    summary = train(build_task(cfg), cfg["train"], cfg["diffusion"], resume=args.resume)
    print(f"done: step {summary['step']}, loss {summary['loss']:.4f}, {summary['seconds']:.0f} s -> {summary['output_dir']}")
    return cfg, summary

