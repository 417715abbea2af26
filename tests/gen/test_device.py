"""Every tensor of the sampling path (samplers, guidance, conditioning) is on the model's device.

Without a GPU two checks stand in for one:
* the model on PyTorch's ``meta`` device, behind a wrapper that fails unless x, t and every condition tensor it is handed
  are on the model's device, while the prompt, its region mask, the null condition, the known data and the generators
  are all built on the CPU (as task code builds them). Masks and known data are combined with meta tensors after the
  model call, where a CPU tensor raises. diffusers' schedulers cannot run on meta tensors (they read values), so this
  covers the project's loops and the whole guidance/conditioning path;
* every registry name with the model on the CPU and torch's *default* device set to ``meta``: any tensor our code makes
  without naming its device lands on meta, and the same wrapper (expecting the CPU) or the arithmetic fails. The
  diffusers scheduler's own methods run with the CPU default, so only our code is under test.
With a GPU, the whole path runs on ``cuda`` for every name, and CPU generators give the same samples there as on the CPU.
"""
import functools
import importlib.util

import pytest
import torch

import gen.sampling as sampling
from gen.guidance import Term, guided_model, model_device
from gen.models import ClassConditionalModel
from gen.sampling import SAMPLERS, infer_device, sample
from gen.schedule import DiffusionSchedule

HAS_TORCHSDE = importlib.util.find_spec("torchsde") is not None
NAMES = [n for n in SAMPLERS if not SAMPLERS[n].requires or importlib.util.find_spec(SAMPLERS[n].requires)]
SHAPE = (2, 1, 8, 8)
SCHED = DiffusionSchedule.make("cosine", 30)


def tiny_model(seed=0) -> ClassConditionalModel:
    model = ClassConditionalModel(num_classes=3, unet_config=dict(
        dims=2, in_channels=1, base_channels=8, channel_mult=(1, 2), layers_per_block=1, attention_levels=(1,),
        head_dim=8))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # fresh models have zero output layers; make the output depend on the condition
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def check_module_inputs(model: torch.nn.Module) -> torch.nn.Module:
    """Make every torch.nn layer with parameters fail unless its tensor inputs are on its parameters' device (an
    nn.Embedding on meta would otherwise take CPU indices without complaint). Our own modules may move their inputs."""
    def hook(module, args):
        want = next(module.parameters(recurse=False)).device
        for a in args:
            assert not torch.is_tensor(a) or a.device == want, \
                f"{type(module).__name__} got a tensor on {a.device}, its parameters are on {want}"
    for m in model.modules():
        if type(m).__module__.startswith("torch.nn") and next(m.parameters(recurse=False), None) is not None:
            m.register_forward_pre_hook(hook)
    return model


class OnModelDevice:
    """A conditional model that fails unless everything it is given is on its wrapped model's device."""

    def __init__(self, model):
        self.model, self.calls = check_module_inputs(model), 0

    @property
    def device(self):
        return model_device(self.model)

    def __call__(self, x, t, cond):
        want = self.device
        for name, v in [("x", x), ("t", t), *sorted(cond.items())]:
            assert torch.is_tensor(v) and v.device == want, f"{name} is on {v.device}, the model on {want}"
        self.calls += 1
        return self.model(x, t, cond)


def cpu_prompt_and_null():
    """A two-term prompt (one of them restricted to a region) and the null condition, all on the CPU."""
    region = torch.zeros(1, 8, 8)
    region[..., :4] = 1
    one = Term({"label": torch.tensor([1]), "label.keep": torch.tensor([True])}, label="1")
    two = Term({"label": torch.tensor([2]), "label.keep": torch.tensor([True])}, label="2")
    null = {"label": torch.tensor([0]), "label.keep": torch.tensor([False])}
    return 2 * one & (~two).within(region), null


def cpu_known():
    mask = torch.zeros(SHAPE)
    mask[..., 0] = 1
    return torch.linspace(-1, 1, 8).expand(SHAPE).clone(), mask


