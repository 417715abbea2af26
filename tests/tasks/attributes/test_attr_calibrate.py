"""Per-attribute guidance calibration: which scale is kept, and where it is written."""
import argparse

import pytest

from tasks.attributes import calibrate
from tasks.attributes.faces import ATTRIBUTES


class _Pipe:
    attributes = ATTRIBUTES
    attribute_scale: dict = {}


def _args(**kw):
    return argparse.Namespace(**{"grid": [1.0, 1.5, 2.0], "target": 0.97, **kw})


def test_first_scale_reaching_the_target_else_the_best(monkeypatch):
    """smile reaches the target at 1.5 (kept even though 2 scores higher); beard never does (its best, 1.5, is kept,
    the smaller of two ties would win); everything else is fine at 1 and not written. Only failing attributes are
    sampled again, each time with their candidate scale set on the pipeline."""
    table = {"smile": {1.0: 0.90, 1.5: 0.98, 2.0: 1.0}, "beard": {1.0: 0.80, 1.5: 0.90, 2.0: 0.85}}
    seen = []

    def fake_accuracy(pipe, judge, names, args):
        seen.append((tuple(names), dict(pipe.attribute_scale)))
        acc = {a: table.get(a, {}).get(pipe.attribute_scale.get(a, 1.0), 1.0) for a in names}
        return {a: {"single": 1.0, "in_combination": v, "score": v} for a, v in acc.items()}

    monkeypatch.setattr(calibrate, "accuracy", fake_accuracy)
    scales, tried = calibrate.calibrate(_Pipe(), None, _args())
    assert scales == {"smile": 1.5, "beard": 1.5}
    assert {s: v["score"] for s, v in tried["smile"].items()} == {"1.0": 0.90, "1.5": 0.98}
    assert list(tried["glasses"]) == ["1.0"]
    assert seen[0] == (ATTRIBUTES, {}) and seen[1] == (("smile", "beard"), {"smile": 1.5, "beard": 1.5})
    assert seen[2] == (("beard",), {"beard": 2.0})
    with pytest.raises(ValueError, match="start at 1"):
        calibrate.calibrate(_Pipe(), None, _args(grid=[1.5, 2.0]))


def test_calibration_prompts_are_singles_and_seen_combinations(monkeypatch):
    """Each attribute is scored on "a", "a = off" and 3-attribute prompts that contain it, never a held-out
    combination; the score is the smaller of the single-prompt and in-combination accuracies."""
    from tasks.attributes.faces import is_heldout

    got = {}

    def fake_generate(pipe, prompts, n_per, args):
        got["prompts"] = prompts
        return prompts

    def fake_judge(judge, prompts, expects, n_per):
        return [0.5 if len(p) == 3 else 1.0 for p in prompts]

    monkeypatch.setattr(calibrate, "generate", fake_generate)
    monkeypatch.setattr(calibrate, "judge_all_correct", fake_judge)
    acc = calibrate.accuracy(_Pipe(), None, ["smile", "hat"], argparse.Namespace(seed=1, n_combos=3, n_per=2))
    assert acc["smile"] == {"single": 1.0, "in_combination": 0.5, "score": 0.5}
    prompts = got["prompts"]
    assert prompts[:2] == [[("smile", True, None)], [("smile", False, None)]] and len(prompts) == 2 * (2 + 3)
    combos = [tuple(a for a, _, _ in p) for p in prompts if len(p) == 3]
    assert all(not is_heldout(c) for c in combos)
    assert all("smile" in c for c in combos[:3]) and all("hat" in c for c in combos[3:])


def test_calibration_prompts_are_disjoint_from_the_evaluation(monkeypatch):
    from tasks.attributes import evaluate

    asked = []

    def fake_generate(pipe, prompts, n_per, args, mode="composed"):
        asked.extend(prompts)
        import torch
        return torch.zeros(len(prompts) * n_per, 3, 32, 32)

    monkeypatch.setattr(calibrate, "generate", fake_generate)
    monkeypatch.setattr(calibrate, "judge_all_correct", lambda judge, x, expects, n: [1.0] * len(expects))
    calibrate.accuracy(_Pipe(), None, list(ATTRIBUTES), _args(seed=1, n_combos=6, n_per=1))
    triples = {tuple(sorted(a for a, _, _ in p)) for p in asked if len(p) == 3}
    assert triples and not triples & evaluate.evaluation_triples(0, 8)
    with pytest.raises(ValueError, match="evaluation's sampling seed"):
        calibrate.accuracy(_Pipe(), None, ["smile"], _args(seed=0, n_combos=2, n_per=1))
