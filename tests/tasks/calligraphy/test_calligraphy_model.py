"""CalligraphyModel contracts: every condition path reaches the output, nulls replace dropped groups, fine-tuning from
an RGB backbone reproduces it at step 0, the pipeline is deterministic per seed and style mixing is one guided pass."""
import pytest
import torch

torch.set_num_threads(1)  # the CPU is shared: oversubscribed threads make tiny models ~50× slower

from gen.unet import ConditionalUNet
from tasks.calligraphy.model import SOURCE_ID, SOURCE_REFS, SOURCE_TEXT, CalligraphyModel
from tasks.calligraphy.pipeline import CalligraphyPipeline, parse_style

S = 16
TINY = dict(base_channels=8, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=8)


def randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m.eval()


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return randomize(CalligraphyModel(("a", "b", "c"), S, cond_dim=16, text_dim=12, style_encoder_width=8,
                                      unet_config=TINY), seed)


def cond(b=2, src=SOURCE_ID, k=3, seed=1, **over):
    g = torch.Generator().manual_seed(seed)
    c = {"content": torch.randn(b, 1, S, S, generator=g), "content.keep": torch.ones(b, dtype=torch.bool),
         "style_source": torch.full((b,), src), "style_id": torch.tensor([0, 1] * (b // 2)),
         "refs": torch.randn(b, k, 1, S, S, generator=g), "refs_mask": torch.ones(b, k, dtype=torch.bool),
         "text_emb": torch.randn(b, 12, generator=g), "style.keep": torch.ones(b, dtype=torch.bool)}
    c.update(over)
    return c


@torch.no_grad()
def out(m, c, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c["content"].shape, generator=g)
    return m(x, torch.tensor([500] * x.shape[0]), c)


def test_each_condition_path_changes_the_output_and_null_ignores_values():
    m = tiny_model()
    base = out(m, cond())
    assert not torch.allclose(base, out(m, cond(content=torch.randn(2, 1, S, S))))                 # content
    assert not torch.allclose(base, out(m, cond(style_id=torch.tensor([2, 2]))))                    # style id
    r1, r2 = out(m, cond(src=SOURCE_REFS)), out(m, cond(src=SOURCE_REFS, refs=torch.randn(2, 3, 1, S, S)))
    assert not torch.allclose(r1, r2) and not torch.allclose(r1, base)                              # references
    t1, t2 = out(m, cond(src=SOURCE_TEXT)), out(m, cond(src=SOURCE_TEXT, text_emb=torch.randn(2, 12)))
    assert not torch.allclose(t1, t2)                                                               # text
    # dropped groups: the values no longer matter (learned nulls), and dropping changes the output
    off = torch.zeros(2, dtype=torch.bool)
    a = out(m, cond(**{"style.keep": off}))
    b = out(m, cond(**{"style.keep": off, "style_id": torch.tensor([2, 2])}, src=SOURCE_ID))
    c = out(m, cond(**{"style.keep": off}, src=SOURCE_REFS))
    assert torch.allclose(a, b) and torch.allclose(a, c) and not torch.allclose(a, base)
    d = out(m, cond(**{"content.keep": off}))
    e = out(m, cond(**{"content.keep": off}, content=torch.randn(2, 1, S, S)))
    assert torch.allclose(d, e) and not torch.allclose(d, base)
    # masked references: padding references do not count
    refs = torch.randn(2, 3, 1, S, S)
    mask = torch.tensor([[True, True, False]] * 2)
    p = out(m, cond(src=SOURCE_REFS, refs=refs, refs_mask=mask))
    q = out(m, cond(src=SOURCE_REFS, refs=torch.cat([refs[:, :2], torch.randn(2, 1, 1, S, S)], 1), refs_mask=mask))
    assert torch.allclose(p, q, atol=1e-6)
    with pytest.raises(ValueError, match="style_id"):
        out(m, cond(style_id=torch.tensor([5, 0])))


def test_finetune_step0_equals_rgb_backbone_channel_mean():
    torch.manual_seed(0)
    backbone = randomize(ConditionalUNet(dims=2, in_channels=3, **TINY), 3)
    m = CalligraphyModel.from_backbone(backbone, ("a", "b"), S, cond_dim=16, text_dim=12).eval()
    x = torch.randn(2, 1, S, S)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        ref = backbone(x.repeat(1, 3, 1, 1), t).mean(1, keepdim=True)
        for c in (cond(), cond(src=SOURCE_REFS), cond(src=SOURCE_TEXT), cond(**{"content.keep": torch.zeros(2, dtype=torch.bool)})):
            got = m(x, t, {**c, "text_emb": torch.randn(2, 12)})
            assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert ref.abs().max() > 1e-3  # a non-trivial backbone output


def tiny_pipe():
    return CalligraphyPipeline(tiny_model(), {"schedule": {"kind": "cosine", "T": 100},
                                              "task_config": {"text_encoder": "minilm"}})


def test_same_seed_same_glyphs_and_mixing_is_between_styles():
    pipe = tiny_pipe()
    content = torch.randn(3, 1, S, S).clamp(-1, 1)
    kw = dict(content=content, steps=4, scheduler="dpm++")
    a = pipe.glyphs("", style="a", seed=5, **kw)
    assert a.shape == (3, S, S) and a.min() >= 0 and a.max() <= 1
    assert (a == pipe.glyphs("", style="a", seed=5, **kw)).all()
    assert not (a == pipe.glyphs("", style="a", seed=6, **kw)).all()
    b = pipe.glyphs("", style="b", seed=5, **kw)
    mix = pipe.glyphs("", style="0.5*a+0.5*b", seed=5, **kw)
    assert not (mix == a).all() and not (mix == b).all()
    # one weight 1 mix is the pure style
    assert abs(pipe.glyphs("", style="1*a+0*b", seed=5, **kw) - a).max() < 1e-5
    refs = [torch.randn(1, S, S).clamp(-1, 1) for _ in range(2)]
    r = pipe.glyphs("", references=refs, seed=5, **kw)
    assert not (r == a).all()
    with pytest.raises(ValueError, match="only one of"):
        pipe.glyphs("", style="a", references=refs, **kw)


def test_parse_style():
    known = ["gyosho", "ukai", "sosho"]
    assert parse_style("gyosho", known) == [(1.0, "gyosho")]
    mix = parse_style("0.7*gyosho+0.3*ukai", known)
    assert [n for _, n in mix] == ["gyosho", "ukai"] and abs(mix[0][0] - 0.7) < 1e-9
    assert abs(sum(w for w, _ in parse_style("2*gyosho + 2*ukai", known)[:1]) - 0.5) < 1e-9
    with pytest.raises(ValueError, match="known styles: gyosho, ukai, sosho"):
        parse_style("0.5*gyosho+0.5*nope", known)
    with pytest.raises(ValueError, match="cannot parse"):
        parse_style("gyosho*", known)
