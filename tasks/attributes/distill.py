"""Distil the attribute model into a 4-step student with its composed guidance folded in (`gen.distill`).

    python -m tasks.attributes.distill --config configs/attributes_distill.yaml            # → runs/attributes_distill
    python -m tasks.attributes.distill --config configs/attributes_distill.yaml --resume   # continue exactly
    python -m tasks.attributes.distill --config configs/attributes_distill.yaml --ship checkpoints/attributes
    python -m tasks.attributes.distill --compare attributes --out reports/attributes_distill.json

What the student learns is the pipeline's default, composed sampling of a plain prompt ("glasses & beard & ~hat"): one
classifier-free-guidance term per specified attribute, each with the pipeline's W times that attribute's calibrated
scale (`ComposedTeacher`: ε_∅ + Σ_i W s_i (ε_{a_i} − ε_∅), "~a" the positive term "a = off" as the pipeline's default
negation reads it). Its condition is the prompt's tri-state vector, so it samples in one network pass per step
whatever the number of attributes (the teacher: 1 + k passes per step). The training conditions are the data's
attributes with the teacher's own per-attribute dropout (`condition_dropout: true`), so the student sees the partial
conditions prompts give. Weighted terms, regions and the "neg" negation are the teacher's alone (the pipeline says so
when they are asked of the student).

`--ship DIR` attaches the finished student to the pipeline folder DIR, which must hold the very teacher that was
distilled (checked by the weights' SHA-256), as `distilled/` in fp16; then `attributes-generate --scheduler distilled`
(or `--steps 4`) samples with it. `--compare MODEL` runs the task's evaluation (tasks.attributes.evaluate: per-attribute
and 3-attribute all-correct on seen and held-out combinations, same judge, seed 0) for the teacher's default sampler,
the teacher's sampler cut to the student's step count, and the student, side by side with the issue's target (each
within 0.02 of the teacher's default).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gen.config import ConfigError, cli_error, load_config
from gen.distill import DISTILL_DEFAULTS, stages, weights_sha256

DEFAULTS = dict(
    teacher="attributes",                    # shipped name or pipeline folder of the model to distil
    data_config="configs/attributes.yaml",   # its training config: the data world the student is trained on
    judge="checkpoints/attributes_clip/judge",  # --compare: the attribute judge of tasks.attributes.evaluate
    distill=dict(DISTILL_DEFAULTS, output_dir="runs/attributes_distill", threads=1, condition_dropout=True,
                 guidance=0.0),              # guidance 0: the teacher pipeline's own W (pipeline.json sampling)
)


class ComposedTeacher:
    """The attribute pipeline's composed guidance for a batch of tri-state conditions, row by row:
    ε_∅ + Σ_{i kept in the row} w_i (ε_{a_i} − ε_∅), ε_{a_i} the model given attribute i alone (its value: on or off),
    w_i = W · scale_i. One forward pass over the batch's null rows and every (row, kept attribute) pair."""

    def __init__(self, model, weights, group: str):
        import torch

        self.model, self.group = model, group
        self.w = torch.as_tensor(weights, dtype=torch.float32)

    def __call__(self, x, t, cond: dict):
        import torch

        from gen.guidance import keep_key

        vals, keep = cond[self.group], cond[keep_key(self.group)].bool()
        b, k = keep.shape
        rows, attrs = keep.nonzero(as_tuple=True)
        sel = torch.zeros(len(rows), k, dtype=torch.bool)
        sel[torch.arange(len(rows)), attrs] = True
        xs = torch.cat([x, x[rows]])
        ts = torch.cat([t, t[rows]])
        c = {self.group: torch.cat([vals, vals[rows]]),
             keep_key(self.group): torch.cat([torch.zeros(b, k, dtype=torch.bool), sel])}
        out = self.model(xs, ts, c)
        null, each = out[:b], out[b:]
        w = self.w.to(out.device, out.dtype)[attrs].reshape(-1, *([1] * (x.ndim - 1)))
        return null.index_add(0, rows.to(out.device), w * (each - null[rows]))


