"""Experiment 7 — metrics sanity for generated vs real digits: SSIM, RMSE, L1, Fréchet distance in the judge's
feature space; LPIPS and Inception-FID only where weights are supplied (otherwise reported as not computed).

    python -m research.experiments metrics --out docs/experiments/metrics/
    GEN_INCEPTION_WEIGHTS=… GEN_LPIPS_WEIGHTS=… python -m research.experiments metrics …   # with local weights

Pairings (per-pair metrics need a partner): each generated digit vs (a) its nearest real *training* digit of the same
class (pixel L2; high similarity here = memorisation) and (b) a random real *test* digit of the same class. The same
pairings for real test digits give the reference values the generated numbers should be read against.
"""
from __future__ import annotations

import torch

from gen import metrics as M

from .common import (FD_LABEL, GUIDANCE, Context, get_judge, load_digits_split, md_table, per_class, sample_classes,
                     shared_model, write_readme)

FULL = dict(per_class=30, steps=50)
QUICK = dict(per_class=3, steps=3)


def partners(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, pool_y: torch.Tensor, how: str,
             g: torch.Generator, exclude_self: bool = False) -> torch.Tensor:
    """For each x, a same-class element of pool: the nearest in pixel L2 ("nearest") or a random one ("random")."""
    out = torch.empty_like(x)
    for i in range(len(x)):
        cand = pool[pool_y == y[i]]
        if how == "nearest":
            d = (cand - x[i]).flatten(1).pow(2).sum(1)
            if exclude_self:
                d[d == 0] = float("inf")
            out[i] = cand[d.argmin()]
        else:
            out[i] = cand[torch.randint(len(cand), (1,), generator=g)]
    return out


def pair_metrics(a: torch.Tensor, b: torch.Tensor) -> dict:
    return {"ssim": M.ssim(a, b).mean().item(), "rmse": M.rmse(a, b).mean().item(), "l1": M.l1(a, b).mean().item()}


def run(ctx: Context) -> dict:
    cfg = QUICK if ctx.quick else FULL
    xtr, ytr, xte, yte = load_digits_split(ctx.seed)
    judge, judge_acc = get_judge(ctx)
    model, schedule, info = shared_model(ctx)
    labels = torch.arange(10).repeat_interleave(cfg["per_class"])
    gen = sample_classes(model, schedule, labels, steps=cfg["steps"], seed=ctx.seed).clamp(-1, 1)
    real, real_lab = per_class(xte, yte, cfg["per_class"], ctx.seed + 3)
    g = torch.Generator().manual_seed(ctx.seed)
    rows = {}
    for name, (x, y) in {"generated": (gen, labels), "real test": (real, real_lab)}.items():
        rows[name] = {
            "vs nearest train digit (same class)": pair_metrics(x, partners(x, y, xtr, ytr, "nearest", g)),
            "vs random test digit (same class)": pair_metrics(x, partners(x, y, xte, yte, "random", g)),
        }
    with torch.no_grad():
        fte = judge.features(xte)
        fd = {"generated vs test": M.frechet_distance(judge.features(gen), fte),
              "real train (same size) vs test": M.frechet_distance(
                  judge.features(per_class(xtr, ytr, cfg["per_class"], ctx.seed + 4)[0]), fte)}
    results = dict(experiment="metrics", quick=ctx.quick, model=info, samples=len(gen),
                   sampler=f"DDIM eta=0, {cfg['steps']} steps, guidance {GUIDANCE}", pair_metrics=rows,
                   frechet_digits_features=fd, fd_label=FD_LABEL, judge_test_accuracy=judge_acc,
                   lpips=M.lpips(gen, partners(gen, labels, xte, yte, "random", g)),
                   fid_inception=M.fid_inception(xte, gen),
                   notes="SSIM/RMSE/L1 on the [0, 1] scale of 8×8 images (torchmetrics SSIM, Gaussian window 11, "
                         "σ 1.5, on images smaller than the window)")
    _readme(ctx, results)
    return results


def _readme(ctx, r):
    rows = []
    for who, d in r["pair_metrics"].items():
        for pairing, m in d.items():
            rows.append([who, pairing, m["ssim"], m["rmse"], m["l1"]])
    numbers = md_table(["images", "paired with", "SSIM ↑", "RMSE ↓", "L1 ↓"], rows)
    numbers += "\n\n" + md_table(["Fréchet distance (digits-classifier features, not Inception)", "value"],
                                 [[k, v] for k, v in r["frechet_digits_features"].items()])

    def avail(m):
        return f"{m['value']:.4g}" if m.get("value") is not None else f"**not computed** — {m['unavailable']}"
    numbers += f"\n\nLPIPS: {avail(r['lpips'])}\n\nInception FID: {avail(r['fid_inception'])}\n"
    gn = r["pair_metrics"]["generated"]["vs nearest train digit (same class)"]
    rn = r["pair_metrics"]["real test"]["vs nearest train digit (same class)"]
    gr = r["pair_metrics"]["generated"]["vs random test digit (same class)"]
    rr = r["pair_metrics"]["real test"]["vs random test digit (same class)"]
    fd = r["frechet_digits_features"]
    conclusion = f"""
* Nearest-train pairing: generated SSIM {gn['ssim']:.3f} / RMSE {gn['rmse']:.3f} vs real test digits {rn['ssim']:.3f} /
  {rn['rmse']:.3f}. {'Generated digits are closer to their nearest training digit than unseen real digits are — a sign of memorisation or of low diversity (guided samples are smoother).' if gn['rmse'] < 0.8 * rn['rmse'] else 'Generated digits are not closer to the training set than unseen real digits are: no sign of memorisation.'}
* Random same-class pairing: generated {gr['ssim']:.3f} / {gr['rmse']:.3f} vs real {rr['ssim']:.3f} / {rr['rmse']:.3f}.
  Per-pair metrics between *different* images of a class are dominated by natural variation (writing style), so they
  measure "looks like an average member of the class", not quality; they cannot rank generative models on their own.
* Fréchet distance in the judge's features: generated {fd['generated vs test']:.2f} vs a real-data floor of
  {fd['real train (same size) vs test']:.2f} at the same sample size ({fd['generated vs test'] / fd['real train (same size) vs test']:.1f}×): {'the distribution-level number separates real from generated here, where the per-pair metrics above cannot' if fd['generated vs test'] > 1.5 * fd['real train (same size) vs test'] else 'within 1.5× the floor, so even the distribution-level number does not separate generated from real digits at this sample size (one sample set: no seed spread)'}.
* LPIPS and Inception-FID need pretrained weights that are not on this machine and cannot be downloaded, so they were
  not computed (the JSON holds `value: null` and the reason), rather than reported with a stand-in network. Inception
  FID would anyway be of doubtful meaning for 8×8 grey digits upsampled to 299×299.
"""
    write_readme(ctx, "Experiment 7 — metrics sanity", "What do SSIM, RMSE, L1 and a Fréchet distance say about "
                 "generated vs real digits, and against which reference values should they be read?", numbers,
                 conclusion)
