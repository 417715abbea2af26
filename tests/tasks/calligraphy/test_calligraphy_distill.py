"""The calligraphy distillation script end to end on a tiny model: distil, ship beside its teacher (checked by the
weights' hash), then sample through the CLI with `--scheduler distilled` and with `--steps 4` (the same glyphs)."""
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

torch.set_num_threads(1)

from conftest import have_fonts, have_strokes  # noqa: E402
from tasks.calligraphy import distill, generate, train  # noqa: E402
from tasks.calligraphy.pipeline import CalligraphyPipeline  # noqa: E402

pytestmark = pytest.mark.skipif(not (have_fonts() and have_strokes()),
                                reason="calligraphy fonts / hanzi-writer-data missing: run data/calligraphy/setup.sh")

CHARS = "永和九年岁在癸丑暮春之初会于山阴兰亭修禊事也群贤毕至少长咸集此地有崇山峻岭茂林修竹"
DATA = {"size": 16, "chars": CHARS, "styles": ["ukai", "gyosho", "wenkai"], "fewshot_styles": ["twkai"],
        "p_refs": 0.5, "p_text": 0.25, "refs_k": 4, "refs_k_min": 1}
MODEL = {"base_channels": 8, "channel_mult": [1, 2], "layers_per_block": 1, "attention_levels": [1], "head_dim": 8,
         "cond_dim": 16, "style_encoder_width": 8, "init_from": "", "init_from_pipeline": ""}


def _teacher(tmp_path, seed):
    over = [f"model.{k}={v}" if not isinstance(v, list) else f"model.{k}=[{','.join(map(str, v))}]"
            for k, v in MODEL.items()]
    over += [f"data.{k}={v}" if not isinstance(v, list) else f"data.{k}=[{','.join(map(str, v))}]" for k, v in DATA.items()]
    out = tmp_path / f"run{seed}"
    train.main(["--config", "configs/calligraphy.yaml", *over, "train.batch_size=4", "train.steps=2",
                "train.warmup_steps=1", "train.ckpt_every=2", "train.threads=1", "diffusion.T=100",
                f"train.seed={seed}", f"train.output_dir={out}"])
    folder = tmp_path / f"teacher{seed}"
    CalligraphyPipeline.from_pretrained(str(out)).save_pretrained(folder, dtype=torch.float16)
    return folder


def test_distil_ship_and_sample(tmp_path):
    teacher = _teacher(tmp_path, 0)
    data_cfg = tmp_path / "data.yaml"
    data_cfg.write_text(yaml.safe_dump({"model": MODEL, "data": DATA}, allow_unicode=True), encoding="utf-8")
    run = tmp_path / "distill"
    args = ["--config", "configs/calligraphy_distill.yaml", f"teacher={teacher}", f"data_config={data_cfg}",
            f"distill.output_dir={run}", "distill.start_steps=8", "distill.final_steps=4",
            "distill.iters_per_stage=3", "distill.batch_size=4", "distill.ckpt_every=3"]
    assert distill.main(args) == 0
    info = yaml.safe_load((run / "distill.json").read_text())
    assert info["steps"] == 4 and info["guidance"] == 2.0 and len(info["stages"]) == 1

    other = _teacher(tmp_path, 1)  # a different model: refused, and left as it was
    with pytest.raises(SystemExit):
        distill.main(args + ["--ship", str(other)])
    assert not (other / "distilled").exists()

    assert distill.main(args + ["--ship", str(teacher)]) == 0
    assert (teacher / "distilled" / "model" / "diffusion_pytorch_model.safetensors").is_file()
    pipe = CalligraphyPipeline.from_pretrained(str(teacher))
    assert pipe.distilled["steps"] == 4 and pipe.superres is None

    outs = {}
    for name, extra in (("named", ["--scheduler", "distilled"]), ("steps", ["--steps", "4"]),
                        ("teacher", ["--steps", "4", "--scheduler", "ddim"])):
        png = tmp_path / f"{name}.png"
        assert generate.main(["--model", str(teacher), "--text", "永和", "--style", "ukai", "--cell", "32",
                              "--out", str(png), *extra]) == 0
        outs[name] = np.asarray(Image.open(png).convert("L"))
    assert np.array_equal(outs["named"], outs["steps"])
    # the student is not the teacher: its 4 steps differ from the teacher's own 4 DDIM steps
    g_student = pipe.glyphs("永和", style="ukai", scheduler="distilled", size=16)
    g_teacher = pipe.glyphs("永和", style="ukai", scheduler="ddim", steps=4, size=16)
    assert not np.allclose(g_student, g_teacher)
    with pytest.raises(ValueError, match="exactly 4 steps"):
        pipe.glyphs("永和", style="ukai", scheduler="distilled", steps=8)
