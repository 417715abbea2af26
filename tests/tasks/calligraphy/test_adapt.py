"""calligraphy-adapt on a tiny model: training lowers the loss on the references, step 0 / LoRA scale 0 is the base
model's reference-based output, save → load round-trips bit for bit, the style is usable by name (API and CLIs), and
bad input fails clearly leaving nothing in --out."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # the CPU is shared: oversubscribed threads make tiny models ~50× slower

from conftest import have_fonts  # noqa: E402
from tasks.calligraphy import adapt, font_cli, generate  # noqa: E402
from tasks.calligraphy.data import render_glyph  # noqa: E402
from tasks.calligraphy.model import CalligraphyModel  # noqa: E402
from tasks.calligraphy.pipeline import CalligraphyPipeline  # noqa: E402

pytestmark = pytest.mark.skipif(not have_fonts("ukai"), reason="calligraphy fonts missing: run data/calligraphy/setup.sh")

S = 16
CHARS = "永和九年岁在癸丑"
TINY = dict(base_channels=8, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,), head_dim=8)
META = {"prediction_type": "v_prediction", "schedule": {"kind": "cosine", "T": 100},
        "sampling": {"scheduler": "dpm++", "steps": 3, "guidance": 2.0}}
FAST = dict(batch_size=8, eval_every=10, time_limit=60.0, rank=4, alpha=4.0)


def tiny_pipe(seed=0) -> CalligraphyPipeline:
    torch.manual_seed(seed)
    m = CalligraphyModel(("ukai", "gyosho"), S, cond_dim=16, text_dim=12, style_encoder_width=8, unet_config=TINY)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return CalligraphyPipeline(m, META)


def write_refs(folder, chars=CHARS, named=True):
    """Scans of font glyphs: dark ink on light paper with a margin, named after the character (or r00.png …)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(chars):
        ink = np.pad(render_glyph(c, "ukai", 40), 8)
        Image.fromarray((240 - 200 * ink).astype(np.uint8)).save(folder / (f"{i:02d}_{c}.png" if named else f"r{i:02d}.png"))
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_pipe().save_pretrained(tmp_path_factory.mktemp("adapt") / "tiny")


def test_adapting_lowers_the_loss_on_the_references_and_round_trips_bit_for_bit(tmp_path):
    pipe = tiny_pipe()
    glyphs, chars, _ = adapt.read_references(write_refs(tmp_path / "refs"), S)
    assert "".join(chars) == CHARS and glyphs[0].shape == (1, S, S)
    style = adapt.adapt(pipe, glyphs, chars, "myhand", steps=40, holdout=0.0, lr=5e-3, **FAST)
    before = adapt.reference_loss(pipe, None, glyphs, chars)     # today's path: the same glyphs as references
    after = adapt.reference_loss(pipe, style, glyphs, chars)
    assert after < 0.9 * before, (before, after)
    assert style.meta["steps_run"] == 40 and style.meta["characters"] == CHARS
    assert all(p.grad is None for p in pipe.model.parameters())   # the base model is untouched
    out = adapt.save_style(style, tmp_path / "styles" / "myhand")
    assert sorted(os.listdir(out)) == ["style.json", "style.safetensors"]
    back = adapt.load_style(out)
    assert torch.equal(back.vector, style.vector) and back.lora.keys() == style.lora.keys()
    assert all(torch.equal(back.lora[k], v) for k, v in style.lora.items())
    assert torch.equal(back.references, style.references) and back.references.dtype == torch.uint8
    assert (back.name, back.rank, back.alpha, back.targets) == ("myhand", 4, 4.0, style.targets)
    assert json.loads((tmp_path / "styles/myhand/style.json").read_text())["base_model"]["fingerprint"] == \
        adapt.fingerprint(pipe.model)
    # a held-out split: step chosen on it, step 0 among the candidates
    held = adapt.adapt(pipe, glyphs, chars, "myhand", steps=20, seed=1, **FAST)
    assert len(held.meta["heldout_characters"]) == 1 and held.meta["steps"] in (0, 10, 20)
    assert held.meta["heldout_ssim"]["best"] >= held.meta["heldout_ssim"]["step0"]


def test_before_training_and_at_lora_scale_zero_it_is_the_base_models_reference_output(tmp_path):
    pipe = tiny_pipe()
    files = write_refs(tmp_path / "refs")
    glyphs, chars, _ = adapt.read_references(files, S)
    step0 = adapt.adapt(pipe, glyphs, chars, "zero", steps=0, holdout=0.0, **FAST)
    pipe.load_style(adapt.save_style(step0, tmp_path / "zero"))
    kw = dict(seed=3, size=S)
    torch.testing.assert_close(pipe.glyphs("永和", style="zero", **kw), pipe.glyphs("永和", references=files, **kw),
                               atol=1e-5, rtol=0)
    # a trained style at LoRA scale 0 is the base U-Net with the learned style vector
    trained = adapt.adapt(pipe, glyphs, chars, "t", steps=5, holdout=0.0, **FAST)
    off = adapt.denoiser(pipe.model, trained, lora_scale=0.0)
    plain = adapt.AdaptedDenoiser(pipe.model, pipe.model.unet, trained.vector)
    on = adapt.denoiser(pipe.model, trained)
    x, t = torch.randn(2, 1, S, S, generator=torch.Generator().manual_seed(0)), torch.tensor([10, 60])
    c = {"content": pipe.content_glyphs(["永", "和"]), "content.keep": torch.ones(2, dtype=torch.bool),
         "style_source": torch.full((2,), adapt.SOURCE_ADAPTED), "style_id": torch.zeros(2, dtype=torch.long),
         "style.keep": torch.tensor([True, False])}
    with torch.no_grad():
        assert torch.equal(off(x, t, c), plain(x, t, c))
        assert not torch.allclose(on(x, t, c), plain(x, t, c))


