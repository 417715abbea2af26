"""The schedule and samplers against diffusers' DDPMScheduler / DDIMScheduler, their closed forms, and the sampler
registry (one name, one sampler)."""
import importlib.util

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from gen.sampling import (ddim_step, ddpm_step, make_diffusers_scheduler, make_timesteps, sample, sample_ddim,
                          sample_ddpm, sample_diffusers)
from gen.schedule import DataCentering, DiffusionSchedule, make_betas


@pytest.mark.parametrize("kind", ["linear", "cosine", "sigmoid"])
@pytest.mark.parametrize("T", [10, 50, 100, 1000])
def test_schedules_reach_noise_for_any_T(kind, T):
    s = DiffusionSchedule.make(kind, T)
    assert s.T == T and (s.betas > 0).all() and (s.betas < 1).all()
    assert s.alpha_bar[-1] < 0.01, f"ᾱ_T = {s.alpha_bar[-1]:.3f} for {kind} at T={T}"


def test_linear_equals_diffusers_at_T1000_and_fixes_small_T():
    ours = make_betas("linear", 1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").betas.double()
    assert torch.allclose(ours, ref, atol=1e-7)
    cos = make_betas("cosine", 1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").betas.double()
    assert torch.allclose(cos, ref, atol=1e-6)
    # diffusers' plain linear schedule leaves ᾱ_T ≈ 0.36 at T = 100; ours ≈ 0
    plain = DDPMScheduler(num_train_timesteps=100, beta_schedule="linear").alphas_cumprod[-1]
    assert plain > 0.3 and DiffusionSchedule.make("linear", 100).alpha_bar[-1] < 1e-3


def test_q_sample_moments():
    s = DiffusionSchedule.make("cosine", 200)
    x0 = torch.full((200_000, 1), 0.7)
    t = torch.full((200_000,), 120)
    x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    ab = s.alpha_bar[120].item()
    assert abs(x_t.mean().item() - ab ** 0.5 * 0.7) < 5e-3
    assert abs(x_t.var().item() - (1 - ab)) < 5e-3


def test_parameterisation_round_trips():
    s = DiffusionSchedule.make("linear", 100)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 3, 4, 4, generator=g)
    t = torch.randint(0, 100, (8,), generator=g)
    x_t = s.q_sample(x0, t, eps)
    assert torch.allclose(s.eps_to_x0(x_t, t, eps), x0, atol=1e-4)
    assert torch.allclose(s.x0_to_eps(x_t, t, x0), eps, atol=1e-3)
    v = s.v_target(x0, t, eps)
    assert torch.allclose(s.v_to_eps(x_t, t, v), eps, atol=1e-5)
    assert torch.allclose(s.v_to_x0(x_t, t, v), x0, atol=1e-5)
    for p, target in [("epsilon", eps), ("v_prediction", v), ("sample", x0)]:
        e, x = s.split_prediction(s.training_target(x0, t, eps, p), x_t, t, p)
        assert torch.allclose(e, eps, atol=1e-3) and torch.allclose(x, x0, atol=1e-4)
    # the posterior mean in both forms agrees
    assert torch.allclose(s.posterior_mean(x_t, x0, t), s.posterior_mean_eps(x_t, eps, t), atol=1e-4)


@pytest.mark.parametrize("T,n", [(1000, 1000), (1000, 50), (100, 10)])
def test_ddpm_step_matches_diffusers(T, n):
    s = DiffusionSchedule.make("linear", T)
    ref = DDPMScheduler(num_train_timesteps=T, trained_betas=s.betas.float().numpy(), clip_sample=False,
                        variance_type="fixed_small")
    ref.set_timesteps(n)
    g = torch.Generator().manual_seed(0)
    x, eps = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(2))
    for t in [int(ref.timesteps[0]), int(ref.timesteps[len(ref.timesteps) // 2]), int(ref.timesteps[-1])]:
        prev = t - T // n
        # diffusers draws its noise from the generator; draw the same z for our step
        out_ref = ref.step(eps, t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        noise_ref = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        ours = ddpm_step(eps, x, t, prev, s, noise_ref if prev >= 0 else None)
        assert torch.allclose(ours, out_ref, atol=1e-5), (t, (ours - out_ref).abs().max())


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("T,n", [(1000, 50), (1000, 10), (100, 20)])
def test_ddim_step_matches_diffusers(eta, T, n):
    s = DiffusionSchedule.make("cosine", T)
    ref = DDIMScheduler(num_train_timesteps=T, trained_betas=s.betas.float().numpy(), clip_sample=False,
                        set_alpha_to_one=True)
    ref.set_timesteps(n)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    for t in [int(ref.timesteps[0]), int(ref.timesteps[3]), int(ref.timesteps[-1])]:
        prev = t - T // n
        want = ref.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
        got = ddim_step(eps, x, t, prev, s, eta, z)
        assert torch.allclose(got, want, atol=1e-5), (eta, t, (got - want).abs().max())


def test_timesteps_spacing():
    assert make_timesteps(1000, 10, "leading") == list(range(900, -1, -100))
    tr = make_timesteps(1000, 10, "trailing")
    assert tr[0] == 999 and tr[-1] == 99 and len(tr) == 10
    with pytest.raises(ValueError, match="steps"):
        make_timesteps(10, 20)


class Oracle:
    """The exact ε-predictor when the data is a single point x*: ε = (x_t − √ᾱ_t x*)/√(1−ᾱ_t), with ᾱ interpolated at
    fractional timesteps. Every correct sampler must land on x*. Sigma-space schedulers (Euler, Heun, LMS…) hand the
    model scale_model_input(x) = x/√(σ²+1), which is x_t in DDPM space, so the same oracle serves them."""

    def __init__(self, s, x_star):
        self.ab = s.alpha_bar.float()
        self.x = x_star

    def __call__(self, x_t, t):
        t = t.float().clamp(0, len(self.ab) - 1)
        lo = t.floor().long()
        hi = (lo + 1).clamp(max=len(self.ab) - 1)
        ab = (self.ab[lo] + (t - lo) * (self.ab[hi] - self.ab[lo])).view(-1, *[1] * (x_t.ndim - 1))
        return (x_t - ab.sqrt() * self.x) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler,kw", [("ancestral", {}), ("ancestral", {"steps": 40}), ("ddim-eta", {"eta": 0.0}),
                                        ("ddim-eta", {"eta": 1.0})])
def test_our_samplers_recover_single_point_data(sampler, kw):
    s = DiffusionSchedule.make("linear", 200)
    x_star = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    if sampler == "ancestral":
        x = sample_ddpm(Oracle(s, x_star), (2, 1, 4, 4), s, generator=g, **kw)
    else:
        x = sample_ddim(Oracle(s, x_star), (2, 1, 4, 4), s, steps=20, generator=g, **kw)
    assert torch.allclose(x, x_star.expand_as(x), atol=2e-2), (x - x_star).abs().max()


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm++", "unipc", "euler", "euler_a", "heun", "pndm", "deis", "lms"])
def test_any_diffusers_scheduler_recovers_single_point_data(name):
    s = DiffusionSchedule.make("cosine", 100)
    x_star = torch.tensor([0.5, -0.3, 0.9, -0.9]).view(1, 1, 2, 2)
    x = sample_diffusers(Oracle(s, x_star), (3, 1, 2, 2), s, scheduler=name, steps=25,
                         generator=torch.Generator().manual_seed(0))
    # 25 steps of a multistep solver (PNDM, DEIS) on the cosine schedule land within ~0.06 of x*; the rest within 0.05
    assert (x - x_star).abs().max() < 0.08, (name, (x - x_star).abs().max())


def test_unknown_scheduler_lists_accepted():
    with pytest.raises(ValueError, match="accepted"):
        make_diffusers_scheduler("nope", DiffusionSchedule.make("linear", 10))


def test_centering_round_trip_and_prior_gap():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 1, 4, 4, generator=g) * 0.1 + labels.view(-1, 1, 1, 1).float()
    for mode in ["global", "class"]:
        c = DataCentering(mode, scale=True).fit(x, labels, 3)
        y = c.center(x, labels)
        assert torch.allclose(c.uncenter(y, labels), x, atol=1e-5)
        assert abs(y.std().item() - 1) < 0.05
    s = DiffusionSchedule.make("linear", 20)
    raw = s.prior_kl(x).mean()
    centred = s.prior_kl(DataCentering("class").fit(x, labels, 3).center(x, labels)).mean()
    assert centred < raw
    with pytest.raises(ValueError, match="accepted"):
        DataCentering("bogus")


class VOracle(Oracle):
    """The same exact predictor, parameterised as v = √ᾱ ε − √(1−ᾱ) x_0."""

    def __call__(self, x_t, t):
        eps = super().__call__(x_t, t)
        ab = self.ab[t.long()].view(-1, *[1] * (x_t.ndim - 1))
        return ab.sqrt() * eps - (1 - ab).sqrt() * self.x


@pytest.mark.parametrize("sampler", ["ancestral", "ddim-eta", "dpm++"])
def test_v_prediction_sampling_is_exact_at_zero_terminal_snr(sampler):
    # cosine at T = 1000 ends at ᾱ ≈ 1e-9: an ε-parameterised x̂_0 = (x_t − √(1−ᾱ)ε)/√ᾱ is ill-conditioned there,
    # the v-parameterisation is not; our loops take x̂_0 from v directly
    s = DiffusionSchedule.make("cosine", 1000)
    x_star = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    kw = dict(generator=g, prediction_type="v_prediction")
    if sampler == "ancestral":
        x = sample_ddpm(VOracle(s, x_star), (2, 1, 4, 4), s, steps=50, **kw)
    elif sampler == "ddim-eta":
        x = sample_ddim(VOracle(s, x_star), (2, 1, 4, 4), s, steps=10, **kw)
    else:
        x = sample_diffusers(VOracle(s, x_star), (2, 1, 4, 4), s, scheduler="dpm++", steps=10, **kw)
    assert (x - x_star).abs().max() < 1e-3


def test_ddpm_and_ddim_steps_agree_in_eps_and_x0_forms():
    s = DiffusionSchedule.make("linear", 100)
    g = torch.Generator().manual_seed(3)
    x0, eps, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    for t, prev in [(99, 89), (50, 49), (5, -1)]:
        x_t = s.q_sample(x0, torch.tensor([t, t]), eps)
        assert torch.allclose(ddpm_step(eps, x_t, t, prev, s, z), ddpm_step(eps, x_t, t, prev, s, z, x0), atol=1e-4)
        assert torch.allclose(ddim_step(eps, x_t, t, prev, s, 0.5, z), ddim_step(eps, x_t, t, prev, s, 0.5, z, x0),
                              atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "euler"])
