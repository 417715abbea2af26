"""The judge: a separately trained multi-label CNN that says which attributes a 32×32 face shows.

Trained on procedural faces drawn from split="all" (independent Bernoulli(0.5) attributes, so every one of the 2^9
combinations, held-out ones included, is covered), evaluated on fresh faces of split "all" and "heldout". Trained and
saved with gen.judge (safetensors + a JSON card with its own accuracy) under runs/.

    python -m tasks.attributes.classifier --out runs/attr_classifier            # ≈ 2 min on one idle core (1.5 min of it rendering, cached after)
    judge = load_classifier("runs/attr_classifier"); present = classify(judge, images)   # (N, K) bool
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from gen.judge import load_judge, read_card, save_judge, train_judge
from tasks.attributes.check_recognisable import tiny_cnn
from tasks.attributes.faces import ATTRIBUTES, CACHE_VERSION, FaceDataset

NAME = "classifier"  # gen.judge file names: classifier.safetensors + classifier.json (the card)
WEIGHTS, CARD = f"{NAME}.safetensors", f"{NAME}.json"


def _tensors(ds: FaceDataset) -> tuple[Tensor, Tensor]:
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["attrs"] for it in items])  # (N,3,H,W), (N,K)


@torch.no_grad()
def classify(model: nn.Module, images: Tensor, batch: int = 500) -> Tensor:
    """images (N, 3, H, W) in [-1, 1] → (N, K) bool: attribute present."""
    model.eval()
    return torch.cat([model(x.float()) for x in images.split(batch)]) > 0


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """(K,) per-attribute accuracy."""
    return (classify(model, x) == y.bool()).float().mean(0)


def _flip_and_noise(xb: Tensor, g: torch.Generator) -> Tensor:
    flip = torch.rand(len(xb), generator=g) < 0.5  # every attribute is left/right symmetric
    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
    return xb + 0.03 * torch.randn(xb.shape, generator=g)  # generated images are slightly noisy


def train_classifier(out: str, steps: int = 600, n_train: int = 8000, n_eval: int = 1000, batch_size: int = 64,
                     lr: float = 3e-3, seed: int = 0, size: int = 32, log=print) -> dict:
    """Train (gen.judge.train_judge: AdamW, one-cycle LR, BCE, flips + noise), measure, save (gen.judge.save_judge,
    atomically: a temp folder renamed to `out`). Returns the card (accuracies)."""
    torch.manual_seed(seed)
    t0 = time.time()
    x, y = _tensors(FaceDataset(n_train, seed=1000 + seed, size=size, split="all", cache=True))
    x_val, y_val = _tensors(FaceDataset(n_eval, seed=2000 + seed, size=size, split="all", cache=True))
    x_ho, y_ho = _tensors(FaceDataset(n_eval, seed=2000 + seed, size=size, split="heldout", cache=True))
    log(f"classifier data ready in {time.time() - t0:.0f}s")
    model = tiny_cnn(len(ATTRIBUTES))
    train_judge(model, (x, y), steps=steps, batch_size=batch_size, lr=lr, seed=seed, optimizer="adamw",
                weight_decay=1e-4, lr_schedule="onecycle", pct_start=0.1, loss=F.binary_cross_entropy_with_logits,
                augment=_flip_and_noise, log=lambda step, loss: log(f"classifier step {step}/{steps} loss {loss:.4f}"),
                log_every=250)
    acc_val, acc_ho = accuracy(model, x_val, y_val), accuracy(model, x_ho, y_ho)
    card = {
        "attributes": list(ATTRIBUTES),
        "render_version": CACHE_VERSION,  # the face rendering it was trained on (faces.CACHE_VERSION)
        "accuracy": float(acc_val.mean()),
        "per_attribute_accuracy": dict(zip(ATTRIBUTES, map(float, acc_val))),
        "heldout_accuracy": float(acc_ho.mean()),
        "heldout_per_attribute_accuracy": dict(zip(ATTRIBUTES, map(float, acc_ho))),
        "train": {"steps": steps, "n_train": n_train, "batch_size": batch_size, "lr": lr, "seed": seed, "size": size,
                  "data": "FaceDataset(split='all') seed 1000+seed; eval seed 2000+seed"},
        "seconds": time.time() - t0,
    }
    return save_judge(model, out, card, cls=tiny_cnn, init={"k": len(ATTRIBUTES)}, name=NAME)


def load_classifier(path: str) -> tuple[nn.Module, dict]:
    """(model in eval mode, card) from a folder written by train_classifier (safetensors only)."""
    wpath = os.path.join(path, WEIGHTS)
    if not os.path.exists(wpath):
        raise ValueError(f"no classifier at {wpath}; train one with: python -m tasks.attributes.classifier --out {path}")
    card = read_card(path, NAME)
    if "judge" not in card:  # written before gen.judge: the same files, without the class record
        model = tiny_cnn(len(card["attributes"]))
        model.load_state_dict(load_file(wpath))
        return model.eval(), card
    return load_judge(tiny_cnn, path, name=NAME)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/attr_classifier", help="output folder (safetensors + JSON card)")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps")
    p.add_argument("--n-train", type=int, default=8000, help="training faces (split 'all')")
    p.add_argument("--seed", type=int, default=0, help="init / data seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    card = train_classifier(args.out, steps=args.steps, n_train=args.n_train, seed=args.seed)
    print(json.dumps({k: card[k] for k in ("accuracy", "heldout_accuracy", "per_attribute_accuracy")}, indent=2))
    return card


if __name__ == "__main__":
    main()