def test_the_adapted_style_is_usable_by_name_in_the_api_and_both_clis(tmp_path, model_dir, monkeypatch, capsys):
    files = write_refs(tmp_path / "scans", named=False)
    styles = tmp_path / "mine"
    rc = adapt.main(["--references", str(tmp_path / "scans"), "--chars", CHARS, "--name", "myhand", "--out",
                     str(styles / "myhand"), "--model", model_dir, "--steps", "3", "--threads", "1", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    meta = json.loads((styles / "myhand" / "style.json").read_text(encoding="utf-8"))
    assert meta["characters"] == CHARS and meta["references"] == [str(f) for f in files]
    pipe = CalligraphyPipeline.from_pretrained(model_dir)
    with pytest.raises(ValueError, match="unknown style 'myhand'"):
        pipe.glyphs("永和", style="myhand")
    assert pipe.adapted_styles() == []
    pipe.style_dirs = [str(styles)]                                    # found by name on the search path
    assert "myhand" in pipe.known_styles() and pipe.adapted_styles() == ["myhand"]  # (the web page's list)
    g = pipe.glyphs("永和", style="myhand", size=S)
    assert g.shape == (2, S, S) and np.isfinite(g).all()
    assert not np.allclose(g, pipe.glyphs("永和", style="ukai", size=S))
    with pytest.raises(ValueError, match="cannot be mixed"):
        pipe.glyphs("永和", style="0.5*myhand+0.5*ukai")
    monkeypatch.setenv("GENSUITE_STYLES", str(styles))                # and through $GENSUITE_STYLES
    fresh = CalligraphyPipeline.from_pretrained(model_dir)
    np.testing.assert_array_equal(fresh.glyphs("永和", style="myhand", size=S), g)
    monkeypatch.delenv("GENSUITE_STYLES")
    other = CalligraphyPipeline(tiny_pipe(seed=1).model, META)        # another base model: refused
    with pytest.raises(ValueError, match="adapted from another base model"):
        other.load_style(styles / "myhand")
    other.style_dirs = [str(styles)]
    assert "myhand" in other.known_styles() and other.adapted_styles() == []  # not offered where it cannot load
    png, ttf = tmp_path / "w.png", tmp_path / "f.ttf"
    assert generate.main(["--model", model_dir, "--text", "永和", "--style", "myhand", "--style-dir", str(styles),
                          "--out", str(png), "--cell", "32", "--threads", "1"]) == 0
    assert png.is_file()
    monkeypatch.chdir(tmp_path)
    os.rename(styles, tmp_path / "styles")                              # ./styles is on the path by default
    assert font_cli.main(["--model", model_dir, "--style", "myhand", "--chars", "永和", "--out", str(ttf),
                          "--threads", "1"]) == 0
    assert ttf.is_file()


def test_bad_inputs_fail_clearly_and_leave_nothing_in_out(tmp_path, model_dir, capsys):
    def fails(refs, match, *extra):
        out = tmp_path / "out" / "hand"
        rc = adapt.main(["--references", *map(str, refs), "--name", "hand", "--out", str(out), "--model", model_dir,
                         "--steps", "2", "--threads", "1", "--quiet", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and match in err, err
        assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []   # no style, no temp folder
        return err

    (tmp_path / "empty").mkdir()
    fails([tmp_path / "empty"], "holds no reference images")
    fails([tmp_path / "nope.png"], "does not exist")
    few = write_refs(tmp_path / "few", CHARS[:5])
    fails(few, "5 reference glyphs; adaptation needs 8 to 64")
    many = tmp_path / "many"
    many.mkdir()
    ink = np.pad(render_glyph("永", "ukai", 40), 8)
    for i in range(65):
        Image.fromarray((240 - 200 * ink).astype(np.uint8)).save(many / f"永_{i}.png")
    fails([many], "65 reference glyphs; adaptation needs 8 to 64")
    bad = write_refs(tmp_path / "bad")
    (tmp_path / "bad" / "九_9.png").write_bytes(b"not an image")
    fails([tmp_path / "bad"], "reference image")
    unnamed = write_refs(tmp_path / "unnamed", named=False)
    err = fails(unnamed, "do not say which character")
    assert "永.png" in err and "--chars" in err
    fails(unnamed, "--chars has 3 characters but the references show more", "--chars", "永和九")
    fails(unnamed, "training styles", "--name", "ukai")
    fails(write_refs(tmp_path / "ok"), "is not an adapted style folder", "--out", str(tmp_path / "ok"))
    assert adapt.read_references(unnamed, S, ask=lambda f: "永")[1] == ["永"] * 8   # a terminal asks instead
