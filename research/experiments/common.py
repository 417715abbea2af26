"""Shared pieces of the research experiments: data, the judge network, a compact training loop, sampling, quality
numbers and atomic output writing.

Data: scikit-learn's bundled digits (1797 8×8 grey images, 10 classes, no download), pixel values 0…16 mapped to
[−1, 1], shape (N, 1, 8, 8); a fixed stratified split (1437 train / 360 test).

Judge: a small CNN trained on the real train split. Its accuracy on generated samples measures "is the sample of the
requested class", and its penultimate layer (32-d) is the feature space of the Fréchet distance reported as
"digits-classifier features, not Inception". Trained by gen.judge.train_judge and cached as a gen.judge folder
(safetensors + card) under the cache folder.
"""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from gen.guidance import Term, guided_model
from gen.io import atomic_path
from gen.judge import load_judge, save_judge, train_judge
from gen.metrics import frechet_distance
from gen.models import ClassConditionalModel
from gen.sampling import sample_ddim, sample_ddpm, sample_diffusers
from gen.schedule import DataCentering, DiffusionSchedule
from gen.train import StepBatches, cpu_name, diffusion_loss, drop_conditions, seed_everything

NUM_CLASSES = 10
GUIDANCE = 2.0          # classifier-free guidance weight used for every class-conditional sample in the experiments
FD_LABEL = "Fréchet distance in digits-classifier features (32-d penultimate layer), not Inception"
DEFAULT_CACHE = "data/cache/experiments"


@dataclass
class Context:
    """What every experiment's `run` receives: where to write, how big to be, where to cache, which seed."""

    out: str                       # output folder (results.json, PNGs, README.md)
    quick: bool = False            # tiny sizes for tests
    cache: str = DEFAULT_CACHE     # judge / shared-model safetensors cache
    seed: int = 0                  # every random choice derives from this
    command: str = ""              # the command line, recorded in README.md
    started: float = field(default_factory=time.time)
    wall_seconds: float | None = None   # set when re-rendering: the run's recorded wall time
    rendered: bool = False         # README re-rendered from results.json (`--render`), nothing recomputed
    machine: str | None = None     # set when re-rendering: the machine recorded in results.json


# ---- data -----------------------------------------------------------------------------------------------------------
def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train (N,1,8,8) in [−1,1], y_train (N,), x_test, y_test): a stratified split fixed by `seed`."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # (1797, 1, 8, 8), 0…16 → [−1, 1]
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    test_idx = []
    for k in range(NUM_CLASSES):
        idx = (y == k).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_idx.append(idx[: int(round(len(idx) * test_fraction))])
    test = torch.zeros(len(y), dtype=torch.bool)
    test[torch.cat(test_idx)] = True
    return x[~test], y[~test], x[test], y[test]


def per_class(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """n examples of each class (fewer if a class has fewer), in class order, chosen by `seed`."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for k in range(NUM_CLASSES):
        idx = (y == k).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)[:n]]
        xs.append(x[idx])
        ys.append(y[idx])
    return torch.cat(xs), torch.cat(ys)


# ---- the judge --------------------------------------------------------------------------------------------------------
class DigitsJudge(nn.Module):
    """Small CNN on (B, 1, 8, 8) digits; `features` is the 32-d penultimate layer used for the Fréchet distance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.ReLU(),   # (B, 64, 4, 4)
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 16, 32), nn.ReLU())
        self.head = nn.Linear(32, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.clamp(-1, 1))                                # (B, 32)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))                             # (B, 10) logits


JUDGE_STEPS, JUDGE_STEPS_QUICK = 1500, 150


def _shift_1px(x: Tensor, g: torch.Generator) -> Tensor:
    """Light augmentation (one ±1 px shift per batch) so the judge does not reject slightly shifted samples."""
    return torch.roll(x, shifts=tuple(torch.randint(-1, 2, (2,), generator=g).tolist()), dims=(2, 3))


def get_judge(ctx: Context) -> tuple[DigitsJudge, float]:
    """The judge trained on the real train split (cached as a gen.judge folder: safetensors + a card with its test
    accuracy); returns (judge, its accuracy on the real test split)."""
    xtr, ytr, xte, yte = load_digits_split(ctx.seed)
    folder = os.path.join(ctx.cache, f"judge_digits8_seed{ctx.seed}{'_quick' if ctx.quick else ''}")
    steps = JUDGE_STEPS_QUICK if ctx.quick else JUDGE_STEPS
    cached = os.path.exists(os.path.join(folder, "judge.safetensors"))
    if cached:
        judge, _ = load_judge(DigitsJudge, folder)
    else:
        seed_everything(ctx.seed)
        judge = DigitsJudge()
        train_judge(judge, (xtr, ytr), steps=steps, batch_size=64, lr=2e-3, seed=ctx.seed, optimizer="adam",
                    augment=_shift_1px)
    judge.eval().requires_grad_(False)
    with torch.no_grad():
        acc = (judge(xte).argmax(1) == yte).float().mean().item()
    if not cached:
        save_judge(judge, folder, {
            "trained_on": f"sklearn digits, stratified train split (seed {ctx.seed}, {len(ytr)} images), "
                          "±1 px shifts", "steps": steps, "batch_size": 64, "optimizer": "Adam 2e-3",
            "seed": ctx.seed, "heldout_accuracy": acc, "heldout": f"the real test split ({len(yte)} images)"})
    return judge, acc


