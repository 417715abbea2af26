"""One pipeline format for every model of the suite, and the base class every task pipeline extends.

On disk (the layout diffusers' `DiffusionPipeline` uses: one sub-folder per component plus one index file)::

    <folder>/
      pipeline.json       {"format_version": 1, "task": "calligraphy", "pipeline_class": ..., "model_class": ...,
                           "prediction_type": ..., "schedule": {"kind": "cosine", "T": 1000},
                           "sampling": {"scheduler": ..., "steps": ..., "guidance": ...},   # defaults of __call__
                           "task_config": {...}}                 # what the task needs (scales, character split, ...)
      model/              config.json + diffusion_pytorch_model.safetensors (never a pickle)
      distilled/model/    optional: a few-step student of `model` (gen.distill), named in pipeline.json
                          "distilled": {"folder": "distilled", "steps": 4, "sampler": "ddim", "guidance": w, ...}
      README.md           the model card (`model_card`)

Sampling with ``scheduler="distilled"`` (or with the student's step count and no scheduler named) runs the student:
one conditional pass per step, the teacher's guidance w folded in (`GenPipeline.sampler_for`).

`GenPipeline.from_pretrained(name_or_path)` accepts

- a shipped model name (`attributes`, `calligraphy`, `dance`, `shapes`), found under the package's `checkpoints/`
  folder (or `$GENSUITE_CHECKPOINTS`) whatever the current folder is;
- an exported folder (the layout above, from `save_pretrained`);
- a training run folder (`runs/x`: its newest checkpoint) or a checkpoint folder (`runs/x/checkpoints/step_N`: its
  EMA weights, else the raw ones), whose `config.yaml` gives the settings through the task's `meta_from_training`;
  a run folder's own `pipeline.json` (e.g. written by a calibration) overrides them.

Loading reads safetensors only (`use_safetensors=True`; a folder with only a `.bin` is refused) and instantiates only
the model class the pipeline declares (a config naming another class is refused).
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .models import ClassConditionalModel

FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.json"
MODEL_DIR = "model"
CARD_FILE = "README.md"
DISTILLED = "distilled"  # the scheduler name that selects a pipeline's distilled few-step student
# shipped model name → folder under checkpoints/
SHIPPED = {"attributes": "attributes", "calligraphy": "calligraphy", "dance": "dance", "shapes": "shapes"}


class PipelineError(ValueError):
    """A folder or name that is not a loadable pipeline (the message says what is accepted)."""


# ---- where things are --------------------------------------------------------------------------------------------
def checkpoints_root() -> Path:
    """The shipped models' folder: `$GENSUITE_CHECKPOINTS`, else `checkpoints/` beside the installed `gen` package."""
    env = os.environ.get("GENSUITE_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def shipped_path(name: str) -> Path:
    if name not in SHIPPED:
        raise PipelineError(f"unknown shipped model {name!r}; shipped models: {', '.join(SHIPPED)}")
    return checkpoints_root() / SHIPPED[name]


def _weights_dir(ckpt: Path) -> Path | None:
    for sub in ("ema", "model"):
        if (ckpt / sub / "config.json").is_file():
            return ckpt / sub
    return None


class Resolved:
    """Where a pipeline's parts are: `model_dir`, and either `meta` (an exported pipeline.json) or `train_config`
    (a checkpoint's config.yaml) plus optional `overrides` (a run folder's pipeline.json)."""

    def __init__(self, source: str, kind: str, model_dir: Path, meta: dict | None = None,
                 train_config: dict | None = None, overrides: dict | None = None):
        self.source, self.kind, self.model_dir = source, kind, model_dir
        self.meta, self.train_config, self.overrides = meta, train_config, overrides or {}

    def __repr__(self) -> str:
        return f"Resolved({self.kind}: {self.model_dir})"


ACCEPTED = ("a shipped model name ({names}), an exported pipeline folder (with pipeline.json and model/), a training "
            "run folder (with checkpoints/step_NNNNNNN/) or a checkpoint folder (…/checkpoints/step_NNNNNNN)")


def _accepted() -> str:
    return ACCEPTED.format(names=", ".join(SHIPPED))


def read_json(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read {what} {str(path)!r}: {e}") from e
    if not isinstance(obj, dict):
        raise PipelineError(f"{what} {str(path)!r} must hold a JSON object, got {type(obj).__name__}")
    return obj


def resolve_pretrained(name_or_path: str | os.PathLike) -> Resolved:
    """Find the model folder and the settings of any accepted form (see the module docstring)."""
    src = os.fspath(name_or_path)
    if src in SHIPPED:  # a bare shipped name; a folder of that name in the current folder wins only if it loads
        local = Path(src)
        if local.is_dir():
            try:
                return _resolve_path(src, local)
            except PipelineError:
                pass
        p = shipped_path(src)
        if not (p / PIPELINE_FILE).is_file():
            raise PipelineError(f"shipped model {src!r} is missing at {str(p)!r} (set GENSUITE_CHECKPOINTS to the "
                                "folder holding the shipped models, or pass a folder)")
        return _resolve_path(src, p)
    return _resolve_path(src, Path(src).expanduser())


def _resolve_path(src: str, p: Path) -> Resolved:
    if not p.is_dir():
        raise PipelineError(f"{src!r} is neither a folder nor a shipped model name; accepted: {_accepted()}")
    if (p / PIPELINE_FILE).is_file() and (p / MODEL_DIR / "config.json").is_file():
        return Resolved(src, "exported", p / MODEL_DIR, meta=read_json(p / PIPELINE_FILE, "pipeline file"))
    overrides = read_json(p / PIPELINE_FILE, "pipeline file") if (p / PIPELINE_FILE).is_file() else {}
    if (p / "checkpoints").is_dir():
        from .train import checkpoint_dirs

        ckpts = [Path(c) for c in checkpoint_dirs(str(p))]
        if not ckpts:
            raise PipelineError(f"run folder {src!r} has no checkpoints yet (checkpoints/step_NNNNNNN)")
        for ck in ckpts:  # the newest checkpoint whose weights and config are complete
            w = _weights_dir(ck)
            if w is not None and (ck / "config.yaml").is_file():
                return Resolved(src, "run", w, train_config=_read_yaml(ck / "config.yaml"), overrides=overrides)
        raise PipelineError(f"run folder {src!r}: no checkpoint has ema/ or model/ weights and config.yaml")
    w = _weights_dir(p)
    if w is not None and (p / "config.yaml").is_file():
        parent_over = p.parent.parent / PIPELINE_FILE  # runs/x/pipeline.json applies to runs/x/checkpoints/step_N
        if not overrides and parent_over.is_file():
            overrides = read_json(parent_over, "pipeline file")
        return Resolved(src, "checkpoint", w, train_config=_read_yaml(p / "config.yaml"), overrides=overrides)
    raise PipelineError(f"{src!r} is not a pipeline folder; accepted: {_accepted()}")


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PipelineError(f"cannot read training config {str(path)!r}: {e}") from e
    if not isinstance(cfg, dict):
        raise PipelineError(f"training config {str(path)!r} must be a mapping")
    return cfg


# ---- safe model loading ------------------------------------------------------------------------------------------
def load_model(folder: str | os.PathLike, cls, dtype: torch.dtype = torch.float32):
    """Load `cls` (a diffusers ModelMixin) from `folder`: safetensors only, and only if the folder's config names
    `cls` (no class named by a file is ever imported). Shipped fp16 weights are cast to `dtype` (fp32 by default)."""
    folder = Path(folder)
    cfg = read_json(folder / "config.json", "model config")
    name = cfg.get("_class_name")
    if name != cls.__name__:
        raise PipelineError(f"model folder {str(folder)!r} holds a {name!r}, not a {cls.__name__!r}; this pipeline "
                            f"loads only {cls.__module__}.{cls.__name__}")
    if not any(f.suffix == ".safetensors" for f in folder.iterdir()):
        found = ", ".join(sorted(f.name for f in folder.iterdir())) or "nothing"
        raise PipelineError(f"model folder {str(folder)!r} has no .safetensors weights (found: {found}); only "
                            "safetensors are loaded, never pickled .bin/.pt files")
    model = cls.from_pretrained(str(folder), use_safetensors=True, torch_dtype=dtype)
    return model.eval()


# ---- model cards: the one writer ---------------------------------------------------------------------------------
def model_card(title: str, summary: str, *, use: str = "", training: Mapping[str, Any] | None = None,
               config: Mapping | None = None, sampling: Mapping | None = None, evaluation: Mapping | None = None,
               evaluation_source: str = "", sections: Mapping[str, str] | None = None, limits: str = "") -> str:
    """Markdown model card. `training`: {command, steps, wall_time_s, threads, processes, machine, ...} (missing
    entries say "not recorded"); `evaluation`: numbers copied from a report (never typed in) with its source."""
    import yaml

    lines = [f"# {title}", "", summary.strip(), ""]
    if use:
        lines += ["## Use", "", "```python", use.strip(), "```", ""]
    if sampling:
        lines += ["## Sampling defaults", "", *(f"- {k}: {v}" for k, v in sampling.items()), ""]
    if training is not None:
        t = dict(training)
        wall = t.pop("wall_time_s", None)
        lines += ["## Training", "", f"- command: `{t.pop('command', 'not recorded')}`",
                  f"- steps: {t.pop('steps', 'not recorded')}",
                  f"- wall time: {wall:.0f} s" if isinstance(wall, (int, float)) else "- wall time: not recorded",
                  f"- machine: {t.pop('machine', platform.machine())}, torch {torch.__version__}"]
        lines += [f"- {k}: {v}" for k, v in t.items()]
        lines.append("")
    if config:
        lines += ["### Resolved config", "", "```yaml", yaml.safe_dump(dict(config), sort_keys=False,
                                                                    allow_unicode=True).strip(), "```", ""]
    if evaluation is not None:
        lines += ["## Evaluation", "", f"From `{evaluation_source}`" + (
            f" (command: `{evaluation['command']}`)" if isinstance(evaluation, Mapping) and "command" in evaluation
            else "") + ":", "", "```json", json.dumps(evaluation, indent=1, ensure_ascii=False)[:8000], "```", ""]
    for head, text in (sections or {}).items():
        lines += [f"## {head}", "", text.strip(), ""]
    if limits:
        lines += ["## Limits", "", limits.strip(), ""]
    return "\n".join(lines)


# ---- the base pipeline -------------------------------------------------------------------------------------------
ProgressFn = Callable[[int, int], None]  # (steps done, total steps)


def step_callback(progress: ProgressFn | None):
    """A sampler callback (i, n, x) that reports (i + 1, n) to `progress`, or None."""
    if progress is None:
        return None
    return lambda i, n, x: progress(i + 1, n)


def per_sample_generators(seed: int, num: int) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, i): sample i depends on its own seed only, not on the batch."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + i) for i in range(num)]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) → cuda when present, else cpu; anything else is checked to exist."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; accepted: auto, cpu, cuda, cuda:N") from e
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu or auto")
    return d


class GenPipeline:
    """Model + noise schedule + sampling defaults + task settings; subclasses set `task`, `model_class` and implement
    `meta_from_training` (settings of a training checkpoint) and `__call__`.

    `self.meta` is the pipeline.json content; `self.sampling` its sampling defaults; `self.task_config` the rest."""

    task: str = ""
    model_class: type | None = None
    default_sampling: dict = {}

    def __init__(self, model, meta: Mapping):
        from .schedule import DiffusionSchedule

        self.model = model.eval()
        self.meta = self._complete(meta)
        sched = self.meta["schedule"]
        self.schedule = DiffusionSchedule.make(sched["kind"], int(sched["T"]))

    # -- settings ------------------------------------------------------------------------------------------------
    @classmethod
    def _complete(cls, meta: Mapping) -> dict:
        given = copy.deepcopy(dict(meta))
        m = {"format_version": given.pop("format_version", FORMAT_VERSION), "task": given.pop("task", cls.task),
             "pipeline_class": f"{cls.__module__}.{cls.__name__}",
             "model_class": None if cls.model_class is None else
             f"{cls.model_class.__module__}.{cls.model_class.__name__}",
             "prediction_type": given.pop("prediction_type", "epsilon"),
             "schedule": given.pop("schedule", {"kind": "cosine", "T": 1000}),
             "sampling": {**cls.default_sampling, **dict(given.pop("sampling", None) or {})},
             "task_config": given.pop("task_config", {})}
        given.pop("pipeline_class", None), given.pop("model_class", None)
        m.update(given)  # anything else a task keeps (e.g. evaluation splits)
        return m

    @property
    def prediction_type(self) -> str:
        return self.meta["prediction_type"]

    @property
    def sampling(self) -> dict:
        return self.meta["sampling"]

    @property
    def task_config(self) -> dict:
        return self.meta["task_config"]

    @classmethod
    def meta_from_training(cls, cfg: dict) -> dict:
        """pipeline.json settings from a training checkpoint's resolved config (default: its `diffusion` block)."""
        d = cfg.get("diffusion", {})
        return {"prediction_type": d.get("prediction_type", "epsilon"),
                "schedule": {"kind": d.get("schedule", "cosine"), "T": int(d.get("T", 1000))}}

    # -- persistence ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, *, device: str | torch.device | None = None,
                        **kwargs) -> "GenPipeline":
        """Load from a shipped name (default: the task's own), an exported folder, a run or a checkpoint folder."""
        r = resolve_pretrained(cls.task if name_or_path is None else name_or_path)
        if r.meta is not None:
            meta = r.meta
            version = meta.get("format_version")
            if version != FORMAT_VERSION:
                raise PipelineError(f"{r.source!r}: pipeline format version {version!r} is not supported (this "
                                    f"release reads version {FORMAT_VERSION}); re-export it with save_pretrained")
        else:
            meta = cls.meta_from_training(r.train_config)
            for k, v in r.overrides.items():
                meta[k] = {**meta.get(k, {}), **v} if isinstance(v, dict) and isinstance(meta.get(k), dict) else v
        if meta.get("task", cls.task) != cls.task:
            raise PipelineError(f"{r.source!r} holds a {meta.get('task')!r} model, not a {cls.task!r} one; "
                                f"load it with that task's pipeline")
        pipe = cls._build(load_model(r.model_dir, cls.model_class), meta, **kwargs)
        pipe.source = r.source
        pipe._root = r.model_dir.parent if r.kind == "exported" else None
        if device is not None:
            pipe.to(resolve_device(device))
        return pipe

    @classmethod
    def _build(cls, model, meta: dict, **kwargs) -> "GenPipeline":
        """Construct from a loaded model and pipeline.json settings; subclasses map their keyword options."""
        return cls(model, meta, **kwargs)

    def to_meta(self) -> dict:
        """The pipeline.json content for save_pretrained (subclasses add their live settings)."""
        return copy.deepcopy(self.meta)

    def save_pretrained(self, path: str | os.PathLike, card: str | None = None, *, dtype: torch.dtype | None = None
                        ) -> str:
        """Write the pipeline folder atomically (staged beside `path`, then moved onto it): model/ (safetensors, as
        `dtype` if given, e.g. torch.float16 to ship), pipeline.json and the card (README.md; an existing card is kept
        when `card` is None)."""
        from .io import atomic_folder

        out = Path(path)
        with atomic_folder(out) as tmp:
            model = self.model if dtype is None else copy.deepcopy(self.model).to(dtype)
            model.save_pretrained(str(tmp / MODEL_DIR), safe_serialization=True)
            if self.meta.get("distilled"):
                student = self.distilled_model if dtype is None else copy.deepcopy(self.distilled_model).to(dtype)
                student.save_pretrained(str(tmp / self.meta["distilled"]["folder"] / MODEL_DIR), safe_serialization=True)
            (tmp / PIPELINE_FILE).write_text(json.dumps(self.to_meta(), indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
            if card is None and (out / CARD_FILE).is_file():
                shutil.copy2(out / CARD_FILE, tmp / CARD_FILE)
            elif card is not None:
                (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        return str(out)

    # -- distilled few-step student -------------------------------------------------------------------------------
    @property
    def distilled(self) -> dict | None:
        """pipeline.json's "distilled" entry (folder, steps, sampler, guidance, ...) or None."""
        return self.meta.get("distilled") or None

    @property
    def distilled_model(self):
        """The few-step student (loaded on first use, on the pipeline's device); PipelineError when there is none."""
        if getattr(self, "_distilled", None) is not None:
            return self._distilled
        d = self.distilled
        root = getattr(self, "_root", None)
        if not d or root is None:
            raise PipelineError(f"{getattr(self, 'source', self.task)!r} has no distilled student; accepted schedulers "
                                f"are the samplers of gen.sampling (a student is made by the task's distill script)")
        folder = Path(root) / d["folder"] / MODEL_DIR
        if not (folder / "config.json").is_file():
            raise PipelineError(f"distilled student {str(folder)!r} named in pipeline.json is missing")
        self._distilled = move_module(load_model(folder, self.model_class), self.device)
        return self._distilled

    def set_distilled(self, student, info: Mapping) -> None:
        """Attach a student (gen.distill) so that save_pretrained writes it to distilled/ and names it."""
        self._distilled = student.eval()
        self.meta["distilled"] = {"folder": DISTILLED, **dict(info)}

    def sampler_for(self, scheduler: str | None, steps: int | None, guidance: float | None
                    ) -> tuple[Any, str, int, float]:
        """(model, sampler, steps, guidance) for a request. ``scheduler="distilled"`` — or ``steps`` equal to the
        distilled student's with no scheduler named — runs the student with its own sampler at guidance 1 (the
        teacher's w is folded in); any other request runs the pipeline's model with the defaults filled in."""
        s_, d = self.sampling, self.distilled
        use_student = scheduler == DISTILLED or (scheduler is None and d is not None and steps is not None
                                                 and int(steps) == int(d["steps"]) != int(s_["steps"]))
        if not use_student:
            return (self.model, scheduler or s_["scheduler"], int(steps or s_["steps"]),
                    float(s_["guidance"] if guidance is None else guidance))
        model = self.distilled_model
        if steps is not None and int(steps) != int(d["steps"]):
            raise ValueError(f"the distilled sampler runs exactly {d['steps']} steps (it was distilled for them), got "
                             f"steps={steps}; use another scheduler for other step counts")
        if guidance is not None and abs(float(guidance) - float(d["guidance"])) > 1e-6:
            raise ValueError(f"the distilled student has the teacher's guidance {d['guidance']} folded in; it cannot "
                             f"sample at guidance {guidance} (use another scheduler to change the guidance)")
        return model, d["sampler"], int(d["steps"]), 1.0

    # -- device --------------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "GenPipeline":
        device = resolve_device(device) if isinstance(device, str) else device
        for m in (self.model, getattr(self, "_distilled", None)):
            if m is not None:
                move_module(m, device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, source={getattr(self, 'source', None)!r})"


def move_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module.to(device)`, except that a module already there is left alone: diffusers' ModelMixin.to imports
    diffusers.hooks, which imports peft and transformers (~1-2 s of every CLI's start-up on this CPU) even when
    nothing moves. Task pipelines use it for every extra model they carry (super-resolution stage, judge, ...)."""
    if not all(t.device == device for t in (*module.parameters(), *module.buffers())):
        module.to(device)
    return module


# ---- the backbone's worked example: a label-conditional model ----------------------------------------------------
class ClassConditionalPipeline(GenPipeline):
    """`gen.models.ClassConditionalModel` (the shipped `shapes` model): pipe(label, num=8, seed=0) → images.

        pipe = ClassConditionalPipeline.from_pretrained("shapes")
        x = pipe(0, num=8, seed=0)                                    # (8, 3, 32, 32) in [-1, 1], class 0
        x = pipe(prompt=3 * (pipe.term(0) & ~pipe.term(1)))           # composite prompts (gen.guidance)
    """

    task = "shapes"
    model_class = ClassConditionalModel
    default_sampling = {"scheduler": "dpm++", "steps": 20, "guidance": 3.0}

    @property
    def class_names(self) -> list[str]:
        names = self.task_config.get("class_names")
        return list(names) if names else [str(i) for i in range(self.model.config.num_classes)]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, s = self.task_config.get("channels", 3), self.task_config.get("size", 32)
        return int(c), int(s), int(s)

    def term(self, label: int | str, weight: float = 1.0):
        if isinstance(label, str):
            if label not in self.class_names:
                raise ValueError(f"unknown class {label!r}; classes: {', '.join(self.class_names)}")
            label = self.class_names.index(label)
        if not 0 <= int(label) < self.model.config.num_classes:
            raise ValueError(f"class index must be in [0, {self.model.config.num_classes}), got {label}")
        return self.model.term(int(label), weight)

    @torch.no_grad()
    def __call__(self, label: int | str | None = None, num: int = 8, seed: int = 0, *, prompt=None,
                 steps: int | None = None, scheduler: str | None = None, guidance: float | None = None,
                 generator=None, progress: ProgressFn | None = None):
        from .guidance import guided_model
        from .sampling import sample

        s = self.sampling
        w = float(s["guidance"] if guidance is None else guidance)
        if prompt is None and label is not None:
            prompt = w * self.term(label)
        f = guided_model(self.model, prompt, self.model.null_cond())
        g = per_sample_generators(seed, num) if generator is None else generator
        return sample(f, (num, *self.image_shape), self.schedule, sampler=scheduler or s["scheduler"],
                      steps=int(steps or s["steps"]), generator=g, prediction_type=self.prediction_type,
                      callback=step_callback(progress), device=self.device)