def teacher_weights(pipe) -> list[float]:
    """W · scale per attribute, in the model's attribute order."""
    w = float(pipe.sampling["guidance"])
    return [w * float(pipe.attribute_scale.get(a, 1.0)) for a in pipe.attributes]


def build(cfg: dict):
    """(teacher pipeline, TrainTask of the teacher's data world)."""
    from tasks.attributes import train as atrain
    from tasks.attributes.pipeline import AttributesPipeline

    pipe = AttributesPipeline.from_pretrained(cfg["teacher"])
    tcfg = load_config(cfg["data_config"], [], atrain.DEFAULTS)
    tcfg["data"]["size"] = pipe.size
    tcfg["model"].update(init_from="")  # the task's own model is not used (the student is a copy of the teacher)
    return pipe, atrain.build_task(tcfg)


def ship(cfg: dict, folder: str) -> str:
    """Attach the finished student of cfg's run to the pipeline folder `folder` (fp16), after checking the teacher."""
    from gen.distill import ship_student
    from tasks.attributes.pipeline import AttributesPipeline

    return ship_student(AttributesPipeline, cfg["distill"]["output_dir"], folder)


COMPARED = ("per_attribute_min", "per_attribute_mean", "seen_1", "seen_3", "heldout_3")


def _row(res: dict) -> dict:
    pa = res["per_attribute_accuracy"]
    return dict(per_attribute_min=min(pa.values()), per_attribute_mean=sum(pa.values()) / len(pa),
                seen_1=res["all_correct"]["seen"]["1"], seen_3=res["all_correct"]["seen"]["3"],
                heldout_3=res["all_correct"]["heldout"]["3"], per_attribute_accuracy=pa)