@torch.no_grad()
def quality(judge: DigitsJudge, x: Tensor, labels: Tensor, real: Tensor) -> dict:
    """Class accuracy of samples under the judge and the Fréchet distance to `real` in judge features."""
    x = x.clamp(-1, 1)
    return {"accuracy": (judge(x).argmax(1) == labels).float().mean().item(),
            "frechet_digits_features": frechet_distance(judge.features(x), judge.features(real))}


# ---- schedules, model, training -----------------------------------------------------------------------------------------
SCHEDULES = ("linear", "cosine", "linear_fixed")


def make_schedule(kind: str, T: int) -> DiffusionSchedule:
    """linear (β range rescaled by 1000/T, the backbone's default) | cosine | linear_fixed (DDPM's β_1 = 1e−4 …
    β_T = 0.02 over T steps with no rescaling, the setting in which ᾱ_T depends on T)."""
    if kind == "linear_fixed":
        return DiffusionSchedule(torch.linspace(1e-4, 0.02, T, dtype=torch.float64))
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; accepted: {SCHEDULES}")
    return DiffusionSchedule.make(kind, T)


def make_model(base_channels: int = 16, seed: int = 0) -> ClassConditionalModel:
    """The small class-conditional U-Net every experiment trains: 8×8 → 4×4, one ResBlock per level, attention only
    in the middle block."""
    seed_everything(seed)
    return ClassConditionalModel(NUM_CLASSES, unet_config=dict(
        dims=2, in_channels=1, base_channels=base_channels, channel_mult=(1, 2), layers_per_block=1,
        attention_levels=(), head_dim=base_channels))


