"""How distinct the registered designs are: pairwise mean L1 at 64 px, twin groups, and the few-shot set's check.

    python -m tasks.calligraphy.designs --json reports/calligraphy_designs.json
    python -m tasks.calligraphy.designs --config configs/calligraphy.yaml --json ...   # training / few-shot lists

Two designs are near-twins when the mean L1 between their 64-px glyphs (ink in [0, 1], over up to `--chars` common
characters both draw validly) is below 0.05. Twin groups (connected components of that relation) count as one design.
The few-shot evaluation designs must have no near-twin among the training designs (issue 16); the report says so for
each, with its nearest training design.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

TWIN_L1 = 0.05  # mean L1 at 64 px below which two designs are near-twins


def pairwise_l1(images: np.ndarray, valid: np.ndarray, max_chars: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """images (S, N, H, W) uint8, valid (S, N) → (L1 (S, S) mean over shared valid chars (nan if < 20), counts (S, S))."""
    s = images.shape[0]
    rng = np.random.default_rng(seed)
    l1 = np.full((s, s), np.nan)
    cnt = np.zeros((s, s), np.int64)
    for i in range(s):
        l1[i, i] = 0.0
        for j in range(i + 1, s):
            both = np.flatnonzero(valid[i] & valid[j])
            cnt[i, j] = cnt[j, i] = both.size
            if both.size < 20:
                continue
            pick = np.sort(rng.choice(both, min(max_chars, both.size), replace=False))
            a = images[i, pick].astype(np.float32) / 255.0
            b = images[j, pick].astype(np.float32) / 255.0
            l1[i, j] = l1[j, i] = float(np.abs(a - b).mean())
    return l1, cnt


def twin_groups(names: list[str], l1: np.ndarray, threshold: float = TWIN_L1) -> list[list[str]]:
    """Connected components of 'mean L1 < threshold' (union-find), each sorted, larger groups first."""
    parent = list(range(len(names)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if np.isfinite(l1[i, j]) and l1[i, j] < threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[str]] = {}
    for i, n in enumerate(names):
        groups.setdefault(find(i), []).append(n)
    return sorted((sorted(g, key=names.index) for g in groups.values()), key=lambda g: (-len(g), names.index(g[0])))


def main(argv=None) -> int:
    from gen.io import atomic_path

    from .data import build_dataset, common_characters
    from .styles import STYLES, available_styles

    p = argparse.ArgumentParser(prog="python -m tasks.calligraphy.designs", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/calligraphy.yaml", help="config naming the training / few-shot designs")
    p.add_argument("--chars", type=int, default=400, help="characters sampled per pair")
    p.add_argument("--json", default="reports/calligraphy_designs.json", help="report to write")
    args = p.parse_args(argv)
    import yaml

    with open(args.config, encoding="utf-8") as f:
        data_cfg = (yaml.safe_load(f) or {}).get("data", {})
    train, fewshot = list(data_cfg.get("styles", [])), list(data_cfg.get("fewshot_styles", []))
    names = [n for n in STYLES if n in available_styles()]
    t0 = time.time()
    data = build_dataset(names, common_characters(), size=64, verbose=True)
    l1, cnt = pairwise_l1(data.images, data.valid & data.content_valid[None], args.chars)
    idx = {n: i for i, n in enumerate(names)}

    def nearest(n, among):
        cands = [(float(l1[idx[n], idx[m]]), m) for m in among if m != n and m in idx and np.isfinite(l1[idx[n], idx[m]])]
        return min(cands) if cands else (float("nan"), None)

    groups = twin_groups(names, l1)
    train_groups = [g for g in twin_groups([n for n in names if n in train], l1[np.ix_([idx[n] for n in names if n in train],
                                                                                       [idx[n] for n in names if n in train])])]
    per_design = {}
    for n in names:
        d, m = nearest(n, names)
        dt, mt = nearest(n, train)
        s = STYLES[n]
        per_design[n] = {"role": "train" if n in train else "fewshot" if n in fewshot else "unused",
                         "category": s.category, "forms": s.forms, "package": s.package, "licence": s.licence,
                         "valid_glyphs": int(data.valid[idx[n]].sum()),
                         "nearest": m, "nearest_l1": round(d, 4), "nearest_train": mt, "nearest_train_l1": round(dt, 4)}
    few = {n: {"category": STYLES[n].category, "nearest_train": per_design[n]["nearest_train"],
               "nearest_train_l1": per_design[n]["nearest_train_l1"],
               "no_near_twin": bool(per_design[n]["nearest_train_l1"] >= TWIN_L1)} for n in fewshot if n in idx}
    report = {
        "command": "python -m tasks.calligraphy.designs " + " ".join(argv if argv is not None else sys.argv[1:]),
        "twin_threshold_l1_64px": TWIN_L1,
        "characters": len(data.chars), "chars_per_pair": args.chars,
        "designs_registered": len(names),
        "training_designs": len(train), "training_distinct_designs": len(train_groups),
        "training_twin_groups": [g for g in train_groups if len(g) > 1],
        "all_twin_groups": [g for g in groups if len(g) > 1],
        "fewshot": few, "fewshot_categories": sorted({v["category"] for v in few.values()}),
        "fewshot_all_distinct": all(v["no_near_twin"] for v in few.values()),
        "per_design": per_design,
        "l1_matrix": {"names": names, "l1": [[None if not np.isfinite(v) else round(float(v), 4) for v in r] for r in l1]},
        "seconds": round(time.time() - t0, 1),
    }
    with atomic_path(args.json, suffix=".tmp") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    print(json.dumps({k: report[k] for k in ("designs_registered", "training_designs", "training_distinct_designs",
                                             "training_twin_groups", "fewshot", "fewshot_all_distinct")},
                     ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
