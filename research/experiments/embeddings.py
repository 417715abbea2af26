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


def nearest_class_agreement(ref: np.ndarray, ref_lab: np.ndarray, q: np.ndarray, q_lab: np.ndarray) -> float:
    """Fraction of query points whose nearest reference point has the query's class ("lands in its class's
    cluster"), in the space the points are given in."""
    d = ((q[:, None] - ref[None]) ** 2).sum(-1)
    return float((ref_lab[d.argmin(1)] == q_lab).mean())


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
    # references: a second, disjoint set of real digits of the same size (what "indistinguishable" scores here)
    used = set()
    pool_x, pool_y = torch.cat([xtr, xte]), torch.cat([ytr, yte])
    for im in real:                                             # exclude the digits already embedded
        used.add(int(((pool_x - im).flatten(1).abs().sum(1) == 0).nonzero()[0]))
    keep = torch.tensor([i not in used for i in range(len(pool_x))])
    real2, real2_lab = per_class(pool_x[keep], pool_y[keep], cfg["per_class"], ctx.seed + 3)
    with torch.no_grad():
        spaces2 = {"pixels": real2.flatten(1).numpy(), "features": judge.features(real2).numpy()}
    n = len(real)
    emb, two_sample, two_sample_ref, class_agree, class_agree_ref = {}, {}, {}, {}, {}
    for space, (a, b) in spaces.items():
        z = np.concatenate([a, b])
        two_sample[space] = one_nn_accuracy(a, b)
        two_sample_ref[space] = one_nn_accuracy(a, spaces2[space])
        class_agree[space] = nearest_class_agreement(a, real_lab.numpy(), b, labels.numpy())
        class_agree_ref[space] = nearest_class_agreement(a, real_lab.numpy(), spaces2[space], real2_lab.numpy())
        emb[("tsne", space)] = TSNE(2, perplexity=min(30, (len(z) - 1) / 3), init="pca",
                                    random_state=ctx.seed).fit_transform(z)
        emb[("umap", space)] = _umap(z, ctx.seed)
    real_means = torch.stack([real[real_lab == k].mean(0) for k in range(10)])
    gen_means = torch.stack([gen[labels == k].mean(0) for k in range(10)])
    all_means = torch.stack([torch.cat([xtr, xte])[torch.cat([ytr, yte]) == k].mean(0) for k in range(10)])
    mean_rmse = rmse(real_means, gen_means, value_range=None)  # on the [−1, 1] scale
    real2_means = torch.stack([real2[real2_lab == k].mean(0) for k in range(10)])
    mean_rmse_ref = rmse(real_means, real2_means, value_range=None)
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
                   one_nn_two_sample_accuracy_real_vs_real=two_sample_ref,
                   nearest_real_class_agreement=class_agree,
                   nearest_real_class_agreement_real_vs_real=class_agree_ref,
                   class_mean_rmse_real_vs_generated=mean_rmse.tolist(),
                   class_mean_rmse_real_vs_real=mean_rmse_ref.tolist(),
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
    ts, ts_ref = r["one_nn_two_sample_accuracy"], r["one_nn_two_sample_accuracy_real_vs_real"]
    ca, ca_ref = r["nearest_real_class_agreement"], r["nearest_real_class_agreement_real_vs_real"]
    n = 2 * 10 * r["samples_per_class"]
    se = (0.25 / n) ** 0.5                      # standard error of a 1-NN accuracy near 0.5 with n points
    numbers = md_table(["space", "1-NN real-vs-generated accuracy (0.5 = indistinguishable)",
                        "same test, real vs a second real set", "nearest-real class = own class (generated)",
                        "same, second real set"],
                       [[k, ts[k], ts_ref[k], ca[k], ca_ref[k]] for k in ts])
    m, m_ref = r["class_mean_rmse_real_vs_generated"], r["class_mean_rmse_real_vs_real"]
    numbers += ("\n\nRMSE between class means (per class 0…9, [−1, 1] scale), real vs generated: "
                + ", ".join(f"{v:.3f}" for v in m) + "; real vs a second real set: " + ", ".join(f"{v:.3f}" for v in m_ref))
    numbers += (f"\n\n{r['samples_per_class']} digits per class in each set; the standard error of a 1-NN accuracy "
                f"near 0.5 at this size is ≈ {se:.3f}.\n\n![t-SNE](tsne.png)\n\n![UMAP](umap.png)\n\n"
                "![class means](class_means.png)")
    lines = []
    for k in ts:
        gap = ts[k] - ts_ref[k]
        sep = ("distinguishable from real digits (above the real-vs-real value by more than 3 standard errors)"
               if gap > 3 * se else "not distinguishable from real digits beyond the real-vs-real value (within 3 "
               "standard errors)")
        faithful = ca[k] >= ca_ref[k] - 3 * (ca_ref[k] * (1 - ca_ref[k]) / (n / 2)) ** 0.5 - 1e-9
        lines.append(f"* {k}: 1-NN two-sample accuracy {ts[k]:.2f} vs {ts_ref[k]:.2f} for two real sets — {sep}. "
                     f"The nearest real digit of a generated one has its class for {ca[k]:.0%} of samples (real: "
                     f"{ca_ref[k]:.0%}): " + ("generated samples land in their class's cluster as often as real ones."
                                             if faithful else "generated samples land in their class's cluster "
                                             "less often than real ones."))
    ratio = float(np.mean(m) / np.mean(m_ref))
    lines.append(f"* Class means: mean RMSE real vs generated {np.mean(m):.3f}, real vs real {np.mean(m_ref):.3f} "
                 f"({ratio:.1f}×; criterion 1.5×, one draw of each set): " + (
                     "the generated class means are as close to the real ones as a second real sample's are."
                     if ratio <= 1.5 else "the generated class means differ from the real ones by more than a "
                     "second real sample's do (guidance w = 2 moves samples towards typical class members; not "
                     "isolated here)."))
    lines.append("* t-SNE/UMAP layouts are not metric (cluster sizes and distances between clusters carry no "
                 "meaning); the numbers above are computed in the original spaces, the plots only illustrate them.")
    write_readme(ctx, "Experiment 5 — embeddings of real vs generated digits", "Do generated samples land in the "
                 "regions of real samples of their class (t-SNE, UMAP; pixels and feature space)? What do the class "
                 "means look like?", numbers, "\n".join(lines))
