"""Train the attribute task's small CLIP from scratch (open_clip.CLIP + open_clip.ClipLoss) on procedural faces and
their generated captions.

    accelerate launch tasks/attributes/train_clip.py --config configs/attributes_clip.yaml            # ≤ 25 min, 1 core
    accelerate launch tasks/attributes/train_clip.py --config configs/attributes_clip.yaml --resume   # continue
    python tasks/attributes/train_clip.py --config configs/attributes_clip.yaml train.steps=20 --dry-run

Data: FaceDataset(split="train") (held-out attribute combinations never appear; the same cached renders as the
diffusion model's training), each face with a fresh caption every epoch (tasks.attributes.captions, training
phrasings only; a pure function of (data seed, index, epoch)), random horizontal flips (every attribute is symmetric).
The vocabulary (the BPE tokens kept, tasks.attributes.clip) is built from the captions of the first
`data.vocab_epochs` epochs before training and stored in the model config.

Batches, captions and flips are pure functions of (seed, step, process), and nothing else is random, so a resumed run
equals an uninterrupted one. The run stops at `train.steps` or when `train.max_minutes` of training wall time (summed
over resumes; CPU time of the process, i.e. core-minutes at train.threads=1, so a busy machine does not shorten the
run) are spent, whichever comes first, with a checkpoint (gen.train.save_checkpoint: safetensors, atomic).
`python -m tasks.attributes.clip_export` then fits the probes, measures and ships it.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import torch

DEFAULTS = dict(
    model=dict(
        embed_dim=128,             # width of the joint embedding
        context_length=48,         # text tokens incl. <sot>/<eot> (captions use ≤ 42)
        vision=dict(layers=3, width=96, head_width=32, mlp_ratio=2.0, patch_size=4),  # ViT over 8×8 patches of 4 px
        text=dict(layers=2, width=96, heads=4, mlp_ratio=2.0),                        # causal text transformer
    ),
    train=dict(
        output_dir="runs/attributes_clip",
        steps=1400,                # optimizer steps (at most)
        max_minutes=25.0,          # training budget in CPU minutes of this process (core-minutes with threads=1), summed
                                   # over resumes (0 = none): stop and checkpoint then
        batch_size=128,            # image–caption pairs per step (the contrastive batch), over all processes
        lr=1.0e-3,
        warmup_steps=100,          # linear warm-up, then cosine decay to 0 at train.steps
        weight_decay=0.1,
        grad_clip=1.0,
        ckpt_every=250,
        keep=2,                    # step folders kept
        log_every=50,
        eval_faces=256,            # held-out-combination faces for the R@1 printed at the end (0 = none)
        seed=0,                    # batch order and flips
        threads=1,                 # torch.set_num_threads (0 = torch's default)
    ),
    data=dict(
        num_samples=20000,         # train-split faces (rendered once, cached under data/cache/attributes)
        seed=0,
        size=32,
        flip=True,
        vocab_epochs=2,            # caption epochs the vocabulary is counted on
        vocab_min_count=2,         # BPE tokens seen fewer times become <unk>
    ),
)


def check_config(cfg: dict) -> None:
    from gen.config import check_float, check_int

    t, d = cfg["train"], cfg["data"]
    check_int("train.steps", t["steps"], 1)
    check_int("train.batch_size", t["batch_size"], 2)
    check_float("train.lr", t["lr"], 0.0, low_open=True)
    check_float("train.max_minutes", t["max_minutes"], 0.0)
    check_int("train.ckpt_every", t["ckpt_every"], 1)
    check_int("data.num_samples", d["num_samples"], 2)
    check_int("model.context_length", cfg["model"]["context_length"], 8, 77)
    if d["size"] not in (32, 64):
        from gen.config import ConfigError
        raise ConfigError(f"data.size must be 32 or 64, got {d['size']}")


def lr_at(step: int, cfg: dict) -> float:
    """Linear warm-up to train.lr, then cosine decay to 0 at train.steps."""
    t = cfg["train"]
    if step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    frac = (step - t["warmup_steps"]) / max(1, t["steps"] - t["warmup_steps"])
    return t["lr"] * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def build_model(cfg: dict, vocab: list[int]):
    from tasks.attributes.clip import AttributeCLIP

    m = cfg["model"]
    return AttributeCLIP(vocab=vocab, embed_dim=m["embed_dim"], image_size=cfg["data"]["size"],
                         context_length=m["context_length"], vision=dict(m["vision"]), text=dict(m["text"]))


def clip_loss_fn(rank: int = 0, world: int = 1):
    from open_clip import ClipLoss

    return ClipLoss(local_loss=False, gather_with_grad=world > 1, cache_labels=True, rank=rank, world_size=world)


def train_step(model, opt, images: torch.Tensor, tokens: torch.Tensor, loss_fn, grad_clip: float = 1.0,
               backward=None) -> float:
    """One contrastive step (forward, ClipLoss, backward, clip, AdamW); returns the loss."""
    model.train()
    img_f, txt_f, scale = model(images, tokens)
    loss = loss_fn(img_f, txt_f, scale)
    opt.zero_grad(set_to_none=True)
    (backward or (lambda l: l.backward()))(loss)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    with torch.no_grad():  # open_clip's practice: keep the temperature below 100
        getattr(model, "clip", getattr(getattr(model, "module", None), "clip", None)).logit_scale.clamp_(0, math.log(100))
    return float(loss.detach())


def batch_at(step: int, idx: list[int], images_u8: np.ndarray, cfg: dict, rank: int) -> tuple[torch.Tensor, list[str]]:
    """(images (B, 3, H, W) in [-1, 1], captions) of one step: pure function of (step, rank, config)."""
    from tasks.attributes.captions import caption_for_sample

    d, t = cfg["data"], cfg["train"]
    n = d["num_samples"]
    epoch = (step * t["batch_size"]) // n  # the epoch of the step's first sample: a fresh phrasing each epoch
    caps = [caption_for_sample(d["seed"], i, "train", epoch)[0] for i in idx]
    x = torch.from_numpy(images_u8[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W)
    if d["flip"]:
        g = torch.Generator().manual_seed(t["seed"] * 1_000_003 + step * 131 + rank)
        flip = torch.rand(len(idx), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x, caps


def vocabulary(cfg: dict) -> list[int]:
    from tasks.attributes.captions import caption_for_sample, phrase_bank
    from tasks.attributes.clip import build_vocab

    d = cfg["data"]
    texts = [caption_for_sample(d["seed"], i, "train", e)[0] for e in range(d["vocab_epochs"])
             for i in range(d["num_samples"])]
    texts += [p for sides in phrase_bank("train").values() for ps in sides.values() for p in ps] * d["vocab_min_count"]
    return build_vocab(texts, d["vocab_min_count"])


@torch.no_grad()
def retrieval_at_1(model, tok, n: int = 256, seed: int = 12345) -> dict:
    """Text → image R@1 on `n` held-out-combination faces (split "heldout") with training-phrasing captions: exact
    (the captioned face is the top image) and by attributes (the top image shows every attribute the caption names)."""
    from tasks.attributes.captions import caption_for_sample
    from tasks.attributes.faces import ATTRIBUTES, render_sample

    imgs, attrs, caps = [], [], []
    for i in range(n):
        im, a = render_sample(seed, i, "heldout", model.config.image_size)
        imgs.append(torch.from_numpy(im).permute(2, 0, 1).float() / 127.5 - 1)
        attrs.append(torch.from_numpy(a))
        caps.append(caption_for_sample(seed, i, "heldout", 0, p_empty=0.0))
    model.eval()
    ie = torch.cat([model.encode_image(x) for x in torch.stack(imgs).split(128)])
    te = torch.cat([model.encode_text(tok([c[0] for c in caps[j:j + 128]])) for j in range(0, n, 128)])
    top = (te @ ie.T).argmax(1)  # (n,)
    exact = (top == torch.arange(n)).float().mean().item()
    A = torch.stack(attrs)
    ok = []
    for i, (_, named) in enumerate(caps):
        ok.append(all(bool(A[top[i], ATTRIBUTES.index(a)]) == v for a, v in named.items()))
    return {"n": n, "exact": exact, "attributes": float(np.mean(ok))}


def _load_optimizer(opt, tensors: dict, param_groups) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def train(cfg: dict, resume: bool = False, log=print) -> dict:
    from accelerate import Accelerator

    from gen.train import StepBatches, clean_stale, find_resumable, save_checkpoint
    from tasks.attributes.clip import Tokenizer
    from tasks.attributes.faces import FaceDataset

    t_cfg, d = cfg["train"], cfg["data"]
    out = t_cfg["output_dir"]
    acc = Accelerator()
    rank, world = acc.process_index, acc.num_processes
    if t_cfg["batch_size"] % world:
        raise ValueError(f"train.batch_size {t_cfg['batch_size']} is not divisible by {world} processes")
    ck = None
    if resume:
        clean_stale(out)
        ck, skipped = find_resumable(out, need_ema=False)
        for path, why in skipped:
            log(f"skipping damaged checkpoint {path}: {why}")
        if ck is None:
            log(f"--resume: no checkpoint in {out}; starting from scratch")
    if ck is not None:
        with open(os.path.join(ck["path"], "model", "config.json")) as f:
            vocab = json.load(f)["vocab"]
    else:
        t0 = time.time()
        vocab = vocabulary(cfg)
        log(f"vocabulary: {len(vocab)} BPE tokens kept ({time.time() - t0:.0f} s)")
    tok = Tokenizer(vocab, cfg["model"]["context_length"])
    model = build_model(cfg, vocab)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t_cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=t_cfg["lr"], betas=(0.9, 0.98), eps=1e-6)
    step, wall, cpu = 0, 0.0, 0.0
    if ck is not None:
        from tasks.attributes.clip import PROBE_PREFIXES

        missing, unexpected = model.load_state_dict(ck["model"], strict=False)
        if unexpected or any(not k.startswith(PROBE_PREFIXES) for k in missing):
            raise ValueError(f"{ck['path']}: weights do not match the configured model")
        _load_optimizer(opt, ck["optimizer"], ck["param_groups"])
        step, wall, cpu = int(ck["step"]), float(ck.get("wall_seconds", 0.0)), float(ck.get("cpu_seconds", 0.0))
        log(f"resumed from {ck['path']} (step {step}, {cpu / 60:.1f} CPU min trained)")
    t0 = time.time()
    ds = FaceDataset(d["num_samples"], seed=d["seed"], size=d["size"], split="train", cache=True)
    images_u8 = np.stack([ds.raw(i)[0] for i in range(len(ds))])  # (N, H, W, 3) uint8
    log(f"data: {len(ds)} faces ({time.time() - t0:.0f} s)")
    model, opt = acc.prepare(model, opt)
    loss_fn = clip_loss_fn(rank, world)
    per_rank = t_cfg["batch_size"] // world
    batches = iter(StepBatches(len(ds), per_rank, t_cfg["seed"], rank, world, start=step))
    budget = t_cfg["max_minutes"] * 60
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "log.jsonl"), "a") if acc.is_main_process else None
    losses = []

    def checkpoint() -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            path = os.path.join(out, "checkpoints", f"step_{step:07d}")
            save_checkpoint(path, acc.unwrap_model(model), None, opt, step, cfg,
                            state={"wall_seconds": wall, "cpu_seconds": cpu, "vocab_size": len(vocab)})
            kept = sorted(n for n in os.listdir(os.path.join(out, "checkpoints")) if n.startswith("step_")
                          and not n.endswith(".tmp"))
            for n in kept[:-t_cfg["keep"]]:
                import shutil
                shutil.rmtree(os.path.join(out, "checkpoints", n), ignore_errors=True)
        acc.wait_for_everyone()

    stopped = "steps"
    while step < t_cfg["steps"]:
        if budget and cpu >= budget:
            stopped = "max_minutes"
            break
        ts, tc = time.time(), time.process_time()
        idx = next(batches)
        x, caps = batch_at(step, idx, images_u8, cfg, rank)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        loss = train_step(model, opt, x.to(acc.device), tok(caps).to(acc.device), loss_fn, t_cfg["grad_clip"],
                          backward=acc.backward)
        losses.append(loss)
        step += 1
        wall += time.time() - ts
        cpu += time.process_time() - tc
        if logf and (step % t_cfg["log_every"] == 0 or step == 1):
            rec = {"step": step, "loss": float(np.mean(losses[-t_cfg["log_every"]:])), "lr": lr_at(step - 1, cfg),
                   "wall_min": wall / 60, "cpu_min": cpu / 60}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(json.dumps(rec))
        if step % t_cfg["ckpt_every"] == 0:
            checkpoint()
    if step % t_cfg["ckpt_every"] != 0 or stopped != "steps":
        checkpoint()
    r1 = None
    if acc.is_main_process and t_cfg["eval_faces"]:
        r1 = retrieval_at_1(acc.unwrap_model(model), tok, n=t_cfg["eval_faces"])
        log(f"held-out R@1 (256 faces): {r1}")
        logf.write(json.dumps({"step": step, "retrieval_at_1": r1}) + "\n")
    if logf:
        logf.close()
    return {"step": step, "wall_seconds": wall, "cpu_seconds": cpu, "stopped": stopped, "loss": float(np.mean(losses[-50:])) if losses
            else float("nan"), "retrieval_at_1": r1, "output_dir": out}


def main(argv=None) -> dict:
    from gen.config import ConfigError, cli_error, load_config, train_argparser

    parser = train_argparser(__doc__.splitlines()[0], "configs/attributes_clip.yaml")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides, DEFAULTS)
        check_config(cfg)
    except ConfigError as e:
        raise cli_error(parser, e) from None
    if args.dry_run:
        import yaml
        print(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        return cfg
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    torch.manual_seed(cfg["train"]["seed"])  # initial weights
    try:
        summary = train(cfg, resume=args.resume)
    except ValueError as e:
        raise cli_error(parser, e) from None
    print(f"done: step {summary['step']} ({summary['stopped']}), loss {summary['loss']:.4f}, "
          f"{summary['cpu_seconds'] / 60:.1f} CPU min ({summary['wall_seconds'] / 60:.1f} wall) -> {summary['output_dir']}")
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
