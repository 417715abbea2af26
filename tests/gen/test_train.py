"""The training loop through its real entry point: checkpoints, resume, 2-process accelerate, strict config."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from gen import pretrain
from gen.train import latest_checkpoint

TINY = ["data.source=shapes2d", "model.base_channels=16", "model.channel_mult=[1,2]", "model.layers_per_block=1", "model.attention_levels=[1]",
        "model.head_dim=8", "data.size=16", "data.num_samples=64", "train.batch_size=8", "train.warmup_steps=2",
        "train.log_every=1", "diffusion.T=50", "train.threads=1"]


def run(tmp, *extra, resume=False):
    args = ["--config", "configs/backbone_2d.yaml", *TINY, f"train.output_dir={tmp}", *extra]
    return pretrain.main(args + (["--resume"] if resume else []))


def test_checkpoint_resume_continues_step_and_optimizer(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run(full, "train.steps=6", "train.ckpt_every=3")
    run(part, "train.steps=3", "train.ckpt_every=3")
    ck = latest_checkpoint(str(part))
    assert ck.endswith("step_0000003")
    for f in ["model/diffusion_pytorch_model.safetensors", "ema/diffusion_pytorch_model.safetensors",
              "optimizer.safetensors", "state.safetensors", "trainer_state.json", "config.yaml"]:
        assert os.path.exists(os.path.join(ck, f)), f
    assert not any(n.endswith(".tmp") for n in os.listdir(os.path.dirname(ck)))
    opt = load_file(os.path.join(ck, "optimizer.safetensors"))
    assert any(k.endswith("exp_avg_sq") for k in opt)
    summary = run(part, "train.steps=6", "train.ckpt_every=3", resume=True)
    assert summary["step"] == 6
    with open(os.path.join(latest_checkpoint(str(part)), "trainer_state.json")) as f:
        assert json.load(f)["step"] == 6
    # resuming reproduces the uninterrupted run exactly (data order, noise and optimizer state all restored)
    a = load_file(os.path.join(latest_checkpoint(str(full)), "model", "diffusion_pytorch_model.safetensors"))
    b = load_file(os.path.join(latest_checkpoint(str(part)), "model", "diffusion_pytorch_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_unknown_config_key_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'train.lrr'"):
        run(tmp_path, "train.lrr=1")


def test_two_process_accelerate_run_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/cpu_2proc.yaml",
           "--main_process_port", "29533", "apps/pretrain.py", "--config", "configs/backbone_2d.yaml", *TINY,
           f"train.output_dir={out}", "train.steps=3", "train.ckpt_every=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = latest_checkpoint(str(out))
    assert ck and ck.endswith("step_0000003")
    assert os.path.exists(os.path.join(ck, "model", "diffusion_pytorch_model.safetensors"))


def test_tensorboard_gets_loss_and_sample_grids(tmp_path):
    run(tmp_path, "train.steps=2", "train.sample_every=2", "train.ckpt_every=2")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "logs") for f in fs if "tfevents" in f]
    assert logs
    acc = EventAccumulator(os.path.dirname(logs[0]))
    acc.Reload()
    assert "loss" in acc.Tags()["scalars"] and "samples" in acc.Tags()["images"]
