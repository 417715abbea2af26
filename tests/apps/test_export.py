"""apps.export ships a run as a pipeline folder (fp16 safetensors) with a card from the one writer."""
import json

import torch
import yaml
from safetensors.torch import load_file

from apps import export
from gen.models import ClassConditionalModel
from gen.pipeline import ClassConditionalPipeline


def test_export_a_run_to_a_loadable_fp16_pipeline_with_a_card(tmp_path, capsys):
    torch.manual_seed(0)
    m = ClassConditionalModel(num_classes=3, unet_config=dict(base_channels=8, channel_mult=(1,), layers_per_block=1,
                                                              attention_levels=(), head_dim=8))
    ck = tmp_path / "run" / "checkpoints" / "step_0000042"
    m.save_pretrained(ck / "ema", safe_serialization=True)
    (ck / "config.yaml").write_text(yaml.safe_dump({"diffusion": {"schedule": "cosine", "T": 40,
                                                                  "prediction_type": "v_prediction"}}))
    (ck / "trainer_state.json").write_text(json.dumps({"step": 42}))
    (tmp_path / "report.json").write_text(json.dumps({"command": "python -m x", "accuracy": 0.5}))
    rc = export.main([str(tmp_path / "run"), "--task", "shapes", "--out", str(tmp_path / "out"),
                      "--command", "accelerate launch apps/pretrain.py --config c.yaml",
                      "--eval", str(tmp_path / "report.json")])
    assert rc == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "accelerate launch apps/pretrain.py --config c.yaml" in card and "- steps: 42" in card
    assert '"accuracy": 0.5' in card
    w = load_file(str(tmp_path / "out" / "model" / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in w.values() if v.is_floating_point()} == {torch.float16}
    pipe = ClassConditionalPipeline.from_pretrained(str(tmp_path / "out"))
    assert pipe.schedule.T == 40 and pipe.prediction_type == "v_prediction"
    assert next(pipe.model.parameters()).dtype == torch.float32
    assert export.main([str(tmp_path / "run"), "--task", "shapes", "--out", str(tmp_path / "o2"), "--command", "c",
                        "--eval", str(tmp_path / "missing.json")]) == 2
    assert "error" in capsys.readouterr().err and not (tmp_path / "o2").exists()
