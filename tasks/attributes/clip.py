"""The attribute task's own small CLIP: open_clip's `CLIP` model class with a tiny ViT and text transformer, trained
from scratch with `open_clip.ClipLoss` on procedural faces and their generated captions (tasks.attributes.captions).

Tokens: open_clip's own `SimpleTokenizer` (its BPE vocabulary ships inside the package: nothing is downloaded), with
its ids remapped to the BPE tokens that occur in the training captions (``vocab``, stored in the model config): every
other token becomes one learned <unk>, so a word no caption ever used is "unknown" rather than an untrained random
embedding, and the embedding table has a few hundred rows instead of 49 408. Remapped ids: 0 pad, 1 <unk>, 2 <sot>,
3 … V−2 the kept BPE tokens, V−1 <eot> (the largest id: open_clip's text tower pools at the argmax token).

Beside the two towers the model holds probes fitted on frozen features after the contrastive training
(tasks.attributes.clip_export): three text readers, each giving per attribute on / off / not named and trained on
training-phrasing captions whose named attributes are known, and ``image_probe`` (image embedding → per attribute
present). The config's ``text_reader`` says which text reader `decode_texts` uses:

* "pooled": ``text_probe``, an MLP on the joint text embedding;
* "tokens": ``token_probe``, an attention probe (TokenProbe) on the text tower's token features;
* "minilm": ``minilm_probe``, the same attention probe on the token states of the frozen pretrained sentence encoder
  all-MiniLM-L6-v2 (gen.text, offline, 384-d), which knows English words our captions never use ("headwear",
  "ear studs", "laughing"); MiniLM (and transformers) is loaded only when a text is read with this reader.

`decode_text` / `read_image` use them; the zero-shot alternative (nearest phrasing prototype) is measured beside them
in reports/attributes_clip.json.

    clip = AttributeCLIP.from_pretrained("checkpoints/attributes_clip/model")  # or load_clip("attributes_clip")
    tok = Tokenizer(clip.config.vocab, clip.config.context_length)
    t = clip.encode_text(tok(["a smiling man with round glasses"]))            # (1, E) unit vectors
    i = clip.encode_image(images)                                              # images (B, 3, 32, 32) in [-1, 1]
    decode_text(clip, tok, "a smiling man, no hat")  # → {"smile": True, "hat": False}, per-attribute confidences
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gen._diffusers import ConfigMixin, ModelMixin, register_to_config
from gen.guidance import model_device
from gen.text import MINILM_DIM
from tasks.attributes.faces import ATTRIBUTES

PAD, UNK, SOT = 0, 1, 2
TEXT_READERS = ("pooled", "tokens", "minilm")
STATES = ("off", "on", "unnamed")  # text probe classes per attribute
MAX_TEXT_CHARS = 300  # longer texts are refused (the context holds far fewer tokens anyway)

VISION_DEFAULTS = dict(layers=4, width=128, head_width=32, mlp_ratio=2.0, patch_size=4)
TEXT_DEFAULTS = dict(layers=3, width=128, heads=4, mlp_ratio=2.0)


class TextError(ValueError):
    """A text prompt the CLIP cannot take (empty, too long, or naming nothing it knows); says what was understood."""


_BPE = None


def bpe_tokenizer():
    """open_clip's SimpleTokenizer (one instance; its vocabulary file is part of the open_clip package)."""
    global _BPE
    if _BPE is None:
        from open_clip.tokenizer import SimpleTokenizer

        _BPE = SimpleTokenizer(context_length=None)
    return _BPE


def build_vocab(texts: Sequence[str], min_count: int = 2) -> list[int]:
    """The BPE ids that occur at least `min_count` times in `texts`, sorted: the kept vocabulary."""
    from collections import Counter

    bpe = bpe_tokenizer()
    counts = Counter(i for t in texts for i in bpe.encode(t))
    return sorted(i for i, c in counts.items() if c >= min_count)


