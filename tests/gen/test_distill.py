"""Progressive distillation (gen.distill): the target formula, the stage plan, that a student trained by it follows its
guided teacher's 2N-step trajectory in N steps better than the teacher itself does in N, resume, and the pipeline's
`distilled` scheduler (save → load → sample)."""
import os

import pytest
import torch

from gen.distill import (GuidedTeacher, distill, distill_target, ddim_to, null_condition, stages)
from gen.guidance import Term, guided_model
from gen.models import ClassConditionalModel
from gen.pipeline import ClassConditionalPipeline, PipelineError
from gen.sampling import ddim_step, make_timesteps, sample
from gen.schedule import DiffusionSchedule
from gen.toydata import Shapes2D
from gen.train import TrainTask


def test_target_is_the_x0_whose_ddim_step_lands_on_z_next():
    s = DiffusionSchedule.make("cosine", 1000)
    g = torch.Generator().manual_seed(0)
    z, z_next = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    t, t_next = 749, 499
    ab_t, ab_n = s.alpha_bar[t].reshape(1, 1, 1, 1).float(), s.alpha_bar[t_next].reshape(1, 1, 1, 1).float()
    x = distill_target(z, ab_t.expand(3, 1, 1, 1), z_next, ab_n.expand(3, 1, 1, 1))
    eps = (z - ab_t.sqrt() * x) / (1 - ab_t).sqrt()
    landed = ddim_step(eps, z, t, t_next, s, 0.0, None, x0=x)
    assert torch.allclose(landed, z_next, atol=1e-4)
    assert torch.allclose(ddim_to(x, eps, ab_n), z_next, atol=1e-4)


def test_stage_plan():
    assert stages(16, 4) == [16, 8] and stages(8, 4) == [8] and stages(64, 1) == [64, 32, 16, 8, 4, 2]
    for bad in ((12, 4), (4, 4), (2, 4), (8, 0)):
        with pytest.raises(ValueError):
            stages(*bad)


def _model(seed=0):
    torch.manual_seed(seed)
    return ClassConditionalModel(3, unet_config=dict(dims=2, in_channels=1, base_channels=8, channel_mult=(1, 2),
                                                     layers_per_block=1, attention_levels=(), head_dim=8)).eval()


def _task():
    data = Shapes2D(64, 8, 3, seed=0)

    def batch_to(batch):
        return batch["x"].mean(1, keepdim=True), {"label": batch["label"].long()}
    return TrainTask(_model(1), data, batch_to, dropout={"label": 0.1})


def _trajectory_gap(student_or_teacher, teacher, schedule, steps, guided):
    """RMSE between a sampler's end point and the guided teacher's 8-step DDIM end point, same x_T and labels."""
    g = torch.Generator().manual_seed(123)
    x_T = torch.randn(6, 1, 8, 8, generator=g)
    label = torch.tensor([0, 1, 2, 0, 1, 2])
    cond = {"label": label, "label.keep": torch.ones(6, dtype=torch.bool)}
    null = null_condition(cond, ["label"])
    w = 3.0
    ref = sample(guided_model(teacher, Term(cond, w), null), x_T.shape, schedule, sampler="ddim", steps=8, x_T=x_T,
                 prediction_type="v_prediction")
    f = guided_model(student_or_teacher, Term(cond, w if guided else 1.0), null)
    out = sample(f, x_T.shape, schedule, sampler="ddim", steps=steps, x_T=x_T, prediction_type="v_prediction")
    return (out - ref).pow(2).mean().sqrt().item()


def test_student_follows_the_guided_teacher_in_half_the_steps(tmp_path):
    torch.set_num_threads(1)
    schedule = DiffusionSchedule.make("cosine", 1000)
    teacher = _model(0)
    cfg = dict(output_dir=str(tmp_path / "run"), guidance=3.0, start_steps=8, final_steps=4, iters_per_stage=150,
               batch_size=16, lr=2e-3, p_uncond=0.1, ema_decay=0.0, ckpt_every=50, seed=0)
    res = distill(_task(), teacher, schedule, "v_prediction", cfg, log=lambda s: None)
    student = res["student"]
    base = _trajectory_gap(teacher, teacher, schedule, 4, guided=True)     # the teacher itself at 4 steps
    dist = _trajectory_gap(student, teacher, schedule, 4, guided=False)    # the student, one pass per step
    assert dist < 0.6 * base, (dist, base)
    assert res["stages"][0]["loss_last"] < res["stages"][0]["loss_first"]
    assert os.path.isdir(tmp_path / "run" / "stage_004" / "model")


