"""The glyph judge: its own two-head loop (kept), gen.judge persistence, gen.metrics' Fréchet distance."""
import pytest
import torch

torch.set_num_threads(1)

from gen import metrics as M  # noqa: E402
from tasks.calligraphy import classifier as C  # noqa: E402


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    cx, sx = torch.rand(24, 1, 16, 16, generator=g) * 2 - 1, torch.rand(18, 1, 16, 16, generator=g) * 2 - 1
    return cx, torch.arange(24) % 4, sx, torch.arange(18) % 3


def test_glyph_judge_round_trip_and_determinism(tmp_path):
    cx, cy, sx, sy = _data()
    judge = C.train_judge(cx, cy, sx, sy, 4, 3, steps=3, batch_size=8, seed=0)
    again = C.train_judge(cx, cy, sx, sy, 4, 3, steps=3, batch_size=8, seed=0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in judge.state_dict().items())
    card = C.save_glyph_judge(judge, tmp_path / "j", {"chars": "abcd", "trained_on": "random glyphs"})
    assert card["judge"] == {"class": "GlyphJudge", "init": {"n_chars": 4, "n_styles": 3, "width": 32}, "format": 1}
    loaded, card2 = C.load_glyph_judge(tmp_path / "j")
    assert card2["chars"] == "abcd"
    for a, b in zip(C.judge_batches(judge, cx), C.judge_batches(loaded, cx)):
        assert torch.equal(a, b)
    assert C.frechet_distance is M.frechet_distance  # one implementation, re-exported
    (tmp_path / "j" / "judge.safetensors").unlink()
    torch.save(judge.state_dict(), tmp_path / "j" / "judge.pt")
    with pytest.raises(ValueError, match="pickle"):
        C.load_glyph_judge(tmp_path / "j")
