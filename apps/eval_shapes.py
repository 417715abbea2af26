"""Evaluate the label-conditional shapes model (the backbone demo's checkpoint).

    python -m apps.eval_shapes --model shapes --out reports/shapes_eval.json

A judge CNN trained on real Shapes2D images (its own held-out accuracy is reported) classifies samples drawn per class
with DPM-Solver++ (20 steps) at several guidance scales; also a Fréchet distance in the judge's 32-d features
("shape-judge features, not Inception") against real images, with the real-vs-real value as the floor.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from gen.pipeline import ClassConditionalPipeline
from gen.guidance import Term, guided_model
from gen.io import atomic_write_json
from gen.metrics import frechet_distance
from gen.models import ClassConditionalModel
from gen.sampling import sample_diffusers
from gen.toydata import Shapes2D, shape_judge


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes", help="shipped model name or pipeline folder")
    p.add_argument("--out", default="reports/shapes_eval.json", help="report JSON (written atomically)")
    p.add_argument("--per-class", type=int, default=64, help="samples per class and guidance scale")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    pipe = ClassConditionalPipeline.from_pretrained(a.model)
    model = pipe.model
    k, size = model.config.num_classes, 32
    judge = shape_judge(Shapes2D(4096, size, k, seed=1), steps=400)
    real_x, real_y = Shapes2D(1024, size, k, seed=2).tensors()
    real2_x, _ = Shapes2D(1024, size, k, seed=3).tensors()
    with torch.no_grad():
        judge_acc = (judge(real_x).argmax(1) == real_y).float().mean().item()
        feats = lambda x: judge[:-1](x).numpy()  # noqa: E731
        floor = frechet_distance(feats(real_x), feats(real2_x))
    sched = pipe.schedule
    labels = torch.arange(k).repeat_interleave(a.per_class)
    report = {"judge_accuracy_on_real": judge_acc, "fid_shape_judge_real_vs_real": floor, "by_guidance": {},
              "sampler": "dpm++ 20 steps", "per_class": a.per_class}
    for w in (1.0, 3.0):
        cond = {"label": labels, "label.keep": torch.ones(len(labels), dtype=torch.bool)}
        f = guided_model(model, w * Term(cond), ClassConditionalModel.null_cond())
        with torch.inference_mode():
            x = sample_diffusers(f, (len(labels), 3, size, size), sched, scheduler="dpm++", steps=20,
                                 generator=torch.Generator().manual_seed(0), prediction_type="v_prediction").clamp(-1, 1)
            acc = (judge(x).argmax(1) == labels).float().mean().item()
            fd = frechet_distance(feats(real_x), feats(x))
        report["by_guidance"][str(w)] = {"class_accuracy": acc, "fid_shape_judge": fd}
    report["seconds"] = time.time() - t0
    report["command"] = "python -m apps.eval_shapes " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    d = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(d, exist_ok=True)
    atomic_write_json(a.out, report, newline=False)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
