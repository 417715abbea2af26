"""Ship a trained model: a run's EMA weights as an fp16 pipeline folder (gen.pipeline's one layout) plus a model card.

    python -m apps.export runs/calligraphy --task calligraphy --out checkpoints/calligraphy \
        --command "accelerate launch tasks/calligraphy/train.py --config configs/calligraphy.yaml" \
        [--eval reports/calligraphy_eval.json] [--notes "..."]

The card (gen.pipeline.model_card, the one writer) records the command, the resolved config, the steps, the wall
time and machine the run reports, the sampling defaults, and the evaluation numbers copied from the given JSON (never
typed in). The folder then loads with `<Task>Pipeline.from_pretrained(out)` (safetensors only).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import torch

# task name → pipeline class (the only classes export instantiates)
PIPELINES = {
    "shapes": "gen.pipeline:ClassConditionalPipeline",
    "attributes": "tasks.attributes.pipeline:AttributesPipeline",
    "calligraphy": "tasks.calligraphy.pipeline:CalligraphyPipeline",
    "dance": "tasks.dance.pipeline:DancePipeline",
}


def pipeline_class(task: str):
    if task not in PIPELINES:
        raise ValueError(f"unknown task {task!r}; accepted: {', '.join(PIPELINES)}")
    mod, name = PIPELINES[task].split(":")
    return getattr(importlib.import_module(mod), name)


def training_record(run_dir: str, command: str) -> tuple[dict, dict]:
    """(training facts for the card, resolved config) of a run's newest complete checkpoint."""
    from gen.pipeline import read_json, resolve_pretrained

    r = resolve_pretrained(run_dir)
    if r.train_config is None:
        raise ValueError(f"{run_dir!r} is not a training run or checkpoint folder")
    ckpt = r.model_dir.parent
    rec: dict = {"command": command}
    if (ckpt / "trainer_state.json").is_file():
        rec["steps"] = read_json(ckpt / "trainer_state.json", "trainer state").get("step")
    timing_file = ckpt.parent.parent / "timing.json"
    if timing_file.is_file():
        t = read_json(timing_file, "timing record")
        rec["wall_time_s"] = t.get("seconds")
        rec["machine"] = t.get("machine")
        rec["threads / processes"] = f"{t.get('threads')} / {t.get('processes')}"
    rec["weights"] = f"{r.model_dir.name.upper()} weights from {ckpt}, stored as fp16 safetensors"
    return {k: v for k, v in rec.items() if v is not None}, r.train_config


def export(run_dir: str, task: str, out: str, command: str, eval_json: str | None = None, notes: str = "") -> str:
    from gen.pipeline import model_card

    cls = pipeline_class(task)
    pipe = cls.from_pretrained(run_dir)
    training, cfg = training_record(run_dir, command)
    evaluation = None
    if eval_json:
        with open(eval_json, encoding="utf-8") as f:
            evaluation = json.load(f)
    n = sum(p.numel() for p in pipe.model.parameters())
    card = model_card(
        f"{task} ({cls.__name__})",
        f"`{type(pipe.model).__module__}.{type(pipe.model).__name__}`, {n / 1e6:.2f} M parameters.",
        use=f'from {cls.__module__} import {cls.__name__}\npipe = {cls.__name__}.from_pretrained("{out}")',
        sampling=pipe.sampling, training=training, config=cfg, evaluation=evaluation,
        evaluation_source=eval_json or "", sections={"Notes": notes} if notes else None)
    return pipe.save_pretrained(out, card=card, dtype=torch.float16)


def main(argv=None) -> int:
    from gen.cli import run

    p = argparse.ArgumentParser(prog="python -m apps.export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a training run folder (with checkpoints/) or a checkpoint folder")
    p.add_argument("--task", required=True, choices=sorted(PIPELINES), help="which pipeline the run trained")
    p.add_argument("--out", required=True, help="destination folder, e.g. checkpoints/<name>")
    p.add_argument("--command", required=True, help="the exact training command, recorded in the card")
    p.add_argument("--eval", default=None, help="evaluation JSON to copy into the card")
    p.add_argument("--notes", default="", help="free text for the card")
    a = p.parse_args(argv)
    return run(lambda: print(export(a.run_dir, a.task, a.out, a.command, a.eval, a.notes)), "export")


if __name__ == "__main__":
    sys.exit(main())
