"""Ship a trained model: the run's EMA weights as fp16 safetensors plus a model card.

    python -m apps.export runs/backbone_2d --out checkpoints/backbone_2d --command "accelerate launch ..." \
        [--eval reports/x.json] [--notes "..."]

The card records the command, the resolved config, the steps, the wall time and machine the run reports, and the
evaluation numbers from the given JSON (copied, never typed in). Loading: `Model.from_pretrained(path)` then `.float()`
(or `load_shipped`), which reads only safetensors.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import tempfile

import torch
import yaml

from gen.train import latest_checkpoint


def _model_class(folder: str):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    name = cfg["_class_name"]
    for mod in cfg.get("_gen_module", ""), "gen.unet", "gen.models":
        if mod:
            m = importlib.import_module(mod)
            if hasattr(m, name):
                return getattr(m, name)
    raise ValueError(f"cannot find model class {name!r}; pass --module")


def load_shipped(folder: str, cls=None, dtype=torch.float32):
    """Load a shipped (fp16) model folder as `dtype` (fp32 by default: this CPU has no fast fp16/bf16 path)."""
    cls = cls or _model_class(folder)
    return cls.from_pretrained(folder).to(dtype).eval()


def export(run_dir: str, out: str, command: str, module: str | None = None, eval_json: str | None = None,
           notes: str = "", which: str = "ema") -> str:
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise ValueError(f"no checkpoint under {run_dir}/checkpoints")
    src = os.path.join(ckpt, which)
    cls = getattr(importlib.import_module(module), json.load(open(os.path.join(src, "config.json")))["_class_name"]) \
        if module else _model_class(src)
    model = cls.from_pretrained(src)
    state, cfg, timing = _run_record(run_dir, ckpt)
    evals = None
    if eval_json:
        with open(eval_json) as f:
            evals = json.load(f)

    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".export-")
    model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    n_params = sum(p.numel() for p in model.parameters())
    card = [f"# {os.path.basename(out.rstrip('/'))}", "",
            f"`{cls.__module__}.{cls.__name__}`, {n_params / 1e6:.2f} M parameters, {which.upper()} weights stored as "
            "fp16 safetensors (load with `apps.export.load_shipped(path)`, which casts to fp32).", "",
            "## Training", "", f"- command: `{command}`", f"- steps: {state['step']}",
            f"- wall time: {timing['seconds']:.0f} s ({timing['threads']} threads, {timing['processes']} process(es))"
            if timing else "- wall time: not recorded",
            f"- machine: {timing.get('machine', platform.machine())}, fp32, torch {torch.__version__}", "",
            "## Resolved config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True).strip(), "```", ""]
    if evals is not None:
        card += ["## Evaluation", "", f"From `{eval_json}` (command: `{evals.get('command', 'see the file')}`):", "",
                 "```json", json.dumps(evals, indent=1, ensure_ascii=False)[:6000], "```", ""]
    if notes:
        card += ["## Notes", "", notes, ""]
    return _finish(tmp, card, out)


def _run_record(run_dir: str, ckpt: str) -> tuple[dict, dict, dict]:
    """(trainer state, resolved config) of a checkpoint and the run's accumulated timing ({} if not recorded)."""
    with open(os.path.join(ckpt, "trainer_state.json")) as f:
        state = json.load(f)
    with open(os.path.join(ckpt, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    timing = {}
    tpath = os.path.join(run_dir, "timing.json")
    if os.path.exists(tpath):
        with open(tpath) as f:
            timing = json.load(f)
    return state, cfg, timing


def _finish(tmp: str, card: list[str], out: str) -> str:
    """Write the card into the staged folder `tmp` and move it onto `out` (replacing an older export)."""
    with open(os.path.join(tmp, "README.md"), "w") as f:
        f.write("\n".join(card))
    os.chmod(tmp, 0o755)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _copy_fp16(src: str, dst: str) -> int:
    """Copy a model folder, storing every floating-point safetensors tensor as fp16. Returns the parameter count."""
    from safetensors.torch import load_file, save_file

    n = 0
    for root, _, files in os.walk(src):
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for f in files:
            a, b = os.path.join(root, f), os.path.join(dst, rel, f)
            if f.endswith(".safetensors"):
                t = load_file(a)
                n += sum(v.numel() for v in t.values() if v.is_floating_point())
                save_file({k: v.half() if v.is_floating_point() else v for k, v in t.items()}, b,
                          metadata={"format": "pt"})
            else:
                shutil.copy2(a, b)
    return n


def ship_folder(src: str, out: str, run_dir: str, command: str, eval_json: str | None = None, notes: str = "") -> str:
    """Ship an already exported task folder (any layout: a pipeline's save_pretrained output) as fp16 with a model
    card: the folder's own README (if any) followed by the training command, steps, wall time, machine, config and the
    evaluation numbers copied from `eval_json`."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise ValueError(f"no checkpoint under {run_dir}/checkpoints")
    state, cfg, timing = _run_record(run_dir, ckpt)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".ship-")
    n = _copy_fp16(src, tmp)
    head = ""
    if os.path.exists(os.path.join(tmp, "README.md")):
        with open(os.path.join(tmp, "README.md")) as f:
            head = f.read().rstrip() + "\n\n"
    card = [head + f"## Shipped checkpoint ({n / 1e6:.2f} M parameters, EMA weights, fp16 safetensors)", "",
            f"- command: `{command}`", f"- steps: {state['step']}",
            f"- wall time: {timing['seconds']:.0f} s ({timing['threads']} thread(s), {timing['processes']} process(es); the "
            "CPU was shared with other training jobs)" if timing else "- wall time: not recorded",
            f"- machine: {timing.get('machine', platform.machine())}, fp32 training, torch {torch.__version__}", "",
            "### Resolved config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True).strip(), "```",
            ""]
    if eval_json:
        with open(eval_json) as f:
            evals = json.load(f)
        card += ["### Evaluation", "", f"Copied from `{eval_json}` (command: `{evals.get('command', 'see the file')}`):",
                 "", "```json", json.dumps(evals, indent=1, ensure_ascii=False)[:8000], "```", ""]
    if notes:
        card += ["### Notes", "", notes, ""]
    return _finish(tmp, card, out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a training run folder (with checkpoints/)")
    p.add_argument("--out", required=True, help="destination folder, e.g. checkpoints/<name>")
    p.add_argument("--command", required=True, help="the exact training command, recorded in the card")
    p.add_argument("--module", default=None, help="module defining the model class (default: from config)")
    p.add_argument("--eval", default=None, help="evaluation JSON to copy into the card")
    p.add_argument("--notes", default="", help="free text for the card")
    p.add_argument("--which", default="ema", choices=["ema", "model"], help="EMA or raw weights")
    p.add_argument("--folder", default=None,
                   help="ship this already exported folder (e.g. a pipeline's save_pretrained) instead of the run's EMA")
    a = p.parse_args(argv)
    if a.folder:
        print(ship_folder(a.folder, a.out, a.run_dir, a.command, a.eval, a.notes))
    else:
        print(export(a.run_dir, a.out, a.command, a.module, a.eval, a.notes, a.which))


if __name__ == "__main__":
    main()