def test_known_mask_and_constraint_callable_hold_exactly(sampler):
    """known=(x0, mask) ends with x0 where mask = 1; a constraint callable is applied after every step, and its
    renoise(x0) is x0 itself after the last one (in our loops and through diffusers' add_noise alike)."""
    sched = DiffusionSchedule.make("cosine", 100)
    g = torch.Generator().manual_seed(0)
    given = torch.randn(2, 3, 8, generator=g)
    mask = torch.zeros(2, 3, 8)
    mask[..., :3] = 1

    def model(x, t):
        return 0.5 * x  # any ε-model

    def run(known):
        gen = torch.Generator().manual_seed(1)
        kw = dict(steps=10, generator=gen, known=known)
        if sampler == "ddpm":
            return sample_ddpm(model, (2, 3, 8), sched, **kw)
        if sampler == "ddim":
            return sample_ddim(model, (2, 3, 8), sched, **kw)
        return sample_diffusers(model, (2, 3, 8), sched, scheduler=sampler, **kw)

    x = run((given, mask))
    assert torch.equal(x[..., :3], given[..., :3]) and not torch.allclose(x[..., 3:], given[..., 3:])
    calls = []

    def tie(x, renoise):  # sample 1 copies sample 0; the first 3 frames are pinned to `given`
        calls.append(1)
        x = x.clone()
        x[..., :3] = renoise(given)[..., :3]
        x[1] = x[0]
        return x
    y = run(tie)
    assert len(calls) == 10
    assert torch.equal(y[1], y[0]) and torch.equal(y[0, :, :3], given[0, :, :3])


