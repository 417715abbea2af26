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


def test_shipped_judge_is_used_only_for_its_own_designs_and_restricted_to_the_evaluated_characters(tmp_path):
    from types import SimpleNamespace

    from tasks.calligraphy import evaluate as E
    from tasks.calligraphy.judge import save_shipped_judge

    cx, cy, sx, sy = _data()
    judge = C.train_judge(cx, cy, sx, sy, 4, 3, steps=3, batch_size=8, seed=0, width=8)
    card = {"model": "tiny", "styles": ["a", "b", "c"], "chars": "永和九年", "image_size": 16, "steps": 3, "width": 8,
            "seed": 0, "wall_seconds": 0.1, "torch_threads": 1,
            "heldout_check": {"n_glyphs": 4, "style_accuracy": 0.5, "style_accuracy_grouped": 0.75, "n_groups": 2,
                              "content_accuracy": 1.0}}
    save_shipped_judge(judge, tmp_path / "j", card, "python -m tasks.calligraphy.judge --steps 3")
    assert (tmp_path / "j" / "README.md").read_text().count("0.750") == 1
    es = SimpleNamespace(train=["a", "b", "c"], chars=["九", "永"])
    got, info = E.glyph_judge(es, {"judge_steps": 1}, 0, 16, root=str(tmp_path / "cache"), shipped=tmp_path / "j")
    assert info["source"] == str(tmp_path / "j") and info["heldout_check"]["style_accuracy_grouped"] == 0.75
    f, lc, ls = C.judge_batches(got, cx)
    f0, lc0, ls0 = C.judge_batches(judge.half().float(), cx)          # fp16 weights, loaded into fp32
    assert lc.shape == (24, 2) and torch.allclose(lc, lc0[:, [2, 0]]) and torch.allclose(ls, ls0)
    assert E.resolve_judge("none") is None
    with pytest.raises(ValueError, match="judge.safetensors"):
        E.resolve_judge(str(tmp_path / "nothing"))