def cpu_generators(n=SHAPE[0], seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def steps_for(name):
    return max(SAMPLERS[name].min_steps, 3)


# ---- the model on the meta device -----------------------------------------------------------------------------------
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("sampler", ["ancestral", "ddim-eta"])
def test_model_on_meta_gets_only_meta_tensors(sampler, per_sample):
    inner = OnModelDevice(tiny_model().to("meta"))
    prompt, null = cpu_prompt_and_null()
    f = guided_model(inner, prompt, null)
    assert f.device == torch.device("meta")  # guided_model reports the wrapped model's device
    gen = cpu_generators() if per_sample else torch.Generator().manual_seed(0)
    x = sample(f, SHAPE, SCHED, sampler=sampler, steps=3, eta=1.0 if sampler == "ddim-eta" else 0.0, generator=gen,
               known=cpu_known())  # no device, no x_T: inferred from the model
    assert x.device.type == "meta" and inner.calls == 3
    # unconditional (no prompt) and a single unmasked term (the fast path) too
    for p in [None, prompt.terms[0] * (1 / prompt.terms[0].weight)]:
        x = sample(guided_model(inner, p, null), SHAPE, SCHED, sampler=sampler, steps=2, generator=gen)
        assert x.device.type == "meta"


def test_meta_check_catches_a_cpu_tensor():
    """The check is real: the old default (noise on the CPU whatever the model) fails it, and so does a CPU condition
    handed to the wrapper directly, or a CPU mask combined with the model's output."""
    inner = OnModelDevice(tiny_model().to("meta"))
    prompt, null = cpu_prompt_and_null()
    f = guided_model(inner, prompt, null)
    with pytest.raises(AssertionError, match="x is on cpu"):
        sample(f, SHAPE, SCHED, sampler="ancestral", steps=2, device="cpu")
    x, t = torch.zeros(SHAPE, device="meta"), torch.zeros(2, dtype=torch.long, device="meta")
    with pytest.raises(AssertionError, match="label is on cpu"):
        inner(x, t, {"label": torch.tensor([1, 1]), "label.keep": torch.ones(2, dtype=torch.bool, device="meta")})
    with pytest.raises(RuntimeError, match="device"):
        torch.zeros(1, 8, 8) * inner.model(x, t, {"label": torch.ones(2, dtype=torch.long, device="meta")})


def test_conditioning_modules_move_inputs_to_their_device():
    model = check_module_inputs(tiny_model().to("meta"))  # the label table (nn.Embedding) checks its indices
    emb = model.label(torch.tensor([0, 2]), torch.tensor([True, False]))  # CPU labels and keep flags
    assert emb.device.type == "meta"
    assert model.label.nullable(torch.zeros(2, 32), torch.tensor([True, False])).device.type == "meta"
    assert model.term(1).cond["label"].device.type == "meta"


@pytest.mark.parametrize("wrap", ["module", "bound method", "attribute", "lambda"])
def test_infer_device(wrap):
    model = tiny_model().to("meta")
    fn = {"module": model, "bound method": model.forward, "lambda": lambda x, t: x}.get(wrap)
    if wrap == "attribute":
        fn = lambda x, t: x  # noqa: E731
        fn.device = torch.device("meta")
    assert infer_device(fn) == torch.device("cpu" if wrap == "lambda" else "meta")
    assert infer_device(fn, device="cpu") == torch.device("cpu")
    assert infer_device(fn, x_T=torch.zeros(1)) == torch.device("cpu")


# ---- torch's default device set to meta: nothing may depend on it ----------------------------------------------------
class _CPUDefault:
    """A diffusers scheduler whose methods run with the CPU as torch's default device (its internals are not ours)."""

    def __init__(self, sched):
        object.__setattr__(self, "_sched", sched)

    def __getattr__(self, name):
        value = getattr(self._sched, name)
        if not callable(value) or isinstance(value, type):
            return value

        @functools.wraps(value)
        def run(*args, **kwargs):
            with torch.device("cpu"):
                return value(*args, **kwargs)
        return run

    def __setattr__(self, name, value):
        setattr(self._sched, name, value)


@pytest.fixture
def schedulers_on_cpu_default(monkeypatch):
    make = sampling.make_diffusers_scheduler

    def patched(*args, **kwargs):
        with torch.device("cpu"):
            return _CPUDefault(make(*args, **kwargs))
    monkeypatch.setattr(sampling, "make_diffusers_scheduler", patched)


@pytest.mark.parametrize("name", NAMES)
def test_no_tensor_comes_from_the_default_device(name, schedulers_on_cpu_default):
    inner = OnModelDevice(tiny_model())  # on the CPU
    prompt, null = cpu_prompt_and_null()
    f = guided_model(inner, prompt, null)
    known, gens = cpu_known(), cpu_generators()
    with torch.device("meta"):
        x = sample(f, SHAPE, SCHED, sampler=name, steps=steps_for(name), generator=gens, known=known)
    assert x.device.type == "cpu" and torch.isfinite(x).all() and inner.calls >= steps_for(name)
    assert torch.equal(x[..., 0], known[0][..., 0])  # the known entries hold exactly


def test_default_device_check_catches_an_unplaced_tensor(schedulers_on_cpu_default):
    inner = OnModelDevice(tiny_model())
    prompt, null = cpu_prompt_and_null()
    f = guided_model(inner, prompt, null)
    with torch.device("meta"), pytest.raises(AssertionError, match="x is on meta"):
        sample(f, SHAPE, SCHED, sampler="ddim", steps=2, x_T=torch.randn(SHAPE))  # noise made without device=
    with torch.device("meta"), pytest.raises(AssertionError, match="label is on meta"):
        inner(torch.zeros(SHAPE, device="cpu"), torch.full((2,), 3, device="cpu"), {"label": torch.tensor([1, 1])})


# ---- a real GPU ----------------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("name", NAMES)
def test_whole_sampling_path_on_cuda(name):
    inner = OnModelDevice(tiny_model().to("cuda"))
    prompt, null = cpu_prompt_and_null()
    known = cpu_known()
    f = guided_model(inner, prompt, null)
    x = sample(f, SHAPE, SCHED, sampler=name, steps=steps_for(name), generator=cpu_generators(), known=known)
    assert x.device.type == "cuda" and torch.isfinite(x).all()
    assert torch.equal(x[..., 0].cpu(), known[0][..., 0])
    for p in [None, prompt.terms[0] * 0.5]:  # unconditional; one term without a mask
        y = sample(guided_model(inner, p, null), SHAPE, SCHED, sampler=name, steps=steps_for(name),
                   generator=torch.Generator().manual_seed(0))
        assert y.device.type == "cuda" and torch.isfinite(y).all()


class _Elementwise(torch.nn.Module):
    """ε = 0.3 x: exact in float32 on any device, so CPU and GPU runs can be compared closely."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x, t):
        return self.scale * x


@cuda
@pytest.mark.parametrize("name", [n for n in NAMES if n != "dpm++sde"])  # torchsde draws on the sample's device
def test_cpu_generators_give_the_same_samples_on_cuda(name):
    kw = dict(sampler=name, steps=steps_for(name), known=cpu_known())
    on_cpu = sample(_Elementwise(), SHAPE, SCHED, generator=cpu_generators(), **kw)
    on_gpu = sample(_Elementwise().cuda(), SHAPE, SCHED, generator=cpu_generators(), **kw)
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4), (on_gpu.cpu() - on_cpu).abs().max()
