"""diffusers' model base classes, imported without importing `torch._dynamo` (1.4-1.8 s of every CLI's start-up here)
or transformers (0.5 s).

Every model of the suite is a diffusers `ModelMixin` / `ConfigMixin` (so `save_pretrained` / `from_pretrained` and the
diffusers folder format work), and `import diffusers` runs, in `diffusers/utils/torch_utils.py`,

    try:
        from torch._dynamo import allow_in_graph as maybe_allow_in_graph
    except ImportError: ...

which imports torch's compiler stack (dynamo, sympy, triton, inductor) although generation never compiles anything:
measured on this 2-core CPU, `import gen.pipeline` takes 0.9-1.2 s with the stand-in below against 2.3-3.0 s without.
So, when nothing has imported `torch._dynamo` yet, the first import of diffusers sees a stand-in module whose
`allow_in_graph` returns its argument unchanged -- the same as diffusers' own fallback in that ``except`` -- and the
stand-in is removed again right after, so `torch.compile` or `import torch._dynamo` later load the real one (tested).
The only effect: diffusers' own attention classes are not pre-registered with dynamo (we compile our U-Nets, not
those). Likewise `diffusers.quantizers.pipe_quant_config` imports transformers (0.5 s here) inside a
``try: ... except ImportError`` that defines a placeholder class when transformers is absent; while the bases are
imported, ``sys.modules["transformers"]`` is None (so that import raises ImportError and diffusers takes its own
fallback), and the entry is removed right after: the only effect is that diffusers' `PipelineQuantizationConfig` does
not recognise transformers' quantization configs (the suite never quantizes); `import transformers` later works as
usual (tested). Import the base classes from here, not from diffusers:

    from gen._diffusers import ConfigMixin, ModelMixin, register_to_config
"""
from __future__ import annotations

import sys
import types


def _bases():
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.modeling_utils import ModelMixin

    return ConfigMixin, ModelMixin, register_to_config


def _import_diffusers_bases():
    import torch  # first: the stand-in must not shadow a real dynamo import torch itself makes

    if "diffusers.configuration_utils" in sys.modules or "torch._dynamo" in sys.modules:
        return _bases()
    stand_in = types.ModuleType("torch._dynamo", "stand-in while diffusers is imported (gen/_diffusers.py)")
    stand_in.allow_in_graph = lambda obj: obj
    sys.modules["torch._dynamo"] = stand_in
    hide_transformers = "transformers" not in sys.modules
    if hide_transformers:
        sys.modules["transformers"] = None  # `import transformers` raises ImportError: diffusers' own fallback
    try:
        return _bases()
    except Exception:  # a diffusers that needs more of dynamo / transformers at import: drop it, import it plainly
        for name in [m for m in sys.modules if m == "diffusers" or m.startswith("diffusers.")]:
            del sys.modules[name]
    finally:
        if sys.modules.get("torch._dynamo") is stand_in:
            del sys.modules["torch._dynamo"]
        if vars(torch).get("_dynamo") is stand_in:   # (getattr would import the real one)
            delattr(torch, "_dynamo")
        if hide_transformers and "transformers" in sys.modules and sys.modules["transformers"] is None:
            del sys.modules["transformers"]
    import torch._dynamo  # noqa: F401

    return _bases()


ConfigMixin, ModelMixin, register_to_config = _import_diffusers_bases()

__all__ = ["ConfigMixin", "ModelMixin", "register_to_config"]
