"""Attribute evaluation plumbing: a judge trained on another face rendering is replaced, and baselines are reused from
an earlier report only when model, checkpoint, judge and sampling settings all match."""
import json

import pytest
import torch

from tasks.attributes import evaluate
from tasks.attributes.classifier import train_classifier
from tasks.attributes.faces import CACHE_VERSION
from tasks.attributes.model import AttributeModel
from tasks.attributes.pipeline import DEFAULT_GUIDANCE, AttributesPipeline

TINY = ["--steps", "2", "--n-per", "1", "--n-combos", "1", "--batch", "16", "--scratch-model", "/nonexistent"]


def _tiny_judge(out, **_):
    return train_classifier(out, steps=4, n_train=32, n_eval=16, log=lambda *_: None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("attr_eval")
    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50}}).save_pretrained(str(d / "model"), card="# tiny\n")
    _tiny_judge(str(d / "judge"))
    return d


def test_judge_card_records_rendering_and_a_stale_judge_is_retrained(setup, tmp_path, monkeypatch):
    judge = tmp_path / "judge"
    _tiny_judge(str(judge))
    card = json.loads((judge / "classifier.json").read_text())
    assert card["render_version"] == CACHE_VERSION
    card["render_version"] = CACHE_VERSION - 1
    (judge / "classifier.json").write_text(json.dumps(card))
    calls = []
    monkeypatch.setattr(evaluate, "train_classifier", lambda out, **kw: calls.append(out) or _tiny_judge(out))
    m = str(setup / "model")
    evaluate.main(["--model", m, "--joint-model", m, "--classifier", str(judge), "--baselines-only",
                   "--out", str(tmp_path / "r.json")] + TINY)
    assert calls == [str(judge)]
    assert json.loads((judge / "classifier.json").read_text())["render_version"] == CACHE_VERSION
    if CACHE_VERSION == 1:  # judges from before the key existed were trained on rendering 1: kept
        card = json.loads((judge / "classifier.json").read_text())
        del card["render_version"]
        (judge / "classifier.json").write_text(json.dumps(card))
        evaluate.main(["--model", m, "--joint-model", m, "--classifier", str(judge), "--baselines-only",
                       "--out", str(tmp_path / "r.json")] + TINY)
        assert calls == [str(judge)]


def test_baselines_are_reused_only_when_everything_matches(setup, tmp_path):
    m, j = str(setup / "model"), str(setup / "judge")
    first = evaluate.main(["--model", m, "--joint-model", m, "--classifier", j, "--baselines-only",
                           "--out", str(tmp_path / "a.json")] + TINY)
    joint = first["baselines"]["joint_model_no_attribute_dropout"]
    assert "per_attribute_accuracy" in joint and "targets" not in first
    assert first["baselines"]["from_scratch"]["skipped"].startswith("no run")
    full = evaluate.main(["--model", m, "--joint-model", m, "--classifier", j, "--reuse-baselines",
                          str(tmp_path / "a.json"), "--out", str(tmp_path / "b.json"), "--guidance-sweep", "3"] + TINY)
    got = full["baselines"]["joint_model_no_attribute_dropout"]
    sweep = full["guidance_sweep"]["3.0"]
    assert set(sweep["per_attribute_accuracy"]) == set(full["per_attribute_accuracy"])
    assert full["settings"]["guidance"] == DEFAULT_GUIDANCE and set(sweep["all_correct"]["seen"]) == {"1", "3"}
    assert got["reused_from"] == str(tmp_path / "a.json")
    assert got["per_attribute_accuracy"] == joint["per_attribute_accuracy"] and "targets" in full
    # Other sampling settings: nothing is reused.
    other = evaluate.main(["--model", m, "--joint-model", m, "--classifier", j, "--reuse-baselines",
                           str(tmp_path / "a.json"), "--out", str(tmp_path / "c.json"), "--seed", "1"] + TINY)
    assert "reused_from" not in other["baselines"]["joint_model_no_attribute_dropout"]


def test_calibrated_scales_are_used_recorded_and_ablated(setup, tmp_path):
    """A model with a per-attribute scale: its prompts (now with unequal weights) are sampled in weight groups, the
    scale is part of the model's info (so a baseline evaluated before a calibration is not reused after it), and
    --ablate scores the model without the scales and with dpm++."""
    import shutil

    from tasks.attributes.calibrate import write_scales

    m, j = str(tmp_path / "model"), str(setup / "judge")
    shutil.copytree(setup / "model", m)
    before = evaluate.main(["--model", m, "--joint-model", m, "--classifier", j, "--baselines-only",
                            "--out", str(tmp_path / "a.json")] + TINY)
    write_scales(m, {"smile": 2.0})
    r = evaluate.main(["--model", m, "--joint-model", m, "--classifier", j, "--reuse-baselines",
                       str(tmp_path / "a.json"), "--ablate", "--out", str(tmp_path / "b.json")] + TINY)
    assert r["model_info"]["attribute_scale"] == {"smile": 2.0}
    assert before["baselines"]["joint_model_no_attribute_dropout"]["model_info"]["attribute_scale"] == {}
    assert "reused_from" not in r["baselines"]["joint_model_no_attribute_dropout"]
    assert r["ablation"]["settings"]["attribute_scale"] == {"smile": 2.0}
    assert set(r["ablation"]["without_attribute_scale"]["per_attribute_accuracy"]) == set(r["per_attribute_accuracy"])
    assert "all_correct" in r["ablation"]["scheduler_dpm++"]
