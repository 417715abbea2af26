"""Few-step sampling by progressive distillation (Salimans & Ho 2022) with classifier-free guidance folded in.

A frozen teacher sampled with deterministic DDIM at N steps and guidance w is distilled into a student that takes the
same conditions and, in one network evaluation per step, lands where the guided teacher lands in two: N → N/2, then
the student becomes the teacher of the next stage, until `final_steps` (e.g. 16 → 8 → 4). The guidance is folded into
the first stage's targets (Meng et al. 2023, "On distillation of guided diffusion models", at one fixed w), so the
student samples with a single conditional pass per step: no unconditional pass, no CFG arithmetic.

One student step from z_t (timestep t of the student's N/2-step trailing grid, which nests in the teacher's N-step one)
to z_t'' is trained against two teacher DDIM (η = 0) steps t → t' → t''; with α = √ᾱ, σ = √(1 − ᾱ) the x_0 a single
DDIM step must predict to reach the teacher's z_t'' is (Salimans & Ho, Algorithm 2)

    x̃ = (z_t'' − (σ_t''/σ_t) z_t) / (α_t'' − (σ_t''/σ_t) α_t),          (x̃ = z_t'' at the last step, where σ_t'' = 0)

and the loss is max(SNR_t, 1) ‖x̂_0 − x̃‖² ("truncated SNR" weighting). z_t = α_t x + σ_t ε with x from the training
data and t on the student grid. A fraction `p_uncond` of each batch uses the null condition, with the teacher's
*unguided* null trajectory as target, so the student keeps a null prediction (composite prompts that mix several
conditioned terms around it still work; plain conditional sampling never evaluates it).

The data and conditions come from the task's own `TrainTask` (`gen.train`), by default with no condition dropout (the
student sees every condition of the data); `condition_dropout: true` applies the task's own dropout (`task.dropout`,
per element for `task.elementwise` groups), for a task whose users give partial conditions (the attribute model:
prompts name 1-4 of its 9 attributes). The first stage's teacher is classifier-free guidance at one weight
(`GuidedTeacher`) unless the caller passes its own (`first_teacher`: e.g. the attribute pipeline's composed guidance,
one term per specified attribute with its own scale). The loop is single-process, checkpoints every
`ckpt_every` iterations (weights, EMA, optimizer, every RNG: `--resume` continues exactly) and writes each finished
stage's student (EMA) to ``<output_dir>/stage_<N>`` (model/ in safetensors), which the next stage reads as its teacher.
"""
from __future__ import annotations

import copy
import json
import os
import time
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from .guidance import Term, drop_conditions, guided_prediction, keep_key
from .sampling import make_timesteps
from .schedule import DiffusionSchedule
from .train import (EMA, RankRNG, StepBatches, TrainTask, _load_optimizer, checkpoint_dirs, make_adamw,
                    read_checkpoint, save_checkpoint, _prune)

DISTILL_DEFAULTS = dict(
    output_dir="runs/distill",  # stage_<N>/ students and checkpoints/ land here
    guidance=2.0,               # the teacher's classifier-free guidance weight folded into the student
    start_steps=16,             # the teacher's DDIM steps in the first stage (a power-of-two multiple of final_steps)
    final_steps=4,              # the student's steps at the end
    iters_per_stage=400,        # optimizer steps per halving
    batch_size=32,
    lr=1.0e-4,
    p_uncond=0.1,               # fraction of each batch trained on the null condition (teacher's unguided target)
    condition_dropout=False,    # apply the task's own condition dropout to the data's conditions (partial conditions)
    ema_decay=0.995,            # the stage's student is its EMA (0 = the raw weights)
    max_grad_norm=1.0,
    ckpt_every=50,
    keep_checkpoints=2,
    seed=0,
    threads=0,                  # torch.set_num_threads (0 = torch's default)
)


def stages(start_steps: int, final_steps: int) -> list[int]:
    """The teacher step counts of each stage: [start, start/2, …, 2·final]; ValueError unless start = final·2^k."""
    if final_steps < 1 or start_steps <= final_steps:
        raise ValueError(f"need start_steps > final_steps >= 1, got start_steps={start_steps}, final_steps={final_steps}")
    out, n = [], start_steps
    while n > final_steps:
        if n % 2:
            raise ValueError(f"start_steps must be final_steps times a power of two, got {start_steps} and {final_steps}")
        out.append(n)
        n //= 2
    if n != final_steps:
        raise ValueError(f"start_steps must be final_steps times a power of two, got {start_steps} and {final_steps}")
    return out


