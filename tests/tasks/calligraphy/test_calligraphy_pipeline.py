"""The real train script for two steps on a few characters, then generation to files through the CLI: PNG + GIF whose
last frame is the work, and bad input that fails clearly without writing anything."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # the CPU is shared: oversubscribed threads make tiny models ~50× slower

from conftest import have_fonts, have_strokes  # noqa: E402
from gen.train import latest_checkpoint  # noqa: E402
from tasks.calligraphy import generate, train  # noqa: E402
from tasks.calligraphy.pipeline import MAX_CHARS, CalligraphyPipeline  # noqa: E402

pytestmark = pytest.mark.skipif(not (have_fonts() and have_strokes()),
                                reason="calligraphy fonts / hanzi-writer-data missing: run data/calligraphy/setup.sh")

CHARS = "永和九年岁在癸丑暮春之初会于山阴兰亭修禊事也群贤毕至少长咸集此地有崇山峻岭茂林修竹"
TINY = ["model.base_channels=8", "model.channel_mult=[1,2]", "model.layers_per_block=1", "model.attention_levels=[1]",
        "model.head_dim=8", "model.cond_dim=16", "model.style_encoder_width=8", "data.size=16", f"data.chars={CHARS}",
        "data.styles=[ukai,gyosho,wenkai]", "data.fewshot_styles=[twkai]", "train.batch_size=4", "train.steps=2",
        "train.warmup_steps=1", "train.ckpt_every=2", "train.threads=1", "diffusion.T=100", "model.init_from=",
        "model.init_from_pipeline=",
        "data.p_refs=0.5", "data.p_text=0.25"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "run"
    summary = train.main(["--config", "configs/calligraphy.yaml", *TINY, f"train.output_dir={out}"])
    assert summary["step"] == 2
    return str(out)


def test_train_script_writes_a_loadable_checkpoint(run_dir):
    ck = latest_checkpoint(run_dir)
    assert ck.endswith("step_0000002")
    for f in ["model/diffusion_pytorch_model.safetensors", "ema/diffusion_pytorch_model.safetensors", "config.yaml"]:
        assert os.path.exists(os.path.join(ck, f)), f
    pipe = CalligraphyPipeline.from_pretrained(run_dir)
    assert pipe.styles == ["ukai", "gyosho", "wenkai"] and pipe.size == 16
    with pytest.raises(ValueError, match="unknown config key"):
        train.main(["--config", "configs/calligraphy.yaml", "data.nope=1"])


def gen(run_dir, *args):
    return generate.main(["--checkpoint", run_dir, "--steps", "3", "--cell", "32", *args])


def test_generate_png_and_gif_last_frame_is_the_work(run_dir, tmp_path):
    png, gif = tmp_path / "work.png", tmp_path / "work.gif"
    assert gen(run_dir, "--text", "永和九年", "--style", "0.7*gyosho+0.3*ukai", "--out", str(png),
               "--video", str(gif), "--seed", "3") == 0
    work = np.asarray(Image.open(png).convert("RGB"))
    assert work.shape[0] > 2 * 32 and work.shape[1] > 2 * 32  # 2×2 characters of 32 px plus margins
    with Image.open(gif) as im:
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"))
        assert im.n_frames > 4
    assert (last == work).all()
    again = tmp_path / "again.png"
    assert gen(run_dir, "--text", "永和九年", "--style", "0.7*gyosho+0.3*ukai", "--out", str(again), "--seed", "3") == 0
    assert (np.asarray(Image.open(again).convert("RGB")) == work).all()  # same seed → same work
    # horizontal layout: one row of 4 when asked
    row = tmp_path / "row.png"
    assert gen(run_dir, "--text", "永和九年", "--out", str(row), "--layout", "horizontal", "--chars-per-line", "4") == 0
    h, w = np.asarray(Image.open(row)).shape[:2]
    assert w > 2.5 * h
    # a style from references (images written as dark ink on light paper)
    refs = []
    for i, c in enumerate("山水"):
        from tasks.calligraphy.data import render_glyph
        p = tmp_path / f"ref{i}.png"
        Image.fromarray(((1 - render_glyph(c, "soseki", 48)) * 255).astype(np.uint8)).save(p)
        refs.append(str(p))
    assert gen(run_dir, "--text", "永和", "--reference", *refs, "--out", str(tmp_path / "refs.png")) == 0
    assert gen(run_dir, "--text", "永和", "--style-prompt", "bold running brush script",
               "--out", str(tmp_path / "text.png")) == 0


@pytest.mark.parametrize("args, message", [
    (["--text", "永\ue000和\U0010fffd"], "not Chinese characters (Han)"),
    (["--text", "  "], "empty text"),
    (["--text", "永和", "--style", "kaishu"], "known styles: ukai, gyosho, wenkai"),
    (["--text", "永" * (MAX_CHARS + 1)], f"limit is {MAX_CHARS}"),
    (["--text", "永和", "--reference", "BAD"], "cannot read reference image"),
])
def test_bad_input_fails_clearly_and_writes_nothing(run_dir, tmp_path, capsys, args, message):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    args = [str(bad) if a == "BAD" else a for a in args]
    out, vid = tmp_path / "o.png", tmp_path / "o.gif"
    assert gen(run_dir, *args, "--out", str(out), "--video", str(vid)) == 2
    err = capsys.readouterr().err
    assert message in err, err
    if "covered" in message:
        assert "\ue000" in err and "U+E000" in err and "U+10FFFD" in err
    assert sorted(os.listdir(tmp_path)) == ["bad.png"]
