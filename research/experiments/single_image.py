"""Experiment 4 — single-image data: q(x_0) = δ(x − x*).

    python -m research.experiments single_image --out docs/experiments/single_image/

Closed forms. With x_t = √ᾱ_t x* + √(1−ᾱ_t) ε the noise is a deterministic function of x_t, so the L_simple minimiser
(the posterior mean E[ε | x_t]) is exact and the Bayes risk is zero:

    ε*(x_t, t) = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t),         x̂_0*(x_t, t) = x*   for every x_t and t.

The prior gap per dimension (d dimensions) is
    KL(q(x_T) ‖ N(0, I)) / d = ½(ᾱ_T (‖x*‖²/d − 1) − ln(1 − ᾱ_T)),
zero for no T > 0 unless x* = 0 — but also irrelevant: from *any* x_T one DDIM step with ε* returns x̂_0* = x*, so
with the optimal predictor T = 1 suffices. (Centering on x* itself, i.e. the data mean, makes the prior gap
½(−ᾱ_T − ln(1−ᾱ_T)) ≈ ¼ᾱ_T², the floor any data reaches.)

Numerical check: the closed-form KL against a Monte Carlo estimate and against `DiffusionSchedule.prior_kl`; ε* against
the ε that generated x_t; and an ε-prediction model trained on one digit: its relative ε error and its x̂_0 error per t,
and the RMSE to x* of its DDIM samples for 1 … T steps.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from gen.metrics import rmse
from gen.sampling import sample_ddim

from .common import Context, fit, load_digits_split, make_model, make_schedule, md_table, save_figure, write_readme

FULL = dict(T=200, steps=600, batch_size=32, base_channels=16, mc_samples=20000, eval_per_t=64)
QUICK = dict(T=50, steps=40, batch_size=16, base_channels=8, mc_samples=4000, eval_per_t=8)
KL_T = (10, 50, 100, 200, 500, 1000, 2000)


def prior_gap_closed_form(x_star: torch.Tensor, alpha_bar_T: float) -> float:
    """½(ᾱ_T (‖x*‖²/d − 1) − ln(1 − ᾱ_T)): mean per-dimension KL(q(x_T) ‖ N(0, I)) for q(x_0) = δ(x*)."""
    m2 = x_star.double().pow(2).mean().item()
    return 0.5 * (alpha_bar_T * (m2 - 1) - math.log(1 - alpha_bar_T))


def optimal_eps(x_t: torch.Tensor, t: torch.Tensor, x_star: torch.Tensor, schedule) -> torch.Tensor:
    """ε*(x_t, t) = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t)."""
    ab = schedule.alpha_bar[t].to(x_t.dtype).view(-1, *[1] * (x_t.ndim - 1))
    return (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()


def monte_carlo_kl(x_star: torch.Tensor, schedule, n: int, g: torch.Generator) -> float:
    """Per-dimension KL between a Gaussian fitted to n draws of x_T and N(0, 1), averaged over dimensions."""
    t = torch.full((n,), schedule.T - 1)
    x_T = schedule.q_sample(x_star.expand(n, *x_star.shape[1:]).double(), t, torch.randn(n, *x_star.shape[1:],
                            generator=g, dtype=torch.float64))
    mu, var = x_T.mean(0), x_T.var(0)
    return (0.5 * (var + mu ** 2 - 1 - var.log())).mean().item()


def run(ctx: Context) -> dict:
    cfg = QUICK if ctx.quick else FULL
    g = torch.Generator().manual_seed(ctx.seed)
    xtr, ytr, _, _ = load_digits_split(ctx.seed)
    x_star, y_star = xtr[:1], ytr[:1]                                   # (1, 1, 8, 8): the single training image
    # 1. prior gap: closed form vs DiffusionSchedule.prior_kl vs Monte Carlo, on the un-rescaled linear schedule
    kl_rows = []
    for T in KL_T:
        s = make_schedule("linear_fixed", T)
        ab = s.alpha_bar[-1].item()
        kl_rows.append(dict(T=T, alpha_bar_T=ab, closed_form=prior_gap_closed_form(x_star, ab),
                            prior_kl=s.prior_kl(x_star).item(), monte_carlo=monte_carlo_kl(x_star, s, cfg["mc_samples"], g),
                            centred_on_x_star=0.5 * (-ab - math.log(1 - ab))))
    # 2. ε* is exact: it recovers the ε that produced x_t (up to float64 rounding)
    schedule = make_schedule("cosine", cfg["T"])
    t = torch.randint(0, cfg["T"], (256,), generator=g)
    eps = torch.randn(256, 1, 8, 8, generator=g, dtype=torch.float64)
    x_t = schedule.q_sample(x_star.double().expand(256, -1, -1, -1), t, eps)
    eps_star_err = (optimal_eps(x_t, t, x_star.double(), schedule) - eps).abs().max().item()
    one_step = sample_ddim(lambda x, tt: optimal_eps(x, tt, x_star.double(), schedule), (16, 1, 8, 8), schedule,
                           steps=1, generator=torch.Generator().manual_seed(ctx.seed + 1)).float()
    # 3. a model trained on the single image (ε-prediction, as the question is about ε_θ)
    model = make_model(cfg["base_channels"], ctx.seed)
    losses = fit(model, x_star.expand(64, -1, -1, -1).contiguous(), y_star.expand(64), schedule, cfg["steps"],
                 batch_size=cfg["batch_size"], prediction_type="epsilon", seed=ctx.seed, label_dropout=0.0)
    model.eval()
    t_eval = sorted(set(np.linspace(0, cfg["T"] - 1, 12).round().astype(int).tolist()))
    per_t = []
    with torch.no_grad():
        for tv in t_eval:
            n = cfg["eval_per_t"]
            tt = torch.full((n,), tv)
            e = torch.randn(n, 1, 8, 8, generator=g)
            xt = schedule.q_sample(x_star.expand(n, -1, -1, -1), tt, e)
            eps_theta = model(xt, tt, {"label": y_star.expand(n)})
            es = optimal_eps(xt, tt, x_star, schedule)
            x0_theta = schedule.eps_to_x0(xt, tt, eps_theta)
            ab = schedule.alpha_bar[tv].item()
            per_t.append(dict(t=tv, alpha_bar=ab,
                              eps_rel_error=((eps_theta - es).flatten(1).norm(dim=1) / es.flatten(1).norm(dim=1)).mean().item(),
                              eps_rmse=(eps_theta - es).pow(2).mean().sqrt().item(),
                              x0_rmse=(x0_theta - x_star).pow(2).mean().sqrt().item(),
                              x0_error_gain=math.sqrt((1 - ab) / ab)))
        f = lambda x, tt: model(x, tt, {"label": y_star.expand(x.shape[0])})
        sample_rows = []
        for steps in sorted({1, 2, 5, 20, cfg["T"]}):
            row = dict(steps=steps)
            for key, clip in (("rmse_to_x_star", None), ("rmse_to_x_star_clipped", 1.0)):
                x = sample_ddim(f, (16, 1, 8, 8), schedule, steps=steps, clip_x0=clip,
                                generator=torch.Generator().manual_seed(ctx.seed))
                row[key] = rmse(x, x_star.expand_as(x), value_range=None).mean().item()  # raw, unclipped scale
            sample_rows.append(row)
    results = dict(experiment="single_image", quick=ctx.quick, config=dict(cfg, schedule="cosine",
                   prediction_type="epsilon", x_star="first image of the digits train split", label=int(y_star)),
                   prior_gap=kl_rows, max_abs_error_eps_star_vs_true_eps=eps_star_err,
                   one_step_ddim_with_eps_star_max_error=(one_step - x_star).abs().max().item(),
                   trained=dict(loss_curve=losses, per_t=per_t, ddim_samples=sample_rows))
    _plot(ctx, results)
    _readme(ctx, results)
    return results


def _plot(ctx, r):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    kl = r["prior_gap"]
    axes[0].loglog([k["T"] for k in kl], [max(k["closed_form"], 1e-16) for k in kl], "o-", label="closed form")
    axes[0].loglog([k["T"] for k in kl], [max(k["monte_carlo"], 1e-16) for k in kl], "x--", label="Monte Carlo")
    axes[0].loglog([k["T"] for k in kl], [max(k["centred_on_x_star"], 1e-16) for k in kl], ":", label="centred on x*")
    axes[0].set_xlabel("T (linear β 1e-4…0.02, not rescaled)")
    axes[0].set_ylabel("KL per dim")
    axes[0].set_title("prior gap, single image")
    axes[0].legend(fontsize=8)
    pt = r["trained"]["per_t"]
    ts = [p["t"] for p in pt]
    axes[1].semilogy(ts, [p["eps_rel_error"] for p in pt], "o-", label="‖ε_θ − ε*‖ / ‖ε*‖")
    axes[1].semilogy(ts, [p["x0_rmse"] for p in pt], "s-", label="RMSE(x̂_0(ε_θ), x*)")
    axes[1].semilogy(ts, [p["x0_error_gain"] for p in pt], ":", label="√((1−ᾱ)/ᾱ): ε→x_0 error gain")
    axes[1].set_xlabel("t")
    axes[1].set_title("trained ε-model vs the closed form")
    axes[1].legend(fontsize=8)
    save_figure(fig, os.path.join(ctx.out, "single_image.png"))


def _readme(ctx, r):
    numbers = "Prior gap (KL per dimension, nats):\n\n" + md_table(
        ["T", "ᾱ_T", "closed form", "prior_kl()", "Monte Carlo", "centred on x*"],
        [[k["T"], k["alpha_bar_T"], k["closed_form"], k["prior_kl"], k["monte_carlo"], k["centred_on_x_star"]]
         for k in r["prior_gap"]])
    numbers += (f"\n\nε* recovers the true ε to {r['max_abs_error_eps_star_vs_true_eps']:.1e} (max abs); one DDIM "
                f"step from pure noise with ε* lands on x* to {r['one_step_ddim_with_eps_star_max_error']:.1e}.\n\n"
                "Trained ε-model (cosine T = " + str(r["config"]["T"]) + ", " + str(r["config"]["steps"]) +
                " steps):\n\n" + md_table(["t", "ᾱ_t", "‖ε_θ−ε*‖/‖ε*‖", "RMSE x̂_0", "√((1−ᾱ)/ᾱ)"],
                                          [[p["t"], p["alpha_bar"], p["eps_rel_error"], p["x0_rmse"], p["x0_error_gain"]]
                                           for p in r["trained"]["per_t"]])
                + "\n\nDDIM (η = 0) samples of the trained model, mean RMSE to x* (pixel range [−1, 1]):\n\n"
                + md_table(["steps", "RMSE to x*", "RMSE to x*, x̂_0 clipped to [−1, 1]"],
                           [[s["steps"], s["rmse_to_x_star"], s["rmse_to_x_star_clipped"]] for s in r["trained"]["ddim_samples"]])
                + "\n\n![single image](single_image.png)")
    pt = r["trained"]["per_t"]
    ds = r["trained"]["ddim_samples"]
    worst = max(pt, key=lambda p: p["x0_rmse"])
    kl = r["prior_gap"]
    exact = all(abs(k["closed_form"] - k["prior_kl"]) <= max(1e-9 * abs(k["closed_form"]), 1e-15) for k in kl)
    mc_ok = [k for k in kl if k["closed_form"] > 0.05]
    mc_rel = max((abs(k["monte_carlo"] - k["closed_form"]) / k["closed_form"] for k in mc_ok), default=float("nan"))
    eps_ok = r["max_abs_error_eps_star_vs_true_eps"] < 1e-10
    one_ok = r["one_step_ddim_with_eps_star_max_error"] < 1e-3   # float32 x_T rounding, amplified by 1/√ᾱ_T
    held = exact and eps_ok and one_ok
    recovers = ds[-1]["rmse_to_x_star"] < 0.1
    repaired = ds[-1]["rmse_to_x_star_clipped"] < 0.5 * ds[-1]["rmse_to_x_star"]
    conclusion = f"""
