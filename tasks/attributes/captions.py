"""Captions for the procedural faces: what a face shows, in many phrasings, as a pure function of a seed.

A caption names some of a face's attributes, positive ("a smiling man with round glasses") or negative ("no hat",
"beardless", "not wearing earrings"), in one of several sentence frames (adjectives before the noun, "with ...",
"wearing ...", tag lists, "portrait of ..."), with synonyms ("shades", "spectacles", "mustache"), shuffled word order,
occasional typos and letter case changes, and sometimes its nuisances: skin tone, hair colour, background colour (and
the hat's / earrings' colour, read from the face's own nuisance draw, so "a red cap" is only said of a red cap).

Two disjoint phrase sets:

* the training phrasings (``split="train"``): everything the CLIP is trained on and the text probe is fitted on;
* the held-out phrasings (``split="heldout"``): other synonyms built mostly from known words ("round spectacles",
  "tinted lenses", "both eyes closed") and other sentence frames ("this person has ...", "a man who is ... and has
  ..."). No held-out phrase or frame marker ever occurs in a training caption (tested), so the evaluation's free-text
  prompts are phrasings the models never saw.

Usage::

    from tasks.attributes.captions import caption, caption_for_sample, spec_caption
    text, mentioned = caption_for_sample(seed=0, index=3, split="train")   # the caption of FaceDataset item 3
    text = spec_caption({"smile": True, "hat": False}, seed=5, phrasing="heldout")  # "a smiling guy, hatless"

`mentioned` is {attribute: bool} for the attributes the caption names (the rest are unspecified): the label of the
text probe (tasks.attributes.clip).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tasks.attributes.faces import (
    ATTRIBUTES,
    EARRING_COLOURS,
    HAIR_COLOURS,
    HAT_COLOURS,
    SKIN_TONES,
    _SPLIT_ID,
    Nuisance,
    sample_index_attributes,
    sample_nuisance,
)

PHRASINGS = ("train", "heldout")

# Phrases per attribute and polarity: (kind, text). kinds: "with" — a noun phrase after "with" (negative: after "no" /
# "without"); "wear" — after "wearing" (negative: "not wearing"); "adj" — before the noun; "tag" — a standalone phrase
# (tag lists, trailing clauses). {hat} / {earring} are the face's own hat / earring colour names.
_P = dict[str, list[tuple[str, str]]]
TRAIN_PHRASES: dict[str, dict[bool, list[tuple[str, str]]]] = {
    "glasses": {
        True: [("with", "glasses"), ("with", "eyeglasses"), ("with", "spectacles"), ("with", "round glasses"),
               ("with", "thin frames"), ("wear", "glasses"), ("wear", "eyeglasses"), ("wear", "round glasses"),
               ("adj", "bespectacled"), ("tag", "glasses"), ("tag", "spectacles")],
        False: [("with", "glasses"), ("with", "spectacles"), ("wear", "glasses"), ("tag", "no glasses")],
    },
    "sunglasses": {
        True: [("with", "sunglasses"), ("with", "shades"), ("with", "dark lenses"), ("with", "tinted glasses"),
               ("wear", "sunglasses"), ("wear", "shades"), ("tag", "sunglasses"), ("tag", "shades"),
               ("tag", "sun glasses")],
        False: [("with", "sunglasses"), ("with", "shades"), ("wear", "sunglasses"), ("tag", "no sunglasses")],
    },
    "closed_eyes": {
        True: [("with", "closed eyes"), ("with", "shut eyes"), ("with", "eyes closed"), ("adj", "sleeping"),
               ("tag", "eyes closed"), ("tag", "eyes shut"), ("tag", "closed eyes")],
        False: [("tag", "eyes open"), ("tag", "open eyes"), ("adj", "wide-eyed"), ("pwith", "open eyes")],
    },
    "moustache": {
        True: [("with", "a moustache"), ("with", "a mustache"), ("with", "a thick moustache"), ("adj", "moustached"),
               ("adj", "mustachioed"), ("tag", "moustache"), ("tag", "mustache")],
        False: [("with", "moustache"), ("with", "mustache"), ("tag", "no moustache"), ("tag", "no mustache")],
    },
    "smile": {
        True: [("with", "a smile"), ("with", "a big smile"), ("with", "a grin"), ("adj", "smiling"),
               ("adj", "grinning"), ("adj", "happy"), ("tag", "smiling"), ("tag", "smile")],
        False: [("adj", "unsmiling"), ("adj", "serious"), ("tag", "not smiling"), ("tag", "neutral mouth"),
                ("with", "smile"), ("pwith", "a straight mouth")],
    },
    "beard": {
        True: [("with", "a beard"), ("with", "a full beard"), ("with", "a chin beard"), ("adj", "bearded"),
               ("tag", "beard"), ("tag", "bearded")],
        False: [("with", "beard"), ("adj", "beardless"), ("adj", "clean-shaven"), ("tag", "no beard"),
                ("tag", "clean shaven")],
    },
    "earrings": {
        True: [("with", "earrings"), ("with", "{earring} earrings"), ("with", "round earrings"), ("wear", "earrings"),
               ("wear", "{earring} earrings"), ("tag", "earrings")],
        False: [("with", "earrings"), ("wear", "earrings"), ("tag", "no earrings")],
    },
    "bangs": {
        True: [("with", "bangs"), ("with", "a fringe"), ("with", "a zigzag fringe"), ("tag", "bangs"),
               ("tag", "fringe")],
        False: [("with", "bangs"), ("with", "fringe"), ("tag", "no bangs")],
    },
    "hat": {
        True: [("with", "a hat"), ("with", "a cap"), ("with", "a brimmed hat"), ("with", "a {hat} hat"),
               ("wear", "a hat"), ("wear", "a cap"), ("wear", "a {hat} cap"), ("tag", "hat"), ("tag", "cap")],
        False: [("with", "hat"), ("wear", "a hat"), ("adj", "bareheaded"), ("adj", "hatless"), ("tag", "no hat")],
    },
}
HELDOUT_PHRASES: dict[str, dict[bool, list[tuple[str, str]]]] = {
    "glasses": {True: [("with", "round spectacles"), ("wear", "thin spectacles")],
                False: [("tag", "without eyeglasses")]},
    "sunglasses": {True: [("with", "tinted lenses"), ("wear", "dark shades")],
                   False: [("tag", "without dark shades")]},
    "closed_eyes": {True: [("tag", "both eyes closed"), ("with", "eyes fully closed")],
                    False: [("tag", "both eyes open")]},
    "moustache": {True: [("with", "a thick mustache"), ("with", "a big moustache")],
                  False: [("tag", "without a mustache")]},
    "smile": {True: [("with", "a happy smile"), ("with", "a big grin")],
              False: [("tag", "a serious mouth")]},
    "beard": {True: [("with", "a thick beard"), ("with", "a full chin beard")],
              False: [("tag", "clean-shaven chin")]},
    "earrings": {True: [("with", "round gold earrings"), ("wear", "ear rings")],
                 False: [("tag", "without any earrings")]},
    "bangs": {True: [("with", "zigzag bangs"), ("with", "a hair fringe")],
              False: [("tag", "without any bangs")]},
    "hat": {True: [("with", "a brimmed cap"), ("wear", "a colourful hat")],
            False: [("tag", "without a hat")]},
}
# Markers of the held-out sentence frames: words no training frame uses.
HELDOUT_FRAME_MARKERS = ("this person has", " who is ", " and has ", "here is ")

NOUNS = ("man", "person", "face", "guy", "cartoon face", "character", "fellow")
NOUN_ARTICLE = {"man": "a", "person": "a", "face": "a", "guy": "a", "cartoon face": "a", "character": "a",
                "fellow": "a"}

# Colour names for the nuisances, in the order of the faces' palettes.
SKIN_NAMES = ("pale", "fair", "light", "tan", "brown", "dark brown", "dark")
HAIR_NAMES = ("black", "dark brown", "brown", "red", "blond", "grey", "white")
HAT_NAMES = ("red", "blue", "green", "purple", "orange", "teal")
EARRING_NAMES = ("gold", "silver")
BASIC_COLOURS = {  # background: nearest of these to the mean of the gradient's two ends
    "red": (200, 40, 40), "green": (50, 160, 60), "blue": (50, 80, 200), "yellow": (220, 210, 60),
    "purple": (140, 60, 170), "orange": (230, 140, 40), "pink": (230, 140, 180), "teal": (40, 150, 150),
    "brown": (130, 90, 50), "grey": (130, 130, 130), "white": (225, 225, 225), "black": (40, 40, 40),
    "olive": (130, 130, 50), "beige": (200, 180, 140),
}

MAX_WORDS = 48  # a caption never has more (CLIP context 64 tokens)


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> int:
    return int(np.argmin(((palette - np.asarray(rgb, dtype=np.float32)[None]) ** 2).sum(1)))


def nuisance_names(nz: Nuisance) -> dict[str, str]:
    """{"skin", "hair", "background", "hat", "earring"} colour names of a face's nuisances."""
    bg = (np.asarray(nz.bg0) + np.asarray(nz.bg1)) / 2
    names = list(BASIC_COLOURS)
    background = names[_nearest(bg, np.array([BASIC_COLOURS[n] for n in names], dtype=np.float32))]
    return {"skin": SKIN_NAMES[_nearest(nz.skin, SKIN_TONES)], "hair": HAIR_NAMES[_nearest(nz.hair, HAIR_COLOURS)],
            "background": background, "hat": HAT_NAMES[_nearest(nz.hat, HAT_COLOURS)],
            "earring": EARRING_NAMES[_nearest(nz.earring, EARRING_COLOURS)]}


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _join(items: list[str], rng: np.random.Generator) -> str:
    """'a', 'a and b', 'a, b and c' (or with an Oxford comma / plain commas)."""
    if len(items) <= 1:
        return "".join(items)
    style = int(rng.integers(3))
    if style == 0:
        return ", ".join(items[:-1]) + " and " + items[-1]
    if style == 1:
        return ", ".join(items[:-1]) + ", and " + items[-1]
    return ", ".join(items)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _negative_text(kind: str, text: str, rng: np.random.Generator) -> tuple[str, str]:
    """A negative phrase → (kind used in the sentence, its text)."""
    bare = text[2:] if text.startswith("a ") else text
    if kind == "with":
        return ("with", f"no {bare}") if rng.random() < 0.5 else ("without", f"without {text}" if text.startswith(
            "a ") else f"without {bare}")
    if kind == "wear":
        return ("notwear", f"not wearing {text}") if rng.random() < 0.7 else ("with", f"no {bare}")
    if kind == "pwith":  # a phrase that already says the absence ("open eyes"): used as it is
        return "with", text
    return kind, text


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(3))
    if op == 0:  # swap two neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 1:  # drop one letter
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]  # double one letter


