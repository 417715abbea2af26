"""Guidance algebra, condition dropout, and the conditional U-Net (1D and 2D through one base test)."""
import pytest
import torch

from gen.guidance import Prompt, Term, batch_conditions, drop_conditions, guided_model, guided_prediction
from gen.models import ClassConditionalModel
from gen.unet import ConditionalUNet


def tiny_unet(dims, **kw):
    cfg = dict(dims=dims, in_channels=2, base_channels=16, channel_mult=(1, 2), layers_per_block=1,
               attention_levels=(1,), head_dim=8)
    cfg.update(kw)
    return ConditionalUNet(**cfg)


def randomise(model, seed=0):
    """Fresh models have zero output layers; give every parameter a random value so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


SHAPES = {1: (3, 2, 16), 2: (3, 2, 8, 8)}


class Recorder:
    """A conditional 'model' whose output depends on the condition, counting forward passes."""

    def __init__(self):
        self.calls, self.batch = 0, []

    def __call__(self, x, t, cond):
        self.calls += 1
        self.batch.append(x.shape[0])
        keep = cond["c.keep"].float().view(-1, *[1] * (x.ndim - 1))
        return x * 0.5 + keep * cond["c"].view(-1, *[1] * (x.ndim - 1))


def term(v, w=1.0):
    return Term({"c": torch.tensor([float(v)]), "c.keep": torch.tensor([True])}, w, label=f"c{v}")


NULL = {"c": torch.tensor([0.0]), "c.keep": torch.tensor([False])}


@pytest.mark.parametrize("dims", [1, 2])
def test_guidance_contracts(dims):
    x, t = torch.randn(SHAPES[dims], generator=torch.Generator().manual_seed(dims)), torch.tensor([5, 5, 5])
    m = Recorder()
    cond_out = m(x, t, batch_conditions([term(2).cond], 3))
    unc_out = m(x, t, batch_conditions([NULL], 3))
    # one term with w = 1 equals the conditional output, through the fast path (one forward, no unconditional pass)
    m.calls = 0
    assert torch.allclose(guided_prediction(m, x, t, term(2), NULL), cond_out)
    assert m.calls == 1 and m.batch[-1] == 3
    # all weights 0 equals the unconditional output
    assert torch.allclose(guided_prediction(m, x, t, 0 * term(2) & 0 * term(3), NULL), unc_out)
    # the algebra: ε∅ + Σ w_i (ε_i − ε∅), NOT negates, * scales; all in ONE batched pass
    m.calls = 0
    got = guided_prediction(m, x, t, 2 * term(1) & ~term(3), NULL)
    assert m.calls == 1 and m.batch[-1] == 9
    assert torch.allclose(got, unc_out + 2 * 1.0 - 3.0, atol=1e-5)  # float32 rounding where the values are near 0
    # the batched pass equals separate passes
    sep = unc_out + 2 * (m(x, t, batch_conditions([term(1).cond], 3)) - unc_out) \
        - (m(x, t, batch_conditions([term(3).cond], 3)) - unc_out)
    assert torch.allclose(got, sep)


@pytest.mark.parametrize("dims", [1, 2])
def test_masked_term_changes_nothing_outside_its_mask(dims):
    torch.manual_seed(0)
    model = randomise(tiny_unet(dims, cond_dim=8))

    def f(x, t, cond):
        return model(x, t, cond_vec=cond["v"] * cond["v.keep"].float()[:, None])

    x, t = torch.randn(SHAPES[dims]), torch.tensor([7, 7, 7])
    null = {"v": torch.zeros(1, 8), "v.keep": torch.tensor([False])}
    tm = Term({"v": torch.randn(1, 8), "v.keep": torch.tensor([True])}, 3.0)
    mask = torch.zeros(SHAPES[dims][1:])
    mask[..., : SHAPES[dims][-1] // 2] = 1  # left half (2D) / first half of the sequence (1D)
    unc = guided_model(f, None, null)(x, t)
    out = guided_prediction(f, x, t, tm.within(mask), null)
    outside = mask.expand_as(out) == 0
    # outside the mask the guided output is the unconditional one; not bit for bit, since the batched pass runs the
    # convolutions at another batch size, which rounds differently on AVX-512 machines
    assert torch.allclose(out[outside], unc[outside], atol=1e-5, rtol=0)
    assert not torch.allclose(out[~outside], unc[~outside], atol=1e-3)
    # a per-channel temporal mask works for 1D, a (1, H, W) spatial one for 2D
    assert guided_prediction(f, x, t, tm.within(mask[:1]), null).shape == x.shape


def test_degenerate_requests_are_clear_errors():
    m, x, t = Recorder(), torch.randn(2, 1, 4, 4), torch.tensor([1, 1])
    with pytest.raises(ValueError, match="no terms"):
        guided_prediction(m, x, t, Prompt(), NULL)
    with pytest.raises(ValueError, match="does not broadcast"):
        guided_prediction(m, x, t, term(1).within(torch.ones(3, 3)), NULL)
    with pytest.raises(ValueError, match="sum to 0"):
        (term(1) & ~term(2)).normalized()
    mix = (0.7 * term(1) & 0.3 * term(2) & 1.0 * term(3)).normalized()
    assert abs(sum(tt.weight for tt in mix.terms) - 1) < 1e-6


def test_condition_dropout_is_independent_per_group_and_element():
    g = torch.Generator().manual_seed(0)
    cond = {"a": torch.zeros(20000, 4), "b": torch.zeros(20000)}
    out = drop_conditions(cond, {"a": 0.3, "b": 0.1}, 20000, g, elementwise={"a": 4})
    ka, kb = out["a.keep"].float(), out["b.keep"].float()
    assert ka.shape == (20000, 4) and kb.shape == (20000,)
    assert abs(1 - ka.mean() - 0.3) < 0.01 and abs(1 - kb.mean() - 0.1) < 0.01
    # independence: P(drop a_0 and drop b) ≈ 0.3 · 0.1, P(drop a_0 and a_1) ≈ 0.09
    assert abs(((1 - ka[:, 0]) * (1 - kb)).mean() - 0.03) < 0.006
    assert abs(((1 - ka[:, 0]) * (1 - ka[:, 1])).mean() - 0.09) < 0.01
    assert torch.equal(out["a"], cond["a"])  # raw values untouched; only the keep flags change


@pytest.mark.parametrize("dims", [1, 2])
def test_unet_conditioning_paths_and_shapes(dims):
    torch.manual_seed(0)
    m = randomise(tiny_unet(dims, cond_dim=8, cross_dim=6, extra_in_channels=3, patch_size=2))
    x = torch.randn(SHAPES[dims])
    ci = torch.randn(3, 3, *SHAPES[dims][2:])
    tok, mask = torch.randn(3, 5, 6), torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]).bool()
    t = torch.tensor([1, 50, 999])
    base = m(x, t, cond_vec=torch.zeros(3, 8), cond_tokens=tok, token_mask=mask, cond_image=ci)
    assert base.shape == x.shape and torch.isfinite(base).all()  # an all-masked token row stays finite
    assert not torch.allclose(base, m(x, t, cond_vec=torch.ones(3, 8), cond_tokens=tok, token_mask=mask, cond_image=ci))
    assert not torch.allclose(base, m(x, t, cond_vec=torch.zeros(3, 8), cond_tokens=tok, token_mask=mask, cond_image=-ci))
    # masked-out tokens do not matter
    tok2 = tok.clone()
    tok2[~mask] = 100.0
    assert torch.allclose(base, m(x, t, cond_vec=torch.zeros(3, 8), cond_tokens=tok2, token_mask=mask, cond_image=ci),
                          atol=1e-5)
    # sizes the U-Net cannot halve are padded and cropped back
    odd = m(torch.randn(1, 2, *[6] * dims), t[:1], cond_image=torch.randn(1, 3, *[6] * dims))
    assert odd.shape == (1, 2, *[6] * dims) and torch.isfinite(odd).all()
    with pytest.raises(ValueError, match="cond_image"):
        m(x, t)


@pytest.mark.parametrize("dims", [1, 2])
def test_save_load_identical_and_zero_init_finetune_equals_backbone(dims, tmp_path):
    torch.manual_seed(0)
    backbone = randomise(tiny_unet(dims, patch_size=2))
    x, t = torch.randn(SHAPES[dims]), torch.tensor([3, 30, 300])
    backbone.save_pretrained(tmp_path / "bb")
    loaded = ConditionalUNet.from_pretrained(tmp_path / "bb")
    assert (tmp_path / "bb" / "diffusion_pytorch_model.safetensors").exists()
    assert torch.equal(backbone(x, t), loaded(x, t))
    ft = ConditionalUNet.from_backbone(backbone, cond_dim=8, cross_dim=6, extra_in_channels=3)
    out = ft(x, t, cond_vec=torch.randn(3, 8), cond_tokens=torch.randn(3, 4, 6),
             cond_image=torch.randn(3, 3, *SHAPES[dims][2:]))
    assert torch.allclose(out, backbone(x, t), atol=1e-6)
    # an RGB backbone adapted to one channel: equals the channel mean of the backbone on the replicated image
    gray = ConditionalUNet.from_backbone(backbone, in_channels=1, cond_dim=8)
    g = torch.randn(3, 1, *SHAPES[dims][2:])
    assert torch.allclose(gray(g, t, cond_vec=torch.randn(3, 8)), backbone(g.expand(-1, 2, *[-1] * dims), t).mean(1, True),
                          atol=1e-5)
    # the class-conditional wrapper too
    cc = ClassConditionalModel.from_backbone(backbone, num_classes=4)
    assert torch.allclose(cc(x, t, {"label": torch.tensor([0, 1, 3])}), backbone(x, t), atol=1e-6)
    cc.save_pretrained(tmp_path / "cc")
    cc2 = ClassConditionalModel.from_pretrained(tmp_path / "cc")
    cond = {"label": torch.tensor([0, 1, 3]), "label.keep": torch.tensor([True, False, True])}
    assert torch.equal(cc(x, t, cond), cc2(x, t, cond))
