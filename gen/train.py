"""The one training loop every task uses; the only module that touches accelerate.

A task hands over a `TrainTask`: the model (``model(x_t, t, cond) -> prediction``), a dataset, a function that turns a
collated batch into ``(x_0, cond)``, its condition groups with their dropout probabilities, and optionally a function
that draws a sample grid for TensorBoard. The loop does the rest:

    accelerate (prepare, gradient accumulation, gather) · AdamW · linear warmup · gradient clipping · EMA ·
    atomic safetensors checkpoints every N steps (model, EMA, optimizer, every process's RNG, resolved config) ·
    --resume · progress bar · TensorBoard loss + sample grids.

Randomness, per process (rank R of N), all of it restored by --resume so that an interrupted and resumed run equals an
uninterrupted one bit for bit:
- data order: `StepBatches`, a pure function of (seed, micro-batch counter, rank) — one global permutation per epoch,
  each process taking its own slice of every global batch;
- timesteps and noise: the loop's own generator, seeded from (seed, R);
- condition dropout (`TrainTask.dropout` / `elementwise`): another own generator, seeded from (seed, R);
- everything else that draws from torch's / numpy's / Python's global RNG inside the loop (``nn.Dropout``, a task's
  ``batch_to`` such as a whole-condition drop): the loop seeds the global RNGs from (seed, R) when the loop starts and
  restores them there on --resume, after the data iterator exists (creating one draws from the global RNG).
Each checkpoint holds one ``rng_rank{R}.safetensors`` per process. The data set itself must be deterministic per index.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .config import ConfigError, check_choice, check_float, check_int, cli_error, save_yaml
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
    keep_checkpoints=2,         # how many step_* folders to keep (0 = all)
    sample_every=0,             # TensorBoard sample grid interval (0 = never)
    log_every=10,               # TensorBoard scalar interval
    seed=0,                     # data order, noise, timesteps, dropout (each process its own streams from seed + rank)
    num_workers=0,              # DataLoader workers
    threads=0,                  # torch.set_num_threads (0 = torch's default)
    compile=False,              # torch.compile the model (inductor; first step compiles; eager if it cannot)
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


# ---- configuration checks --------------------------------------------------------------------------------------------
LR_SCHEDULES = ("constant", "cosine")


def check_train_config(train_cfg: Mapping, diffusion_cfg: Mapping) -> None:
    """Types and ranges of every train.* and diffusion.* key; ConfigError (one line: what is wrong, what is accepted)."""
    from .schedule import PredictionType, ScheduleKind

    c, d = train_cfg, diffusion_cfg
    for name, given, known in (("train", c, TRAIN_DEFAULTS), ("diffusion", d, DIFFUSION_DEFAULTS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key {name}.{unknown[0]!r}; valid keys here: {sorted(known)}")
    if not isinstance(c["output_dir"], str) or not c["output_dir"].strip():
        raise ConfigError(f"train.output_dir must be a non-empty path, got {c['output_dir']!r}")
    check_int("train.steps", c["steps"], 1)
    check_int("train.batch_size", c["batch_size"], 1, note="per process and micro-batch")
    check_int("train.grad_accum", c["grad_accum"], 1)
    check_float("train.lr", c["lr"], 0, low_open=True)
    check_float("train.weight_decay", c["weight_decay"], 0)
    check_int("train.warmup_steps", c["warmup_steps"], 0)
    check_choice("train.lr_schedule", c["lr_schedule"], LR_SCHEDULES)
    check_float("train.max_grad_norm", c["max_grad_norm"], 0, note="0 = no clipping")
    check_float("train.ema_decay", c["ema_decay"], 0, 1, high_open=True, note="0 = no EMA")
    check_int("train.ckpt_every", c["ckpt_every"], 1, note="steps between checkpoints; the last step is always saved")
    check_int("train.keep_checkpoints", c["keep_checkpoints"], 0, note="0 = keep all")
    check_int("train.sample_every", c["sample_every"], 0, note="0 = never")
    check_int("train.log_every", c["log_every"], 1)
    check_int("train.seed", c["seed"], 0, 2 ** 63 - 1)
    check_int("train.num_workers", c["num_workers"], 0)
    check_int("train.threads", c["threads"], 0, note="0 = torch's default")
    if not isinstance(c["compile"], bool):
        raise ConfigError(f"train.compile must be true or false, got {c['compile']!r}")
    check_choice("diffusion.schedule", d["schedule"], [k.value for k in ScheduleKind])
    check_int("diffusion.T", d["T"], 1)
    check_choice("diffusion.prediction_type", d["prediction_type"], [k.value for k in PredictionType])


def _check_task(task: "TrainTask") -> None:
    for g, p in task.dropout.items():
        check_float(f"the dropout probability of condition group {g!r}", p, 0, 1)


def _producer_hint(init_from: str, config_path: str | None) -> str:
    """Which config (and command) writes the run folder `init_from` lies in, found among the YAML files next to the
    config in use (train.output_dir a prefix of init_from), and which checkpoints that run already has."""
    import glob

    import yaml

    target = os.path.normpath(init_from)
    dirs = [os.path.dirname(config_path)] if config_path and os.path.dirname(config_path) else []
    dirs += [] if "configs" in dirs else ["configs"]
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.yaml"))):
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                od = ((yaml.safe_load(text) or {}).get("train") or {}).get("output_dir")
            except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
                continue
            if not isinstance(od, str) or not od:
                continue
            od = os.path.normpath(od)
            if target != od and not target.startswith(od + os.sep):
                continue
            m = re.search(r"accelerate launch (\S+) --config " + re.escape(path) + r"(?!\S)", text)
            cmd = f"accelerate launch {m.group(1) if m else 'apps/pretrain.py'} --config {path}"
            have = ""
            ck = os.path.join(od, "checkpoints")
            if os.path.isdir(ck):
                steps = sorted(n for n in os.listdir(ck) if CKPT_RE.match(n))
                if steps:
                    have = (f" ({ck} has {', '.join(steps)}: point model.init_from at "
                            f"{os.path.join(ck, steps[-1], 'ema')} to use the newest)")
            return f": create it with `{cmd}` (it writes {od}){have}"
    return ": point it at a save_pretrained folder (a run's checkpoints/step_N/ema)"


def check_init_from(cfg: Mapping, config_path: str | None = None) -> None:
    """A non-empty model.init_from must exist; the error says which command creates it."""
    model = cfg.get("model")
    init = model.get("init_from") if isinstance(model, Mapping) else None
    if not init or os.path.exists(init):
        return
    raise ConfigError(f"model.init_from {init!r} does not exist{_producer_hint(init, config_path)}; or pass "
                      f"model.init_from= to train from scratch")


# ---- random streams, one set per process -----------------------------------------------------------------------------
_NOISE, _DROPOUT, _LOADER, _GLOBAL = range(4)


def stream_seed(seed: int, rank: int, stream: int, salt: int = 0) -> int:
    """A well-mixed 63-bit seed for one random stream of one process: distinct for every (seed, rank, stream, salt)."""
    import numpy as np

    entropy = [int(seed), int(rank), int(stream)] + ([int(salt)] if salt else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


class RankRNG:
    """Every random stream one process draws from in the loop, seeded from (seed, rank):

    noise (t, ε) and dropout (condition keep flags) are the loop's own generators; loader only seeds DataLoader workers
    (the same in a fresh and a resumed run, so it is not saved); torch's (and CUDA's), numpy's and Python's global RNGs
    are seeded by `seed_globals` when the loop starts, for whatever else draws from them (nn.Dropout, a task's batch_to).
    `to_bytes` / `load` save and restore all of it as safetensors (tensors + JSON metadata; nothing pickled)."""

    def __init__(self, seed: int, rank: int, device=None, salt: int = 0):
        self.seed, self.rank, self.salt = seed, rank, salt
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.noise = torch.Generator().manual_seed(stream_seed(seed, rank, _NOISE, salt))
        self.dropout = torch.Generator().manual_seed(stream_seed(seed, rank, _DROPOUT, salt))
        self.loader = torch.Generator().manual_seed(stream_seed(seed, rank, _LOADER))

    def seed_globals(self) -> None:
        s = stream_seed(self.seed, self.rank, _GLOBAL, self.salt)
        torch.manual_seed(s)  # CPU and every CUDA device
        import numpy as np
        np.random.seed(s % 2 ** 32)
        random.seed(s)

    def state(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        import numpy as np

        tensors = {"noise": self.noise.get_state(), "dropout": self.dropout.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            tensors["cuda"] = torch.cuda.get_rng_state(self.device)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        version, internal, gauss_next = random.getstate()
        tensors["python"] = torch.tensor(internal, dtype=torch.int64)
        meta = {"format": "1", "seed": str(self.seed), "rank": str(self.rank),
                "numpy": json.dumps([kind, int(pos), int(has_gauss), float(cached)]),
                "python": json.dumps([version, gauss_next])}
        return tensors, meta

    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        tensors, meta = self.state()
        return save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)

    @staticmethod
    def validate(tensors: Mapping[str, Tensor], meta: Mapping[str, str] | None) -> None:
        """Raise ValueError unless (tensors, meta) is a complete state `load` accepts."""
        missing = [k for k in ("noise", "dropout", "torch", "numpy", "python") if k not in tensors]
        missing += [f"metadata {k}" for k in ("numpy", "python") if k not in (meta or {})]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        for k in ("noise", "dropout", "torch"):
            torch.Generator().set_state(tensors[k])  # raises on a wrong size / dtype
        json.loads(meta["numpy"]), json.loads(meta["python"])

    def load(self, tensors: Mapping[str, Tensor], meta: Mapping[str, str]) -> None:
        import numpy as np

        self.noise.set_state(tensors["noise"])
        self.dropout.set_state(tensors["dropout"])
        torch.set_rng_state(tensors["torch"])
        if "cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["cuda"], self.device)
        kind, pos, has_gauss, cached = json.loads(meta["numpy"])
        np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
        version, gauss_next = json.loads(meta["python"])
        random.setstate((version, tuple(int(x) for x in tensors["python"].tolist()), gauss_next))


def _gather_bytes(acc, data: bytes) -> list[bytes]:
    """Every process's `data`, in rank order, on every process (a collective: all processes must call it)."""
    if acc.num_processes == 1:
        return [data]
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    n = acc.gather(torch.tensor([t.numel()], dtype=torch.int64, device=acc.device)).cpu().tolist()
    buf = torch.zeros(max(n), dtype=torch.uint8)
    buf[:t.numel()] = t
    allb = acc.gather(buf.to(acc.device)).cpu().reshape(len(n), max(n))
    return [allb[i, :n[i]].numpy().tobytes() for i in range(len(n))]


# ---- checkpoints (safetensors + JSON/YAML only; nothing is unpickled) ------------------------------------------------
CKPT_RE = re.compile(r"^step_(\d{7})$")
STALE_RE = re.compile(r"^step_(\d{7})(\.old)?\.tmp$")   # a save interrupted before / while its rename
RNG_FILE = "rng_rank{}.safetensors"
WEIGHTS = "diffusion_pytorch_model.safetensors"


class CheckpointError(ValueError):
    """A step folder that is incomplete or damaged (a file missing, truncated or unparsable)."""


class ResumeError(RuntimeError):
    """--resume found checkpoints but none of them loads."""


def checkpoint_dirs(output_dir: str) -> list[str]:
    """A run's step_NNNNNNN folders, newest first (the 7-digit names sort by step)."""
    d = os.path.join(output_dir, "checkpoints")
    names = sorted((n for n in os.listdir(d) if CKPT_RE.match(n)), reverse=True) if os.path.isdir(d) else []
    return [os.path.join(d, n) for n in names]


def latest_checkpoint(output_dir: str) -> str | None:
    """The newest step_N folder by step number (whether it loads or not; `find_resumable` checks)."""
    dirs = checkpoint_dirs(output_dir)
    return dirs[0] if dirs else None


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


def _fsync(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # folders cannot be opened on some platforms (Windows): nothing to sync there
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems refuse fsync on a folder
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    """fsync every file, then every folder (deepest first), under root."""
    for d, _, files in os.walk(root, topdown=False):
        for f in files:
            _fsync(os.path.join(d, f))
        _fsync(d, directory=True)


def save_checkpoint(path: str, model: nn.Module, ema: EMA | None, opt: torch.optim.Optimizer, step: int, cfg: dict,
                    generator: torch.Generator | None = None, extra: dict[str, Tensor] | None = None, *,
                    rng_states: list[bytes] | None = None, state: dict | None = None) -> None:
    """Write everything into `path`.tmp, fsync every file and folder, rename it onto `path`, fsync the parent: a crash
    leaves the previous or the new step folder, never a half-written one (an existing `path` is moved aside first and
    removed only after the rename; `train` puts it back if a crash came in between).

    rng_states: each process's `RankRNG.to_bytes()` in rank order → rng_rank{R}.safetensors. Without it this process's
    RNG state is saved as rank 0's, with `generator` as its noise stream. state: extra trainer_state.json fields;
    extra: tensors for extra.safetensors."""
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_pretrained(os.path.join(tmp, "model"), safe_serialization=True)
    if ema is not None:
        ema.model.save_pretrained(os.path.join(tmp, "ema"), safe_serialization=True)
    tensors, meta = _optimizer_tensors(opt)
    save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
    if rng_states is None:
        own = RankRNG(0, 0)
        if generator is not None:
            own.noise.set_state(generator.get_state())
        rng_states = [own.to_bytes()]
    for r, blob in enumerate(rng_states):
        with open(os.path.join(tmp, RNG_FILE.format(r)), "wb") as f:
            f.write(blob)
    if extra:
        save_file({k: v.contiguous() for k, v in extra.items()}, os.path.join(tmp, "extra.safetensors"))
    with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
        json.dump({"format": 2, "step": step, "ema_n": ema.n if ema else 0, "world": len(rng_states), **(state or {}),
                   **meta}, f)
    save_yaml(cfg, os.path.join(tmp, "config.yaml"))
    _fsync_tree(tmp)
    old = None
    if os.path.exists(path):
        old = path + ".old.tmp"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync(os.path.dirname(os.path.abspath(path)), directory=True)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale(output_dir: str) -> list[str]:
    """Remove step_N.tmp folders a crashed save left; a step_N.old.tmp whose step_N is missing (a crash between the two
    renames of `save_checkpoint`) is renamed back. Returns what was done, one line each."""
    d = os.path.join(output_dir, "checkpoints")
    done = []
    if not os.path.isdir(d):
        return done
    for n in sorted(os.listdir(d), key=lambda n: n.endswith(".old.tmp")):  # .tmp first, then .old.tmp
        m = STALE_RE.match(n)
        if not m:
            continue
        full, final = os.path.join(d, n), os.path.join(d, f"step_{m.group(1)}")
        if m.group(2) and not os.path.exists(final):
            os.replace(full, final)
            done.append(f"restored {final} from {n} (a save was interrupted between its renames)")
        else:
            shutil.rmtree(full, ignore_errors=True)
            done.append(f"removed {full} (left by an interrupted save)")
    return done


def _prune(output_dir: str, keep: int) -> None:
    d = os.path.join(output_dir, "checkpoints")
    steps = sorted(n for n in os.listdir(d) if CKPT_RE.match(n))
    for n in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(d, n), ignore_errors=True)


def load_weights(model: nn.Module, folder: str) -> nn.Module:
    """Load `folder/diffusion_pytorch_model.safetensors` (a save_pretrained folder) into `model` strictly."""
    path = os.path.join(folder, WEIGHTS)
    if not os.path.exists(path):
        raise ValueError(f"no safetensors weights at {path}")
    model.load_state_dict(load_file(path))
    return model


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _read_safetensors(path: str) -> tuple[dict[str, Tensor], dict[str, str] | None]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def read_checkpoint(path: str, need_ema: bool = True) -> dict:
    """Everything --resume needs from one step folder, read into memory: weights, EMA, optimizer, trainer state and
    every process's RNG state. Raises CheckpointError naming the first file that is missing or does not load."""
    def load(rel: str, fn):
        full = os.path.join(path, rel)
        if not os.path.isfile(full):
            raise CheckpointError(f"{rel} is missing")
        try:
            return fn(full)
        except Exception as e:  # noqa: BLE001 — SafetensorError, JSONDecodeError, OSError, ... all mean "damaged"
            raise CheckpointError(f"{rel} does not load ({_one_line(e)})") from None

    def read_json(p: str):
        with open(p) as f:
            return json.load(f)

    st = load("trainer_state.json", read_json)
    if not isinstance(st, dict) or any(k not in st for k in ("step", "ema_n", "param_groups")):
        raise CheckpointError("trainer_state.json lacks step / ema_n / param_groups")
    out = {"path": path, **st}
    out["model"] = load(os.path.join("model", WEIGHTS), load_file)
    load(os.path.join("model", "config.json"), read_json)
    if need_ema:
        out["ema"] = load(os.path.join("ema", WEIGHTS), load_file)
        load(os.path.join("ema", "config.json"), read_json)
    out["optimizer"] = load("optimizer.safetensors", load_file)
    if "world" in st:  # one RNG file per process
        out["rng"] = []
        for r in range(int(st["world"])):
            tensors, meta = load(RNG_FILE.format(r), _read_safetensors)
            try:
                RankRNG.validate(tensors, meta)
            except (ValueError, RuntimeError, TypeError) as e:
                raise CheckpointError(f"{RNG_FILE.format(r)} is not an RNG state ({_one_line(e)})") from None
            out["rng"].append((tensors, meta))
    else:  # the format before per-process RNG files: one state.safetensors {torch_rng, data_rng}
        out["legacy_rng"] = load("state.safetensors", load_file)
    return out


def find_resumable(output_dir: str, need_ema: bool = True) -> tuple[dict | None, list[tuple[str, str]]]:
    """The newest step folder that loads completely (`read_checkpoint`), and the newer ones skipped with the reason."""
    skipped = []
    for path in checkpoint_dirs(output_dir):
        try:
            return read_checkpoint(path, need_ema), skipped
        except CheckpointError as e:
            skipped.append((path, str(e)))
    return None, skipped


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


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile for training (inductor). Shapes start static; one that changes between steps (e.g. a varying
    number of style references) is recompiled once as dynamic instead of once per value. The result shares `model`'s
    parameters, so optimizer, EMA and checkpoints keep using `model` itself (no `_orig_mod.` prefixes)."""
    return torch.compile(model)


def _record_timing(out: str, seconds: float, step: int, processes: int, step_times: list[float] | None = None,
                   compiled: bool = False) -> None:
    """Accumulate wall time over resumed segments in out/timing.json (read by apps.export for model cards); also this
    segment's first-step time (with train.compile: the compilation) and median steady step time (apps.bench)."""
    path = os.path.join(out, "timing.json")
    prev = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                prev = json.load(f)
            prev = prev if isinstance(prev, dict) else {}
        except (OSError, ValueError):
            prev = {}  # a damaged record: start the sum again rather than fail at the end of a run
    rec = {"seconds": float(prev.get("seconds", 0.0) or 0.0) + seconds, "step": step, "processes": processes,
           "threads": torch.get_num_threads(), "machine": f"{cpu_name()} ({os.cpu_count()} cores)"}
    if step_times:
        rest = sorted(step_times[1:]) or step_times
        rec["segment"] = {"steps": len(step_times), "first_step_seconds": step_times[0],
                          "median_step_seconds": rest[len(rest) // 2], "compiled": compiled}
    atomic_write_json(path, rec, indent=None, newline=False)


def _resume_state(acc, out: str, need_ema: bool, cfg: dict) -> dict | None:
    """The checkpoint dict to resume from (None: start at step 0), the same on every process."""
    saved, skipped = find_resumable(out, need_ema)
    for path, why in skipped:
        acc.print(f"--resume: skipping {path}: {why}")
    if saved is None and skipped:
        raise ResumeError(f"--resume: none of the {len(skipped)} checkpoints in {out}/checkpoints loads (newest: "
                          f"{skipped[0][0]}: {skipped[0][1]}); run without --resume to start again")
    if saved is None:
        acc.print(f"--resume: no checkpoint in {out}/checkpoints, starting from step 0")
    if acc.num_processes > 1:  # every process must pick the same step folder (they read the same files)
        mine = saved["step"] if saved else -1
        steps = acc.gather(torch.tensor([mine], dtype=torch.int64, device=acc.device)).cpu().tolist()
        if len(set(steps)) != 1:
            raise ResumeError(f"--resume: the processes found different checkpoints to resume from (steps {steps}); "
                              f"is {out} on a file system every process sees?")
    if saved is not None and saved["step"] > cfg["steps"]:
        acc.print(f"--resume: {saved['path']} is at step {saved['step']}, past train.steps={cfg['steps']}")
    return saved


def train(task: TrainTask, train_cfg: Mapping, diffusion_cfg: Mapping, resume: bool = False) -> dict:
    """Run the loop; returns a summary {step, loss, seconds, output_dir}. Works single-process and under
    `accelerate launch` (CPU gloo, multi-GPU, multi-node) unchanged. Bad config values raise ConfigError; --resume
    without any loadable checkpoint among existing ones raises ResumeError."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cfg = {**TRAIN_DEFAULTS, **dict(train_cfg)}
    dcfg = {**DIFFUSION_DEFAULTS, **dict(diffusion_cfg)}
    check_train_config(cfg, dcfg)
    _check_task(task)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    out = cfg["output_dir"]
    acc = Accelerator(gradient_accumulation_steps=cfg["grad_accum"], log_with="tensorboard", project_dir=out)
    rank, world = acc.process_index, acc.num_processes
    if acc.is_main_process:
        for line in clean_stale(out):
            acc.print(line)
    acc.wait_for_everyone()
    schedule = DiffusionSchedule.make(dcfg["schedule"], dcfg["T"])
    model = task.model
    opt = make_adamw(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    ema = EMA(model, cfg["ema_decay"]) if cfg["ema_decay"] > 0 else None
    rng = RankRNG(cfg["seed"], rank, acc.device)

    step, loss_avg = 0, None
    saved = _resume_state(acc, out, ema is not None, cfg) if resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        _load_optimizer(opt, saved["optimizer"], saved)
        if ema is not None:
            ema.model.load_state_dict(saved["ema"])
            ema.n = saved["ema_n"]
        step = saved["step"]
        loss_avg = saved.get("loss_avg")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg), last_epoch=step - 1)
        for key in ("model", "ema", "optimizer"):  # loaded: do not hold a second copy through training
            saved.pop(key, None)
        acc.print(f"resumed from {saved['path']} at step {step}")
        if "rng" in saved and len(saved["rng"]) != world:
            acc.print(f"--resume: the checkpoint was written by {len(saved['rng'])} process(es), this run has {world}: "
                      f"data order and noise differ from the original run's from here on")
        if "rng" in saved and rank >= len(saved["rng"]) or "legacy_rng" in saved:
            rng = RankRNG(cfg["seed"], rank, acc.device, salt=step + 1)  # fresh streams, distinct from step 0's

    # the LR schedule is stepped by hand once per optimizer step (accelerate's wrapper would step it once per process)
    model, opt = acc.prepare(model, opt)
    sampler = StepBatches(len(task.dataset), cfg["batch_size"], cfg["seed"], rank, world,
                          start=step * cfg["grad_accum"])
    loader = torch.utils.data.DataLoader(task.dataset, batch_sampler=sampler, num_workers=cfg["num_workers"],
                                         generator=rng.loader)
    batches = iter(loader)
    if acc.is_main_process:
        os.makedirs(out, exist_ok=True)
        save_yaml(task.config, os.path.join(out, "config.yaml"))
    acc.init_trackers("logs")
    writer = acc.get_tracker("tensorboard", unwrap=True) if acc.is_main_process else None

    # Every random stream starts here, after the data iterator exists: seeded for a fresh run, restored on --resume.
    if saved is not None and "rng" in saved and rank < len(saved["rng"]):
        rng.load(*saved["rng"][rank])
    else:
        rng.seed_globals()
        if saved is not None and "legacy_rng" in saved:
            rng.noise.set_state(saved["legacy_rng"]["data_rng"])
            torch.set_rng_state(saved["legacy_rng"]["torch_rng"])
            acc.print("--resume: an old-format checkpoint (no per-process RNG files): the dropout stream starts afresh")

    fwd = compile_model(model) if cfg["compile"] else model  # shares the parameters; checkpoints save `model`
    t0, last_loss = time.time(), float("nan")
    step_times: list[float] = []
    bar = tqdm(total=cfg["steps"], initial=step, disable=not acc.is_local_main_process, desc="train")
    model.train()
    while step < cfg["steps"]:
        ts = time.perf_counter()
        for _ in range(cfg["grad_accum"]):
            batch = next(batches)
            x0, cond = task.batch_to(batch)
            x0 = x0.to(acc.device)
            cond = {k: v.to(acc.device) for k, v in cond.items()}
            cond = drop_conditions(cond, task.dropout, x0.shape[0], rng.dropout, task.elementwise, device=None)
            cond = {k: v.to(acc.device) for k, v in cond.items()}
            with acc.accumulate(model):
                if fwd is not model and not step_times:  # the first call compiles: fall back to eager if it fails
                    noise_state = rng.noise.get_state()
                    try:
                        loss = diffusion_loss(fwd, schedule, x0, cond, dcfg["prediction_type"], rng.noise,
                                              task.forward, task.aux_loss)
                        acc.backward(loss)
                    except Exception as e:  # noqa: BLE001 - inductor/compiler failures come in many types
                        acc.print(f"train.compile: torch.compile failed ({_one_line(e)}); training eagerly")
                        fwd = model
                        opt.zero_grad(set_to_none=True)
                        rng.noise.set_state(noise_state)  # the eager retry draws the same t and noise
                        loss = diffusion_loss(model, schedule, x0, cond, dcfg["prediction_type"], rng.noise,
                                              task.forward, task.aux_loss)
                        acc.backward(loss)
                else:
                    loss = diffusion_loss(fwd, schedule, x0, cond, dcfg["prediction_type"], rng.noise, task.forward,
                                          task.aux_loss)
                    acc.backward(loss)
                if acc.sync_gradients and cfg["max_grad_norm"] > 0:
                    acc.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
                opt.step()
                opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        step_times.append(time.perf_counter() - ts)
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
            states = _gather_bytes(acc, rng.to_bytes())  # a collective: every process's RNG, on every process
            if acc.is_main_process:
                path = os.path.join(out, "checkpoints", f"step_{step:07d}")
                save_checkpoint(path, acc.unwrap_model(model), ema, opt, step, task.config, rng_states=states,
                                state={"loss_avg": loss_avg})
                _prune(out, cfg["keep_checkpoints"])
            acc.wait_for_everyone()
    bar.close()
    acc.end_training()
    if acc.is_main_process:
        _record_timing(out, time.time() - t0, step, world, step_times, compiled=fwd is not model)
    loss_avg = float("nan") if loss_avg is None else loss_avg
    return {"step": step, "loss": loss_avg, "last_loss": last_loss, "seconds": time.time() - t0, "output_dir": out}


def run_cli(argv, description: str, default_config: str, defaults: dict, build_task: Callable[[dict], TrainTask]):
    """The body of every train script: parse `--config file key=value …`, check it (types, ranges, that
    model.init_from exists), print the resolved config on --dry-run (and return it), else seed, build the task and
    train. Returns (cfg, summary or None). Every usage / config error prints argparse's ``prog: error: ...`` (one line)
    and raises `gen.config.CLIError` (SystemExit with code 2, also a ValueError)."""
    from .config import load_config, train_argparser

    parser = train_argparser(description, default_config)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides, defaults)
        check_train_config(cfg["train"], cfg["diffusion"])
        check_init_from(cfg, args.config)
    except ConfigError as e:
        raise cli_error(parser, e) from None
    if args.dry_run:
        import yaml
        print(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        return cfg, None
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    seed_everything(cfg["train"]["seed"])  # the same on every process: identical initial weights
    try:
        task = build_task(cfg)
    except ValueError as e:  # the task scripts' own config checks (data.*, model.*) raise ValueError
        raise cli_error(parser, e) from None
    try:
        summary = train(task, cfg["train"], cfg["diffusion"], resume=args.resume)
    except (ConfigError, ResumeError) as e:
        raise cli_error(parser, e) from None
    print(f"done: step {summary['step']}, loss {summary['loss']:.4f}, {summary['seconds']:.0f} s -> {summary['output_dir']}")
    return cfg, summary
