"""Attribute distillation (tasks/attributes/distill.py): the composed teacher is the pipeline's own composed guidance,
a shipped student samples plain prompts in one pass per step through `--scheduler distilled`, and what it cannot do
(weights, regions, the "neg" negation) is refused with a clear error."""
import numpy as np
import pytest
import torch

from gen.guidance import Prompt, guided_prediction
from tasks.attributes import distill
from tasks.attributes.faces import ATTRIBUTES
from tasks.attributes.model import GROUP, AttributeModel
from tasks.attributes.pipeline import AttributesPipeline, student_prompt

torch.set_num_threads(1)
K = len(ATTRIBUTES)


def _model(seed=0):
    torch.manual_seed(seed)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # fresh models have zero output layers: make every path matter
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def test_composed_teacher_is_the_pipelines_composed_guidance():
    pipe = AttributesPipeline(_model(), {"schedule": {"kind": "cosine", "T": 50}, "sampling": {"guidance": 3.0},
                                         "task_config": {"attribute_scale": {"beard": 2.0}}})
    teacher = distill.ComposedTeacher(pipe.model, distill.teacher_weights(pipe), GROUP)
    prompts = ["glasses & beard & ~hat", "smile", ""]
    x = torch.randn(len(prompts), 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([40, 10, 25])
    vals, keep = torch.zeros(len(prompts), K), torch.zeros(len(prompts), K, dtype=torch.bool)
    want = []
    for i, p in enumerate(prompts):
        built = pipe.build(p)
        if len(built):
            want.append(guided_prediction(pipe.model, x[i:i + 1], t[i:i + 1], built, pipe.model.null_cond()))
            merged = student_prompt(built).terms[0].cond
            vals[i], keep[i] = merged[GROUP][0], merged[f"{GROUP}.keep"][0]
        else:
            want.append(pipe.model(x[i:i + 1], t[i:i + 1], pipe.model.null_cond()))
    with torch.no_grad():
        got = teacher(x, t, {GROUP: vals, f"{GROUP}.keep": keep})
        want = torch.cat(want)
    assert torch.allclose(got, want, atol=1e-5)
    assert keep[0].sum() == 3 and vals[0, ATTRIBUTES.index("hat")] == 0  # "~hat" is "hat = off"


def test_student_prompt_merges_and_refuses_what_it_cannot_do():
    pipe = AttributesPipeline(_model(), {"schedule": {"kind": "cosine", "T": 50}})
    (term,) = student_prompt(pipe.build("glasses & ~hat")).terms
    assert term.weight == 1.0 and term.cond[f"{GROUP}.keep"][0].sum() == 2
    assert len(student_prompt(Prompt())) == 0
    twice = Prompt(pipe.build("hat & glasses").terms + pipe.build("hat").terms)  # a typed word and an image, say
    (again,) = student_prompt(twice).terms
    assert again.cond[f"{GROUP}.keep"][0].sum() == 2
    with pytest.raises(ValueError, match="contradicts"):
        student_prompt(Prompt(pipe.build("hat").terms + pipe.build("~hat").terms))
    with pytest.raises(ValueError, match="regions"):
        student_prompt(pipe.build("glasses@eyes"))
    pipe.negation = "neg"
    with pytest.raises(ValueError, match="negation"):
        student_prompt(pipe.build("glasses & ~hat"))


def test_shipped_student_samples_in_one_pass_per_step(tmp_path):
    teacher = AttributesPipeline(_model(0), {"schedule": {"kind": "cosine", "T": 50}})
    student = _model(1)
    teacher.set_distilled(student, {"steps": 4, "sampler": "ddim", "guidance": 4.5})
    teacher.save_pretrained(str(tmp_path / "m"), card="# tiny\n")
    pipe = AttributesPipeline.from_pretrained(str(tmp_path / "m"))
    calls = []
    real = pipe.distilled_model.forward
    pipe.distilled_model.forward = lambda x, t, c: (calls.append((x.shape[0], c[f"{GROUP}.keep"].sum(1).tolist())),
                                                   real(x, t, c))[1]
    a = pipe("glasses & beard & ~hat", num=2, seed=0, scheduler="distilled")
    assert len(calls) == 4 and all(c == (2, [3, 3]) for c in calls)  # 4 steps, one pass, the 3 attributes together
    b = pipe("glasses & beard & ~hat", num=2, seed=0, steps=4)        # --steps 4 picks the student too
    assert torch.equal(a, b) and a.shape == (2, 3, 32, 32)
    assert not torch.equal(a, pipe("glasses & beard & ~hat", num=2, seed=0, steps=4, scheduler="ddim"))
    with pytest.raises(ValueError, match="default weights"):
        pipe("2*glasses & beard", num=1, scheduler="distilled")
    with pytest.raises(ValueError, match="regions"):
        pipe("glasses@eyes", num=1, scheduler="distilled")
    for p in ("2*glasses & beard", "glasses@eyes"):  # --steps 4 alone: what the student cannot do goes to the teacher
        teacher_4 = pipe(p, num=1, seed=0, steps=4, scheduler=pipe.sampling["scheduler"])
        assert torch.equal(pipe(p, num=1, seed=0, steps=4), teacher_4)
    assert torch.equal(pipe("glasses", num=1, seed=0, steps=4, guidance=2.0),
                       pipe("glasses", num=1, seed=0, steps=4, guidance=2.0, scheduler=pipe.sampling["scheduler"]))
    with pytest.raises(ValueError, match="guidance"):
        pipe("glasses", num=1, scheduler="distilled", guidance=2.0)
    np.testing.assert_array_equal(pipe("", num=1, seed=3, scheduler="distilled").numpy(),
                                  pipe("", num=1, seed=3, scheduler="distilled").numpy())