@pytest.mark.parametrize("sampler", ["ancestral", "ddim-eta", "euler_a", "ddpm", pytest.param(
    "dpm++sde", marks=pytest.mark.skipif(importlib.util.find_spec("torchsde") is None, reason="needs torchsde"))])
def test_per_sample_generators_make_a_sample_independent_of_its_batch(sampler):
    """With one generator per sample (as diffusers' randn_tensor takes them), a stochastic sampler's sample i depends
    only on its own generator: sample 0 of a batch of 3 equals the same sample drawn alone."""
    schedule = DiffusionSchedule.make("cosine", 50)
    model = lambda x, t: 0.3 * x  # deterministic, per-sample
    gens = lambda n: [torch.Generator().manual_seed(10 + i) for i in range(n)]
    kw = {"eta": 1.0} if sampler == "ddim-eta" else {}
    three = sample(model, (3, 2, 4, 4), schedule, sampler=sampler, steps=5, generator=gens(3), **kw)
    one = sample(model, (1, 2, 4, 4), schedule, sampler=sampler, steps=5, generator=gens(1), **kw)
    assert torch.allclose(three[:1], one, atol=1e-6)
    assert not torch.allclose(three[0], three[1])
    with pytest.raises(ValueError, match="one per sample"):
        sample(model, (2, 2, 4, 4), schedule, sampler=sampler, steps=5, generator=gens(3), **kw)