def compare(model: str, judge_path: str, seed: int = 0, n_per: int = 16, threads: int = 1) -> dict:
    """Evaluation of teacher (default sampler), teacher at the student's step count, and student; see the docstring."""
    import platform

    import torch

    from tasks.attributes.classifier import load_classifier
    from tasks.attributes.evaluate import FULL_N_COMBOS, evaluate_model
    from tasks.attributes.pipeline import AttributesPipeline

    if threads:
        torch.set_num_threads(threads)
    pipe = AttributesPipeline.from_pretrained(model)
    if not pipe.distilled:
        raise ValueError(f"{model!r} ships no distilled student; run the distillation and --ship it first")
    if not os.path.isfile(os.path.join(judge_path, "classifier.safetensors")):
        raise ValueError(f"no attribute judge at {judge_path!r} (classifier.safetensors); give --judge")
    judge = load_classifier(judge_path)[0]
    s_, k = pipe.sampling, int(pipe.distilled["steps"])
    runs = {f"teacher_{s_['scheduler']}_{s_['steps']}": dict(scheduler=s_["scheduler"], steps=s_["steps"]),
            f"teacher_{s_['scheduler']}_{k}": dict(scheduler=s_["scheduler"], steps=k),
            f"teacher_dpm++_{k}": dict(scheduler="dpm++", steps=k),
            f"distilled_{k}": dict(scheduler="distilled", steps=k)}
    out = {"model": model, "judge": judge_path, "seed": seed, "n_per": n_per, "distilled": pipe.distilled, "runs": {},
           "load_avg_before": os.getloadavg(), "machine": platform.machine(), "torch_threads": torch.get_num_threads()}
    for name, kw in runs.items():
        t0 = time.time()
        args = argparse.Namespace(seed=seed, n_combos=FULL_N_COMBOS, n_per=n_per, guidance=float(s_["guidance"]),
                                  batch=128, **kw)
        row = _row(evaluate_model(pipe, judge, args, full=False, joint=False))
        row.update(seconds=round(time.time() - t0, 1), sampler=kw)
        out["runs"][name] = row
        print(f"{name}: " + ", ".join(f"{m} {row[m]:.3f}" for m in COMPARED) + f"  ({row['seconds']} s)", flush=True)
    names = list(runs)
    ref = out["runs"][names[0]]
    for name in names[1:]:
        out["runs"][name]["delta_vs_teacher"] = {m: out["runs"][name][m] - ref[m] for m in COMPARED}
    d = out["runs"][names[-1]]["delta_vs_teacher"]
    out["target"] = {"rule": f"each all-correct measure of the {k}-step student within 0.02 of the teacher's "
                             f"{s_['steps']}-step {s_['scheduler']}", "met": all(v >= -0.02 for v in d.values()),
                     "per_metric": {m: v >= -0.02 for m, v in d.items()}}
    out["load_avg_after"] = os.getloadavg()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/attributes_distill.yaml", help="YAML config file")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in distill.output_dir")
    p.add_argument("--ship", metavar="DIR", default=None,
                   help="attach the finished student to pipeline folder DIR (its teacher) instead of training")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--compare", metavar="MODEL", default=None,
                   help="evaluate MODEL's teacher vs its shipped distilled student instead of training")
    p.add_argument("--seed", type=int, default=0, help="with --compare: sampling seed (the evaluation's is 0)")
    p.add_argument("--n-per", type=int, default=16, help="with --compare: images per prompt")
    p.add_argument("--out", default="reports/attributes_distill.json", help="with --compare: report JSON path")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. distill.iters_per_stage=100")
    args = p.parse_args(argv)
    cmd = "python -m tasks.attributes.distill " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        cfg = load_config(args.config, args.overrides, DEFAULTS)
        plan = stages(int(cfg["distill"]["start_steps"]), int(cfg["distill"]["final_steps"]))
    except (ConfigError, ValueError) as e:
        raise cli_error(p, e) from None
    if args.dry_run:
        import yaml
        print(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        return 0
    if args.compare:
        from gen.io import atomic_write_json

        try:
            rep = compare(args.compare, cfg["judge"], seed=args.seed, n_per=args.n_per,
                          threads=int(cfg["distill"]["threads"]))
        except ValueError as e:
            raise cli_error(p, e) from None
        rep["command"] = cmd
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        atomic_write_json(args.out, rep)
        print(f"wrote {args.out}")
        return 0
    if args.ship:
        try:
            print(f"shipped the student into {ship(cfg, args.ship)}")
        except ValueError as e:
            raise cli_error(p, e) from None
        return 0

    import torch

    from gen.distill import distill
    from gen.train import seed_everything
    from tasks.attributes.model import GROUP

    d = cfg["distill"]
    if d["threads"]:
        torch.set_num_threads(int(d["threads"]))
    seed_everything(int(d["seed"]))
    pipe, task = build(cfg)
    if float(d["guidance"]) <= 0:
        d["guidance"] = float(pipe.sampling["guidance"])
    elif abs(float(d["guidance"]) - float(pipe.sampling["guidance"])) > 1e-6:
        raise cli_error(p, ValueError(f"distill.guidance={d['guidance']} differs from the teacher's W "
                                      f"{pipe.sampling['guidance']}: the student folds in the pipeline's own "
                                      "sampling (leave distill.guidance at 0)")) from None
    weights = teacher_weights(pipe)
    t0 = time.time()
    res = distill(task, pipe.model.float(), pipe.schedule, pipe.prediction_type, d, resume=args.resume,
                  first_teacher=lambda m: ComposedTeacher(m, weights, GROUP))
    info = {"steps": int(d["final_steps"]), "sampler": "ddim", "guidance": float(d["guidance"]),
            "attribute_scale": dict(pipe.attribute_scale), "composed": True,
            "teacher": str(cfg["teacher"]), "teacher_sha256": weights_sha256(pipe.model),
            "teacher_sampler": f"ddim, {plan[0]} steps, composed guidance W {d['guidance']} x the attribute scales",
            "method": "progressive distillation (Salimans & Ho 2022), composed guidance folded in (Meng et al. 2023)",
            "stages": res["stages"], "iterations": res["iterations"], "batch_size": int(d["batch_size"]),
            "seconds_this_run": round(time.time() - t0, 1), "command": cmd}
    with open(os.path.join(d["output_dir"], "distill.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"done: {res['iterations']} iterations over {len(plan)} stages, {res['seconds']:.0f} s -> {d['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
