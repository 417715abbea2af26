"""Judges: classifier networks trained on real data only, used to score generated samples (class / attribute accuracy,
a Fréchet distance over their features). The networks stay with their tasks; this module trains and persists them.

    net = train_judge(MyJudge(k), (x, y), steps=600, batch_size=64, lr=3e-3, seed=0,
                      optimizer="adamw", weight_decay=1e-4, lr_schedule="onecycle", augment=flip_and_noise)
    save_judge(net, "runs/my_judge", {"trained_on": "…", "heldout_accuracy": 0.97}, init={"k": k})
    net, card = load_judge(MyJudge, "runs/my_judge")

A judge folder holds `judge.safetensors` (the state dict) and `judge.json` (the card: what the caller wrote, plus
`"judge": {"class", "init", "format"}` added by `save_judge`). Loading reads safetensors only, never a pickle
(`.bin`/`.pt`/`.pth`/`.pkl`/`.ckpt` folders are refused), and refuses a card whose class is not the one asked for.

`train_judge` is one minibatch loop: each step draws `batch_size` indices uniformly with replacement from its own
generator (seeded by `seed`), applies `augment(x_batch, generator)` if given, takes one optimizer step on
`loss(model(x_batch), y_batch)` and steps the LR schedule. It draws nothing from the global torch RNG that the
caller sees afterwards (a layer that does, like dropout, runs inside `torch.random.fork_rng` seeded by `seed`), so
the result is a function of the model's initial weights, the data, the settings and `seed`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMAT = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def judge_tensors(data, keys: tuple = (0, 1)) -> tuple[Tensor, Tensor]:
    """(x, y) from a pair of tensors or from a map-style Dataset whose items are (x, y) tuples or dicts (`keys` names
    the input and the target: e.g. ("x", "label")); Dataset items are stacked once, in index order."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
    elif isinstance(data, torch.utils.data.Dataset) or hasattr(data, "__getitem__"):
        items = [data[i] for i in range(len(data))]
        if not items:
            raise ValueError("empty judge data set")
        try:
            x = torch.stack([torch.as_tensor(it[keys[0]]) for it in items])
            y = torch.stack([torch.as_tensor(it[keys[1]]) for it in items])
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"judge data items must hold the input and target under keys {keys}: {e}") from None
    else:
        raise ValueError(f"judge data must be (x, y) tensors or a Dataset, got {type(data).__name__}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"judge data: {len(x)} inputs vs {len(y)} targets")
    return x, y


def train_judge(model: nn.Module, data, *, steps: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                optimizer: str = "adam", weight_decay: float = 0.0, lr_schedule: str | None = None,
                pct_start: float = 0.3, loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                augment: Callable[[Tensor, torch.Generator], Tensor] | None = None, keys: tuple = (0, 1),
                log: Callable[[int, float], None] | None = None, log_every: int = 0) -> nn.Module:
    """Train `model` (already initialised; seed the global RNG before building it) on real `data` and return it in
    eval mode.

    data: (x, y) tensors or a Dataset (see `judge_tensors`). optimizer: "adam" | "adamw" (with `weight_decay`).
    lr_schedule: None (constant `lr`) | "onecycle" (OneCycleLR to max `lr`, `pct_start` warm-up). loss(logits, y):
    cross-entropy by default; e.g. `F.binary_cross_entropy_with_logits` for multi-label judges. augment(x, g) gets the
    batch and the loop's generator. log(step, loss) is called every `log_every` steps (1-based step).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    opts = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if optimizer not in opts:
        raise ValueError(f"unknown optimizer {optimizer!r}; accepted: {sorted(opts)}")
    if lr_schedule not in (None, "onecycle"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; accepted: None, 'onecycle'")
    x, y = judge_tensors(data, keys)
    device = next(model.parameters()).device
    opt = opts[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
             if lr_schedule == "onecycle" else None)
    g = torch.Generator().manual_seed(seed)
    model.train()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for step in range(steps):
            idx = torch.randint(len(x), (batch_size,), generator=g)
            xb = x[idx]
            if augment is not None:
                xb = augment(xb, g)
            value = loss(model(xb.to(device)), y[idx].to(device))
            opt.zero_grad()
            value.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if log is not None and log_every and (step + 1) % log_every == 0:
                log(step + 1, value.item())
    return model.eval()


def _paths(folder: str | os.PathLike, name: str) -> tuple[str, str]:
    folder = os.fspath(folder)
    return os.path.join(folder, f"{name}.safetensors"), os.path.join(folder, f"{name}.json")


def save_judge(model: nn.Module, folder: str | os.PathLike, card: dict, *, cls: Callable | None = None,
               init: dict | None = None, name: str = "judge") -> dict:
    """Write `folder`/{name}.safetensors + {name}.json atomically (a temp folder renamed onto `folder`, replacing an
    older judge there). card: JSON-serialisable, should say what the judge was trained on and its accuracy on held-out
    real data. cls / init: the class (or factory function) and keyword arguments that rebuild the network (default
    type(model), {}); recorded under card["judge"]. Returns the card as written."""
    from safetensors.torch import save_file

    if "judge" in card:
        raise ValueError("card key 'judge' is reserved for the class record save_judge writes")
    cls = cls or type(model)
    full = {**card, "judge": {"class": cls.__name__, "init": dict(init or {}), "format": FORMAT}}
    text = json.dumps(full, indent=2, ensure_ascii=False)  # fails before anything is written if not serialisable
    folder = os.path.abspath(os.fspath(folder))
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(folder)}.")
    try:
        weights, card_path = _paths(tmp, name)
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, weights,
                  metadata={"judge_class": cls.__name__})
        with open(card_path, "w") as f:
            f.write(text + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise leak
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full


def read_card(folder: str | os.PathLike, name: str = "judge") -> dict:
    """The card of the judge in `folder` (ValueError when there is none)."""
    _, card_path = _paths(folder, name)
    if not os.path.isfile(card_path):
        raise ValueError(f"no judge card at {card_path}")
    with open(card_path) as f:
        return json.load(f)


def load_judge(cls: Callable, folder: str | os.PathLike, *, name: str = "judge",
               map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """(cls(**init) with the saved weights, in eval mode; the card) from a folder written by save_judge.

    Only safetensors are read. ValueError when the folder holds no {name}.safetensors (also when it holds only a
    pickle-based checkpoint, which is never loaded), when the card names another class than `cls`, or when the
    weights do not fit the network."""
    from safetensors.torch import load_file

    weights, _ = _paths(folder, name)
    if not os.path.isfile(weights):
        pickles = sorted(f for f in os.listdir(folder) if f.endswith(PICKLE_SUFFIXES)) if os.path.isdir(folder) else []
        why = (f" (found {', '.join(pickles)}: pickle-based checkpoints are never loaded, they can run code; "
               "save the judge with gen.judge.save_judge)") if pickles else ""
        raise ValueError(f"no judge weights at {weights}{why}")
    card = read_card(folder, name)
    record = card.get("judge")
    if not isinstance(record, dict) or "class" not in record:
        raise ValueError(f"the card in {folder} has no judge class record; it was not written by gen.judge.save_judge")
    if record["class"] != cls.__name__:
        raise ValueError(f"unknown judge class {record['class']!r} in {folder}: expected {cls.__name__!r}")
    if record.get("format", FORMAT) > FORMAT:
        raise ValueError(f"judge format {record['format']} in {folder} is newer than this code reads ({FORMAT})")
    model = cls(**record.get("init", {}))
    try:
        model.load_state_dict(load_file(weights, device=map_location))
    except RuntimeError as e:
        raise ValueError(f"the weights in {weights} do not fit {cls.__name__}(**{record.get('init', {})}): {e}") from None
    return model.eval(), card
