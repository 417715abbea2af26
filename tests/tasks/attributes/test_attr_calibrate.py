"""Guidance calibration (W and per-attribute scales): which values are kept, where they are written, and that the
prompts and seeds it samples are disjoint from every prompt and seed the evaluation uses."""
import argparse
import json

import pytest
import torch

from tasks.attributes import calibrate, evaluate
from tasks.attributes.faces import ATTRIBUTES, is_heldout


class _Pipe:
    attributes = ATTRIBUTES

    def __init__(self):
        self.attribute_scale = {}


def _args(**kw):
    return argparse.Namespace(**{"grid": [1.0, 1.5, 2.0], "target": 0.97, "guidance": 6.0, "seed": 1000, "n_pairs": 2,
                                 "n_combos": 2, "n_per": 1, "batch": 16, **kw})


def _fake_accuracy(table, seen=None):
    def fake(pipe, judge, names, args):
        if seen is not None:
            seen.append((tuple(names), dict(pipe.attribute_scale), args.guidance))
        acc = {a: table(a, pipe.attribute_scale.get(a, 1.0), args.guidance) for a in names}
        return {a: {"paired": 1.0, "in_combination": v, "score": v} for a, v in acc.items()}
    return fake


def test_first_scale_reaching_the_target_else_the_best(monkeypatch):
    """smile reaches the target at 1.5 (kept even though 2 scores higher); beard never does (its best, 1.5, is kept,
    the smaller of two ties would win); everything else is fine at 1 and not written. Only failing attributes are
    sampled again, each time with their candidate scale set on the pipeline."""
    table = {"smile": {1.0: 0.90, 1.5: 0.98, 2.0: 1.0}, "beard": {1.0: 0.80, 1.5: 0.90, 2.0: 0.85}}
    seen = []
    monkeypatch.setattr(calibrate, "accuracy", _fake_accuracy(lambda a, s, w: table.get(a, {}).get(s, 1.0), seen))
    scales, tried = calibrate.calibrate(_Pipe(), None, _args())
    assert scales == {"smile": 1.5, "beard": 1.5}
    assert {s: v["score"] for s, v in tried["smile"].items()} == {"1.0": 0.90, "1.5": 0.98}
    assert list(tried["glasses"]) == ["1.0"]
    assert seen[0][:2] == (ATTRIBUTES, {}) and seen[1][:2] == (("smile", "beard"), {"smile": 1.5, "beard": 1.5})
    assert seen[2][:2] == (("beard",), {"beard": 2.0})
    with pytest.raises(ValueError, match="start at 1"):
        calibrate.calibrate(_Pipe(), None, _args(grid=[1.5, 2.0]))


def test_guidance_is_the_smallest_w_where_every_attribute_reaches_the_target(monkeypatch):
    """W = 4.5 leaves smile short at every scale, 6 reaches it with scale 1.5, 7.5 at scale 1: 6 is kept (the smallest
    that reaches), with its own scales; without any W reaching, the best lowest score wins."""
    def table(a, s, w):
        if a != "smile":
            return 1.0
        return {4.5: 0.8, 6.0: 0.9 if s == 1.0 else 0.98, 7.5: 0.99}[w]
    seen = []
    monkeypatch.setattr(calibrate, "accuracy", _fake_accuracy(table, seen))
    pipe = _Pipe()
    w, scales, by_w = calibrate.choose_guidance(pipe, None, _args(guidance_grid=[4.5, 6.0, 7.5]))
    assert w == 6.0 and scales == {"smile": 1.5} and pipe.attribute_scale == {"smile": 1.5}
    assert by_w["7.5"]["attribute_scale"] == {} and by_w["4.5"]["all_reach_target"] is False
    assert {g for _, _, g in seen} == {4.5, 6.0, 7.5}
    monkeypatch.setattr(calibrate, "accuracy", _fake_accuracy(lambda a, s, w: 0.5 + w / 100 if a == "hat" else 1.0))
    w, _, by_w = calibrate.choose_guidance(_Pipe(), None, _args(guidance_grid=[4.5, 6.0]))
    assert w == 6.0 and not any(v["all_reach_target"] for v in by_w.values())
    with pytest.raises(ValueError, match="increasing"):
        calibrate.choose_guidance(_Pipe(), None, _args(guidance_grid=[6.0, 4.5]))


def test_write_scales_and_guidance(tmp_path):
    (tmp_path / "pipeline.json").write_text(json.dumps({"sampling": {"steps": 20, "guidance": 6.0},
                                                         "task_config": {"size": 32}}))
    calibrate.write_scales(str(tmp_path), {"smile": 2.0}, 7.5)
    cfg = json.loads((tmp_path / "pipeline.json").read_text())
    assert cfg["sampling"] == {"steps": 20, "guidance": 7.5}
    assert cfg["task_config"] == {"size": 32, "attribute_scale": {"smile": 2.0}}
    calibrate.write_scales(str(tmp_path), {})
    assert json.loads((tmp_path / "pipeline.json").read_text())["sampling"]["guidance"] == 7.5


