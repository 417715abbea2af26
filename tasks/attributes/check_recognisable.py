"""Quick check that every procedural attribute is recognisable at 32×32: train a tiny CNN multi-label classifier for
about a minute on the train split, report per-attribute accuracy on fresh train-split samples and on held-out
combinations. Not a test and nothing is saved.

    .venv/bin/python -m tasks.attributes.check_recognisable --seconds 60
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from tasks.attributes.faces import ATTRIBUTES, render_sample


def _render(n: int, seed: int, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    attrs = np.empty((n, len(ATTRIBUTES)), dtype=bool)
    for i in range(n):
        images[i], attrs[i] = render_sample(seed, i, split, size)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, 3, H, W)
    return x, torch.from_numpy(attrs).float()  # (N, K)


def tiny_cnn(k: int) -> nn.Module:
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 24), block(24, 48), block(48, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, k))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    pred = torch.cat([model(xb) for xb in x.split(500)]) > 0
    model.train()
    return (pred == y.bool()).float().mean(0)  # (K,)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training time budget (default: %(default)s)")
    ap.add_argument("--n-train", type=int, default=6000, help="training images rendered once (default: %(default)s)")
    ap.add_argument("--n-eval", type=int, default=1000, help="fresh images per eval split (default: %(default)s)")
    ap.add_argument("--size", type=int, default=32, choices=(32, 64), help="image size (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="data and init seed (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.time()
    x, y = _render(args.n_train, args.seed, "train", args.size)
    x_val, y_val = _render(args.n_eval, args.seed + 1, "train", args.size)  # fresh seed → unseen faces
    x_ho, y_ho = _render(args.n_eval, args.seed + 1, "heldout", args.size)
    print(f"rendered {len(x) + len(x_val) + len(x_ho)} images in {time.time() - t0:.1f}s")

    model = tiny_cnn(len(ATTRIBUTES))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(args.seed)
    t0, step = time.time(), 0
    while time.time() - t0 < args.seconds:
        idx = torch.randint(len(x), (64,), generator=g)
        xb = x[idx]
        # Random horizontal flip is label-preserving (all attributes are left/right symmetric).
        flip = torch.rand(len(xb), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        loss = loss_fn(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step}  loss {loss.item():.4f}  {time.time() - t0:.0f}s", flush=True)

    acc_val, acc_ho = accuracy(model, x_val, y_val), accuracy(model, x_ho, y_ho)
    print(f"\n{step} steps in {time.time() - t0:.0f}s")
    print(f"{'attribute':<12} {'fresh train-split':>18} {'held-out combos':>16}")
    for a, v, h in zip(ATTRIBUTES, acc_val.tolist(), acc_ho.tolist()):
        print(f"{a:<12} {v:>18.3f} {h:>16.3f}")
    print(f"{'mean':<12} {acc_val.mean().item():>18.3f} {acc_ho.mean().item():>16.3f}")


if __name__ == "__main__":
    main()
