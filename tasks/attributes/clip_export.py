"""Fit the CLIP's attribute probes on frozen embeddings, measure it, and ship it (fp16 safetensors + card).

    python -m tasks.attributes.clip_export runs/attributes_clip --out checkpoints/attributes_clip \
        --report reports/attributes_clip.json

1. text probe: embedding → per attribute off / on / not named (cross-entropy), on `--n-text` captions in the
   *training* phrasings of training-split faces (epochs the CLIP run never reached, so new phrasings of known
   words) plus texts about nothing (nuisance-only captions and unrelated phrases);
2. image probe: image embedding → per attribute present (BCE), on the CLIP's own training faces;
3. measured (all on faces / phrasings that neither the CLIP nor the probes were fitted on):
   retrieval R@1 text → image on held-out-combination faces (exact: the captioned face comes first; by attributes:
   the first face shows every attribute the caption names), the text decode on the *held-out phrasings*
   (captions.spec_caption, phrasing="heldout") and on fresh training phrasings — exact tri-state match of every
   attribute, per named attribute — for the probe and for the zero-shot prototype decoder (clip.prototype_decode:
   cosine to the mean embedding of each attribute's positive / negative training phrasings), the image read on
   held-out-combination faces (probe vs zero-shot prototypes), and unrelated texts read as naming nothing;
4. shipped: `--out`/model (config + fp16 safetensors) and `--out`/README.md (the card, numbers copied from the report).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from gen.io import atomic_write_json

# Texts about something else: the probe learns "names nothing" from the first list; the second is only measured.
UNRELATED_TRAIN = ["a dog", "a red car", "a tree in a field", "hello", "nice picture", "a cat on a sofa", "a house",
                   "the sea at night", "a bowl of fruit", "an old bicycle", "mountains", "a city street", "a photo",
                   "an image", "a drawing", "something", "a blue sky", "two birds", "a wooden table", "a flower"]
UNRELATED_TEST = ["a horse", "a green bus", "the moon", "a kitchen", "rain on a window", "a pile of books",
                  "a yellow boat", "snowy hills", "a guitar", "an empty room"]


def _random_spec(rng: np.random.Generator, attributes, k_min=1, k_max=4) -> dict[str, bool]:
    k = int(rng.integers(k_min, k_max + 1))
    names = rng.choice(len(attributes), size=k, replace=False)
    return {attributes[i]: bool(rng.random() < 0.7) for i in sorted(names)}


@torch.no_grad()
def embed_texts(model, tok, texts, batch: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_text(tok(texts[i:i + batch])) for i in range(0, len(texts), batch)])


@torch.no_grad()
def embed_images(model, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_image(x) for x in images.split(batch)])


def text_probe_data(cfg: dict, n: int, seed: int, attributes) -> tuple[list[str], torch.Tensor]:
    """(texts, (N, K) labels 0 off / 1 on / 2 not named)."""
    from tasks.attributes.captions import caption_for_sample

    d = cfg["data"]
    texts, labels = [], []
    for j in range(n):
        i = j % d["num_samples"]
        text, named = caption_for_sample(d["seed"], i, "train", epoch=1000 + seed + j // d["num_samples"],
                                         p_empty=0.05)
        texts.append(text)
        labels.append([int(named[a]) if a in named else 2 for a in attributes])
    for t in UNRELATED_TRAIN:
        for variant in (t, t.capitalize(), t + ".", "portrait of " + t):
            texts.append(variant)
            labels.append([2] * len(attributes))
    return texts, torch.tensor(labels)


def fit(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, steps: int = 600, lr: float = 3e-3,
        seed: int = 0, batch: int = 512) -> float:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    for s in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = loss_fn(module(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def fit_token_probe(model, tokens: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 3e-3, seed: int = 0,
                    batch: int = 256) -> float:
    """The attention probe on frozen token features (the text tower runs per batch, without gradients)."""
    g = torch.Generator().manual_seed(seed)
    probe = model.token_probe
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    loss = torch.tensor(float("nan"))
    n_ctx = int((tokens != 0).sum(1).max())  # features up to the longest text (causal: shorter contexts unchanged)
    with torch.no_grad():  # frozen tower: features once, stored in fp16
        feats_all = torch.cat([model.text_tokens(tokens[i:i + 512])[:, :n_ctx].half()
                               for i in range(0, len(tokens), 512)])
    tokens = tokens[:, :n_ctx]
    for _ in range(steps):
        idx = torch.randint(0, len(tokens), (batch,), generator=g)
        t = tokens[idx]
        feats = feats_all[idx].float()
        loss = F.cross_entropy(probe(feats, t != 0).reshape(-1, 3), y[idx].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def insert_unknown(tokens: torch.Tensor, eot: int, p: float, seed: int = 0, max_insert: int = 3) -> torch.Tensor:
    """With probability p per text, 1–max_insert <unk> tokens inserted at random places (before <eot>, within the
    context): the probe learns that words it has never seen ("this person has ...") name nothing. Rows are
    (L,) remapped ids; pure function of seed."""
    from tasks.attributes.clip import UNK

    if p <= 0:
        return tokens
    g = torch.Generator().manual_seed(seed)
    out = tokens.clone()
    L = tokens.shape[1]
    for r in range(len(tokens)):
        if torch.rand((), generator=g) >= p:
            continue
        row = [int(v) for v in tokens[r] if v != 0]  # <sot> … <eot>
        for _ in range(int(torch.randint(1, max_insert + 1, (), generator=g))):
            if len(row) >= L:
                break
            at = int(torch.randint(1, len(row), (), generator=g))  # after <sot>, before <eot>
            row.insert(at, UNK)
        out[r] = 0
        out[r, :len(row)] = torch.tensor(row)
    return out


def validation_reading(model, tok, attributes, n: int = 300) -> dict:
    from tasks.attributes.captions import spec_caption
    from tasks.attributes.clip import decode_texts

    rng = np.random.default_rng(999)
    specs = [_random_spec(rng, attributes) for _ in range(n)]
    texts = [spec_caption(s, 90_000 + i, "train") for i, s in enumerate(specs)]
    return _decode_scores([u.spec for u in decode_texts(model, tok, texts)], specs, attributes)


def _faces(split: str, n: int, seed: int, size: int):
    from tasks.attributes.faces import render_sample

    imgs, attrs = [], []
    for i in range(n):
        im, a = render_sample(seed, i, split, size)
        imgs.append(torch.from_numpy(im).permute(2, 0, 1).float() / 127.5 - 1)
        attrs.append(torch.from_numpy(a))
    return torch.stack(imgs), torch.stack(attrs)


def _decode_scores(preds: list[dict], specs: list[dict], attributes) -> dict:
    exact = [p == s for p, s in zip(preds, specs)]
    named = [p.get(a) == v for p, s in zip(preds, specs) for a, v in s.items()]
    extra = [len(set(p) - set(s)) for p, s in zip(preds, specs)]
    return {"n": len(specs), "exact": float(np.mean(exact)), "named_attribute_accuracy": float(np.mean(named)),
            "mean_extra_attributes": float(np.mean(extra))}


def measure(model, tok, cfg: dict, n_eval: int = 600) -> dict:
    from tasks.attributes.captions import phrase_bank, spec_caption
    from tasks.attributes.clip import decode_texts, prototype_decode, read_images
    from tasks.attributes.train_clip import retrieval_at_1

    attributes = model.attributes
    out: dict = {}
    t0 = time.time()
    out["retrieval_at_1"] = {"gallery_256": retrieval_at_1(model, tok, 256, seed=777),
                             "gallery_1000": retrieval_at_1(model, tok, 1000, seed=778)}
    rng = np.random.default_rng(4321)
    specs = [_random_spec(rng, attributes) for _ in range(n_eval)]
    bank = phrase_bank("train")
    for phrasing in ("heldout", "train"):
        texts = [spec_caption(s, 10_000 + i, phrasing, typo_p=0.0) for i, s in enumerate(specs)]
        probe = [u.spec for u in decode_texts(model, tok, texts)]
        proto = prototype_decode(model, tok, texts, bank)
        chosen = model.config.text_reader
        other = "pooled" if chosen == "tokens" else "tokens"
        model.register_to_config(text_reader=other)
        alt = [u.spec for u in decode_texts(model, tok, texts)]
        model.register_to_config(text_reader=chosen)
        out[f"text_decode_{phrasing}_phrasings"] = {"probe": _decode_scores(probe, specs, attributes),
                                                    "reader": chosen,
                                                    f"probe_{other}_reader": _decode_scores(alt, specs, attributes),
                                                    "prototype": _decode_scores(proto, specs, attributes),
                                                    "examples": [[t, p] for t, p in zip(texts[:6], probe[:6])]}
    typo = [spec_caption(s, 20_000 + i, "train", typo_p=1.0) for i, s in enumerate(specs[:300])]
    out["text_decode_train_phrasings_one_typo"] = {"probe": _decode_scores(
        [u.spec for u in decode_texts(model, tok, typo)], specs[:300], attributes)}
    nothing = [u.spec for u in decode_texts(model, tok, UNRELATED_TEST)]
    out["unrelated_texts_read_as_nothing"] = float(np.mean([not s for s in nothing]))
    x, a = _faces("heldout", 1000, 31337, model.config.image_size)
    us = read_images(model, x)
    pred = torch.tensor([[u.spec[k] for k in attributes] for u in us])
    e = embed_images(model, x)
    zs = torch.zeros_like(pred)
    for k, name in enumerate(attributes):
        pos = F.normalize(embed_texts(model, tok, bank[name][True]).mean(0), dim=0)
        neg = F.normalize(embed_texts(model, tok, bank[name][False]).mean(0), dim=0)
        zs[:, k] = (e @ pos) > (e @ neg)
    out["image_read_heldout_faces"] = {
        "probe": {"per_attribute": dict(zip(attributes, (pred == a).float().mean(0).tolist())),
                  "all_attributes_correct": float((pred == a).all(1).float().mean())},
        "prototype": {"per_attribute": dict(zip(attributes, (zs == a).float().mean(0).tolist())),
                      "all_attributes_correct": float((zs == a).all(1).float().mean())}}
    out["seconds"] = time.time() - t0
    return out


def card(report: dict, run_cfg: dict, train_state: dict, command: str) -> str:
    from gen.pipeline import model_card

    m = report["measured"]
    summary = ("The attribute task's own small CLIP: `open_clip.CLIP` (a ViT image tower over 4-px patches of 32×32 "
               "faces and a causal text transformer), trained from scratch with `open_clip.ClipLoss` on procedural "
               "faces and generated captions, plus two probes on its frozen embeddings (text → per attribute on / off "
               "/ not named; image → per attribute present). Tokens: open_clip's own BPE tokenizer (bundled with the "
               "package), remapped to the "
               f"{len(run_cfg.get('vocab', [])) or report['vocab_size']} BPE tokens seen in training captions "
               "(others → <unk>). Used by `tasks.attributes.pipeline` for free-text prompts, image prompts and "
               "edits.")
    return model_card(
        "Attribute CLIP (open_clip, trained from scratch on procedural faces)", summary,
        use='from tasks.attributes.clip import load_clip, decode_text, read_images\n'
            'clip, tok = load_clip("attributes_clip")        # this folder\n'
            'decode_text(clip, tok, "a smiling man with round glasses").spec   # {"glasses": True, "smile": True}',
        training={"command": report["train_command"], "steps": train_state.get("step"),
                  "wall_time_s": train_state.get("wall_seconds"), "threads": 1, "processes": 1,
                  "data": f"{run_cfg['data']['num_samples']} train-split procedural faces (held-out attribute "
                          "combinations excluded), a fresh training-phrasing caption per face and epoch, flips",
                  "probes": report["probes"], "export command": command},
        config=run_cfg, evaluation={"command": command, **{k: v for k, v in m.items() if k != "seconds"}},
        evaluation_source="tasks.attributes.clip_export report (reports/attributes_clip.json)",
        limits="Knows only the procedural 32×32 faces of tasks.attributes.faces and the words of its captions; any "
               "other word is <unk>. Not a model of real images or language. Licence: Apache-2.0.")


def main(argv=None) -> dict:
    from gen.train import find_resumable
    from tasks.attributes.clip import load_towers, tokenizer_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="CLIP run folder (tasks/attributes/train_clip.py)")
    p.add_argument("--out", required=True, help="shipped folder, e.g. checkpoints/attributes_clip")
    p.add_argument("--report", default="reports/attributes_clip.json", help="report JSON (written atomically)")
    p.add_argument("--n-text", type=int, default=40000, help="captions the text probe is fitted on")
    p.add_argument("--probe-steps", type=int, default=1500)
    p.add_argument("--n-eval", type=int, default=600, help="texts per decode measurement")
    p.add_argument("--unk-p", type=float, default=0.5, help="share of the token probe's texts with 1–3 <unk> "
                                                          "tokens inserted (robustness to unseen words)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    ck, skipped = find_resumable(args.run, need_ema=False)
    if ck is None:
        raise SystemExit(f"no loadable checkpoint in {args.run}" + "".join(f"; {a}: {b}" for a, b in skipped))
    model = load_towers(os.path.join(ck["path"], "model")).eval()
    tok = tokenizer_for(model)
    import yaml

    with open(os.path.join(ck["path"], "config.yaml")) as f:
        run_cfg = yaml.safe_load(f)
    attributes = model.attributes
    torch.manual_seed(0)
    # 1. text probe
    texts, y = text_probe_data(run_cfg, args.n_text, 0, attributes)
    e = embed_texts(model, tok, texts)
    k = len(attributes)
    model.text_probe.train()
    for prm in model.text_probe.parameters():
        prm.requires_grad_(True)
    tl = fit(model.text_probe, e, y, lambda o, t: F.cross_entropy(o.view(-1, 3), t.view(-1)), args.probe_steps)
    print(f"text probe fitted ({time.time() - t0:.0f} s)", flush=True)
    tokens = insert_unknown(tok(texts), tok.eot, args.unk_p, seed=0)
    tkl = fit_token_probe(model, tokens, y, args.probe_steps)
    # the reader: the probe whose exact reading is better on validation texts in the *training* phrasings (seeds of
    # their own; the held-out phrasings are only measured)
    val = {}
    for reader in ("pooled", "tokens"):
        model.register_to_config(text_reader=reader)
        val[reader] = validation_reading(model, tok, attributes)
    chosen = max(val, key=lambda r: (val[r]["exact"], r == "pooled"))
    print(f"token probe fitted, reader {chosen} ({val}) ({time.time() - t0:.0f} s)", flush=True)
    model.register_to_config(text_reader=chosen)
    # 2. image probe on the CLIP's own training faces
    from tasks.attributes.faces import FaceDataset

    d = run_cfg["data"]
    ds = FaceDataset(d["num_samples"], seed=d["seed"], size=d["size"], split="train", cache=True)
    n_img = min(len(ds), 10000)
    xi = torch.stack([ds[i]["image"] for i in range(n_img)])
    yi = torch.stack([ds[i]["attrs"] for i in range(n_img)])
    ei = embed_images(model, xi)
    il = fit(model.image_probe, ei, yi, F.binary_cross_entropy_with_logits, args.probe_steps)
    model.eval()
    print(f"image probe fitted ({time.time() - t0:.0f} s)", flush=True)
    probes = {"text (pooled embedding → MLP)": f"{len(texts)} texts, {args.probe_steps} AdamW steps, final loss "
                                                f"{tl:.4f}",
              "text (token features → attention probe)": f"same texts, {args.probe_steps} AdamW steps, final loss "
                                                          f"{tkl:.4f}",
              "text reader chosen": chosen, "token probe texts with <unk> inserted": args.unk_p, "text reader validation (training phrasings, own seeds)": val,
              "image": f"{n_img} faces, {args.probe_steps} AdamW steps, final loss {il:.4f}"}
    # 3. measure
    measured = measure(model, tok, run_cfg, args.n_eval)
    command = "python -m tasks.attributes.clip_export " + " ".join(argv if argv is not None else sys.argv[1:])
    train_log = os.path.join(args.run, "log.jsonl")
    report = {"command": command, "run": args.run, "checkpoint": ck["path"], "train_step": ck["step"],
              "train_wall_seconds": ck.get("wall_seconds"), "vocab_size": len(model.config.vocab),
              "train_command": "python tasks/attributes/train_clip.py --config configs/attributes_clip.yaml "
                               "(accelerate launch works the same)",
              "probes": probes, "measured": measured,
              "loss_curve": [json.loads(l) for l in open(train_log)] if os.path.exists(train_log) else []}
    # 4. ship (fp16) + card
    from gen.io import atomic_path

    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "model.tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    final = os.path.join(args.out, "model")
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    from gen.io import atomic_write_text

    atomic_write_text(os.path.join(args.out, "README.md"), card(report, run_cfg, ck, command))
    report["seconds"] = time.time() - t0
    atomic_write_json(args.report, report, suffix=".json.tmp", newline=False)
    print(json.dumps({k: measured[k] for k in ("retrieval_at_1", "unrelated_texts_read_as_nothing")}, indent=1))
    print(json.dumps({k: measured[k]["probe"] for k in measured if k.startswith("text_decode")}, indent=1))
    return report


if __name__ == "__main__":
    main()
