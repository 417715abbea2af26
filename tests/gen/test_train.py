"""The training loop through its real entry points: checkpoints, exact resume (one and two processes), damaged
checkpoints, strict config with exit-2 errors."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from apps import pretrain
from gen.conditioning import LabelEmbedding, NullableEmbedding
from gen.config import CLIError
from gen.toydata import Shapes2D
from gen.train import TrainTask, latest_checkpoint, stream_seed, train
from gen.unet import ConditionalUNet

TINY = ["data.source=shapes2d", "model.base_channels=16", "model.channel_mult=[1,2]", "model.layers_per_block=1", "model.attention_levels=[1]",
        "model.head_dim=8", "data.size=16", "data.num_samples=64", "train.batch_size=8", "train.warmup_steps=2",
        "train.log_every=1", "diffusion.T=50", "train.threads=1"]
WEIGHTS = "diffusion_pytorch_model.safetensors"


def run(tmp, *extra, resume=False, config="configs/backbone_2d.yaml"):
    args = ["--config", config, *TINY, f"train.output_dir={tmp}", *extra]
    return pretrain.main(args + (["--resume"] if resume else []))


def st(path):
    """A safetensors file's tensors and metadata."""
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def assert_same_checkpoint(a, b, ranks=1):
    """Bit-exact: weights, EMA, optimizer state and every process's RNG state."""
    files = [f"model/{WEIGHTS}", f"ema/{WEIGHTS}", "optimizer.safetensors"] + [f"rng_rank{r}.safetensors"
                                                                                   for r in range(ranks)]
    for f in files:
        (ta, ma), (tb, mb) = st(os.path.join(a, f)), st(os.path.join(b, f))
        assert ta.keys() == tb.keys() and ma == mb, f
        diff = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not diff, f"{f}: {diff[:5]} differ"
    with open(os.path.join(a, "trainer_state.json")) as fa, open(os.path.join(b, "trainer_state.json")) as fb:
        assert json.load(fa) == json.load(fb)


