"""Text and image prompts in the composite algebra, edits (known-region sampling) and their bad inputs, on a tiny
attribute model and a tiny CLIP (the CLIP's reading is stubbed where the test is about the algebra)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import tasks.attributes.clip as clipmod
from gen.inpaint import sample_known
from gen.schedule import DiffusionSchedule
from tasks.attributes import generate
from tasks.attributes.clip import AttributeCLIP, TextError, Understood
from tasks.attributes.faces import ATTRIBUTES, region_mask, render_sample
from tasks.attributes.model import AttributeModel
from tasks.attributes.pipeline import AttributesPipeline, specified
from tasks.attributes.terms import Img, ImageError, T

K = len(ATTRIBUTES)


def _tiny_clip() -> AttributeCLIP:
    torch.manual_seed(0)
    return AttributeCLIP(vocab=list(range(100, 400)), embed_dim=16, context_length=48,
                         vision=dict(layers=1, width=32, head_width=16, patch_size=8),
                         text=dict(layers=1, width=32, heads=2))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    pipe = AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50}})
    d = tmp_path_factory.mktemp("attr_model")
    pipe.save_pretrained(str(d), card="# tiny test model\n")
    return str(d)


# What the stub CLIP reads: a few words → attributes (the real reading is measured in reports/attributes_clip.json).
WORDS = {"smiling": ("smile", True), "round glasses": ("glasses", True), "no hat": ("hat", False),
         "shades": ("sunglasses", True), "hat": ("hat", True), "bearded": ("beard", True)}


def _stub_decode(model, tok, text, threshold=0.5):
    spec = {}
    for w, (a, v) in sorted(WORDS.items(), key=lambda kv: -len(kv[0])):
        if w in text and a not in spec:
            spec[a] = v
    if not spec:
        raise TextError(f"the text {text!r} names nothing the model knows (understood: nothing)")
    return Understood(spec, {a: 0.99 for a in spec}, text)


def _image_attrs(x):  # stub image reading: the attributes are written into the top-left pixel row
    row = (x[:, 0, 0, :K] > 0)
    return [Understood({a: bool(r[k]) for k, a in enumerate(ATTRIBUTES)}, {a: 1.0 for a in ATTRIBUTES}) for r in row]


@pytest.fixture
def pipe(model_dir, monkeypatch):
    p = AttributesPipeline.from_pretrained(model_dir)
    p.set_clip(_tiny_clip())
    p.image_reader = "clip"  # the stubbed CLIP reading, not a shipped judge
    monkeypatch.setattr(clipmod, "decode_text", _stub_decode)
    monkeypatch.setattr(clipmod, "read_images", lambda model, x: _image_attrs(x))
    return p


def _coded_png(path, on: set, size=32):
    arr = np.full((size, size, 3), 128, np.uint8)
    for k, a in enumerate(ATTRIBUTES):
        arr[0, k] = 255 if a in on else 0
    Image.fromarray(arr).save(path)
    return str(path)


def _spec(prompt):
    return [{prompt_attr(t, i): v for i, v in specified(t).items()} for t in prompt.terms]


def prompt_attr(t, i):
    return ATTRIBUTES[i]


def test_free_text_becomes_attribute_terms(pipe):
    p = pipe.build("a smiling man with round glasses", guidance=2.0)
    assert sorted(map(lambda d: tuple(d.items())[0], _spec(p))) == [("glasses", True), ("smile", True)]
    assert all(t.weight == 2.0 * pipe.scale_of(t) for t in p.terms)
    assert any("smile" in line for line in pipe.understood)
    # words & a negated text term; grammar parts keep their own weights and regions
    p = pipe.build("a smiling man" & ~T("hat"), guidance=1.0)
    assert sorted(tuple(d.items())[0] for d in _spec(p)) == [("hat", False), ("smile", True)]
    p = pipe.build(2 * T("wearing shades") @ "eyes" & T("bearded guy"), guidance=1.0)
    sun = next(t for t in p.terms if ATTRIBUTES.index("sunglasses") in specified(t))
    assert sun.weight == 2.0 * pipe.scale_of(sun) and sun.mask is not None
    assert torch.equal(sun.mask, pipe.attribute("sunglasses", region="eyes").mask)
    # mixed string: words, a negated name and a region in one prompt
    p = pipe.build("a smiling man & ~hat & glasses@eyes", guidance=1.0)
    assert len(p) == 3 and sum(t.mask is not None for t in p.terms) == 1
    # the pure grammar never needs the CLIP and keeps its errors
    pipe._clip = None
    assert len(pipe.build("glasses & ~hat")) == 2
    with pytest.raises(ValueError, match="did you mean 'glasses'"):
        pipe.build("glases")


def test_text_errors_say_what_was_understood(pipe):
    with pytest.raises(TextError, match="names nothing"):
        pipe.build("a red bicycle")
    with pytest.raises(ValueError, match="both on .* and off"):
        pipe.build("a man with a hat" & ~T("hat"))
    with pytest.raises(TextError, match="empty"):
        pipe.build(T("   "))
    with pytest.raises(TextError, match="too long"):
        pipe.build(T("a smiling man " * 40))


def test_image_prompts_compose(pipe, tmp_path):
    a = _coded_png(tmp_path / "a.png", {"beard", "glasses"})
    b = _coded_png(tmp_path / "b.png", {"hat"})
    p = pipe.build(Img(a) & Img(b), guidance=1.0)
    (joint,) = p.terms  # one fully specified condition: on when either image shows it
    got = {ATTRIBUTES[i]: v for i, v in specified(joint).items()}
    assert got == {x: x in {"beard", "glasses", "hat"} for x in ATTRIBUTES}
    p = pipe.build(Img(a) & "hat", guidance=1.0)  # the text's hat joins the image's condition and its own term
    assert {ATTRIBUTES[i]: v for i, v in specified(p.terms[0]).items()}["hat"] is True
    assert len(p) == 2 and specified(p.terms[1]) == {ATTRIBUTES.index("hat"): True}
    p = pipe.build(Img(a, attributes=["beard"]) & ~T("hat"), guidance=1.0)
    assert {ATTRIBUTES[i]: v for i, v in specified(p.terms[0]).items()} == {"beard": True, "hat": False}
    x = pipe(Img(a) & "hat", num=2, seed=0, steps=3)
    assert x.shape == (2, 3, 32, 32)
    assert torch.equal(x, pipe(Img(a) & "hat", num=2, seed=0, steps=3))  # same seed, same images


def test_bad_images(pipe, tmp_path):
    txt = tmp_path / "notes.png"
    txt.write_text("not an image")
    with pytest.raises(ImageError, match="cannot read"):
        pipe.build(Img(str(txt)))
    with pytest.raises(ImageError):
        pipe.build(Img(str(tmp_path / "missing.png")))
    with pytest.raises(ImageError, match=r"\(3, H, W\)"):
        pipe.build(Img(torch.zeros(2, 3, 3)))
    big = _coded_png(tmp_path / "big.png", {"hat"}, size=32)
    Image.open(big).resize((64, 64), Image.NEAREST).save(tmp_path / "big64.png")
    with pytest.warns(UserWarning, match="resized to 32×32"):
        pipe.build(Img(str(tmp_path / "big64.png")))
    assert any("64×64" in n for n in pipe.notes)
    with pytest.raises(TypeError, match="cannot be negated"):
        ~Img(big)


def test_sample_known_keeps_known_pixels_and_is_deterministic():
    sched = DiffusionSchedule.make("cosine", T=50)
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    known = torch.zeros(1, 1, 8, 8)
    known[..., :4] = 1

    def model(x, t):
        return torch.zeros_like(x)  # ε̂ = 0: the generated part drifts to the x̂_0 of the noise, the rest is kept

    g = lambda: [torch.Generator().manual_seed(i) for i in range(2)]
    out = sample_known(model, x0, known, sched, strength=0.7, steps=10, generator=g())
    assert torch.equal(out[..., :4], x0[..., :4])
    assert not torch.allclose(out[..., 4:], x0[..., 4:])
    assert torch.equal(out, sample_known(model, x0, known, sched, strength=0.7, steps=10, generator=g()))
    out2 = sample_known(model, x0, known, sched, strength=0.7, steps=10, generator=g(), jumps=1)
    assert torch.equal(out2[..., :4], x0[..., :4])
    with pytest.raises(ValueError, match="strength"):
        sample_known(model, x0, known, sched, strength=0.0)


def test_edit_is_local(pipe, tmp_path):
    face, _ = render_sample(0, 3, "train")
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    x0 = torch.from_numpy(face).permute(2, 0, 1).float() / 127.5 - 1
    out = pipe.edit(str(path), "sunglasses", region="eyes", strength=0.9, num=2, seed=0, steps=6)
    inside = torch.from_numpy(region_mask("eyes", 32)) > 0
    diff = (out - x0[None]).pow(2).mean(1)  # (2, H, W)
    rmse_out = diff[:, ~inside].mean().sqrt().item() / 2  # in [0, 1] units
    rmse_in = diff[:, inside].mean().sqrt().item() / 2
    assert rmse_out < 0.01 and rmse_in > 0.05
    # default region: the regions of the attributes the prompt names
    auto = pipe.edit(str(path), "sunglasses", strength=0.9, num=2, seed=0, steps=6)
    assert torch.equal(auto, out)
    with pytest.raises(ValueError, match="strength"):
        pipe.edit(str(path), "sunglasses", strength=1.5)


def test_cli_edit_and_image_bad_inputs(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(clipmod, "load_clip", lambda name="attributes_clip", dtype=None: (_tiny_clip(), clipmod
                                                                                            .tokenizer_for(_tiny_clip())))
    monkeypatch.setattr(clipmod, "read_images", lambda model, x: _image_attrs(x))
    face, _ = render_sample(0, 5, "train", size=64)
    src = tmp_path / "face64.png"
    Image.fromarray(face).save(src)
    out = tmp_path / "edit.png"
    rc = generate.main(["--model", model_dir, "--edit", str(src), "--prompt", "hat", "--num", "1", "--steps", "3",
                        "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0 and out.exists() and "resized to 32×32" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    for args in (["--edit", str(bad), "--prompt", "hat"], ["--image", str(bad)],
                 ["--edit", str(src), "--prompt", "hat", "--strength", "2"],
                 ["--edit", str(src), "--prompt", "hat", "--edit-region", "elbow"]):
        target = tmp_path / "never.png"
        rc = generate.main(["--model", model_dir, "--steps", "2", "--num", "1", "--out", str(target), *args])
        err = capsys.readouterr().err
        assert rc == 2 and "error" in err and not target.exists(), (args, err)


def test_evaluate_prompts_section_is_merged_into_the_report(tmp_path):
    import json

    from tasks.attributes import evaluate
    from tasks.attributes.classifier import train_classifier

    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    clip_dir = tmp_path / "clip"
    _tiny_clip().save_pretrained(str(clip_dir / "model"), safe_serialization=True)
    AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50}, "task_config": {"clip": str(clip_dir)}}
                       ).save_pretrained(str(tmp_path / "model"), card="# tiny\n")
    train_classifier(str(tmp_path / "judge"), steps=4, n_train=32, n_eval=16, log=lambda *_: None)
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"all_correct": {"kept": 1}}))
    r = evaluate.main(["--prompts", "--model", str(tmp_path / "model"), "--classifier", str(tmp_path / "judge"),
                       "--steps", "2", "--n-per", "1", "--n-sets", "2", "--n-images", "1", "--strengths", "1.0",
                       "--clip-report", str(tmp_path / "none.json"), "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["all_correct"] == {"kept": 1} and saved == r
    sec = saved["text_image_edit"]
    assert set(sec["targets"]) == {"free_text_vs_named", "image_transfer", "image_and_hat", "edit_attribute",
                                   "edit_rmse_outside_max"}
    assert sec["edit"]["sunglasses"]["rmse_outside"] < 1e-6  # known pixels come back exactly
    assert sec["command"].startswith("python -m tasks.attributes.evaluate --prompts")


def test_bad_inputs_of_plain_prompts_and_edits_raise_before_any_sampling(pipe, tmp_path, monkeypatch):
    """Issue 18, item 6 beyond T()/Img(): an over-long plain string, a text naming nothing (the message says what was
    understood and what the model knows), an edit without a prompt, with words naming nothing, or of a file that is
    not an image — each a clear error raised before the sampler runs (so nothing partial is ever produced)."""
    import tasks.attributes.pipeline as pipemod

    face, _ = render_sample(0, 3, "train")
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    calls = []
    monkeypatch.setattr(pipemod, "guided_model", lambda *a, **k: calls.append(1))  # any sampling would record a call
    with pytest.raises(TextError, match="too long"):
        pipe("a smiling man " * 40, num=1, steps=2)
    with pytest.raises(TextError, match=r"names nothing the model knows \(understood: nothing"):
        pipe("a red bicycle", num=1, steps=2)
    with pytest.raises(ValueError, match="an edit needs a prompt that names something"):
        pipe.edit(str(path), "", num=1, steps=2)
    with pytest.raises(TextError, match="names nothing"):
        pipe.edit(str(path), "a red bicycle", num=1, steps=2)
    with pytest.raises(ImageError, match="cannot read edit image"):
        pipe.edit(str(notes), "sunglasses", num=1, steps=2)
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        pipe.edit(np.zeros((32, 32), np.uint8), "sunglasses", num=1, steps=2)
    assert calls == []


def test_cli_bad_texts_write_nothing(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(clipmod, "load_clip", lambda name="attributes_clip", dtype=None: (_tiny_clip(), clipmod
                                                                                            .tokenizer_for(_tiny_clip())))
    monkeypatch.setattr(clipmod, "decode_text", _stub_decode)
    face, _ = render_sample(0, 5, "train")
    src = tmp_path / "face.png"
    Image.fromarray(face).save(src)
    for args, expected in ((["--prompt", "a red bicycle"], "names nothing"),
                           (["--prompt", "a smiling man " * 40], "too long"),
                           (["--edit", str(src), "--prompt", "a red bicycle"], "names nothing"),
                           (["--edit", str(src), "--prompt", ""], "an edit needs a prompt"),
                           (["--image", str(src), "--prompt", "a red bicycle"], "names nothing")):
        target = tmp_path / "never.png"
        rc = generate.main(["--model", model_dir, "--steps", "2", "--num", "1", "--out", str(target), *args])
        err = capsys.readouterr().err
        assert rc == 2 and expected in err and not target.exists(), (args, err)
