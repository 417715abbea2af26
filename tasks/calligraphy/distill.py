"""Distil the calligraphy model into a 4-step student (`gen.distill`: progressive distillation, guidance folded in).

    python -m tasks.calligraphy.distill --config configs/calligraphy_distill.yaml            # → runs/calligraphy_distill
    python -m tasks.calligraphy.distill --config configs/calligraphy_distill.yaml --resume   # continue exactly
    python -m tasks.calligraphy.distill --config configs/calligraphy_distill.yaml --ship checkpoints/calligraphy
    python -m tasks.calligraphy.distill --compare calligraphy --quick --out reports/calligraphy_distill.json

The student sees the teacher's own training world (the data block of `data_config`: designs, characters, reference
episodes, text descriptions) with every condition kept, and learns to land in one DDIM step where the guided teacher
lands in two. `--ship DIR` (after or instead of training, when the run is finished) attaches the final student to the
pipeline folder DIR — which must hold the very teacher that was distilled (checked by the weights' SHA-256) — as
`distilled/` in fp16; then `calligraphy-generate --scheduler distilled` (or `--steps 4`) samples with it.
`--compare MODEL` runs the task's evaluation (tasks.calligraphy.evaluate, held-out characters, same seed and judge) for
the teacher's default sampler, the teacher's sampler cut to the student's step count, and the student, and writes the
metrics side by side with the issue's target (each accuracy within 0.02 of the teacher's default).
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
    teacher="calligraphy",                  # shipped name or pipeline folder of the model to distil
    data_config="configs/calligraphy.yaml",  # its training config: the data world the student is trained on
    distill=dict(DISTILL_DEFAULTS, output_dir="runs/calligraphy_distill", threads=1),
)


def build(cfg: dict):
    """(teacher pipeline, TrainTask of the teacher's data world)."""
    from tasks.calligraphy import train as ctrain
    from tasks.calligraphy.pipeline import CalligraphyPipeline

    pipe = CalligraphyPipeline.from_pretrained(cfg["teacher"])
    tcfg = load_config(cfg["data_config"], [], ctrain.DEFAULTS)
    tcfg["data"]["styles"] = list(pipe.styles)          # the teacher's style ids, in its order
    tcfg["data"]["size"] = pipe.size
    tcfg["text_encoder"].update(name=pipe.text_encoder, weights=pipe.text_encoder_weights,
                                dim=int(pipe.model.config.text_dim))
    tcfg["model"].update(init_from="", init_from_pipeline="")  # the task's own model is not used
    tcfg["model"]["cond_dim"] = int(pipe.model.config.cond_dim)
    return pipe, ctrain.build_task(tcfg)


def ship(cfg: dict, folder: str) -> str:
    """Attach the finished student of cfg's run to the pipeline folder `folder` (fp16), after checking the teacher."""
    from gen.distill import ship_student
    from tasks.calligraphy.pipeline import CalligraphyPipeline

    return ship_student(CalligraphyPipeline, cfg["distill"]["output_dir"], folder)


COMPARED = ("style_accuracy_grouped", "style_accuracy", "content_accuracy_noncursive", "content_accuracy_cursive")


def compare(model: str, quick: bool, seed: int = 0, n_chars: int | None = None, teacher_out: str | None = None,
            command: str = "") -> dict:
    """Evaluation of teacher (default sampler), teacher at the student's step count, and student; see the docstring."""
    import platform

    from tasks.calligraphy.evaluate import evaluate
    from tasks.calligraphy.pipeline import CalligraphyPipeline

    pipe = CalligraphyPipeline.from_pretrained(model)
    if not pipe.distilled:
        raise ValueError(f"{model!r} ships no distilled student; run the distillation and --ship it first")
    s_, k = pipe.sampling, int(pipe.distilled["steps"])
    runs = {f"teacher_{s_['scheduler']}_{s_['steps']}": dict(scheduler=s_["scheduler"], steps=s_["steps"]),
            f"teacher_{s_['scheduler']}_{k}": dict(scheduler=s_["scheduler"], steps=k),
            f"distilled_{k}": dict(scheduler="distilled", steps=k)}
    out = {"model": model, "quick": quick, "seed": seed, "distilled": pipe.distilled, "runs": {},
           "load_avg_before": os.getloadavg(), "machine": platform.machine()}
    for name, kw in runs.items():
        t0 = time.time()
        first = not out["runs"]
        r = evaluate(model, quick=quick, seed=seed, timing=first and teacher_out is not None, n_chars=n_chars, **kw)
        if first and teacher_out:  # the teacher's default-sampler run is the task's own evaluation report too
            from gen.io import atomic_write_json

            atomic_write_json(teacher_out, {**r, "command": command + f"  (the {name} run, written by --compare)"})
        row = {m: r.get(m) for m in COMPARED}
        row["fewshot_retrieval"] = r.get("few_shot_summary", {}).get("retrieval_accuracy")
        row["fewshot_ssim_own_64px"] = r.get("few_shot_summary", {}).get(f"{r['output_size']}px", {}).get("mean_ssim_own")
        row.update(seconds_per_glyph=r["seconds_per_glyph"], seconds=round(time.time() - t0, 1), sampler=kw)
        out["runs"][name] = row
        print(f"{name}: " + ", ".join(f"{m} {row[m]:.3f}" for m in COMPARED if row[m] is not None), flush=True)
    ref, names = out["runs"][next(iter(runs))], list(runs)
    for name in names[1:]:
        out["runs"][name]["delta_vs_teacher"] = {m: None if ref[m] is None or out["runs"][name][m] is None else
                                                 out["runs"][name][m] - ref[m] for m in COMPARED}
    d = out["runs"][names[-1]]["delta_vs_teacher"]
    out["target"] = {"rule": f"each accuracy of the {k}-step student within 0.02 of the teacher's {s_['steps']}-step "
                             f"{s_['scheduler']}", "met": all(v is None or abs(v) <= 0.02 for v in d.values()),
                     "per_metric": {m: None if v is None else abs(v) <= 0.02 for m, v in d.items()}}
    out["load_avg_after"] = os.getloadavg()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/calligraphy_distill.yaml", help="YAML config file")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in distill.output_dir")
    p.add_argument("--ship", metavar="DIR", default=None,
                   help="attach the finished student to pipeline folder DIR (its teacher) instead of training")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--compare", metavar="MODEL", default=None,
                   help="evaluate MODEL's teacher vs its shipped distilled student instead of training")
    p.add_argument("--quick", action="store_true", help="with --compare: the evaluation's quick setting")
    p.add_argument("--n-chars", type=int, default=None, help="with --compare: evaluated characters")
    p.add_argument("--out", default="reports/calligraphy_distill.json", help="with --compare: report JSON path")
    p.add_argument("--teacher-out", default=None,
                   help="with --compare: also write the teacher's full evaluation report here")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. distill.iters_per_stage=100")
    args = p.parse_args(argv)
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
            cmd = "python -m tasks.calligraphy.distill " + " ".join(argv if argv is not None else sys.argv[1:])
            rep = compare(args.compare, args.quick, n_chars=args.n_chars, teacher_out=args.teacher_out, command=cmd)
        except ValueError as e:
            raise cli_error(p, e) from None
        rep["command"] = "python -m tasks.calligraphy.distill " + " ".join(argv if argv is not None else sys.argv[1:])
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

    d = cfg["distill"]
    if d["threads"]:
        torch.set_num_threads(int(d["threads"]))
    seed_everything(int(d["seed"]))
    pipe, task = build(cfg)
    t0 = time.time()
    res = distill(task, pipe.model.float(), pipe.schedule, pipe.prediction_type, d, resume=args.resume)
    info = {"steps": int(d["final_steps"]), "sampler": "ddim", "guidance": float(d["guidance"]),
            "teacher": str(cfg["teacher"]), "teacher_sha256": weights_sha256(pipe.model),
            "teacher_sampler": f"ddim, {plan[0]} steps, guidance {d['guidance']}",
            "method": "progressive distillation (Salimans & Ho 2022), guidance folded in (Meng et al. 2023)",
            "stages": res["stages"], "iterations": res["iterations"], "batch_size": int(d["batch_size"]),
            "seconds_this_run": round(time.time() - t0, 1),
            "command": "python -m tasks.calligraphy.distill " + " ".join(argv if argv is not None else sys.argv[1:])}
    with open(os.path.join(d["output_dir"], "distill.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"done: {res['iterations']} iterations over {len(plan)} stages, {res['seconds']:.0f} s -> {d['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