def _ab(schedule: DiffusionSchedule, t: Tensor, x: Tensor) -> Tensor:
    """ᾱ_t per sample, broadcast against x; ᾱ = 1 where t < 0 (the end of sampling)."""
    ab = schedule.alpha_bar.to(x.device, torch.float64)[t.clamp(min=0).to(x.device)]
    ab = torch.where(t.to(x.device) < 0, torch.ones_like(ab), ab)
    return ab.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def ddim_to(x0: Tensor, eps: Tensor, ab_next: Tensor) -> Tensor:
    """Deterministic DDIM (η = 0) landing: z_next = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂."""
    return ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps


def distill_target(z: Tensor, ab_t: Tensor, z_next: Tensor, ab_next: Tensor) -> Tensor:
    """The x̃ that one DDIM step from (z, t) must predict to land on z_next (Salimans & Ho 2022, Algorithm 2)."""
    a_t, s_t = ab_t.sqrt(), (1 - ab_t).sqrt()
    a_n, s_n = ab_next.sqrt(), (1 - ab_next).sqrt()
    ratio = s_n / s_t
    return (z_next - ratio * z) / (a_n - ratio * a_t)


def null_condition(cond: Mapping[str, Tensor], groups, elementwise: Mapping[str, int] | None = None) -> dict:
    """`cond` with every condition group's keep flags False (the unconditional input of classifier-free guidance)."""
    elementwise = dict(elementwise or {})
    b = next(v for v in cond.values() if torch.is_tensor(v)).shape[0]
    out = dict(cond)
    for g in groups:
        shape = (b, elementwise[g]) if g in elementwise else (b,)
        out[keep_key(g)] = torch.zeros(shape, dtype=torch.bool)
    return out


def _select_rows(cond: dict, rows: Tensor, null: dict) -> dict:
    """Per sample: null[k] where rows, else cond[k] (keep flags only differ, so only those are mixed)."""
    out = dict(cond)
    for k, v in null.items():
        if k.endswith(".keep"):
            c = cond.get(k, torch.ones_like(v))
            r = rows.reshape(-1, *([1] * (v.ndim - 1)))
            out[k] = torch.where(r, v, c.to(v.dtype))
    return out


class GuidedTeacher:
    """The first stage's teacher: classifier-free guidance at weight w through `gen.guidance.guided_prediction`
    (null + w (cond − null), one batched pass). Rows whose keep flags are all False (the p_uncond rows) get the null
    prediction itself, since their conditional and null inputs are the same."""

    def __init__(self, model: nn.Module, guidance: float, groups, elementwise=None):
        self.model, self.w, self.groups, self.elementwise = model, float(guidance), list(groups), elementwise

    def __call__(self, x: Tensor, t: Tensor, cond: dict) -> Tensor:
        return guided_prediction(self.model, x, t, Term(cond, self.w),
                                 null_condition(cond, self.groups, self.elementwise))


