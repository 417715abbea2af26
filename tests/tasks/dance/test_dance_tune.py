"""tasks.dance.tune: the tuning set is disjoint from the evaluation's, the choice rule, --write; evaluate samples
with the model's own settings unless told otherwise."""
import json

import pytest

from tasks.dance import evaluate as E
from tasks.dance import realset, tune
from tasks.dance.data import HELDOUT_SEEDS


def test_tuning_set_is_disjoint_from_the_evaluation():
    assert not set(tune.TUNING_SEEDS) & set(HELDOUT_SEEDS)
    assert min(tune.TUNING_SEEDS) > 100_000                       # training songs are 0 … num_songs − 1
    eval_pkgs = {c[1] for c in realset.REAL_CLIPS}
    assert not {c[1] for c in realset.TUNING_CLIPS} & eval_pkgs    # another package (composer) altogether
    with pytest.raises(ValueError, match="unknown clip"):
        realset.clip_audio("a7xpg_bgm1", table=realset.TUNING_CLIPS)


def _rep(bas=0.6, other=0.4, lifts=2.0, travel=1.5, pelvis=0.015, corr=0.25, still=0.5):
    return {"real": dict(bas_fact=bas, bas_other_song=other, lifts_per_bar=lifts, travel_per_30s=travel,
                         pelvis_vertical_std=pelvis, energy_loudness_corr=corr),
            "silence_probe": {"stillness_ratio": still}}


def test_ratios_are_value_over_target():
    r = tune.ratios(_rep(), {})
    assert r["bas_gap"] == pytest.approx(0.2 / 0.15) and r["pelvis"] == pytest.approx(0.5)
    assert r["loudness"] == pytest.approx(0.5) and r["stillness"] == pytest.approx(0.5)


def test_write_choice_updates_only_the_sampling(tmp_path):
    (tmp_path / "pipeline.json").write_text(json.dumps({"task": "dance", "sampling": {"steps": 20, "guidance": 1.0,
                                                                                      "scheduler": "ddim"}}))
    tune.write_choice(str(tmp_path), {"scheduler": "ddim-eta", "guidance": 1.5, "steps": 20})
    meta = json.loads((tmp_path / "pipeline.json").read_text())
    assert meta == {"task": "dance", "sampling": {"steps": 20, "guidance": 1.5, "scheduler": "ddim-eta"}}
    with pytest.raises(ValueError, match="pipeline folder"):
        tune.write_choice(str(tmp_path / "missing"), {"scheduler": "ddim", "guidance": 1.0})


def test_tune_cli_refuses_bad_guidance(capsys):
    assert tune.main(["--guidance", "0"]) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_evaluate_cli_samples_with_the_models_settings(monkeypatch, tmp_path):
    seen = {}

    def fake(model, previous, songs, seed, compare, threads, cli_timing=True, world="v2", **kw):
        seen.update(kw, songs=songs, world=world)
        raise ValueError("stop here")
    monkeypatch.setattr(E, "evaluate", fake)
    assert E.main(["--out", str(tmp_path / "r.json")]) == 2
    assert seen == {"songs": 16, "world": "v2"}                    # no sampler / guidance / steps forced on the model
    assert E.main(["--quick", "--guidance", "2", "--out", str(tmp_path / "r.json")]) == 2
    assert seen == {"songs": 4, "world": "v2", "steps": 10, "guidance": 2.0}
