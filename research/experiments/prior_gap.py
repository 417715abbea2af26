"""Experiment 1 — prior gap vs T: the average per-dimension KL(q(x_T | x_0) ‖ N(0, I)) on the digits, per schedule and
per data preprocessing (raw, globally centred, per-class centred, centred + scaled to σ = 1).

    python -m research.experiments prior_gap --out docs/experiments/prior_gap/

Closed form per dimension (DDPM eq. 4): q(x_T | x_0) = N(√ᾱ_T x_0, 1 − ᾱ_T), so
    KL = ½(ᾱ_T x_0² − ᾱ_T − ln(1 − ᾱ_T)) ≈ ½ ᾱ_T x_0² + ¼ ᾱ_T²   for small ᾱ_T,
i.e. the gap is ᾱ_T times the data's second moment E[x_0²]; centering lowers E[x_0²] from mean² + variance to variance.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from gen.schedule import DataCentering

from .common import Context, load_digits_split, make_schedule, md_table, save_figure, write_readme

THRESHOLD = 1e-3      # a curve "reaches the prior" at the first T whose per-dimension KL is below this (nats)
T_GRID = [5, 10, 20, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 4000]
T_GRID_QUICK = [10, 100, 1000]
SCHEDULES = ("linear", "cosine", "linear_fixed")
PREPROCESS = ("raw", "global", "class", "global_scaled")


def preprocess(x: torch.Tensor, y: torch.Tensor, how: str) -> torch.Tensor:
    """The data the diffusion would see: raw, x − mean, x − mean_class, (x − mean)/σ."""
    if how == "raw":
        return x
    mode = "class" if how == "class" else "global"
    c = DataCentering(mode, scale=how.endswith("scaled")).fit(x, y, 10)
    return c.center(x, y)


def run(ctx: Context) -> dict:
    x, y, _, _ = load_digits_split(ctx.seed)
    grid = T_GRID_QUICK if ctx.quick else T_GRID
    data = {p: preprocess(x, y, p) for p in PREPROCESS}
    second_moment = {p: data[p].double().pow(2).mean().item() for p in PREPROCESS}
    kl: dict = {}
    alpha_bar_T: dict = {}
    for s in SCHEDULES:
        kl[s] = {p: [] for p in PREPROCESS}
        alpha_bar_T[s] = []
        for T in grid:
            sched = make_schedule(s, T)
            alpha_bar_T[s].append(sched.alpha_bar[-1].item())
            for p in PREPROCESS:
                kl[s][p].append(sched.prior_kl(data[p]).mean().item())
    # the crossing on a dense grid (every 10 steps up to the largest T), not just on the plotted T values
    dense = sorted(set(grid) | set(range(10, grid[-1] + 1, 10 if not ctx.quick else 100)))
    first_below = {s: {p: next((T for T in dense if make_schedule(s, T).prior_kl(data[p]).mean().item() < THRESHOLD),
                               None) for p in PREPROCESS} for s in SCHEDULES}
    results = dict(experiment="prior_gap", quick=ctx.quick, threshold_nats_per_dim=THRESHOLD, T=grid,
                   second_moment_E_x0_sq=second_moment, alpha_bar_T=alpha_bar_T, kl_per_dim=kl,
                   first_T_below_threshold=first_below,
                   schedules={"linear": "β linear in [1e-4, 0.02]·1000/T (T-rescaled, backbone default)",
                              "cosine": "Nichol & Dhariwal cosine, β capped at 0.999",
                              "linear_fixed": "β linear in [1e-4, 0.02] over T steps, no rescaling (DDPM with a "
                                              "different T)"})
    _plot(ctx, grid, kl, first_below)
    _readme(ctx, results)
    return results


def _plot(ctx, grid, kl, first_below):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCHEDULES), figsize=(5 * len(SCHEDULES), 4), sharey=True)
    for ax, s in zip(axes, SCHEDULES):
        for p in PREPROCESS:
            line, = ax.loglog(grid, np.maximum(kl[s][p], 1e-12), marker="o", ms=3, label=p)
            if first_below[s][p] is not None:
                ax.axvline(first_below[s][p], color=line.get_color(), ls=":", lw=1)
        ax.axhline(THRESHOLD, color="k", lw=0.8, ls="--", label=f"threshold {THRESHOLD:g}")
        ax.set_title(s)
        ax.set_xlabel("T")
    axes[0].set_ylabel("mean per-dim KL(q(x_T|x_0) ‖ N(0,I))  [nats]")
    axes[0].legend(fontsize=8)
    fig.suptitle("Prior gap vs T (digits train split); dotted: first T below the threshold")
    save_figure(fig, os.path.join(ctx.out, "prior_gap.png"))


def _readme(ctx, r):
    grid = r["T"]
    rows = []
    for s in SCHEDULES:
        for p in PREPROCESS:
            rows.append([s, p, r["second_moment_E_x0_sq"][p]] + [r["kl_per_dim"][s][p][i] for i in range(len(grid))]
                        + [r["first_T_below_threshold"][s][p]])
    numbers = md_table(["schedule", "data", "E[x0²]"] + [f"T={T}" for T in grid] + [f"first T < {THRESHOLD:g}"], rows)
    numbers += "\n\nᾱ_T per schedule: " + "; ".join(
        f"{s}: " + ", ".join(f"{v:.2g}" for v in r["alpha_bar_T"][s]) for s in SCHEDULES)
    numbers += "\n\n![prior gap](prior_gap.png)"
    m = r["second_moment_E_x0_sq"]
    fb = r["first_T_below_threshold"]["linear_fixed"]
    kl, ab = r["kl_per_dim"], r["alpha_bar_T"]
    # phase transition or smooth decay? fit ln KL = a + b·T on linear_fixed (raw data) where the first-order form
    # holds (ᾱ_T < 0.5) and KL is above float noise (1e−12), and report the worst residual
    Ts = np.asarray(grid, dtype=float)
    y = np.log(np.maximum(np.asarray(kl["linear_fixed"]["raw"]), 1e-300))
    ok = (y > np.log(1e-12)) & (np.asarray(ab["linear_fixed"]) < 0.5)
    slope, intercept = np.polyfit(Ts[ok], y[ok], 1)
    resid = float(np.abs(np.polyval([slope, intercept], Ts[ok]) - y[ok]).max())
    t_fit = Ts[ok].astype(int).tolist()
    flat = {s: (min(ab[s]), max(ab[s])) for s in ("linear", "cosine")}
    below_first = {s: all(kl[s][p][0] < THRESHOLD for p in PREPROCESS) for s in ("linear", "cosine")}
    # predicted shift of the crossing from lowering E[x0²]: KL ≈ ½ ᾱ_T E[x0²] with ln ᾱ_T ≈ slope·T
    pred = {p: np.log(m["raw"] / m[p]) / -slope for p in ("global", "class")}
    meas = {p: (fb["raw"] - fb[p]) if fb["raw"] is not None and fb[p] is not None else None
            for p in ("global", "class")}
    conclusion = f"""