def fit(model: nn.Module, x0: Tensor, labels: Tensor, schedule: DiffusionSchedule, steps: int, *, batch_size: int = 32,
        lr: float = 3e-3, prediction_type: str = "v_prediction", seed: int = 0,
        centering: DataCentering | None = None, label_dropout: float = 0.1,
        batch_centering: "BatchCentering | None" = None) -> list[float]:
    """L_simple on (x0, labels) for `steps` AdamW steps (warm-up 5 %, cosine decay to 0), condition dropout for CFG.

    With `centering` the network sees centering.center(x0, labels) (means must already be fitted); with
    `batch_centering` each batch minus its own mean (the running mean is kept for sampling). Returns the loss averaged
    over each tenth of training.
    """
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    batches = iter(StepBatches(len(x0), batch_size, seed, 0, 1))
    data = centering.center(x0, labels) if centering is not None else x0
    losses, chunk = [], []
    model.train()
    for step in range(steps):
        idx = torch.tensor(next(batches))
        cond = drop_conditions({"label": labels[idx]}, {"label": label_dropout}, len(idx), g)
        x_b = data[idx] if batch_centering is None else batch_centering.center_batch(data[idx])
        loss = diffusion_loss(model, schedule, x_b, cond, prediction_type, g)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        chunk.append(loss.item())
        if len(chunk) == max(1, steps // 10) or step == steps - 1:
            losses.append(float(np.mean(chunk)))
            chunk = []
    return losses


@torch.no_grad()
def sample_classes(model: nn.Module, schedule: DiffusionSchedule, labels: Tensor, *, sampler: str = "ddim",
                   steps: int = 50, eta: float = 0.0, guidance: float = GUIDANCE, seed: int = 0,
                   prediction_type: str = "v_prediction", centering: DataCentering | None = None) -> Tensor:
    """Class-conditional samples (B, 1, 8, 8), one per label, in data space (un-centred, not clamped).

    sampler: "ddim" (σ-family with `eta`), "ancestral" (DDPM Algorithm 2 with skipped steps) or a diffusers scheduler
    name ("dpm++", …). Guidance is classifier-free with weight `guidance` against the learned null label.
    """
    model.eval()
    cond = {"label": labels, "label.keep": torch.ones_like(labels, dtype=torch.bool)}
    f = guided_model(model, guidance * Term(cond), ClassConditionalModel.null_cond())
    g = torch.Generator().manual_seed(seed)
    shape = (len(labels), 1, 8, 8)
    if sampler == "ddim":
        x = sample_ddim(f, shape, schedule, steps=steps, eta=eta, generator=g, prediction_type=prediction_type)
    elif sampler == "ancestral":
        x = sample_ddpm(f, shape, schedule, steps=steps, generator=g, prediction_type=prediction_type)
    else:
        x = sample_diffusers(f, shape, schedule, scheduler=sampler, steps=steps, generator=g,
                             prediction_type=prediction_type)
    return centering.uncenter(x, labels) if centering is not None else x


SHARED = dict(base_channels=16, schedule="cosine", T=1000, steps=1500, batch_size=32, lr=3e-3)
# quick: ~10 s of training, enough for samples well above chance (the x0_substitute test compares against chance)
SHARED_QUICK = dict(base_channels=8, schedule="cosine", T=1000, steps=300, batch_size=16, lr=3e-3)


def shared_model(ctx: Context) -> tuple[ClassConditionalModel, DiffusionSchedule, dict]:
    """One v-prediction model (cosine, T = 1000) trained on the digits train split, shared by the DDIM table,
    embeddings, scale-linearity and metrics experiments; cached with save_pretrained (safetensors)."""
    cfg = SHARED_QUICK if ctx.quick else SHARED
    name = "shared_{schedule}{T}_b{base_channels}_s{steps}".format(**cfg) + f"_seed{ctx.seed}"
    folder = os.path.join(ctx.cache, name)
    schedule = make_schedule(cfg["schedule"], cfg["T"])
    info = dict(cfg, prediction_type="v_prediction", cache=folder)
    weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    if os.path.exists(weights):
        model = ClassConditionalModel.from_pretrained(folder, use_safetensors=True)
        info["trained_now"] = False
    else:
        xtr, ytr, _, _ = load_digits_split(ctx.seed)
        model = make_model(cfg["base_channels"], ctx.seed)
        t0 = time.time()
        info["loss_curve"] = fit(model, xtr, ytr, schedule, cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                                 seed=ctx.seed)
        info["train_seconds"] = round(time.time() - t0, 1)
        tmp = tempfile.mkdtemp(prefix=".tmp_", dir=_ensure_dir(ctx.cache))
        model.save_pretrained(tmp, safe_serialization=True)
        if os.path.exists(folder):
            import shutil
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        info["trained_now"] = True
    info["parameters"] = sum(p.numel() for p in model.parameters())
    return model.eval(), schedule, info


# ---- outputs ---------------------------------------------------------------------------------------------------------------
def _ensure_dir(d: str) -> str:
    os.makedirs(d, exist_ok=True)
    return d


def _atomic(path: str, write) -> None:
    """write(tmp_path) into a temp file in the same folder, then os.replace: nothing half-written on error."""
    _ensure_dir(os.path.dirname(os.path.abspath(path)))
    with atomic_path(path, suffix=os.path.splitext(path)[1], prefix=".tmp_") as tmp:  # keep the extension for savefig
        write(tmp)


def write_text(path: str, text: str) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    _atomic(path, w)


def write_json(path: str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (Tensor, np.ndarray)):
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def save_figure(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


def image_grid(ax, x: Tensor, nrow: int, title: str = "") -> None:
    """Draw (N, 1, H, W) images in [−1, 1] as one grey grid on a matplotlib axis."""
    x = x.clamp(-1, 1)[:, 0]
    n, h, w = x.shape
    ncol = math.ceil(n / nrow)
    canvas = torch.full((nrow * (h + 1) - 1, ncol * (w + 1) - 1), 0.0)  # grey separators
    for i in range(n):
        r, c = i // ncol, i % ncol
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = x[i]
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s), fp32, CPU only ({platform.system()})")


def _machine_line(ctx: Context) -> str:
    if not ctx.rendered:
        return f"{machine()}; wall time {time.time() - ctx.started:.0f} s."
    known = ctx.machine or "not recorded"
    wall = "" if ctx.wall_seconds is None or "wall time" in known else f"; wall time {ctx.wall_seconds:.0f} s"
    return f"{known.rstrip('.')}{wall} (README re-rendered from results.json with `--render`, nothing recomputed)."


def write_readme(ctx: Context, title: str, question: str, numbers: str, conclusion: str) -> None:
    """README.md with the command, the machine, the numbers (markdown) and the conclusion."""
    text = (f"# {title}\n\n**Question.** {question}\n\n"
            f"**Command.** `{ctx.command}`{' (quick variant: tiny sizes, numbers meaningless)' if ctx.quick else ''}\n\n"
            f"**Machine.** {_machine_line(ctx)}\n\n"
            f"## Numbers\n\n{numbers.strip()}\n\n## Conclusion\n\n{conclusion.strip()}\n")
    write_text(os.path.join(ctx.out, "README.md"), text)


def md_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "—" if v is None else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


# ---- pieces of the second-round experiments (x0_substitute, batch_centering, truncated) ------------------------------
class BatchCentering:
    """Per-batch centering: every training batch minus its *own* mean image; the running (cumulative) mean of those
    batch means is what sampling adds back (`uncenter`). The network's target then carries the batch-mean noise
    x̄_B − E[x̄_B], of variance σ²/B · (N − B)/(N − 1) per pixel for batches drawn without replacement."""

    def __init__(self):
        self.sum: Tensor | None = None     # (1, *sample_shape) float64: Σ of the batch means seen
        self.count = 0
        self.batch_means: list[Tensor] = []

    def center_batch(self, x: Tensor) -> Tensor:
        m = x.mean(0, keepdim=True)                                     # (1, C, H, W)
        self.sum = m.double() if self.sum is None else self.sum + m.double()
        self.count += 1
        self.batch_means.append(m.detach().flatten())
        return x - m

    @property
    def mean(self) -> Tensor:
        return (self.sum / max(self.count, 1)).float()

    def uncenter(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return x + self.mean.to(x.dtype)

    def batch_mean_variance(self) -> float:
        """Measured per-pixel variance of the batch means around their average (the extra noise in the targets)."""
        b = torch.stack(self.batch_means).double()                      # (steps, D)
        return b.var(0).mean().item()


def guided_x0(model: nn.Module, schedule: DiffusionSchedule, labels: Tensor, guidance: float = GUIDANCE,
              prediction_type: str = "v_prediction"):
    """(x_t (B,1,8,8), t int) → (ε̂, x̂_0) of the classifier-free-guided class-conditional model (the same guided
    prediction `sample_classes` uses)."""
    cond = {"label": labels, "label.keep": torch.ones_like(labels, dtype=torch.bool)}
    f = guided_model(model, guidance * Term(cond), ClassConditionalModel.null_cond())

    @torch.no_grad()
    def fn(x: Tensor, t: int) -> tuple[Tensor, Tensor]:
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        return schedule.split_prediction(f(x, tt), x, tt, prediction_type)
    model.eval()
    return fn


def pixel_rmse(a: Tensor, b: Tensor) -> Tensor:
    """(A, B) matrix of per-image RMSE on the [−1, 1] scale between (A, 1, 8, 8) and (B, 1, 8, 8)."""
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double()).div(a[0].numel() ** 0.5).float()


def nearest_train(x: Tensor, train: Tensor) -> tuple[Tensor, Tensor]:
    """(RMSE to the nearest training image (N,), its index (N,)): 0 means the sample *is* a training image."""
    d = pixel_rmse(x.clamp(-1, 1), train)
    return d.min(1)


def within_class_spread(x: Tensor, labels: Tensor) -> float:
    """Diversity: mean pixel RMSE between two different samples of the same class, averaged over classes."""
    x = x.clamp(-1, 1)
    vals = []
    for k in labels.unique().tolist():
        xs = x[labels == k]
        if len(xs) < 2:
            continue
        d = pixel_rmse(xs, xs)
        vals.append((d.sum() / (len(xs) * (len(xs) - 1))).item())
    return float(np.mean(vals)) if vals else float("nan")


@torch.no_grad()
def fd_floor(judge: DigitsJudge, xtr: Tensor, ytr: Tensor, xte: Tensor, n_per_class: int, seed: int) -> float:
    """The Fréchet distance of *real* train digits (n_per_class per class) to the real test set: what a perfect
    generator would score at that sample size (FD is biased upwards at small n; read every FD against this)."""
    real, _ = per_class(xtr, ytr, n_per_class, seed)
    return frechet_distance(judge.features(real), judge.features(xte))


def mean_sd(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def compare(a: list[float], b: list[float], lower_is_better: bool) -> str:
    """Which of two per-seed value lists is better: "a" or "b" only when their seed ranges do not overlap (needs ≥ 2
    seeds each; one seed never establishes an ordering), else "inconclusive"."""
    if min(len(a), len(b)) < 2:
        return "inconclusive"
    if max(a) < min(b):
        return "a" if lower_is_better else "b"
    if max(b) < min(a):
        return "b" if lower_is_better else "a"
    return "inconclusive"


def fmt_ms(v: list[float], digits: int = 2) -> str:
    """"m ± sd" over seeds (just "m" for one seed)."""
    m, s = mean_sd(v)
    return f"{m:.{digits}f}" if len(v) < 2 else f"{m:.{digits}f} ± {s:.{digits}f}"