* Closed forms against numerics: the prior-gap formula {'matches' if exact else 'does NOT match'} `prior_kl` (to 1e−9
  relative or 1e−15 absolute) at every T; the Monte Carlo estimate is within {mc_rel:.1%} where the KL exceeds 0.05 (below that it
  flattens at its own sampling error ≈ d/n); ε* reproduces the generating noise to
  {r['max_abs_error_eps_star_vs_true_eps']:.1e} (float64); one DDIM step with ε* lands on x* to
  {r['one_step_ddim_with_eps_star_max_error']:.1e} (float32 rounding of x_T divided by √ᾱ_T). """ + ("So the closed forms hold." if held else
                                                         "So at least one closed form fails — see the numbers.") + f"""
* Hence "what should T be" for a single image: with the exact predictor T does not matter — x̂_0* = x* for every
  x_t, the prior gap never enters, one step suffices. The prior gap only measures how far x_T is from N(0, I).
* The trained ε-model's relative ε error is {min(p['eps_rel_error'] for p in pt):.2g}–{max(p['eps_rel_error'] for p in pt):.2g}
  over t (largest at t = {max(pt, key=lambda p: p['eps_rel_error'])['t']}), but sampling needs
  x̂_0 = (x_t − √(1−ᾱ)ε_θ)/√ᾱ, which multiplies the ε error by √((1−ᾱ)/ᾱ): ≈ {pt[-1]['x0_error_gain']:.3g} at the last
  step of this cosine schedule (ᾱ_T ≈ {pt[-1]['alpha_bar']:.1g}); x̂_0 is off by RMSE {worst['x0_rmse']:.3g} at
  t = {worst['t']}. Unclipped DDIM gives RMSE {ds[0]['rmse_to_x_star']:.3g} at {ds[0]['steps']} step and
  {ds[-1]['rmse_to_x_star']:.3g} at {ds[-1]['steps']} steps (""" + (
        "it recovers x*" if recovers else "it does not recover x*") + f"""); clipping x̂_0 to the data range gives
  {ds[0]['rmse_to_x_star_clipped']:.3g} and {ds[-1]['rmse_to_x_star_clipped']:.3g} (""" + (
        "less than half the unclipped error: clipping repairs most of it" if repaired else
        "not a large improvement") + """). For an approximate ε-model, what limits quality is the ε→x_0 error
  amplification at low SNR — not the prior gap — which is why the suite defaults to v-prediction (bounded error at
  every SNR).
"""
    write_readme(ctx, "Experiment 4 — single-image data", "If q(x_0) is one image, what is the optimal ε-predictor, "
                 "what is the prior gap, and what should T be? Check against a model trained on one image.",
                 numbers, conclusion)
