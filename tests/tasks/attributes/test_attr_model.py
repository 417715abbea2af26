"""Attribute model: tri-state conditioning, per-attribute dropout through the real training inputs, fine-tuning from
the backbone, and the real train script for two steps."""
import os

import pytest
import torch

from gen.config import load_config
from gen.guidance import drop_conditions
from gen.train import latest_checkpoint
from gen.unet import ConditionalUNet
from tasks.attributes import train as attr_train
from tasks.attributes.faces import ATTRIBUTES
from tasks.attributes.model import AttributeModel, make_condition

K = len(ATTRIBUTES)
TINY_UNET = dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=8)


def randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return randomise(AttributeModel(token_dim=16, unet_config=TINY_UNET), seed).eval()


def capture_tokens(model):
    seen = {}

    def hook(_, args, kwargs):
        seen["tokens"], seen["vec"] = kwargs["cond_tokens"], kwargs["cond_vec"]
    model.unet.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_tristate_dropout_statistics_through_the_model_inputs():
    """The train script's batch → cond, then the loop's drop_conditions: each attribute is unspecified independently
    with P = 1 − (1 − p_cond)(1 − p_attr), all of them together with p_cond + …, and an unspecified attribute reaches
    the U-Net as exactly its learned null token."""
    torch.manual_seed(0)
    b, p_attr, p_cond = 4000, 0.7, 0.1
    attrs = (torch.rand(b, K) < 0.5).float()
    x0, cond = attr_train._BatchTo(p_cond)({"image": torch.zeros(b, 3, 8, 8), "attrs": attrs})
    cond = drop_conditions(cond, {"attrs": p_attr}, b, torch.Generator().manual_seed(1), {"attrs": K})
    keep = cond["attrs.keep"]
    assert keep.shape == (b, K) and keep.dtype == torch.bool
    expect = (1 - p_cond) * (1 - p_attr)
    assert abs(keep.float().mean().item() - expect) < 0.02
    none = (~keep).all(1).float().mean().item()
    assert abs(none - (p_cond + (1 - p_cond) * p_attr ** K)) < 0.02
    # independence between attributes once the whole condition is kept
    live = keep[keep.any(1)]
    p1, p2, p12 = live[:, 0].float().mean(), live[:, 1].float().mean(), (live[:, 0] & live[:, 1]).float().mean()
    assert abs((p12 - p1 * p2).item()) < 0.03
    # every size of specified subset occurs
    assert set(keep.sum(1).tolist()) >= set(range(0, 7))

    model = tiny_model()
    seen = capture_tokens(model)
    n = 64
    with torch.no_grad():
        model(torch.randn(n, 3, 8, 8), torch.randint(0, 50, (n,)), {k: v[:n] for k, v in cond.items()})
    tok = seen["tokens"]  # (n, K, D)
    null = model.null.null.detach().expand(n, K, -1)
    kn = keep[:n]
    assert torch.equal(tok[~kn], null[~kn])
    assert not torch.isclose(tok[kn], null[kn]).all(-1).any()


def test_unspecified_attribute_ignores_its_value_and_specified_one_does_not():
    model = tiny_model()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 10])
    a = torch.zeros(2, K)
    keep = torch.zeros(2, K, dtype=torch.bool)
    keep[:, 0] = True
    a_flip = a.clone()
    a_flip[:, 3] = 1  # attribute 3 unspecified: its value must not matter
    with torch.no_grad():
        base = model(x, t, {"attrs": a, "attrs.keep": keep})
        assert torch.equal(base, model(x, t, {"attrs": a_flip, "attrs.keep": keep}))
        a_on = a.clone()
        a_on[:, 0] = 1  # attribute 0 specified: on vs off differs
        assert not torch.allclose(base, model(x, t, {"attrs": a_on, "attrs.keep": keep}))
        # no keep entry = everything specified
        full = torch.ones(2, K, dtype=torch.bool)
        assert torch.equal(model(x, t, {"attrs": a}), model(x, t, {"attrs": a, "attrs.keep": full}))


def test_condition_helpers_and_errors():
    c = make_condition({"glasses": True, "hat": False})
    assert c["attrs"].shape == (1, K) and c["attrs.keep"].sum() == 2
    assert c["attrs"][0, ATTRIBUTES.index("glasses")] == 1 and c["attrs"][0, ATTRIBUTES.index("hat")] == 0
    with pytest.raises(ValueError, match="valid attributes"):
        make_condition({"monocle": True})
    with pytest.raises(ValueError, match=r"\(B, 9\)"):
        tiny_model()(torch.randn(1, 3, 8, 8), torch.tensor([1]), {"attrs": torch.zeros(1, 4)})


def test_finetune_step0_equals_backbone(tmp_path):
    torch.manual_seed(0)
    backbone = randomise(ConditionalUNet(dims=2, in_channels=3, **TINY_UNET), seed=3).eval()
    backbone.save_pretrained(tmp_path / "bb")
    cfg = load_config("configs/attributes.yaml", [f"model.init_from={tmp_path / 'bb'}",
                                                        "model.token_dim=16"], attr_train.DEFAULTS)
    model = attr_train.build_model(cfg["model"]).eval()
    assert model.unet.config.base_channels == 16  # architecture read from the backbone
    x, t = torch.randn(4, 3, 8, 8), torch.tensor([3, 20, 40, 49])
    cond = {"attrs": (torch.rand(4, K) < 0.5).float(), "attrs.keep": torch.rand(4, K) < 0.5}
    with torch.no_grad():
        assert torch.allclose(model(x, t, cond), backbone(x, t), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="not a backbone folder"):
        attr_train.build_model({**cfg["model"], "init_from": str(tmp_path / "nope")})


TINY_RUN = ["model.base_channels=16", "model.channel_mult=[1,2]", "model.layers_per_block=1",
            "model.attention_levels=[1]", "model.head_dim=8", "model.token_dim=16", "model.init_from=",
            "data.num_samples=16", "train.batch_size=4", "train.warmup_steps=1", "train.threads=1", "diffusion.T=50",
            "train.log_every=1"]


def test_two_step_training_through_the_train_script_writes_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    summary = attr_train.main(["--config", "configs/attributes.yaml", *TINY_RUN, f"train.output_dir={out}",
                               "train.steps=2", "train.ckpt_every=2"])
    assert summary["step"] == 2
    ck = latest_checkpoint(str(out))
    assert ck.endswith("step_0000002")
    for f in ("model/diffusion_pytorch_model.safetensors", "ema/diffusion_pytorch_model.safetensors", "config.yaml"):
        assert os.path.exists(os.path.join(ck, f)), f
    model = AttributeModel.from_pretrained(os.path.join(ck, "ema"))
    assert model.attributes == ATTRIBUTES and model.unet.config.cross_dim == 16

    from tasks.attributes.pipeline import AttributesPipeline
    pipe = AttributesPipeline.from_pretrained(str(out))
    assert pipe.schedule.T == 50  # the run's diffusion config travels with it
    img = pipe("glasses & ~hat", num=2, steps=2, scheduler="ddim")
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