def test_checkpoint_resume_continues_step_and_optimizer(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run(full, "train.steps=6", "train.ckpt_every=3")
    run(part, "train.steps=3", "train.ckpt_every=3")
    ck = latest_checkpoint(str(part))
    assert ck.endswith("step_0000003")
    for f in [f"model/{WEIGHTS}", f"ema/{WEIGHTS}", "optimizer.safetensors", "rng_rank0.safetensors",
              "trainer_state.json", "config.yaml"]:
        assert os.path.exists(os.path.join(ck, f)), f
    assert not any(n.endswith(".tmp") for n in os.listdir(os.path.dirname(ck)))
    opt = load_file(os.path.join(ck, "optimizer.safetensors"))
    assert any(k.endswith("exp_avg_sq") for k in opt)
    summary = run(part, "train.steps=6", "train.ckpt_every=3", resume=True)
    assert summary["step"] == 6
    with open(os.path.join(latest_checkpoint(str(part)), "trainer_state.json")) as f:
        assert json.load(f)["step"] == 6
    # resuming reproduces the uninterrupted run exactly (data order, noise, RNG and optimizer state all restored)
    assert_same_checkpoint(latest_checkpoint(str(full)), latest_checkpoint(str(part)))


# ---- exact resume with every kind of randomness ----------------------------------------------------------------------
K = 3


class TinyCondModel(ModelMixin, ConfigMixin):
    """A label (dropped as a whole) and K binary attributes (dropped per element) → cond_vec; ResBlock dropout on."""

    @register_to_config
    def __init__(self, num_classes: int = 4, k: int = K, dim: int = 16):
        super().__init__()
        self.unet = ConditionalUNet(dims=2, in_channels=3, base_channels=8, channel_mult=(1, 2), layers_per_block=1,
                                    attention_levels=(), head_dim=8, cond_dim=dim, dropout=0.2)
        self.label = LabelEmbedding(num_classes, dim)
        self.attr = nn.Embedding(2, dim)
        self.attr_null = NullableEmbedding(dim, k)

    def forward(self, x, t, cond):
        a = self.attr_null(self.attr(cond["attrs"].long()), cond.get("attrs.keep")).mean(1)
        return self.unet(x, t, cond_vec=self.label(cond["label"], cond.get("label.keep")) + a)


def batch_to(b):
    """As tasks/attributes does: the whole condition (label and all attributes) dropped at once, drawn from torch's
    global RNG; the loop then drops the label (P 0.2) and each attribute (P 0.3) with its own generator."""
    label = b["label"]
    attrs = (label[:, None] >> torch.arange(K)) & 1
    keep = torch.rand(label.shape[0]) >= 0.25
    return b["x"], {"label": label, "attrs": attrs, "label.keep": keep, "attrs.keep": keep[:, None].expand(-1, K)}


def cond_task():
    torch.manual_seed(0)
    return TrainTask(TinyCondModel(), Shapes2D(24, 8, 4, seed=0), batch_to, dropout={"label": 0.2, "attrs": 0.3},
                     elementwise={"attrs": K})


CFG = dict(batch_size=4, warmup_steps=1, log_every=1, threads=1, ema_decay=0.9, keep_checkpoints=0)
DIFF = {"T": 50, "schedule": "cosine"}


def test_interrupted_and_resumed_equals_uninterrupted_with_whole_and_element_dropout(tmp_path):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train(cond_task(), {**CFG, "output_dir": full, "steps": 7, "ckpt_every": 3}, DIFF)
    train(cond_task(), {**CFG, "output_dir": part, "steps": 3, "ckpt_every": 3}, DIFF)
    torch.manual_seed(123)  # whatever the global RNG holds before a resume must not matter
    summary = train(cond_task(), {**CFG, "output_dir": part, "steps": 7, "ckpt_every": 3}, DIFF, resume=True)
    assert summary["step"] == 7
    for step in (6, 7):
        assert_same_checkpoint(f"{full}/checkpoints/step_{step:07d}", f"{part}/checkpoints/step_{step:07d}")


# ---- two processes ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_2proc(*args):
    """Two real processes on the CPU (gloo): torchrun through accelerate's multi-process launcher, told to use the CPU.
    (configs/accelerate/cpu_2proc.yaml goes through accelerate's simple launcher, which starts ONE process.)"""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "apps/pretrain.py", "--config", "configs/shapes_classcond.yaml", *TINY, "model.dropout=0.2",
           "data.label_dropout=0.3", "train.batch_size=4", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "True"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_process_run_resumes_exactly_and_ranks_draw_differently(tmp_path):
    """accelerate launch, 2 CPU processes (gloo): 4 steps uninterrupted; the same run interrupted after its step-2
    checkpoint (a copy of that folder alone) and resumed in a new launch ends bit-identical, RNG of both ranks too."""
    full, part = tmp_path / "full", tmp_path / "part"
    launch_2proc(f"train.output_dir={full}", "train.steps=4", "train.ckpt_every=2", "train.keep_checkpoints=0")
    ck2, ck4 = full / "checkpoints" / "step_0000002", full / "checkpoints" / "step_0000004"
    with open(ck4 / "trainer_state.json") as f:
        assert json.load(f)["world"] == 2
    # the ranks draw different noise, timesteps and dropout (and their global RNGs differ)
    (r0, m0), (r1, m1) = st(ck4 / "rng_rank0.safetensors"), st(ck4 / "rng_rank1.safetensors")
    for k in ("noise", "dropout", "torch", "numpy"):
        assert not torch.equal(r0[k], r1[k]), k
    assert (m0["rank"], m1["rank"]) == ("0", "1")
    shutil.copytree(ck2, part / "checkpoints" / "step_0000002")
    r = launch_2proc(f"train.output_dir={part}", "train.steps=4", "train.ckpt_every=2", "train.keep_checkpoints=0",
                     "--resume")
    assert "resumed from" in r.stdout + r.stderr
    assert_same_checkpoint(str(ck4), str(part / "checkpoints" / "step_0000004"), ranks=2)


def test_rank_seeds_are_distinct():
    seeds = {stream_seed(s, r, k) for s in range(3) for r in range(4) for k in range(4)}
    assert len(seeds) == 3 * 4 * 4


# ---- damaged checkpoints ---------------------------------------------------------------------------------------------
def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def empty(path):
    open(path, "w").close()


DAMAGE = {
    "truncated weights": (f"model/{WEIGHTS}", truncate, "does not load"),
    "truncated EMA": (f"ema/{WEIGHTS}", truncate, "does not load"),
    "empty trainer state": ("trainer_state.json", empty, "JSONDecodeError"),
    "missing optimizer": ("optimizer.safetensors", os.remove, "is missing"),
    "truncated RNG": ("rng_rank0.safetensors", truncate, "does not load"),
}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run(out, "train.steps=4", "train.ckpt_every=2", "train.keep_checkpoints=0")
    return out


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_falls_back_past_a_damaged_newest_checkpoint(tmp_path, reference_run, damage, capsys):
    rel, fn, why = DAMAGE[damage]
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    newest = out / "checkpoints" / "step_0000004"
    fn(str(newest / rel))
    (out / "checkpoints" / "step_0000006.tmp" / "model").mkdir(parents=True)  # a save that was cut off
    capsys.readouterr()
    summary = run(out, "train.steps=4", "train.ckpt_every=2", "train.keep_checkpoints=0", resume=True)
    log = capsys.readouterr().out
    assert f"skipping {newest}: {rel}" in log and why in log, log
    assert f"resumed from {out / 'checkpoints' / 'step_0000002'} at step 2" in log
    assert summary["step"] == 4
    assert not (out / "checkpoints" / "step_0000006.tmp").exists()
    # redone from step 2, the rewritten step 4 equals the undamaged one
    assert_same_checkpoint(str(reference_run / "checkpoints" / "step_0000004"), str(newest))


def test_resume_with_no_loadable_checkpoint_is_a_clean_error(tmp_path, reference_run, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    for n in ("step_0000002", "step_0000004"):
        empty(str(out / "checkpoints" / n / "trainer_state.json"))
    with pytest.raises(SystemExit) as e:
        run(out, "train.steps=4", resume=True)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: --resume: none of the 2 checkpoints" in err and "run without --resume" in err


# ---- config errors: exit code 2, one `error:` line, no traceback -----------------------------------------------------
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BAD = {
    "unknown key": (["train.bogus=1"], "unknown config key 'train.bogus'; valid keys here: ["),
    "not an int": (["train.steps=abc"], "'train.steps' expects an integer"),
    "negative steps": (["train.steps=-1"], "train.steps must be an integer >= 1, got -1"),
    "zero ckpt_every": (["train.ckpt_every=0"], "train.ckpt_every must be an integer >= 1"),
    "zero batch": (["train.batch_size=0"], "train.batch_size must be an integer >= 1"),
    "zero lr": (["train.lr=0"], "train.lr must be a number > 0"),
    "ema decay 1": (["train.ema_decay=1"], "train.ema_decay must be a number >= 0 and < 1"),
    "zero log_every": (["train.log_every=0"], "train.log_every must be an integer >= 1"),
    "bool steps": (["train.steps=true"], "'train.steps' expects an integer"),
    "bad schedule": (["diffusion.schedule=cosinus"], "diffusion.schedule must be one of 'linear', 'cosine'"),
    "bad lr schedule": (["train.lr_schedule=step"], "train.lr_schedule must be one of 'constant', 'cosine'"),
    "zero T": (["diffusion.T=0"], "diffusion.T must be an integer >= 1"),
    "no equals sign": (["train.steps"], "is not of the form key=value"),
    "bad YAML value": (["model.channel_mult=[1,2"], "the value is not valid YAML"),
    "section is a value": (["train=3"], "'train' must be a mapping with keys"),
}


def cli(argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        pretrain.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_overrides_exit_2_with_one_error_line(case, capsys, tmp_path):
    overrides, msg = BAD[case]
    line = cli(["--config", "configs/backbone_2d.yaml", f"train.output_dir={tmp_path}", *overrides, "--dry-run"],
               capsys)
    assert msg in line, line


def test_bad_config_files_exit_2(tmp_path, capsys):
    assert "config file 'nope.yaml' does not exist" in cli(["--config", "nope.yaml", "--dry-run"], capsys)
    bad = write(tmp_path, "bad.yaml", "train:\n  steps: 3\n   lr: 1\n")
    assert "is not valid YAML: mapping values are not allowed here at line 3" in cli(["--config", bad], capsys)
    lst = write(tmp_path, "list.yaml", "- train\n- model\n")
    assert "must be a mapping of sections" in cli(["--config", lst], capsys)
    sec = write(tmp_path, "sec.yaml", "train: [1, 2]\n")
    assert "'train' must be a mapping with keys" in cli(["--config", sec], capsys)


def test_build_task_errors_exit_2(tmp_path, capsys):
    line = cli(["--config", "configs/backbone_2d.yaml", *TINY, f"train.output_dir={tmp_path}", "data.source=nope"],
               capsys)
    assert "unknown data.source 'nope'; accepted: (" in line


def test_config_error_is_still_a_value_error_for_callers(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'train.lrr'"):
        run(tmp_path, "train.lrr=1")
    with pytest.raises(CLIError):
        run(tmp_path, "train.steps=0")


def test_config_error_in_a_subprocess_has_no_traceback():
    r = subprocess.run([sys.executable, "apps/pretrain.py", "--config", "configs/backbone_2d.yaml", "train.steps=abc",
                        "--dry-run"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if "error:" in line] == [
        "pretrain.py: error: config key 'train.steps' expects an integer, got 'abc'"]


def test_missing_init_from_says_which_command_creates_it(tmp_path, capsys):
    for init, cmd in (("runs/backbone_2d/checkpoints/step_0000500/ema", "configs/backbone_2d.yaml"),
                      ("runs/backbone_1d/checkpoints/step_0000500/ema", "configs/backbone_1d.yaml")):
        if os.path.exists(init):
            continue  # this checkout has trained it
        line = cli(["--config", "configs/shapes_classcond.yaml", f"model.init_from={init}", "--dry-run"], capsys)
        assert f"model.init_from '{init}' does not exist: create it with `accelerate launch apps/pretrain.py " \
               f"--config {cmd}`" in line and "model.init_from= to train from scratch" in line, line
    # a run folder that exists with other steps: the message lists them
    cfgs = tmp_path / "configs"
    cfgs.mkdir()
    write(cfgs, "bb.yaml", f"#   accelerate launch apps/pretrain.py --config {cfgs}/bb.yaml\ntrain:\n"
                           f"  output_dir: {tmp_path}/runs/bb\n")
    (tmp_path / "runs" / "bb" / "checkpoints" / "step_0000200" / "ema").mkdir(parents=True)
    ft = write(cfgs, "ft.yaml", f"model:\n  init_from: {tmp_path}/runs/bb/checkpoints/step_0000500/ema\n")
    line = cli(["--config", ft, "--dry-run"], capsys)
    assert f"create it with `accelerate launch apps/pretrain.py --config {cfgs}/bb.yaml`" in line
    assert "has step_0000200" in line


def test_shipped_task_configs_check_init_from_on_dry_run(capsys):
    if os.path.exists("runs/backbone_2d/checkpoints/step_0000500/ema"):
        pytest.skip("this checkout has trained the 2D backbone")
    from tasks.attributes import train as attr_train
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        attr_train.main(["--config", "configs/attributes.yaml", "--dry-run"])
    assert e.value.code == 2
    assert "`accelerate launch apps/pretrain.py --config configs/backbone_2d.yaml`" in capsys.readouterr().err


def test_tensorboard_gets_loss_and_sample_grids(tmp_path):
    run(tmp_path, "train.steps=2", "train.sample_every=2", "train.ckpt_every=2")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "logs") for f in fs if "tfevents" in f]
    assert logs
    acc = EventAccumulator(os.path.dirname(logs[0]))
    acc.Reload()
    assert "loss" in acc.Tags()["scalars"] and "samples" in acc.Tags()["images"]


# ---- train.compile ---------------------------------------------------------------------------------------------------
class _FailsToCompile(nn.Module):
    """Stands in for a torch.compile result whose first call fails (no compiler, an unsupported op)."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("inductor: no working C++ compiler")


def test_compile_failure_falls_back_to_eager_with_the_same_result(tmp_path, monkeypatch, capsys):
    import gen.train

    eager, fallback = tmp_path / "eager", tmp_path / "fallback"
    run(eager, "train.steps=3", "train.ckpt_every=3")
    monkeypatch.setattr(gen.train, "compile_model", lambda model: _FailsToCompile())
    capsys.readouterr()
    run(fallback, "train.steps=3", "train.ckpt_every=3", "train.compile=true")
    assert "torch.compile failed (RuntimeError: inductor: no working C++ compiler); training eagerly" in \
        capsys.readouterr().out
    # the eager retry draws the same timesteps and noise: bit-identical to a run that never tried to compile
    assert_same_checkpoint(latest_checkpoint(str(eager)), latest_checkpoint(str(fallback)))
    with open(fallback / "timing.json") as f:
        seg = json.load(f)["segment"]
    assert seg["steps"] == 3 and seg["compiled"] is False


def test_compile_must_be_a_boolean(capsys):
    assert cli(["--config", "configs/backbone_2d.yaml", "train.compile=fast"], capsys).endswith(
        "config key 'train.compile' must be true/false, got 'fast'")
