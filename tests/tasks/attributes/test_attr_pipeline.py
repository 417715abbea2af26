"""Attribute pipeline and CLI: prompt → terms, regions, negation modes, unconditional, determinism, atomic PNGs."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gen.guidance import guided_model
from tasks.attributes import generate
from tasks.attributes.faces import ATTRIBUTES, region_mask
from tasks.attributes.model import AttributeModel
from tasks.attributes.pipeline import AttributesPipeline, load_mask, save_grid
from tasks.attributes.prompt import PromptError

K = len(ATTRIBUTES)
G, H = ATTRIBUTES.index("glasses"), ATTRIBUTES.index("hat")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # fresh models have zero output layers: make every path matter
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    pipe = AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50}})
    d = tmp_path_factory.mktemp("attr_model")
    pipe.save_pretrained(str(d), card="# tiny test model\n")
    return str(d)


@pytest.fixture
def pipe(model_dir):
    return AttributesPipeline.from_pretrained(model_dir)


def test_export_roundtrip(model_dir, pipe):
    assert os.path.exists(os.path.join(model_dir, "README.md"))
    assert pipe.schedule.T == 50 and pipe.attributes == ATTRIBUTES


def test_prompt_to_terms_negation_and_joint(pipe):
    p = pipe.build("2*glasses & ~hat", guidance=3.0)
    (g, h) = p.terms
    assert g.weight == 6.0 and g.cond["attrs.keep"][0].tolist() == [i == G for i in range(K)]
    assert g.cond["attrs"][0, G] == 1
    # tri-state NOT (default): a positive term "hat = off"
    assert h.weight == 3.0 and h.cond["attrs"][0, H] == 0 and h.cond["attrs.keep"][0, H]
    pipe.negation = "neg"  # the backbone's NOT: negative weight on "hat = on"
    h = pipe.build("2*glasses & ~hat", guidance=3.0).terms[1]
    assert h.weight == -3.0 and h.cond["attrs"][0, H] == 1
    pipe.negation = "off"
    # Term objects combine with &, ~, * like the string form
    assert repr(pipe.build(2 * pipe.attribute("glasses") & ~pipe.attribute("hat"), guidance=3.0)) == repr(p)
    joint = pipe.build("glasses & ~hat & smile@mouth", mode="joint")
    assert len(joint) == 2 and joint.terms[0].cond["attrs.keep"][0].sum() == 2 and joint.terms[1].mask is not None


def test_per_attribute_scale_multiplies_its_terms_and_round_trips(pipe, model_dir, tmp_path):
    """A calibrated scale s(a) multiplies the weight of every term that specifies a (on, off, in a region; the largest
    scale for a joint term); it is saved in pipeline.yaml, read back by from_pretrained, and validated."""
    from tasks.attributes.calibrate import write_scales

    pipe.attribute_scale = {"hat": 2.0}
    g, h = pipe.build("2*glasses & ~hat", guidance=3.0).terms
    assert g.weight == 6.0 and h.weight == 6.0  # ~hat → "hat = off" at 3 × 2
    assert pipe.build("hat@top", guidance=3.0).terms[0].weight == 6.0
    assert pipe.build("glasses & hat", guidance=3.0, mode="joint").terms[0].weight == 6.0
    pipe.attribute_scale = {}
    assert pipe.build("~hat", guidance=3.0).terms[0].weight == 3.0
    # written next to the model and read back (the diffusion settings are kept)
    import shutil
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    write_scales(str(d), {"smile": 1.5})
    again = AttributesPipeline.from_pretrained(str(d))
    assert again.attribute_scale == {"smile": 1.5} and again.schedule.T == 50
    again.save_pretrained(str(tmp_path / "m2"))
    assert AttributesPipeline.from_pretrained(str(tmp_path / "m2")).attribute_scale == {"smile": 1.5}
    from tasks.attributes.pipeline import model_card
    assert "{'smile': 1.5}, chosen by `python -m tasks.attributes.calibrate`" in model_card({}, None, again.attribute_scale)
    with pytest.raises(ValueError, match="unknown attribute 'smyle'.*valid attributes: glasses"):
        AttributesPipeline(again.model, {"task_config": {"attribute_scale": {"smyle": 2.0}}})
    with pytest.raises(ValueError, match="> 0"):
        AttributesPipeline(again.model, {"task_config": {"attribute_scale": {"smile": 0.0}}})
    with pytest.raises(ValueError, match="finite number > 0"):
        again.attribute_scale = {"smile": float("nan")}
    assert again.attribute_scale == {"smile": 1.5}  # a refused assignment changes nothing


def test_region_term_changes_nothing_outside_its_region(pipe):
    """ε of "beard & glasses@eyes" equals ε of "beard" exactly outside the eyes box, at every step — so a one-step
    sample (x_0 from x_T and ε only) is identical there — and differs inside."""
    base = pipe.build("beard")
    withr = pipe.build("beard & glasses@eyes")
    mask = torch.from_numpy(region_mask("eyes", 32))
    out = mask == 0
    x, t = torch.randn(3, 3, 32, 32), torch.tensor([30, 30, 30])
    null = pipe.model.null_cond()
    with torch.no_grad():
        e0 = guided_model(pipe.model, base, null)(x, t)
        # the same prompt with the regional term at weight 0 has the identical batched layout; compare against it too
        e1 = guided_model(pipe.model, withr, null)(x, t)
    assert torch.allclose(e0[..., out], e1[..., out], atol=1e-5, rtol=0)
    assert not torch.allclose(e0[..., ~out], e1[..., ~out], atol=1e-3)
    zero = pipe.build("beard & 0*glasses@eyes")
    with torch.no_grad():
        ez = guided_model(pipe.model, zero, null)(x, t)
    assert torch.equal(ez[..., out], e1[..., out])  # exact: same batch, the masked delta is exactly 0 outside
    a = pipe.sample(zero, num=2, seed=1, steps=1, scheduler="ddim-eta")
    b = pipe.sample(withr, num=2, seed=1, steps=1, scheduler="ddim-eta")
    assert torch.equal(a[..., out], b[..., out]) and not torch.equal(a, b)


def test_region_forms(pipe, tmp_path):
    m_name = load_mask("eyes", 32)
    assert m_name.shape == (1, 32, 32) and torch.equal(m_name[0], torch.from_numpy(region_mask("eyes", 32)))
    assert torch.equal(load_mask((0.0, 0.0, 0.5, 1.0), 32)[0, :, :16], torch.ones(32, 16))
    arr = np.zeros((32, 32), dtype=np.uint8)
    arr[:, :16] = 255
    Image.fromarray(arr).save(tmp_path / "left.png")
    assert torch.allclose(load_mask(str(tmp_path / "left.png"), 32), load_mask((0.0, 0.0, 0.5, 1.0), 32))
    p = pipe.build("glasses & hat", regions={"glasses": str(tmp_path / "left.png")})
    assert p.terms[0].mask is not None and p.terms[1].mask is None
    t = pipe.attribute("glasses", region="eyes")
    assert torch.equal(t.mask, m_name)
    with pytest.raises(ValueError, match="valid attributes"):
        pipe.attribute("monocle")
    with pytest.raises(ValueError, match="neither a region name"):
        load_mask("no_such_region", 32)
    with pytest.raises(ValueError, match="not in the prompt"):
        pipe.build("glasses", regions={"hat": "top"})


def test_parser_errors_surface_with_position(pipe):
    with pytest.raises(PromptError) as e:
        pipe("glasses & hatt", num=1, steps=1)
    assert e.value.position == 10 and "valid attributes" in str(e.value) and "hat" in str(e.value)
    with pytest.raises(PromptError) as e:
        pipe("glasses beard", num=1, steps=1)
    assert e.value.position == 8


def test_empty_prompt_is_unconditional(pipe):
    calls = []
    orig = pipe.model.encode

    def spy(attrs, keep):
        calls.append(keep.clone())
        return orig(attrs, keep)
    pipe.model.encode = spy
    try:
        a = pipe("", num=2, seed=3, steps=2, scheduler="ddim")
        b = pipe("   ", num=2, seed=3, steps=2, scheduler="ddim")
        c = pipe(None, num=2, seed=3, steps=2, scheduler="ddim")
    finally:
        del pipe.model.encode
    assert all(not k.any() for k in calls) and len(calls) == 6  # every model call: all attributes unspecified
    assert torch.equal(a, b) and torch.equal(a, c)
    # a term at weight 0 reduces to ε_∅ as well
    d = pipe("glasses", num=2, seed=3, steps=2, scheduler="ddim", guidance=0.0)
    assert torch.allclose(a, d, atol=1e-5)


def test_same_seed_same_grid_and_per_image_seeds(pipe):
    a = pipe("glasses & ~hat", num=3, seed=5, steps=3)
    b = pipe("glasses & ~hat", num=3, seed=5, steps=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, pipe("glasses & ~hat", num=3, seed=6, steps=3))
    # the default sampler is stochastic; per-image generators keep image i independent of num (up to float noise of
    # batched matmuls, which this random test model amplifies; a different seed differs by O(1))
    assert (a[:1] - pipe("glasses & ~hat", num=1, seed=5, steps=3)).abs().mean() < 1e-4
    assert a.shape == (3, 3, 32, 32) and a.min() >= -1 and a.max() <= 1


def test_cli_writes_png_atomically_and_reports_prompt_errors(model_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["--model", model_dir, "--num", "4", "--seed", "0", "--steps", "2", "--out", str(out)]
    assert generate.main(["--prompt", "glasses & beard & ~hat", *args]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (2 + 2 * 34, 2 + 2 * 34, 3)  # 2×2 grid of 32-px images with 2-px gaps
    assert [f for f in os.listdir(tmp_path) if f != "grid.png"] == []  # no temp files left
    before = out.read_bytes()
    assert generate.main(["--prompt", "glasses & hatt", *args]) == 2
    err = capsys.readouterr().err
    assert "^" in err and "valid attributes" in err and "glasses, sunglasses" in err
    assert out.read_bytes() == before  # a failed run leaves the old file untouched
    assert generate.main(["--prompt", "glasses", "--region", "glasses=0.1,0.2,0.9,0.7", *args]) == 0
    assert generate.main(["--prompt", "glasses", "--region", "glasses=0.1,0.2", *args]) == 2
    assert "4 comma-separated numbers" in capsys.readouterr().err
    # same seed → same PNG bytes
    again = tmp_path / "again.png"
    generate.main(["--prompt", "glasses", "--region", "glasses=0.1,0.2,0.9,0.7", *args[:-1], str(again)])
    assert again.read_bytes() == out.read_bytes()
    # --attribute-scale: a scale changes the image, a bad one is a clear error
    generate.main(["--prompt", "glasses", "--region", "glasses=0.1,0.2,0.9,0.7", "--attribute-scale", "glasses=2",
                   *args[:-1], str(again)])
    assert again.read_bytes() != out.read_bytes()
    assert generate.main(["--prompt", "glasses", "--attribute-scale", "glases=2", *args]) == 2
    assert "unknown attribute 'glases'" in capsys.readouterr().err
    assert generate.main(["--prompt", "glasses", "--attribute-scale", "glasses", *args]) == 2
    assert "ATTR=S" in capsys.readouterr().err


def test_save_grid_failure_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        save_grid(torch.zeros(2, 5, 8, 8), str(tmp_path / "bad.png"))  # 5 channels: PIL refuses
    assert os.listdir(tmp_path) == []


def test_large_requests_are_sampled_in_chunks_with_the_same_images(pipe):
    """Memory stays bounded for a large --num: chunks of batch_size images, each with its own per-image generators,
    give the images one batch gives (up to float rounding)."""
    prompt = pipe.build("glasses & ~hat")
    whole = pipe.sample(prompt, num=5, seed=2, steps=3, scheduler="euler_a")
    seen = []
    parts = pipe.sample(prompt, num=5, seed=2, steps=3, scheduler="euler_a", batch_size=2,
                        progress=lambda i, n: seen.append((i, n)))
    # equal up to the float noise of batched matmuls, which this random test model amplifies (see the test above)
    assert (whole - parts).abs().mean() < 1e-4 and (whole - parts).abs().max() < 1e-2
    assert seen[-1] == (9, 9) and len(seen) == 9  # 3 chunks × 3 steps, one progress bar
    with pytest.raises(ValueError, match="batch_size must be ≥ 1"):
        pipe.sample(prompt, num=2, batch_size=0)


def test_to_grid_is_torchvisions_make_grid_layout():
    """The numpy grid (no torchvision import at generation) equals make_grid(padding=2, pad_value=1) pixel for pixel."""
    import math

    import torchvision

    from tasks.attributes.pipeline import to_grid

    for n, nrow in [(16, None), (5, None), (7, 3), (1, None), (3, 8)]:
        im = torch.rand(n, 3, 8, 6, generator=torch.Generator().manual_seed(n)) * 2 - 1
        ref = torchvision.utils.make_grid(im.add(1).div(2), nrow=nrow or math.ceil(math.sqrt(n)), padding=2, pad_value=1.0)
        ref = (ref.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(to_grid(im, nrow), ref), (n, nrow)
