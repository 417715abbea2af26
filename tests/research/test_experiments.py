"""The research experiments (`research.experiments`) in their --quick variants: each runs end to end into a temp folder and
its results.json is checked for the contracts the full runs rely on (closed forms vs numerics, monotonicity, what is
reported as not computed)."""
import json
import math

import pytest
import torch

from research.experiments import EXPERIMENTS
from research.experiments.__main__ import main
from research.experiments.common import make_schedule
from research.experiments.embeddings import one_nn_accuracy
from research.experiments.scale_linearity import empirical_optimal_eps
from research.experiments.single_image import optimal_eps, prior_gap_closed_form


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("exp_cache"))  # judge + shared model trained once for the module


def run_exp(name, tmp_path, cache):
    out = tmp_path / name
    main([name, "--quick", "--out", str(out), "--cache", cache])
    r = json.loads((out / "results.json").read_text())
    assert r["experiment"] == name and r["quick"] is True
    readme = (out / "README.md").read_text()
    assert "python -m research.experiments " + name in readme and "## Conclusion" in readme
    return r, out


def test_prior_gap_decreases_with_T_and_with_centering(tmp_path, cache):
    r, out = run_exp("prior_gap", tmp_path, cache)
    kl = r["kl_per_dim"]["linear_fixed"]
    for p in ("raw", "global", "class", "global_scaled"):
        assert all(a > b for a, b in zip(kl[p], kl[p][1:])), p      # KL falls with T on the un-rescaled schedule
    for i in range(len(r["T"])):
        if kl["raw"][i] > 1e-12:
            assert kl["class"][i] < kl["global"][i] < kl["raw"][i] < kl["global_scaled"][i]
    fb = r["first_T_below_threshold"]["linear_fixed"]
    assert fb["class"] <= fb["global"] <= fb["raw"]
    m = r["second_moment_E_x0_sq"]
    assert m["global_scaled"] == pytest.approx(1.0, rel=1e-3)
    assert (out / "prior_gap.png").stat().st_size > 1000


def test_single_image_closed_forms_match_numerics(tmp_path, cache):
    r, _ = run_exp("single_image", tmp_path, cache)
    for row in r["prior_gap"]:
        assert row["closed_form"] == pytest.approx(row["prior_kl"], rel=1e-9, abs=1e-15)
        if row["closed_form"] > 0.05:   # Monte Carlo resolves it (its own error is ~ d/n)
            assert row["monte_carlo"] == pytest.approx(row["closed_form"], rel=0.05)
    assert r["max_abs_error_eps_star_vs_true_eps"] < 1e-10
    assert r["one_step_ddim_with_eps_star_max_error"] < 1e-4
    per_t = r["trained"]["per_t"]
    # zero-initialised output has relative error exactly 1; a few steps on one image already beat that on average
    assert sum(p["eps_rel_error"] for p in per_t) / len(per_t) < 1.0


def test_single_image_formulas_directly():
    s = make_schedule("linear_fixed", 30)
    x_star = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    ab = s.alpha_bar[-1].item()
    assert prior_gap_closed_form(x_star, ab) == pytest.approx(s.prior_kl(x_star).item(), rel=1e-9)
    t = torch.tensor([0, 10, 29])
    eps = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    x_t = s.q_sample(x_star.double().expand(3, -1, -1, -1), t, eps)
    assert torch.allclose(optimal_eps(x_t, t, x_star.double(), s), eps, atol=1e-10)


def test_empirical_optimum_is_linear_only_at_high_noise():
    s = make_schedule("cosine", 100)
    data = torch.rand(20, 1, 8, 8) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def rel(t):  # ‖ε*(2 x_t) − 2 ε*(x_t)‖ / ‖2 ε*(x_t)‖ for x_t ~ q(x_t | x_0), x_0 from the data
        t = torch.full((4,), t)
        x = s.q_sample(data[:4], t, noise)
        e = lambda x: empirical_optimal_eps(x, t, data, s)
        return ((e(2 * x) - 2 * e(x)).norm() / (2 * e(x)).norm()).item()
    assert rel(99) < 0.01 and rel(1) > 1.0