def distill_loss(student: nn.Module, teacher: Callable, schedule: DiffusionSchedule, prediction_type: str,
                 x0: Tensor, cond: dict, null: dict, uncond_rows: Tensor, teacher_steps: int,
                 generator: torch.Generator | None) -> Tensor:
    """One progressive-distillation loss (see the module docstring): student steps = teacher_steps / 2."""
    b = x0.shape[0]
    ts_teacher = torch.tensor(make_timesteps(schedule.T, teacher_steps) + [-1])
    i = torch.randint(0, teacher_steps // 2, (b,), generator=generator)
    t, t_mid, t_next = ts_teacher[2 * i], ts_teacher[2 * i + 1], ts_teacher[2 * i + 2]
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    t, t_mid, t_next = t.to(x0.device), t_mid.to(x0.device), t_next.to(x0.device)
    ab_t, ab_mid, ab_next = _ab(schedule, t, x0), _ab(schedule, t_mid, x0), _ab(schedule, t_next, x0)
    z = ab_t.sqrt() * x0 + (1 - ab_t).sqrt() * eps
    c = _select_rows(cond, uncond_rows, null)
    with torch.no_grad():
        e1, x1 = schedule.split_prediction(teacher(z, t, c), z, t, prediction_type)
        z_mid = ddim_to(x1, e1, ab_mid)
        # t_mid is never −1 (the teacher grid has 2 steps per student step)
        e2, x2 = schedule.split_prediction(teacher(z_mid, t_mid, c), z_mid, t_mid, prediction_type)
        z_next = ddim_to(x2, e2, ab_next)
        target = torch.where((t_next < 0).reshape(-1, *([1] * (x0.ndim - 1))), z_next,
                             distill_target(z, ab_t, z_next, ab_next))
    _, x_hat = schedule.split_prediction(student(z, t, c), z, t, prediction_type)
    weight = (ab_t / (1 - ab_t)).clamp(min=1.0)
    return (weight * (x_hat - target) ** 2).mean()


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's weights as fp16 bytes in state-dict order (what a shipped fp16 file holds): a student is
    shipped only beside the very teacher it was distilled from."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().to(torch.float16).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def ship_student(pipeline_cls, output_dir: str, folder: str) -> str:
    """Attach the finished student of the distillation in `output_dir` to the pipeline folder `folder` (a
    `pipeline_cls` folder, e.g. a task's shipped model) as `distilled/` in fp16, after checking that `folder` holds the
    very teacher it was distilled from (weights' SHA-256, `distill.json`). ValueError, and `folder` untouched, if not."""
    info_path = os.path.join(output_dir, "distill.json")
    if not os.path.isfile(info_path):
        raise ValueError(f"{output_dir!r} has no finished distillation (distill.json); run the distillation first")
    with open(info_path) as f:
        info = json.load(f)
    pipe = pipeline_cls.from_pretrained(folder)
    if weights_sha256(pipe.model) != info["teacher_sha256"]:
        raise ValueError(f"{folder!r} does not hold the teacher this student was distilled from (weights differ); "
                         f"ship it beside {info['teacher']!r} as it was when the distillation ran")
    student = _load_student(pipe.model, _stage_dir(output_dir, int(info["steps"])))
    pipe.set_distilled(student, info)
    return pipe.save_pretrained(folder, dtype=torch.float16)


def _stage_dir(out: str, n: int) -> str:
    return os.path.join(out, f"stage_{n:03d}")


def _load_student(template: nn.Module, folder: str) -> nn.Module:
    from safetensors.torch import load_file

    m = copy.deepcopy(template)
    m.load_state_dict(load_file(os.path.join(folder, "model", "diffusion_pytorch_model.safetensors")))
    return m.eval().requires_grad_(False)


def distill(task: TrainTask, teacher: nn.Module, schedule: DiffusionSchedule, prediction_type: str,
            cfg: Mapping, resume: bool = False, log: Callable[[str], None] = print,
            first_teacher: Callable[[nn.Module], Callable] | None = None) -> dict:
    """Run every stage; returns {"student": the final student (eval mode), "stages": [...], "seconds", "output_dir"}.

    `task.model` is ignored; the student starts as a copy of `teacher`. `task.dropout` names the condition groups
    (their keep flags make the null condition); `task.elementwise` their per-element sizes. `first_teacher(teacher)`
    makes the first stage's guided teacher, a callable (x, t, cond) → prediction (default: `GuidedTeacher` at
    cfg["guidance"]); later stages' teachers are the previous students."""
    cfg = {**DISTILL_DEFAULTS, **dict(cfg)}
    plan = stages(int(cfg["start_steps"]), int(cfg["final_steps"]))
    if not 0 <= cfg["p_uncond"] < 1:
        raise ValueError(f"p_uncond must be in [0, 1), got {cfg['p_uncond']}")
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    out = cfg["output_dir"]
    os.makedirs(out, exist_ok=True)
    groups, elementwise = list(task.dropout), dict(task.elementwise)
    teacher = teacher.eval().requires_grad_(False)
    iters = int(cfg["iters_per_stage"])
    total = iters * len(plan)

    saved = None
    if resume:
        for path in checkpoint_dirs(out):
            try:
                saved = read_checkpoint(path, need_ema=cfg["ema_decay"] > 0)
                break
            except ValueError as e:
                log(f"--resume: skipping {path} ({e})")
        if saved is None:
            log(f"--resume: no checkpoint in {out}; starting afresh")
    done = 0 if saved is None else int(saved["step"])
    rng = RankRNG(int(cfg["seed"]), 0)
    t0 = time.time()
    summary = []
    for k, n in enumerate(plan):
        stage_end = (k + 1) * iters
        if done >= stage_end and os.path.isdir(_stage_dir(out, n // 2)):
            summary.append({"teacher_steps": n, "student_steps": n // 2, "skipped": "done before --resume"})
            continue
        prev = teacher if k == 0 else _load_student(teacher, _stage_dir(out, n))
        # a later stage's teacher is the previous student: guidance is folded in, its rows carry their own conditions
        if k > 0:
            tfn = prev
        elif first_teacher is not None:
            tfn = first_teacher(prev)
        else:
            tfn = GuidedTeacher(prev, cfg["guidance"], groups, elementwise)
        student = copy.deepcopy(prev).train().requires_grad_(True)
        opt = make_adamw(student.parameters(), lr=cfg["lr"], weight_decay=0.0)
        ema = EMA(student, cfg["ema_decay"]) if cfg["ema_decay"] > 0 else None
        # a checkpoint of this stage: k·iters < step ≤ stage_end (one at k·iters holds the previous stage's student)
        in_stage = saved is not None and k * iters < done <= stage_end
        if in_stage:
            student.load_state_dict(saved["model"])
            _load_optimizer(opt, saved["optimizer"], saved)
            if ema is not None:
                ema.model.load_state_dict(saved["ema"])
                ema.n = saved["ema_n"]
            log(f"resumed stage {n} → {n // 2} at iteration {done - k * iters} ({saved['path']})")
        sampler = StepBatches(len(task.dataset), int(cfg["batch_size"]), int(cfg["seed"]) + k, 0, 1,
                              start=max(0, done - k * iters))
        batches = iter(torch.utils.data.DataLoader(task.dataset, batch_sampler=sampler, num_workers=0))
        if in_stage and "rng" in saved:
            rng.load(*saved["rng"][0])
        elif done <= k * iters:
            rng = RankRNG(int(cfg["seed"]), 0, salt=k)
            rng.seed_globals()
        losses = []
        ts = time.time()
        while done < stage_end:
            x0, cond = task.batch_to(next(batches))
            cond = dict(cond)
            for g in groups:  # every group kept (the teacher's own rows); null rows get their flags below
                shape = (x0.shape[0], elementwise[g]) if g in elementwise else (x0.shape[0],)
                cond.setdefault(keep_key(g), torch.ones(shape, dtype=torch.bool))
            if cfg["condition_dropout"]:
                cond = drop_conditions(cond, task.dropout, x0.shape[0], rng.dropout, elementwise)
            null = null_condition(cond, groups, elementwise)
            rows = torch.rand(x0.shape[0], generator=rng.dropout) < cfg["p_uncond"]
            loss = distill_loss(student, tfn, schedule, prediction_type, x0, cond, null, rows, n, rng.noise)
            loss.backward()
            if cfg["max_grad_norm"] > 0:
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg["max_grad_norm"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(student)
            done += 1
            losses.append(loss.item())
            if done % 25 == 0 or done == stage_end:
                log(f"[distill] stage {n}→{n // 2} iter {done - k * iters}/{iters} loss "
                    f"{sum(losses[-25:]) / len(losses[-25:]):.4f} ({(time.time() - ts) / len(losses):.2f} s/iter)")
            if done % int(cfg["ckpt_every"]) == 0 or done == stage_end:
                save_checkpoint(os.path.join(out, "checkpoints", f"step_{done:07d}"), student, ema, opt, done,
                                dict(cfg), rng_states=[rng.to_bytes()], state={"stage": k, "teacher_steps": n})
                _prune(out, int(cfg["keep_checkpoints"]))
        final = (ema.model if ema is not None else student).eval().requires_grad_(False)
        _save_stage(final, _stage_dir(out, n // 2), {"teacher_steps": n, "student_steps": n // 2, "iters": iters,
                                                     "final_loss": sum(losses[-25:]) / max(1, len(losses[-25:]))})
        summary.append({"teacher_steps": n, "student_steps": n // 2, "iters": iters,
                        "seconds": round(time.time() - ts, 1),
                        "loss_first": round(sum(losses[:25]) / max(1, len(losses[:25])), 5) if losses else None,
                        "loss_last": round(sum(losses[-25:]) / max(1, len(losses[-25:])), 5) if losses else None})
        saved = None
    student = _load_student(teacher, _stage_dir(out, int(cfg["final_steps"])))
    return {"student": student, "stages": summary, "seconds": time.time() - t0, "output_dir": out,
            "iterations": total}


def _save_stage(model: nn.Module, folder: str, info: dict) -> None:
    from .io import atomic_folder

    with atomic_folder(folder) as tmp:
        model.save_pretrained(str(tmp / "model"), safe_serialization=True)
        (tmp / "stage.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