def test_calibration_prompts_are_pairs_and_seen_triples(monkeypatch):
    """Each attribute is scored on "a & ~b", "~a & b" and 3-attribute prompts that contain it, never a held-out
    combination; the score is the smaller of the pair and in-combination accuracies."""
    got = {}

    def fake_generate(pipe, prompts, n_per, args):
        got["prompts"] = prompts
        return prompts

    def fake_judge(judge, prompts, expects, n_per):
        return [0.5 if len(p) == 3 else (1.0 if p[0][1] else 0.75) for p in prompts]

    monkeypatch.setattr(calibrate, "generate", fake_generate)
    monkeypatch.setattr(calibrate, "judge_all_correct", fake_judge)
    acc = calibrate.accuracy(_Pipe(), None, ["smile", "hat"], _args(n_combos=3))
    assert acc["smile"] == {"paired": 0.875, "present_in_pair": 1.0, "absent_in_pair": 0.75, "in_combination": 0.5,
                            "score": 0.5}
    prompts = got["prompts"]
    assert len(prompts) == 2 * (2 + 2 + 3)
    assert [(p[0][0], p[0][1], p[1][1]) for p in prompts[:4]] == [("smile", True, False)] * 2 + [("smile", False, True)] * 2
    combos = [tuple(a for a, _, _ in p) for p in prompts if len(p) == 3]
    assert all(not is_heldout(c) for c in combos)
    assert all("smile" in c for c in combos[:3]) and all("hat" in c for c in combos[3:])


def test_evaluation_prompts_are_exactly_what_the_evaluation_asks(monkeypatch):
    """evaluate.evaluation_prompts (what the calibration avoids) lists the prompts evaluate_model really samples, at
    the full and the --quick settings."""
    for n_combos in (evaluate.FULL_N_COMBOS, evaluate.QUICK_N_COMBOS):
        asked = []

        def fake_generate(pipe, prompts, n_per, args, mode="composed"):
            asked.extend(evaluate.prompt_key(p) for p in prompts)
            return torch.zeros(len(prompts) * n_per, 3, 4, 4)

        class P:
            negation = "off"
        monkeypatch.setattr(evaluate, "generate", fake_generate)
        monkeypatch.setattr(evaluate, "judge_all_correct", lambda judge, x, expects, n: [1.0] * len(expects))
        evaluate.evaluate_model(P(), None, argparse.Namespace(seed=0, n_combos=n_combos, n_per=1), full=True)
        listed = {evaluate.prompt_key(p) for ps in evaluate.evaluation_prompts(0, n_combos).values() for p in ps}
        assert set(asked) == listed and listed <= evaluate.evaluation_prompt_keys(0)
    # the region prompts are keyed by their region, so "a@eyes" and "a" are different prompts
    assert evaluate.prompt_key([("hat", True, "top")]) != evaluate.prompt_key([("hat", True, None)])


def test_calibration_prompts_and_seeds_are_disjoint_from_the_evaluation(monkeypatch):
    asked = []

    def fake_generate(pipe, prompts, n_per, args, mode="composed"):
        asked.extend(prompts)
        return torch.zeros(len(prompts) * n_per, 3, 32, 32)

    monkeypatch.setattr(calibrate, "generate", fake_generate)
    monkeypatch.setattr(calibrate, "judge_all_correct", lambda judge, x, expects, n: [1.0] * len(expects))
    for seed in (1000, 1001, 1999):
        calibrate.accuracy(_Pipe(), None, list(ATTRIBUTES), _args(seed=seed, n_pairs=8, n_combos=28))
    keys = {evaluate.prompt_key(p) for p in asked}
    assert len(keys) > 100 and not keys & evaluate.evaluation_prompt_keys(0)
    # the evaluation's own prompts of every kind are in the avoided set
    avoid = evaluate.evaluation_prompt_keys(0)
    assert evaluate.prompt_key([("smile", True, None)]) in avoid
    assert any(len(k) == 2 and {on for _, on, _ in k} == {True, False} for k in avoid)  # its NOT pairs
    # seeds: the calibration refuses the evaluation's, and its noise generators never meet the evaluation's
    for bad in (0, 1, 999, 2000):
        with pytest.raises(ValueError, match="calibration range"):
            calibrate.accuracy(_Pipe(), None, ["smile"], _args(seed=bad))
    evaluate.check_disjoint_seeds(1000, 10**6)
    assert not set(evaluate.noise_seeds(1000, 5000)) & (set(evaluate.noise_seeds(0, 5000))
                                                         | set(evaluate.noise_seeds(1, 5000)))
    with pytest.raises(ValueError, match="at most"):
        evaluate.noise_seeds(1000, 2 * evaluate.SEED_STRIDE)
    with pytest.raises(SystemExit):
        calibrate.main(["--seed", "0", "--classifier", "/nonexistent"])


def test_evaluation_refuses_calibration_seeds():
    with pytest.raises(SystemExit, match="calibration"):
        evaluate.parse_args(["--seed", "1000"])
    with pytest.raises(SystemExit, match="calibration"):
        evaluate.parse_args(["--seed", "999"])  # its edit-strength selection would sample seed 1000
    assert evaluate.parse_args(["--seed", "0"])[0].seed == 0