# ---- the sampler registry --------------------------------------------------------------------------------------------
import gen.sampling as sampling_module  # noqa: E402
from gen.sampling import SAMPLERS, SCHEDULERS, check_sampler, resolve_sampler, sampler_table  # noqa: E402

AVAILABLE = [n for n, s in SAMPLERS.items() if not s.requires or importlib.util.find_spec(s.requires)]


def test_registry_names_and_table():
    assert list(SAMPLERS) == ["ancestral", "ddim-eta", "ddpm", "ddim", "dpm++", "dpm++sde", "dpm", "unipc", "euler",
                              "euler_a", "heun", "pndm", "deis", "lms"]
    assert SCHEDULERS == {n: s.scheduler_class for n, s in SAMPLERS.items() if s.backend == "diffusers"}
    assert SAMPLERS["ancestral"].backend == SAMPLERS["ddim-eta"].backend == "project"
    assert SCHEDULERS["ddim"] == "DDIMScheduler" and SCHEDULERS["ddpm"] == "DDPMScheduler"
    table = sampler_table()
    assert table in sampling_module.__doc__  # the module docstring carries the same table
    for name in SAMPLERS:
        assert sum(line.startswith(f"| `{name}` |") for line in table.splitlines()) == 1


def test_each_name_dispatches_to_one_sampler(monkeypatch):
    """ancestral → sample_ddpm, ddim-eta → sample_ddim, every other name → sample_diffusers with that diffusers class;
    a registered class name is the same sampler as its short name."""
    called = []
    for fn in ["sample_ddpm", "sample_ddim", "sample_diffusers"]:
        monkeypatch.setattr(sampling_module, fn, lambda *a, _fn=fn, **kw: called.append((_fn, kw.get("scheduler"))))
    s = DiffusionSchedule.make("linear", 50)
    for name in SAMPLERS:
        called.clear()
        sample(lambda x, t: x, (1, 1, 2, 2), s, sampler=name, steps=5)
        want = {"ancestral": ("sample_ddpm", None), "ddim-eta": ("sample_ddim", None)}.get(
            name, ("sample_diffusers", name))
        assert called == [want], name
        if name in SCHEDULERS:
            called.clear()
            sample(lambda x, t: x, (1, 1, 2, 2), s, sampler=SCHEDULERS[name], steps=5)
            assert called == [want]
    for name in AVAILABLE:
        if name in SCHEDULERS:
            assert type(make_diffusers_scheduler(name, s)).__name__ == SCHEDULERS[name]
            assert type(make_diffusers_scheduler(SCHEDULERS[name], s)).__name__ == SCHEDULERS[name]