class Tokenizer:
    """Text → (N, L) remapped token ids (see the module docstring). Over-long texts raise TextError."""

    def __init__(self, vocab: Sequence[int], context_length: int):
        self.vocab = list(vocab)
        self.context_length = int(context_length)
        self.index = {b: 3 + i for i, b in enumerate(self.vocab)}
        self.eot = 3 + len(self.vocab)
        self.size = self.eot + 1

    def ids(self, text: str) -> list[int]:
        return [self.index.get(b, UNK) for b in bpe_tokenizer().encode(text)]

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` with at least one token outside the vocabulary (for "what was understood" messages)."""
        return [w for w in text.split() if any(i == UNK for i in self.ids(w))]

    def __call__(self, texts: Sequence[str] | str) -> Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for r, t in enumerate(texts):
            ids = [SOT] + self.ids(t) + [self.eot]
            if len(ids) > self.context_length:
                raise TextError(f"text is too long: {len(ids) - 2} tokens, at most {self.context_length - 2} "
                                f"(about {self.context_length // 2} words): {t[:60]!r}…")
            out[r, :len(ids)] = torch.tensor(ids)
        return out


class TokenProbe(nn.Module):
    """Per attribute, `heads` learned queries attend over the text tower's token features (padding masked), and a small
    MLP of the pooled features gives off / on / not named: (B, L, W) → (B, K, 3)."""

    def __init__(self, width: int, k: int, heads: int = 2, hidden: int = 64):
        super().__init__()
        self.k, self.heads = k, heads
        self.query = nn.Parameter(torch.randn(k * heads, width) * width ** -0.5)
        self.norm = nn.LayerNorm(width)
        self.w1 = nn.Parameter(torch.randn(k, heads * width, hidden) * (heads * width) ** -0.5)
        self.b1 = nn.Parameter(torch.zeros(k, hidden))
        self.w2 = nn.Parameter(torch.randn(k, hidden, 3) * hidden ** -0.5)
        self.b2 = nn.Parameter(torch.zeros(k, 3))

    def forward(self, feats: Tensor, keep: Tensor) -> Tensor:
        x = self.norm(feats)                                                   # (B, L, W)
        att = torch.einsum("blw,qw->bql", x, self.query) / x.shape[-1] ** 0.5  # (B, K·H, L)
        att = att.masked_fill(~keep[:, None, :], float("-inf")).softmax(-1)
        pooled = torch.einsum("bql,blw->bqw", att, x).reshape(len(x), self.k, -1)  # (B, K, H·W)
        h = F.gelu(torch.einsum("bkd,kdh->bkh", pooled, self.w1) + self.b1)
        return torch.einsum("bkh,khc->bkc", h, self.w2) + self.b2               # (B, K, 3)


PROBE_PREFIXES = ("text_probe.", "image_probe.", "token_probe.", "minilm_probe.")  # fitted after training (clip_export)


class AttributeCLIP(ModelMixin, ConfigMixin):
    """open_clip.CLIP (ViT image tower, causal text transformer) + the attribute probes (three text readers, one image
    probe)."""

    @register_to_config
    def __init__(self, vocab: Sequence[int] = (), attributes: Sequence[str] = ATTRIBUTES, embed_dim: int = 128,
                 image_size: int = 32, context_length: int = 40, vision: Mapping | None = None,
                 text: Mapping | None = None, text_reader: str = "pooled"):
        super().__init__()
        if text_reader not in TEXT_READERS:
            raise ValueError(f"text_reader must be one of {', '.join(TEXT_READERS)}, got {text_reader!r}")
        from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

        self.attributes = tuple(attributes)
        vcfg = CLIPVisionCfg(image_size=image_size, **{**VISION_DEFAULTS, **dict(vision or {})})
        tcfg = CLIPTextCfg(context_length=context_length, vocab_size=len(vocab) + 4,
                           **{**TEXT_DEFAULTS, **dict(text or {})})
        self.clip = CLIP(embed_dim, vcfg, tcfg)
        k = len(self.attributes)
        self.text_probe = nn.Sequential(nn.Linear(embed_dim, 256), nn.GELU(), nn.Linear(256, 3 * k))  # (E → K×3)
        self.image_probe = nn.Linear(embed_dim, k)  # (E → K) logits of "present"
        self.token_probe = TokenProbe(tcfg.width, k)  # token features → (K, 3)
        self.minilm_probe = TokenProbe(MINILM_DIM, k)  # MiniLM token states (384-d) → (K, 3)

    def encode_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, E) unit vectors."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return self.clip.encode_image(images, normalize=True)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """(B, L) remapped token ids → (B, E) unit vectors."""
        return self.clip.encode_text(tokens, normalize=True)

    def forward(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """→ (image features, text features, logit scale): the inputs of open_clip.ClipLoss."""
        return self.encode_image(images), self.encode_text(tokens), self.clip.logit_scale.exp()

    def text_tokens(self, tokens: Tensor) -> Tensor:
        """(B, L) ids → (B, L, W) the text tower's final token features (open_clip's encode_text before pooling)."""
        c = self.clip
        x = c.token_embedding(tokens) + c.positional_embedding
        return c.ln_final(c.transformer(x, attn_mask=c.attn_mask))

    def text_states(self, text_features: Tensor) -> Tensor:
        """(B, E) → (B, K, 3) probabilities of off / on / not named (the pooled-embedding probe)."""
        return self.text_probe(text_features).view(len(text_features), len(self.attributes), 3).softmax(-1)

    def read_text_states(self, tokens: Tensor) -> Tensor:
        """(B, L) ids → (B, K, 3) probabilities of off / on / not named with the configured reader if it reads the
        CLIP's own tokens: "pooled" (the probe on the joint embedding) or "tokens" (the attention probe on the text
        tower's token features). The "minilm" reader reads texts, not ids: `read_texts`."""
        if self.config.text_reader == "tokens":
            return self.token_probe(self.text_tokens(tokens), tokens != PAD).softmax(-1)
        if self.config.text_reader == "minilm":
            raise ValueError("text_reader 'minilm' reads texts (MiniLM's own WordPiece tokens): use read_texts")
        return self.text_states(self.encode_text(tokens))

    def read_texts(self, texts: Sequence[str], tok: "Tokenizer") -> Tensor:
        """(N,) texts → (N, K, 3) probabilities of off / on / not named with the configured reader. "minilm": the
        attention probe on frozen all-MiniLM-L6-v2 token states (gen.text, imported here, on first use); the others
        through the CLIP's tokenizer (`tok`, which also refuses over-long texts)."""
        if self.config.text_reader == "minilm":
            from gen.text import load_minilm

            h, keep = load_minilm().tokens(texts)                          # (N, L, 384), (N, L)
            w = self.clip.logit_scale  # device and dtype from a parameter: ModelMixin.device / .dtype import diffusers.hooks
            return self.minilm_probe(h.to(w.device, w.dtype), keep.to(w.device)).softmax(-1)
        return self.read_text_states(tok(texts).to(model_device(self)))

    def image_present(self, image_features: Tensor) -> Tensor:
        """(B, E) → (B, K) probabilities that each attribute is shown."""
        return torch.sigmoid(self.image_probe(image_features))


def tokenizer_for(model: AttributeCLIP) -> Tokenizer:
    return Tokenizer(model.config.vocab, model.config.context_length)


def load_clip(name_or_path: str = "attributes_clip", dtype: torch.dtype = torch.float32) -> tuple[AttributeCLIP,
                                                                                                   Tokenizer]:
    """A shipped name (checkpoints/<name>), an exported folder (with model/) or a model folder → (model, tokenizer),
    safetensors only, in eval mode."""
    from gen.pipeline import checkpoints_root

    path = name_or_path
    if not os.path.exists(path) and os.sep not in name_or_path:  # a shipped name: a folder of checkpoints/
        path = str(checkpoints_root() / name_or_path)
    if os.path.isdir(os.path.join(path, "model")):
        path = os.path.join(path, "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"no CLIP model at {name_or_path!r} (expected a folder with model/config.json, e.g. the "
                         "shipped checkpoints/attributes_clip made by tasks.attributes.clip_export)")
    model = AttributeCLIP.from_pretrained(path, use_safetensors=True, torch_dtype=dtype).eval()
    return model, tokenizer_for(model)


def load_towers(path: str) -> "AttributeCLIP":
    """A training checkpoint's model folder → AttributeCLIP in float32, probes freshly initialised where the folder
    lacks them (checkpoints hold the towers; probes are fitted afterwards). Safetensors only."""
    import json

    from safetensors.torch import load_file

    with open(os.path.join(path, "config.json")) as f:
        cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = AttributeCLIP(**cfg)
    state = load_file(os.path.join(path, "diffusion_pytorch_model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith(PROBE_PREFIXES)] + list(unexpected)
    if bad:
        raise ValueError(f"{path}: weights do not match the model (first: {bad[:3]})")
    return model.float()


@dataclass
class Understood:
    """What a text (or image) was read as: {attribute: value} and each value's probability."""

    spec: dict[str, bool]
    confidence: dict[str, float]
    source: str = ""

    def describe(self) -> str:
        if not self.spec:
            return "nothing"
        return ", ".join(("" if v else "~") + a + f" ({self.confidence[a]:.2f})" for a, v in self.spec.items())


def check_text(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise TextError("text is empty; describe the face, e.g. 'a smiling man with round glasses'")
    if len(text) > MAX_TEXT_CHARS:
        raise TextError(f"text is too long: {len(text)} characters, at most {MAX_TEXT_CHARS}")
    return text.strip()


@torch.no_grad()
def decode_texts(model: AttributeCLIP, tok: Tokenizer, texts: Sequence[str], threshold: float = 0.5
                 ) -> list[Understood]:
    """Texts → what each names: per attribute the most probable of off / on / not named under the text probe; a
    value is kept when its probability is ≥ threshold (else the attribute counts as not named)."""
    texts = [check_text(t) for t in texts]
    p = model.read_texts(texts, tok).float().cpu()  # (N, K, 3)
    out = []
    for t, row in zip(texts, p):
        spec, conf = {}, {}
        for k, a in enumerate(model.attributes):
            s = int(row[k].argmax())
            if s != 2 and row[k, s] >= threshold:
                spec[a], conf[a] = bool(s == 1), float(row[k, s])
        out.append(Understood(spec, conf, t))
    return out


def decode_text(model: AttributeCLIP, tok: Tokenizer, text: str, threshold: float = 0.5) -> Understood:
    """One text → Understood; TextError when it names nothing the model knows (saying which words were unknown)."""
    u = decode_texts(model, tok, [text], threshold)[0]
    if not u.spec:
        unknown = tok.unknown_words(text)
        if model.config.text_reader == "minilm":  # MiniLM knows English; what it has not seen is these in a caption
            why = f"; words no training caption uses: {', '.join(unknown)}" if unknown else ""
        else:
            why = f"; words the model has never seen: {', '.join(unknown)}" if unknown else ""
        raise TextError(f"the text {text!r} names nothing the model knows (understood: nothing{why}); it knows "
                        f"{', '.join(a.replace('_', ' ') for a in model.attributes)} (e.g. 'a smiling man with round "
                        "glasses', 'no hat', 'wearing sunglasses')")
    return u


@torch.no_grad()
def read_images(model: AttributeCLIP, images: Tensor) -> list[Understood]:
    """(B, 3, H, W) in [-1, 1] → per image every attribute's present / absent under the image probe."""
    p = model.image_present(model.encode_image(images.to(model.device, model.dtype))).float().cpu()  # (B, K)
    return [Understood({a: bool(q[k] >= 0.5) for k, a in enumerate(model.attributes)},
                       {a: float(max(q[k], 1 - q[k])) for k, a in enumerate(model.attributes)}) for q in p]


def prototype_decode(model: AttributeCLIP, tok: Tokenizer, texts: Sequence[str], bank: Mapping[str, Mapping[bool, list]],
                     margin: float = 0.02) -> list[dict[str, bool]]:
    """The zero-shot alternative (no probe): per attribute, the text embedding's cosine to the mean embedding of its
    positive phrasings minus that to its negative ones; |difference| > margin names it (on if positive)."""
    with torch.no_grad():
        e = model.encode_text(tok(list(texts)))
        out = [dict() for _ in texts]
        for a, sides in bank.items():
            pos = F.normalize(model.encode_text(tok(sides[True])).mean(0), dim=0)
            neg = F.normalize(model.encode_text(tok(sides[False])).mean(0), dim=0)
            d = e @ pos - e @ neg  # (N,)
            for i, v in enumerate(d.tolist()):
                if abs(v) > margin:
                    out[i][a] = v > 0
    return out
