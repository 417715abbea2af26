"""Captions of the procedural faces: deterministic by seed, truthful about the face, varied, and the held-out phrasing
set never used in training captions."""
import re

import numpy as np
import pytest

from tasks.attributes.captions import (
    HELDOUT_FRAME_MARKERS,
    HELDOUT_PHRASES,
    caption,
    caption_for_sample,
    nuisance_names,
    phrase_bank,
    spec_caption,
)
from tasks.attributes.faces import ATTRIBUTES, _SPLIT_ID, sample_index_attributes, sample_nuisance


def test_same_seed_same_caption_and_epochs_differ():
    a = [caption_for_sample(0, i, "train", 0) for i in range(50)]
    assert a == [caption_for_sample(0, i, "train", 0) for i in range(50)]
    b = [caption_for_sample(0, i, "train", 1)[0] for i in range(50)]
    assert sum(x[0] != y for x, y in zip(a, b)) > 40  # a fresh phrasing each epoch


def test_named_attributes_are_true_of_the_face():
    for i in range(300):
        text, named = caption_for_sample(3, i, "train")
        attrs = sample_index_attributes(3, i, "train")
        for name, value in named.items():
            assert bool(attrs[ATTRIBUTES.index(name)]) == value, (text, name)


def test_colour_words_follow_the_nuisance():
    seen = 0
    for i in range(400):
        text, named = caption_for_sample(0, i, "train")
        names = nuisance_names(sample_nuisance(np.random.default_rng([0, _SPLIT_ID["train"], i, 1])))
        m = re.search(r"\b(red|blue|green|purple|orange|teal) (hat|cap)\b", text)
        if m and named.get("hat"):
            assert m.group(1) == names["hat"], text
            seen += 1
        m = re.search(r"\b(gold|silver) earrings\b", text)
        if m:
            assert m.group(1) == names["earring"], text
    assert seen > 0


def test_variety_synonyms_negations_typos_nuisances():
    texts = [caption_for_sample(0, i, "train", e)[0] for i in range(400) for e in range(2)]
    joined = " | ".join(texts).lower()
    for word in ("shades", "spectacles", "mustache", "bearded", "no hat", "not wearing", "without", "skin", "hair",
                 "background", "portrait of"):
        assert word in joined, word
    assert len(set(texts)) > 0.95 * len(texts)
    # typos: words that are not in the vocabulary of all phrase banks + frames
    vocab = set(re.findall(r"[a-z]+", " ".join(p for s in phrase_bank("train").values() for ps in s.values()
                                                for p in ps)))
    odd = {w for w in re.findall(r"[a-z]+", joined) if w not in vocab}
    assert len(odd) > 20


def test_heldout_phrasings_never_in_training_captions():
    heldout = {t.format(hat="red", earring="gold") for a in HELDOUT_PHRASES.values() for side in a.values()
               for _, t in side}
    texts = [caption_for_sample(s, i, "train", e)[0].lower() for s in (0, 1) for i in range(800) for e in range(2)]
    for phrase in heldout:
        pat = re.compile(r"\b" + re.escape(phrase) + r"\b")
        assert not any(pat.search(t) for t in texts), phrase
    for marker in HELDOUT_FRAME_MARKERS:
        assert not any(marker in t for t in texts), marker
    # and the held-out captions do use them
    held = [spec_caption({"glasses": True, "smile": True, "hat": False}, s) for s in range(60)]
    assert any(any(m in h for m in HELDOUT_FRAME_MARKERS) for h in held)


def test_spec_caption_names_exactly_the_spec():
    rng = np.random.default_rng(0)
    text, named = caption(np.ones(len(ATTRIBUTES), bool), None, rng, p_positive=1.0, p_empty=0.0)
    assert set(named) == set(ATTRIBUTES)
    assert spec_caption({"beard": True}, 1) == spec_caption({"beard": True}, 1)
    with pytest.raises(ValueError, match="unknown attribute"):
        spec_caption({"wings": True}, 0)
    assert spec_caption({}, 0)  # nothing named: still a text ("a man")