* The gap is ½ ᾱ_T E[x_0²] to first order, so it is decided by ᾱ_T and the data's second moment. On the fixed-β
  linear schedule a straight line ln KL = {intercept:.2f} {slope:+.4f}·T fits the raw-data KL over
  T = {t_fit[0]}…{t_fit[-1]} (ᾱ_T < 0.5, KL > 1e−12) with a worst residual of {resid:.2f} in ln KL: """ + (
        "an exponential, smooth decay — no phase transition." if resid < 1.0 else
        "the decay is not a single exponential (a residual above 1 nat in ln KL); look at the plot for a transition.") + f"""
* With the schedules the backbone uses, ᾱ_T over the T grid spans {flat['linear'][0]:.2g}…{flat['linear'][1]:.2g}
  (rescaled linear) and {flat['cosine'][0]:.2g}…{flat['cosine'][1]:.2g} (cosine, last β capped at 0.999); every
  preprocessing is already below {THRESHOLD:g} nats/dim at T = {grid[0]}: rescaled linear
  {'yes' if below_first['linear'] else 'no'}, cosine {'yes' if below_first['cosine'] else 'no'}. So the claim "centering
  lets T be much smaller" only has content on the un-rescaled DDPM β range (`linear_fixed`).
* Centering lowers E[x_0²] from {m['raw']:.3f} (raw) to {m['global']:.3f} (global) and {m['class']:.3f} (per class);
  scaling to σ = 1 sets it to {m['global_scaled']:.3f}. On `linear_fixed` the first T under {THRESHOLD:g} nats/dim is
  {fb['raw']} (raw), {fb['global']} (global), {fb['class']} (per class), {fb['global_scaled']} (σ = 1): earlier by
  {meas['global']} and {meas['class']} steps, against ln(E_raw[x²]/E[x²]) / {-slope:.4f} = {pred['global']:.0f} and
  {pred['class']:.0f} predicted from the fitted slope — a constant offset in T, not a different order of magnitude.
"""
    write_readme(ctx, "Experiment 1 — prior gap vs T", "How does KL(q(x_T|x_0) ‖ N(0, I)) depend on T, the schedule, and "
                 "on centering the data? Does it have a phase transition?", numbers, conclusion)