def _noise_words(text: str, rng: np.random.Generator, typo_p: float) -> str:
    if rng.random() < typo_p:
        words = text.split(" ")
        j = int(rng.integers(len(words)))
        words[j] = _typo(words[j], rng)
        text = " ".join(words)
    r = rng.random()
    if r < 0.08:
        text = text.capitalize()
    elif r < 0.11:
        text = text.upper()
    if rng.random() < 0.15:
        text += "."
    return text


def compose(mentioned: Mapping[str, bool], names: Mapping[str, str] | None, rng: np.random.Generator,
            phrasing: str = "train", nuisance_p: float = 0.3, typo_p: float = 0.15) -> str:
    """Words for the attributes in `mentioned` ({attribute: value}, in a shuffled order), in a random frame of the
    phrasing set; nuisances from `names` (nuisance_names) each said with probability nuisance_p."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
    bank = TRAIN_PHRASES if phrasing == "train" else HELDOUT_PHRASES
    names = dict(names or {"hat": "red", "earring": "gold"})
    noun = _pick(rng, NOUNS)
    adjs, withs, wears, tags, nots = [], [], [], [], []
    order = [a for a in ATTRIBUTES if a in mentioned]
    rng.shuffle(order)
    for a in order:
        on = bool(mentioned[a])
        kind, text = _pick(rng, bank[a][on])
        # phrases with the face's own colours only for a face that has them (names from its nuisance)
        text = text.format(hat=names.get("hat", "red"), earring=names.get("earring", "gold"))
        if not on:
            kind, text = _negative_text(kind, text, rng)
        if kind == "adj":
            adjs.append(text)
        elif kind == "with":
            withs.append(text)
        elif kind == "without":
            nots.append(text)
        elif kind == "wear":
            wears.append(text)
        elif kind == "notwear":
            nots.append(text)
        else:
            tags.append(text)
    extras = []
    if "skin" in names and rng.random() < nuisance_p:
        extras.append(_pick(rng, [f"{names['skin']} skin", f"with {names['skin']} skin"]))
    if "hair" in names and rng.random() < nuisance_p:
        extras.append(_pick(rng, [f"{names['hair']} hair", f"with {names['hair']} hair"]))
    if "background" in names and rng.random() < nuisance_p:
        extras.append(_pick(rng, [f"on a {names['background']} background", f"{names['background']} background"]))

    frames = 3 if phrasing == "heldout" else 5
    frame = int(rng.integers(frames))
    if phrasing == "train" and frame == 4 or not (adjs or withs or wears or nots) and phrasing == "train" \
            and tags and rng.random() < 0.5:
        # tag list: every phrase as a short tag (attribute words only)
        items = adjs + [("with " + w if rng.random() < 0.3 else w) for w in withs] + wears + nots + tags + extras
        rng.shuffle(items)
        text = _join(items, rng) if items else f"{_article(noun)} {noun}"
        return _noise_words(text, rng, typo_p)
    head_adjs = " ".join(adjs)
    head = (f"{head_adjs} {noun}" if head_adjs else noun)
    det = _article(head)
    parts = []
    if withs:
        parts.append("with " + _join(withs, rng))
    if wears:
        parts.append("wearing " + _join(wears, rng))
    tail = parts + nots + tags + extras
    rng.shuffle(tail)
    if phrasing == "heldout":
        if frame == 0 and (withs or wears):  # "this person has round spectacles and a big grin, hatless"
            has = [w for w in withs] + [w for w in wears]
            rest = nots + tags + extras
            text = f"this person has {_join(has, rng)}" + ("" if not adjs else f", {', '.join(adjs)}")
            text += "".join(f", {r}" for r in rest)
        elif frame == 1:  # "a man who is smiling and has ..."
            who = f"{_article(noun)} {noun}"
            text = who + (f" who is {' and '.join(adjs)}" if adjs else " who is here")
            if withs or wears:
                text += " and has " + _join(withs + wears, rng)
            text += "".join(f", {r}" for r in nots + tags + extras)
        else:  # "here is a smiling guy: ..."
            text = f"here is {det} {head}" + (": " + ", ".join(tail) if tail else "")
        return _noise_words(text, rng, typo_p)
    if frame == 0:  # "a smiling man with glasses, wearing a hat, no beard"
        text = f"{det} {head}" + "".join((" " if i == 0 and p.startswith(("with", "wearing")) else ", ") + p
                                          for i, p in enumerate(tail))
    elif frame == 1:  # "portrait of a smiling man, with glasses"
        text = f"portrait of {det} {head}" + "".join(", " + p for p in tail)
    elif frame == 2:  # "glasses and a beard, smiling man" (word order reversed)
        text = ", ".join(tail + [f"{det} {head}"]) if tail else f"{det} {head}"
    else:  # "smiling, glasses, man" terse without articles
        text = ", ".join([head] + tail)
    return _noise_words(text, rng, typo_p)


def caption(attrs: np.ndarray, nuisance: Nuisance | None, rng: np.random.Generator, phrasing: str = "train",
            p_positive: float = 0.8, p_negative: float = 0.3, p_empty: float = 0.03) -> tuple[str, dict[str, bool]]:
    """A caption of a face with attribute vector `attrs` ((K,) bool) and its nuisance draw: each present attribute named
    with probability p_positive, each absent one (negated) with p_negative; with p_empty nothing about attributes is
    said. Returns (text, {attribute: value} named)."""
    attrs = np.asarray(attrs, dtype=bool)
    if attrs.shape != (len(ATTRIBUTES),):
        raise ValueError(f"attrs must have shape ({len(ATTRIBUTES)},), got {attrs.shape}")
    mentioned: dict[str, bool] = {}
    if rng.random() >= p_empty:
        for a, on in zip(ATTRIBUTES, attrs):
            if rng.random() < (p_positive if on else p_negative):
                mentioned[a] = bool(on)
    names = nuisance_names(nuisance) if nuisance is not None else None
    text = compose(mentioned, names, rng, phrasing)
    words = text.split()
    if len(words) > MAX_WORDS:  # never happens with these banks; kept as a guard for the CLIP context
        text = " ".join(words[:MAX_WORDS])
    return text, mentioned


def caption_rng(seed: int, split: str, index: int, epoch: int = 0, phrasing: str = "train") -> np.random.Generator:
    """The generator of one caption: a pure function of the face (seed, split, index), the epoch and the phrasing."""
    return np.random.default_rng([seed, _SPLIT_ID[split], index, 2, epoch, PHRASINGS.index(phrasing)])


def caption_for_sample(seed: int, index: int, split: str = "train", epoch: int = 0, phrasing: str = "train",
                       **kw) -> tuple[str, dict[str, bool]]:
    """The caption of FaceDataset(seed=seed, split=split) item `index` for one epoch (a fresh phrasing each epoch),
    with its nuisances re-drawn exactly as faces.render_sample draws them (no rendering)."""
    attrs = sample_index_attributes(seed, index, split)
    nz = sample_nuisance(np.random.default_rng([seed, _SPLIT_ID[split], index, 1]))
    return caption(attrs, nz, caption_rng(seed, split, index, epoch, phrasing), phrasing, **kw)


def spec_caption(spec: Mapping[str, bool], seed: int, phrasing: str = "heldout", typo_p: float = 0.0) -> str:
    """A caption that names exactly the attributes of `spec` ({attribute: value}) and no nuisance: the evaluation's
    free-text prompts (phrasing="heldout": phrases never used in training)."""
    unknown = sorted(set(spec) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; valid attributes: {', '.join(ATTRIBUTES)}")
    rng = np.random.default_rng([seed, 77, PHRASINGS.index(phrasing)])
    return compose(dict(spec), None, rng, phrasing, nuisance_p=0.0, typo_p=typo_p)


def phrase_bank(phrasing: str = "train") -> dict[str, dict[bool, list[str]]]:
    """{attribute: {True: [texts], False: [texts]}}: every phrase of a phrasing set as a stand-alone phrase ("a face
    with round glasses", "no hat"), with the colour placeholders filled by their first colour."""
    bank = TRAIN_PHRASES if phrasing == "train" else HELDOUT_PHRASES
    out: dict[str, dict[bool, list[str]]] = {}
    for a, sides in bank.items():
        out[a] = {}
        for on, phrases in sides.items():
            texts = []
            for kind, text in phrases:
                text = text.format(hat=HAT_NAMES[0], earring=EARRING_NAMES[0])
                if on:
                    texts.append({"with": f"a face with {text}", "wear": f"a face wearing {text}",
                                  "adj": f"{_article(text)} {text} face"}.get(kind, text))
                else:
                    bare = text[2:] if text.startswith("a ") else text
                    texts.append({"with": f"a face with no {bare}", "wear": f"a face not wearing {text}",
                                  "pwith": f"a face with {text}",
                                  "adj": f"{_article(text)} {text} face"}.get(kind, text))
            out[a][on] = texts
    return out
