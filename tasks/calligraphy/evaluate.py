"""Evaluate a calligraphy model: held-out characters × its training designs, few-shot on held-out designs, timing.

    python -m tasks.calligraphy.evaluate --quick --out reports/calligraphy_eval_quick.json
    python -m tasks.calligraphy.evaluate --checkpoint runs/calligraphy --superres runs/calligraphy_sr \\
        --out reports/calligraphy_eval.json

1. Characters: held out of training under both character universes (every hanzi-writer character, and the common set
   GB 2312 L1 ∪ Big5 L1), valid in the content font and in every training and few-shot design, drawn with a seed.
2. A glyph judge (tasks.calligraphy.classifier) trained on real renders only: a character head over the evaluated
   characters (every design + the content font) and a style head over the *training* designs (training characters).
   By default the shipped one (checkpoints/calligraphy_judge, `python -m tasks.calligraphy.judge`: trained long, its
   character head over every candidate held-out character, restricted here to the evaluated ones) when it judges the
   model's designs at its size; otherwise (or `--judge none`) one trained in the run.
3. Style groups: designs whose real glyphs the judge confuses with each other more than 30 % of the time (either way)
   are merged (union-find); style accuracy is reported per design and grouped (a prediction inside the true group
   counts). Target: grouped ≥ 0.90.
4. The model writes every evaluated character in every training design (style id). SSIM / RMSE against the real
   glyphs at the model size and, with a super-resolution stage, at the output size; baselines at both: the content
   glyph, and the real glyph of the nearest other training design (mean L1 over training characters), per design with
   whether that neighbour is a near-twin (mean L1 < 0.05 at 64 px). Content accuracy split non-cursive / cursive.
5. Few-shot on the held-out designs, k = 8 references (training characters of the design): SSIM to the real glyphs
   against (a) the same model given another held-out design's references and (b) the plain content glyph; style
   retrieval in the judge's feature space (an embedding trained on training designs only): a generated glyph counts
   when the nearest held-out design centroid (real glyphs of training characters) is its own.
6. Fréchet distance in the judge's feature space only where there are at least 2 samples per dimension; otherwise on
   the top principal components of the real features (the report says how many samples and dimensions).
7. A 4-character work with its writing video, end to end at the default settings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen import metrics as M
from gen.io import atomic_write_json

from .data import DEFAULT_CACHE_DIR, build_dataset, common_characters, load_characters, split_characters
from .styles import STYLES, available_styles

QUICK = dict(n_chars=8, judge_steps=300, ref_chars=48, k=8)        # --quick: a few minutes on the 2-core CPU
FULL = dict(n_chars=48, judge_steps=2000, ref_chars=160, k=8)
CONFUSION_MERGE = 0.30   # merge two designs into one style group when the judge confuses them more than this
TWIN_L1 = 0.05           # mean L1 at 64 px below which two designs are near-twins
DEFAULT_FEWSHOT = ["twkai", "zenantique", "chironhei", "kurenaido", "soseki", "delagothic"]
WORK_TEXT = "永和九年"


def _to_size(images_u8: np.ndarray, size: int) -> torch.Tensor:
    from .pipeline import to_model_size

    return to_model_size(images_u8, size)


def metrics(gen: torch.Tensor, real: torch.Tensor) -> dict:
    """gen, real (N, 1, S, S) in [0, 1] → SSIM, RMSE, L1 (means over glyphs; gen.metrics on the [0, 1] scale)."""
    return {"ssim": float(M.ssim(gen, real, value_range=(0.0, 1.0)).mean()),
            "rmse": float(M.rmse(gen, real, value_range=(0.0, 1.0)).mean()),
            "l1": float(M.l1(gen, real, value_range=(0.0, 1.0)).mean())}


def style_groups(confusion: np.ndarray, names: list[str], threshold: float = CONFUSION_MERGE) -> list[list[str]]:
    """Designs merged when confusion[i, j] (fraction of design i's real glyphs judged j) or confusion[j, i] exceeds
    `threshold` (union-find, transitive). Returns the groups in `names` order, singletons included."""
    n = len(names)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i in range(n):
        for j in range(i + 1, n):
            if confusion[i, j] > threshold or confusion[j, i] > threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[str]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(names[i])
    return sorted(groups.values(), key=lambda g: names.index(g[0]))


def grouped_accuracy(pred: np.ndarray, true: np.ndarray, names: list[str], groups: list[list[str]]) -> float:
    """Accuracy where a prediction in the true design's group counts (pred / true: indices into names)."""
    gid = {n: k for k, g in enumerate(groups) for n in g}
    g = np.array([gid[n] for n in names])
    return float((g[np.asarray(pred)] == g[np.asarray(true)]).mean()) if len(pred) else float("nan")


def confusion_matrix(pred: np.ndarray, true: np.ndarray, n: int) -> np.ndarray:
    """(n, n): row i = the fraction of class i's samples predicted as each class."""
    c = np.zeros((n, n))
    np.add.at(c, (np.asarray(true), np.asarray(pred)), 1)
    return c / np.maximum(c.sum(1, keepdims=True), 1)


def frechet(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """FD in the judge's feature space when n ≥ 2·dim, else on the top n // 2 principal components of the real
    features (never fewer than 2 samples per dimension)."""
    n, d = min(len(real), len(fake)), real.shape[1]
    if n < 8:
        return {"fd": None, "n": n, "dim": d, "note": "too few samples"}
    if n >= 2 * d:
        return {"fd": M.frechet_distance(real, fake), "n": n, "dim": d}
    k = max(2, n // 2)
    mu = real.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(real - mu, full_matrices=False)
    p = v[:k].T
    return {"fd": M.frechet_distance((real - mu) @ p, (fake - mu) @ p), "n": n, "dim": k,
            "note": f"projected on the top {k} principal components of the real features ({d}-d features, {n} samples)"}


@dataclass
class EvalSet:
    data: object               # GlyphData of every design (64 px, common characters)
    names: list[str]           # its designs
    chars: list[str]           # evaluated held-out characters
    ci: np.ndarray             # their indices in data
    ri: np.ndarray             # training-character indices (references, judge style head, nearest-design L1)
    train: list[str]           # the model's training designs
    fewshot: list[str]         # held-out designs evaluated few-shot

    def real(self, style: str, size: int, idx=None) -> torch.Tensor:
        k = self.names.index(style)
        return _to_size(self.data.images[k, self.ci if idx is None else idx], size).add(1).div(2)

    def content(self, size: int) -> torch.Tensor:
        return _to_size(self.data.content[self.ci], size)


def universe(pipe, fewshot: list[str], cache_dir):
    """(data, names, held-out characters, ok: valid in every evaluated design and the content font, training
    characters): what the evaluated characters are drawn from (select; tasks.calligraphy.judge trains on all of them)."""
    names = available_styles()
    missing = [s for s in pipe.styles + fewshot if s not in names]
    if missing:
        raise ValueError(f"fonts of designs {missing} are not installed; run `bash data/calligraphy/setup.sh`")
    common = common_characters()
    data = build_dataset(names, common, size=64, cache_dir=cache_dir)
    _, held_all = split_characters(load_characters(), 0.1, 0)
    train_c, held_c = split_characters(common, 0.1, 0)
    held = sorted(set(held_c) & set(held_all))
    rows = [names.index(s) for s in pipe.styles + fewshot]
    ok = data.valid[rows].all(0) & data.content_valid
    return data, names, held, ok, train_c


def select(pipe, opts: dict, seed: int, fewshot: list[str], cache_dir) -> EvalSet:
    """Step 1 (see the module docstring)."""
    data, names, held, ok, train_c = universe(pipe, fewshot, cache_dir)
    rng = np.random.default_rng(seed)
    cand = [held[i] for i in rng.permutation(len(held))]
    chars = [c for c in cand if ok[data.char_index(c)]][: opts["n_chars"]]
    if len(chars) < 2:
        raise ValueError("fewer than 2 held-out characters are valid in every evaluated design")
    tr = [train_c[i] for i in rng.permutation(len(train_c))[: 6 * opts["ref_chars"]]]
    ci = np.array([data.char_index(c) for c in chars])
    ri = np.array([data.char_index(c) for c in tr])
    return EvalSet(data, names, chars, ci, ri, list(pipe.styles), list(fewshot))


class ColumnJudge(torch.nn.Module):
    """A shipped judge whose character head covers more characters than are evaluated: its character logits
    restricted to the evaluated characters' columns (so content accuracy stays an n-way choice among them)."""

    def __init__(self, judge, cols: list[int]):
        super().__init__()
        self.judge = judge
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)

    def forward(self, x):
        f, lc, ls = self.judge(x)
        return f, lc[:, self.cols], ls


def glyph_judge(es: EvalSet, opts: dict, seed: int, size: int, root="runs/calligraphy_judge", shipped=None):
    """Step 2: the shipped judge (`shipped` folder, tasks.calligraphy.judge) when it judges exactly the model's
    designs at `size` px and knows every evaluated character; else train (or load the cached) judge at `size` px.
    Returns (judge, what it is)."""
    from .classifier import load_glyph_judge, save_glyph_judge, train_judge

    if shipped and (Path(shipped) / "judge.safetensors").is_file():
        judge, card = load_glyph_judge(shipped)
        chars = card.get("chars", "")
        if card.get("styles") == es.train and card.get("image_size") == size and all(c in chars for c in es.chars):
            root_dir, src = Path(__file__).resolve().parents[2], Path(shipped).resolve()
            where = src.relative_to(root_dir) if src.is_relative_to(root_dir) else src  # no machine paths in reports
            info = {"source": str(where), "steps": card.get("steps"), "heldout_check": {
                k: card.get("heldout_check", {}).get(k) for k in ("style_accuracy", "style_accuracy_grouped", "n_glyphs")}}
            return ColumnJudge(judge, [chars.index(c) for c in es.chars]).eval(), info
        why = "its designs, size or characters are not this model's"
    else:
        why = "none given" if not shipped else f"{shipped} not found"
    key = hashlib.sha256(("".join(es.chars) + "|" + ",".join(es.train) + f"|{opts}|{seed}").encode()).hexdigest()[:12]
    folder = Path(root) / f"judge2_{size}px_{len(es.chars)}ch_{len(es.train)}st_{key}"
    if (folder / "judge.safetensors").is_file():
        judge, card = load_glyph_judge(folder)
        if card.get("key") == key:
            return judge, {"source": f"trained by an earlier run with these settings ({folder}; shipped judge not "
                                     f"used: {why})", "steps": opts["judge_steps"]}
    all_designs = es.train + es.fewshot
    cx = torch.cat([es.real(s, size) for s in all_designs] + [es.content(size).add(1).div(2)]) * 2 - 1
    cy = torch.arange(len(es.chars)).repeat(len(all_designs) + 1)
    sx, sy = [], []
    for k, s in enumerate(es.train):
        row = es.names.index(s)
        idx = es.ri[es.data.valid[row, es.ri]][: opts["ref_chars"]]
        sx.append(_to_size(es.data.images[row, idx], size))
        sy.append(torch.full((len(idx),), k))
    sx, sy = torch.cat(sx), torch.cat(sy)
    judge = train_judge(cx, cy, sx, sy, len(es.chars), len(es.train), steps=opts["judge_steps"], seed=seed)
    save_glyph_judge(judge, folder, {"key": key, "chars": "".join(es.chars), "styles": es.train, "image_size": size,
                                     "steps": opts["judge_steps"], "seed": seed,
                                     "trained_on": "real renders only: evaluated characters in every evaluated design "
                                                   "+ content font (character head); training characters of the "
                                                   "training designs (style head)"})
    return judge, {"source": f"trained in this run ({opts['judge_steps']} steps; shipped judge not used: {why})",
                   "steps": opts["judge_steps"]}


def judge_out(judge, x01: torch.Tensor):
    from .classifier import judge_batches

    return judge_batches(judge, x01 * 2 - 1)


def nearest_design(es: EvalSet, s: str, among: list[str]) -> tuple[str, float]:
    """The nearest other design of `among` in mean L1 at 64 px over training characters valid in both."""
    a = es.names.index(s)
    best, bd = None, 1e9
    for t in among:
        if t == s:
            continue
        b = es.names.index(t)
        both = es.ri[es.data.valid[a, es.ri] & es.data.valid[b, es.ri]][:200]
        if len(both) < 10:
            continue
        d = float(np.abs(es.data.images[a, both].astype(np.float32) - es.data.images[b, both].astype(np.float32)).mean() / 255)
        if d < bd:
            best, bd = t, d
    return best, bd


def evaluate(checkpoint, quick=False, seed=0, steps=None, scheduler=None, guidance=None, superres=None,
             fewshot=None, cache_dir=DEFAULT_CACHE_DIR, timing=True, n_chars=None, judge_steps=None,
             judge_path="auto") -> dict:
    from .pipeline import CalligraphyPipeline

    opts = dict(QUICK if quick else FULL)
    if judge_path == "auto":
        judge_path = resolve_judge(None)
    opts.update({k: v for k, v in (("n_chars", n_chars), ("judge_steps", judge_steps)) if v})
    pipe = CalligraphyPipeline.from_pretrained(checkpoint, superres=superres)
    s_ = pipe.sampling
    kw = dict(steps=int(steps or s_["steps"]), scheduler=scheduler or s_["scheduler"],
              guidance=s_["guidance"] if guidance is None else guidance)
    fewshot = [f for f in (fewshot or DEFAULT_FEWSHOT) if f not in pipe.styles]
    es = select(pipe, opts, seed, fewshot, cache_dir)                                   # 1
    S, O = pipe.size, pipe.output_size
    sizes = [S] if O == S else [S, O]
    judge, judge_info = glyph_judge(es, opts, seed, S, shipped=judge_path)                 # 2
    n = len(es.chars)
    # 3. style groups from the judge on the real glyphs of the evaluated (held-out) characters
    real_s = torch.cat([es.real(s, S) for s in es.train])
    true = np.repeat(np.arange(len(es.train)), n)
    f_real, lc_real, ls_real = judge_out(judge, real_s)
    conf = confusion_matrix(ls_real.argmax(1).numpy(), true, len(es.train))
    groups = style_groups(conf, es.train)
    # 4. the model on every training design
    t0, gen = time.time(), {O: {}, S: {}}
    content_S, content_O = es.content(S), es.content(O)
    for s in es.train:
        g = pipe.glyphs("", style=s, content=content_S, content_hr=content_O if O != S else None, seed=seed,
                        size=O, **kw)
        gen[O][s] = torch.from_numpy(g)[:, None]
        if O != S:
            gen[S][s] = torch.nn.functional.interpolate(gen[O][s], size=(S, S), mode="area")
    t_gen = time.time() - t0
    fake_s = torch.cat([gen[S][s] for s in es.train])
    f_fake, lc_fake, ls_fake = judge_out(judge, fake_s)
    pred = ls_fake.argmax(1).numpy()
    cursive = [s for s in es.train if STYLES[s].category == "cursive"]
    is_cur = np.repeat([s in cursive for s in es.train], n)
    char_ok = (lc_fake.argmax(1).numpy() == np.tile(np.arange(n), len(es.train)))
    real_char_ok = (lc_real.argmax(1).numpy() == np.tile(np.arange(n), len(es.train)))
    report = {
        "checkpoint": str(checkpoint), "superres": None if superres is None else str(superres),
        "quick": quick, **kw, "model_size": S, "output_size": O, "n_chars": n, "chars": "".join(es.chars),
        "train_designs": es.train, "fewshot_designs": es.fewshot, "judge": judge_info,
        "style_groups": {"rule": f"merge designs the judge confuses > {CONFUSION_MERGE:.0%} (either way) on real glyphs",
                         "groups": [g for g in groups if len(g) > 1], "n_groups": len(groups)},
        "style_accuracy_grouped": grouped_accuracy(pred, true, es.train, groups),
        "style_accuracy": float((pred == true).mean()),
        "real_glyphs_judged": {"style_accuracy_grouped": grouped_accuracy(ls_real.argmax(1).numpy(), true, es.train, groups),
                               "style_accuracy": float((ls_real.argmax(1).numpy() == true).mean()),
                               "content_accuracy": float(real_char_ok.mean())},
        "content_accuracy_noncursive": float(char_ok[~is_cur].mean()),
        "content_accuracy_cursive": float(char_ok[is_cur].mean()) if is_cur.any() else None,
        "cursive_designs": cursive,
        "fd_judge_features": frechet(f_real, f_fake),
    }
    # SSIM / RMSE and baselines per design and resolution
    near = {s: nearest_design(es, s, es.train) for s in es.train}
    per = {}
    for s in es.train:
        d = {"nearest": near[s][0], "nearest_l1_64px": round(near[s][1], 4), "nearest_is_twin": near[s][1] < TWIN_L1,
             "style_accuracy": float((pred[true == es.train.index(s)] == es.train.index(s)).mean()),
             "style_accuracy_grouped": grouped_accuracy(pred[true == es.train.index(s)], true[true == es.train.index(s)],
                                                        es.train, groups)}
        for z in sizes:
            real = es.real(s, z)
            m = metrics(gen[z][s], real)
            mc = metrics(es.content(z).add(1).div(2), real)
            mn = metrics(es.real(near[s][0], z), real)
            d[f"{z}px"] = {**m, "content_glyph": mc, "nearest_other": mn,
                           "beats_content": m["ssim"] > mc["ssim"] and m["rmse"] < mc["rmse"],
                           "beats_nearest": m["ssim"] > mn["ssim"] and m["rmse"] < mn["rmse"]}
        per[s] = d
    report["per_design"] = per
    for z in sizes:
        report[f"{z}px"] = {**metrics(torch.cat([gen[z][s] for s in es.train]), torch.cat([es.real(s, z) for s in es.train])),
                            "content_glyph": metrics(torch.cat([es.content(z).add(1).div(2)] * len(es.train)),
                                                     torch.cat([es.real(s, z) for s in es.train])),
                            "designs_beating_content": sum(per[s][f"{z}px"]["beats_content"] for s in es.train),
                            "designs_beating_nearest_non_twin": sum(per[s][f"{z}px"]["beats_nearest"] for s in es.train
                                                                    if not per[s]["nearest_is_twin"]),
                            "designs_non_twin": sum(not per[s]["nearest_is_twin"] for s in es.train)}
    # 5. few-shot on the held-out designs
    t1 = time.time()
    few, retr_hits, retr_n = {}, 0, 0
    cents = {}
    for s in es.fewshot:
        row = es.names.index(s)
        idx = es.ri[es.data.valid[row, es.ri]]
        cents[s] = judge_out(judge, _to_size(es.data.images[row, idx[: opts["ref_chars"]]], S).add(1).div(2))[0].mean(0)
    cmat = torch.stack([cents[s] for s in es.fewshot]) if es.fewshot else None
    for j, s in enumerate(es.fewshot):
        row = es.names.index(s)
        refs = list(_to_size(es.data.images[row, es.ri[es.data.valid[row, es.ri]][: opts["k"]]], S))
        other = es.fewshot[(j + 1) % len(es.fewshot)]
        orow = es.names.index(other)
        orefs = list(_to_size(es.data.images[orow, es.ri[es.data.valid[orow, es.ri]][: opts["k"]]], S))
        d = {"category": STYLES[s].category, "k": opts["k"], "other_refs_from": other,
             "nearest_train": nearest_design(es, s, es.train)[0], "nearest_train_l1_64px":
             round(nearest_design(es, s, es.train)[1], 4)}
        for z in sizes:
            d[f"{z}px"] = {}
        g_own = torch.from_numpy(pipe.glyphs("", references=refs, content=content_S,
                                             content_hr=content_O if O != S else None, seed=seed, size=O, **kw))[:, None]
        g_oth = torch.from_numpy(pipe.glyphs("", references=orefs, content=content_S,
                                             content_hr=content_O if O != S else None, seed=seed, size=O, **kw))[:, None]
        for z in sizes:
            rs = lambda x: x if x.shape[-1] == z else torch.nn.functional.interpolate(x, size=(z, z), mode="area")
            real = es.real(s, z)
            own, oth = metrics(rs(g_own), real), metrics(rs(g_oth), real)
            con = metrics(es.content(z).add(1).div(2), real)
            d[f"{z}px"] = {"own_refs": own, "other_refs": oth, "content_glyph": con,
                           "beats_other_refs": own["ssim"] > oth["ssim"], "beats_content": own["ssim"] > con["ssim"]}
        fo = judge_out(judge, rs_S(g_own, S))[0]
        hits = (torch.cdist(fo, cmat).argmin(1) == j).float()
        d["retrieval_accuracy"] = float(hits.mean())
        retr_hits += float(hits.sum())
        retr_n += len(hits)
        few[s] = d
    report["few_shot"] = few
    if few:
        report["few_shot_summary"] = {
            "retrieval_accuracy": retr_hits / max(1, retr_n),
            **{f"{z}px": {"mean_ssim_own": float(np.mean([few[s][f"{z}px"]["own_refs"]["ssim"] for s in few])),
                          "mean_ssim_other": float(np.mean([few[s][f"{z}px"]["other_refs"]["ssim"] for s in few])),
                          "mean_ssim_content": float(np.mean([few[s][f"{z}px"]["content_glyph"]["ssim"] for s in few])),
                          "designs_beating_other_refs": sum(few[s][f"{z}px"]["beats_other_refs"] for s in few),
                          "designs_beating_content": sum(few[s][f"{z}px"]["beats_content"] for s in few)}
               for z in sizes}}
    report["seconds_per_glyph"] = (t_gen + time.time() - t1) / max(1, n * (len(es.train) + 2 * len(es.fewshot)))
    if timing:                                                                           # 7
        report["work_timing"] = time_work(pipe, es.train[0], seed)
    report["targets"] = targets(report)
    return report


def resolve_judge(arg: str | None) -> str | None:
    """--judge: None → the shipped judge (found from any folder) if present; 'none' → None; else the path given."""
    if arg is None:
        p = Path(__file__).resolve().parents[2] / "checkpoints" / "calligraphy_judge"
        return str(p) if (p / "judge.safetensors").is_file() else None
    if arg.lower() == "none":
        return None
    if not (Path(arg) / "judge.safetensors").is_file():
        raise ValueError(f"--judge {arg}: no judge.safetensors there (a folder written by tasks.calligraphy.judge)")
    return arg


def rs_S(x: torch.Tensor, s: int) -> torch.Tensor:
    return x if x.shape[-1] == s else torch.nn.functional.interpolate(x, size=(s, s), mode="area")


def time_work(pipe, style: str, seed: int = 0, text: str = WORK_TEXT) -> dict:
    """Seconds for a 4-character work (PNG from the traced outlines) with its MP4 writing video, end to end through
    `CalligraphyPipeline.write` at the default settings (cell 96), after one warm-up call; the same at 256 px per
    character, and the SVG work alone."""
    import tempfile

    from .pipeline import DEFAULT_CELL

    out = {"text": text, "style": style, "default_cell": DEFAULT_CELL, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        pipe.write(text, os.path.join(d, "warm.png"), video=os.path.join(d, "warm.mp4"), style=style, seed=seed)
        out["warmup_seconds"] = time.time() - t0
        t0 = time.time()
        pipe.write(text, os.path.join(d, "work.png"), video=os.path.join(d, "work.mp4"), style=style, seed=seed)
        out["work_with_mp4_seconds"] = time.time() - t0
        t0 = time.time()
        pipe.write(text, os.path.join(d, "work.png"), video=os.path.join(d, "work.mp4"), style=style, seed=seed, cell=256)
        out["work_with_mp4_seconds_cell256"] = time.time() - t0
        t0 = time.time()
        pipe.write(text, os.path.join(d, "work.svg"), style=style, seed=seed, cell=256)
        out["svg_work_seconds"] = time.time() - t0
    return out


def targets(r: dict) -> dict:
    S = f"{r['output_size']}px"
    t = {"style_accuracy_grouped>=0.90": r["style_accuracy_grouped"] >= 0.90,
         "content_accuracy_noncursive>=0.95": r["content_accuracy_noncursive"] >= 0.95,
         "content_accuracy_cursive>=0.70": None if r["content_accuracy_cursive"] is None else r["content_accuracy_cursive"] >= 0.70,
         "ssim_rmse_beat_content_every_design": r[S]["designs_beating_content"] == len(r["train_designs"]),
         "ssim_rmse_beat_nearest_every_non_twin_design": r[S]["designs_beating_nearest_non_twin"] == r[S]["designs_non_twin"]}
    if r.get("few_shot"):
        fs = r["few_shot_summary"]
        t["fewshot_beats_other_refs_every_design"] = fs[S]["designs_beating_other_refs"] == len(r["few_shot"])
        t["fewshot_beats_content_every_design"] = fs[S]["designs_beating_content"] == len(r["few_shot"])
        t["style_retrieval>=0.8"] = fs["retrieval_accuracy"] >= 0.8
    if "work_timing" in r:
        t["work_with_video<=5s"] = r["work_timing"]["work_with_mp4_seconds"] <= 5.0
    return t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default="calligraphy", help="shipped name, run folder, checkpoint or pipeline folder")
    p.add_argument("--superres", default=None, help="super-resolution stage folder (default: the pipeline's own)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK['n_chars']} characters, a faster judge")
    p.add_argument("--out", default="reports/calligraphy_eval.json", help="report JSON path")
    p.add_argument("--seed", type=int, default=0, help="character draw and sampling seed")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the pipeline's)")
    p.add_argument("--scheduler", default=None, help="sampler (default: the pipeline's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the pipeline's)")
    p.add_argument("--fewshot", nargs="+", default=None, help=f"held-out designs (default: {' '.join(DEFAULT_FEWSHOT)})")
    p.add_argument("--no-timing", action="store_true", help="skip the 4-character work timing")
    p.add_argument("--n-chars", type=int, default=None, help="evaluated characters (default: 8 quick, 48 full)")
    p.add_argument("--judge-steps", type=int, default=None, help="judge training steps when no shipped judge fits "
                   "(default: 300 quick, 2000 full)")
    p.add_argument("--judge", default=None, help="judge folder (default: checkpoints/calligraphy_judge when it judges "
                   "this model's designs; 'none' trains one in the run)")
    p.add_argument("--timing-only", action="store_true", help=f"only time the 4-character work ({WORK_TEXT})")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    try:
        if args.timing_only:
            from .pipeline import CalligraphyPipeline

            pipe = CalligraphyPipeline.from_pretrained(args.checkpoint, superres=args.superres)
            report = {"checkpoint": str(args.checkpoint), "output_size": pipe.output_size,
                      **time_work(pipe, pipe.styles[0], args.seed)}
        else:
            report = evaluate(args.checkpoint, args.quick, args.seed, args.steps, args.scheduler, args.guidance,
                              args.superres, args.fewshot, timing=not args.no_timing, n_chars=args.n_chars,
                              judge_steps=args.judge_steps, judge_path=resolve_judge(args.judge))
    except ValueError as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 2
    report["seconds_total"] = time.time() - t0
    report["command"] = "python -m tasks.calligraphy.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report, newline=False, indent=1, ensure_ascii=False)
    keys = ("style_accuracy_grouped", "style_accuracy", "content_accuracy_noncursive", "content_accuracy_cursive",
            "few_shot_summary", "targets", "seconds_total")
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