def test_one_nn_two_sample_accuracy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 3, generator=g).numpy()
    assert one_nn_accuracy(a, a + 100) == 1.0
    b = torch.randn(50, 3, generator=g).numpy()
    assert 0.25 < one_nn_accuracy(a, b) < 0.75


def test_centering_runs_and_class_centering_gives_class_mean(tmp_path, cache):
    r, out = run_exp("centering", tmp_path, cache)
    assert {(x["T"], x["centering"]) for x in r["runs"]} == {(T, m) for T in (50, 1000)
                                                              for m in ("raw", "global", "class")}
    for x in r["runs"]:
        assert 0 <= x["accuracy"] <= 1 and x["frechet_digits_features"] >= 0 and math.isfinite(x["final_loss"])
    # per-class centering hands the sampler the class mean: even an untrained model is mostly "right"
    assert r["untrained_baseline"]["class"]["accuracy"] > r["untrained_baseline"]["raw"]["accuracy"] + 0.3
    kl = {(x["T"], x["centering"]): x["prior_kl_per_dim"] for x in r["runs"]}
    assert kl[(50, "class")] < kl[(50, "raw")] and kl[(1000, "raw")] < kl[(50, "raw")]
    assert (out / "samples.png").exists() and (out / "centering.png").exists()


def test_ddim_table_rows(tmp_path, cache):
    r, out = run_exp("ddim_table", tmp_path, cache)
    rows = r["rows"]
    assert sorted({(x["sampler"], x["eta"]) for x in rows}, key=str) == sorted(
        {("ddim", 0.0), ("ddim", 0.5), ("ddim", 1.0), ("dpm++", None)}, key=str)
    assert len(rows) == 3 * 2 + 2 and all(x["seconds_per_sample"] > 0 for x in rows)
    assert "DPM-Solver++" in (out / "README.md").read_text()


def test_embeddings_figures(tmp_path, cache):
    r, out = run_exp("embeddings", tmp_path, cache)
    for f in ("tsne.png", "umap.png", "class_means.png"):
        assert (out / f).stat().st_size > 1000
    assert set(r["one_nn_two_sample_accuracy"]) == {"pixels", "features"}
    assert all(0 <= v <= 1 for v in r["one_nn_two_sample_accuracy"].values())
    assert len(r["class_mean_rmse_real_vs_generated"]) == 10


def test_scale_linearity(tmp_path, cache):
    r, _ = run_exp("scale_linearity", tmp_path, cache)
    ref = r["rel_error_empirical_optimum"]
    assert max(ref["999"]) < 0.05 < min(ref["0"])     # the optimum is linear only where noise dominates
    assert all(v >= 0 for vs in r["rel_error_model"].values() for v in vs)


def test_metrics_unavailable_without_weights(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("GEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GEN_LPIPS_WEIGHTS", raising=False)
    r, out = run_exp("metrics", tmp_path, cache)
    assert r["lpips"]["value"] is None and r["fid_inception"]["value"] is None
    assert "not computed" in (out / "README.md").read_text()
    for d in r["pair_metrics"].values():
        for m in d.values():
            assert -1 <= m["ssim"] <= 1 and m["rmse"] > 0 and m["l1"] > 0


def test_cli_rejects_unknown_experiment(tmp_path):
    with pytest.raises(SystemExit):
        main(["nope", "--out", str(tmp_path)])
    assert len(EXPERIMENTS) == 7


def test_digits_judge_is_cached_as_a_gen_judge_folder(tmp_path):
    import os

    from gen.judge import read_card
    from research.experiments.common import Context, get_judge

    ctx = Context(out=str(tmp_path / "out"), quick=True, cache=str(tmp_path / "cache"))
    judge, acc = get_judge(ctx)
    folder = os.path.join(ctx.cache, "judge_digits8_seed0_quick")
    card = read_card(folder)
    assert card["heldout_accuracy"] == acc and card["judge"]["class"] == "DigitsJudge" and card["steps"] == 150
    again, acc2 = get_judge(ctx)  # loaded from the folder
    assert acc2 == acc and all(torch.equal(v, again.state_dict()[k]) for k, v in judge.state_dict().items())