@pytest.mark.parametrize("name", [n for n in SCHEDULERS if n in AVAILABLE])
def test_class_names_really_work(name):
    s = DiffusionSchedule.make("cosine", 50)
    x_star = torch.tensor([0.5, -0.3, 0.9, -0.9]).view(1, 1, 2, 2)
    run = lambda sampler: sample(Oracle(s, x_star), (2, 1, 2, 2), s, sampler=sampler, steps=8,  # noqa: E731
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(run(name), run(SCHEDULERS[name]))
    assert check_sampler(SCHEDULERS[name], 8, 50)[0].name == name


@pytest.mark.parametrize("bad", ["nope", "ddpm-ancestral", "DDIM", "KDPM2DiscreteScheduler", "SchedulerMixin", "", None,
                                 3])
def test_unknown_sampler_names_list_the_accepted_ones(bad):
    with pytest.raises(ValueError, match="accepted: ancestral, ddim-eta, ddpm, ddim, dpm\\+\\+") as e:
        check_sampler(bad, 10, 100)
    assert "DDIMScheduler" in str(e.value)
    calls = []
    with pytest.raises(ValueError, match="accepted"):  # sample() checks before any work
        sample(lambda x, t: calls.append(1) or x, (1, 1, 2, 2), DiffusionSchedule.make("linear", 100), sampler=bad)
    assert not calls


@pytest.mark.parametrize("name,steps,match", [
    ("ddim", 0, r"\[1, 100\]"), ("ddim", 101, r"\[1, 100\]"), ("ancestral", 101, r"\[1, 100\]"),
    ("ddim-eta", 2.5, "must be an int"), ("euler", "10", "must be an int"), ("heun", True, "must be an int"),
    ("ddim", None, "must be an int"), ("dpm++", 100, r"\[1, 99\].*breaks at steps = T"),
    ("pndm", 3, r"\[4, 99\].*at least 4")])
def test_bad_steps_name_the_accepted_range(name, steps, match):
    with pytest.raises(ValueError, match=match):
        check_sampler(name, steps, 100)
    calls = []
    with pytest.raises(ValueError, match=match):
        sample(lambda x, t: calls.append(1) or x, (1, 1, 2, 2), DiffusionSchedule.make("linear", 100), sampler=name,
               steps=steps)
    assert not calls


def test_steps_resolution_and_eta_checks():
    assert check_sampler("ancestral", None, 100)[1] == 100
    assert check_sampler("ddim", 7, 100) == (SAMPLERS["ddim"], 7)
    assert resolve_sampler("DPMSolverMultistepScheduler") is SAMPLERS["dpm++"]
    s = DiffusionSchedule.make("linear", 20)
    with pytest.raises(ValueError, match="takes no eta"):
        sample(lambda x, t: x, (1, 1, 2, 2), s, sampler="euler", steps=3, eta=0.5)
    with pytest.raises(ValueError, match="eta must be"):
        sample(lambda x, t: x, (1, 1, 2, 2), s, sampler="ddim-eta", steps=3, eta=-1)
    with pytest.raises(ValueError, match="own loop"):
        make_diffusers_scheduler("ancestral", s)


@pytest.mark.parametrize("name", AVAILABLE)
def test_step_range_ends_run_and_calls_match_the_table(name):
    """Both ends of each sampler's accepted range run to a finite result; the model is called as the table says."""
    spec = SAMPLERS[name]
    s = DiffusionSchedule.make("cosine", 20)
    x_star = torch.tensor([0.5, -0.3, 0.9, -0.9]).view(1, 1, 2, 2)
    for steps in spec.steps_range(20):
        calls = []
        oracle = Oracle(s, x_star)
        x = sample(lambda x, t: calls.append(1) or oracle(x, t), (2, 1, 2, 2), s, sampler=name, steps=steps,
                   generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(x).all(), (name, steps)
        want = {"steps": steps, "2·steps − 1": 2 * steps - 1, "steps + 9": steps + 9}[spec.calls]
        assert len(calls) == want, (name, steps, len(calls))


@pytest.mark.parametrize("name", AVAILABLE)
def test_stochastic_column_is_true(name):
    """Same x_T, different generators: a stochastic sampler's samples differ, a deterministic one's are identical;
    eta > 0 makes the samplers that take it stochastic."""
    spec = SAMPLERS[name]
    s = DiffusionSchedule.make("cosine", 30)
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for eta in ([0.0, 1.0] if spec.takes_eta else [0.0]):
        a, b = (sample(lambda x, t: 0.3 * x, x_T.shape, s, sampler=name, steps=max(spec.min_steps, 5), eta=eta,
                       x_T=x_T, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2))
        assert torch.equal(a, b) != spec.is_stochastic(eta), (name, eta)


def test_diffusers_samplers_keep_diffusers_defaults():
    """The spacing column is what diffusers actually does (its class defaults; nothing is overridden)."""
    s = DiffusionSchedule.make("linear", 20)
    for name in AVAILABLE:
        spec = SAMPLERS[name]
        if spec.backend == "diffusers" and name != "dpm":  # DPMSolverSinglestepScheduler has no spacing option
            assert make_diffusers_scheduler(name, s).config.timestep_spacing == spec.spacing, name
    assert make_diffusers_scheduler("ddim", s).config.clip_sample is True
    assert make_diffusers_scheduler("ddim", s, timestep_spacing="trailing").config.timestep_spacing == "trailing"


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("kind,T,steps", [("cosine", 1000, 1), ("cosine", 1000, 2), ("cosine", 1000, 4),
                                          ("linear", 1000, 20), ("cosine", 50, 49), ("sigmoid", 100, 15)])
def test_native_dpmpp_is_diffusers_dpm_solver_multistep(prediction_type, kind, T, steps):
    """`dpm++` runs `DPMSolverPP2M` (no diffusers scheduler import) and gives what diffusers' DPMSolverMultistepScheduler
    at its defaults gives, to float rounding: plain and with known data (in-painting), for ε, v and x_0 models."""
    from gen.sampling import DPMSolverPP2M

    s = DiffusionSchedule.make(kind, T)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(1)) * 0.4

    def model(x, t):  # a nonlinear, time-dependent stand-in network
        return torch.tanh(torch.einsum("ij,bjhw->bihw", w, x)) * (1 + t.float().view(-1, 1, 1, 1) / T)

    shape = (2, 3, 4, 4)
    x0 = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    mask = (torch.rand(shape, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    for known in (None, (x0, mask)):
        kw = dict(steps=steps, prediction_type=prediction_type, known=known)
        ours = sample_diffusers(model, shape, s, scheduler="dpm++", generator=torch.Generator().manual_seed(0), **kw)
        ref_sched = make_diffusers_scheduler("dpm++", s, prediction_type)
        assert type(ref_sched).__name__ == "DPMSolverMultistepScheduler"
        ref = sample_diffusers(model, shape, s, scheduler=ref_sched, generator=torch.Generator().manual_seed(0), **kw)
        assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5), (known is None, (ours - ref).abs().max())
    native = DPMSolverPP2M(s, prediction_type)
    native.set_timesteps(steps)
    ref_sched.set_timesteps(steps)
    assert torch.equal(native.timesteps, ref_sched.timesteps) and torch.equal(native.sigmas, ref_sched.sigmas)


def test_dpmpp_with_scheduler_keywords_runs_diffusers_class(monkeypatch):
    """A constructor keyword (e.g. use_karras_sigmas) is diffusers' business: the native solver is used only at the
    defaults, which it reproduces."""
    import gen.sampling as sm

    made = []
    real = sm.make_diffusers_scheduler
    monkeypatch.setattr(sm, "make_diffusers_scheduler", lambda *a, **k: made.append(k) or real(*a, **k))
    s = DiffusionSchedule.make("cosine", 100)
    sm.sample_diffusers(lambda x, t: 0.1 * x, (1, 1, 2, 2), s, scheduler="dpm++", steps=4)
    assert made == []
    sm.sample_diffusers(lambda x, t: 0.1 * x, (1, 1, 2, 2), s, scheduler="dpm++", steps=4, use_karras_sigmas=True)
    assert made == [{"use_karras_sigmas": True}]