@pytest.mark.parametrize("stop,drop_stage", [(9, False), (6, False), (6, True)],
                         ids=["mid-stage", "at-stage-boundary", "stage-folder-lost"])
def test_resume_continues_exactly(tmp_path, stop, drop_stage):
    torch.set_num_threads(1)
    schedule = DiffusionSchedule.make("cosine", 1000)
    base = dict(guidance=2.0, start_steps=8, final_steps=2, iters_per_stage=6, batch_size=8, lr=1e-3,
                ema_decay=0.9, ckpt_every=3, keep_checkpoints=10, seed=0)
    full = distill(_task(), _model(0), schedule, "v_prediction", {**base, "output_dir": str(tmp_path / "a")},
                   log=lambda s: None)["student"]
    # the same run stopped after `stop` iterations (9: mid stage 2; 6: right after stage 1 and its checkpoint), then
    # resumed; with drop_stage the finished stage's student folder is gone too (a crash before it was written)
    part = {**base, "output_dir": str(tmp_path / "b")}
    import gen.distill as gd

    calls = {"n": 0}
    real = gd.distill_loss

    def stop_after_9(*a, **k):
        calls["n"] += 1
        if calls["n"] > stop:
            raise KeyboardInterrupt
        return real(*a, **k)
    gd.distill_loss = stop_after_9
    try:
        with pytest.raises(KeyboardInterrupt):
            distill(_task(), _model(0), schedule, "v_prediction", part, log=lambda s: None)
    finally:
        gd.distill_loss = real
    if drop_stage:
        import shutil

        shutil.rmtree(tmp_path / "b" / "stage_004")
    resumed = distill(_task(), _model(0), schedule, "v_prediction", part, resume=True, log=lambda s: None)["student"]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_pipeline_distilled_scheduler_round_trip(tmp_path):
    teacher, student = _model(0), _model(5)
    pipe = ClassConditionalPipeline(teacher, {"prediction_type": "v_prediction", "schedule": {"kind": "cosine", "T": 1000},
                                              "sampling": {"scheduler": "dpm++", "steps": 20, "guidance": 3.0},
                                              "task_config": {"class_names": ["a", "b", "c"], "image_shape": [1, 8, 8]}})
    with pytest.raises(PipelineError, match="no distilled student"):
        pipe.sampler_for("distilled", None, None)
    pipe.set_distilled(student, {"steps": 4, "sampler": "ddim", "guidance": 3.0})
    pipe.save_pretrained(tmp_path / "p", dtype=torch.float16)
    assert (tmp_path / "p" / "distilled" / "model" / "config.json").is_file()
    back = ClassConditionalPipeline.from_pretrained(tmp_path / "p")
    m, sampler, steps, w = back.sampler_for("distilled", None, None)
    assert (sampler, steps, w) == ("ddim", 4, 1.0)
    ref = student.to(torch.float16).float().state_dict()
    assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    assert back.sampler_for(None, 4, None)[0] is m                   # --steps 4 alone picks the student
    assert back.sampler_for(None, None, None)[0] is back.model         # the defaults stay the teacher's
    assert back.sampler_for("ddim", 4, None)[0] is back.model          # a named sampler stays the teacher's
    with pytest.raises(ValueError, match="exactly 4 steps"):
        back.sampler_for("distilled", 8, None)
    with pytest.raises(ValueError, match="folded in"):
        back.sampler_for("distilled", None, 1.5)


def test_guided_teacher_matches_cfg_arithmetic():
    m = _model(0)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([10, 500, 900, 999])
    cond = {"label": torch.tensor([0, 1, 2, 1]), "label.keep": torch.ones(4, dtype=torch.bool)}
    rows = torch.tensor([False, True, False, False])   # a p_uncond row: its keep flags are off, as distill_loss sets
    with torch.no_grad():
        out = GuidedTeacher(m, 2.5, ["label"])(x, t, {**cond, "label.keep": ~rows})
        c = m(x, t, cond)
        u = m(x, t, null_condition(cond, ["label"]))
    want = u + 2.5 * (c - u)
    want[1] = u[1]
    assert torch.allclose(out, want, atol=1e-5)
