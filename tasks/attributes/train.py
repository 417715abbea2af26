"""Fine-tune the 2D backbone into the tri-state multi-label attribute model (on / off / unspecified per attribute).

    accelerate launch tasks/attributes/train.py --config configs/attributes.yaml                      # shipped model
    accelerate launch tasks/attributes/train.py --config configs/attributes.yaml model.init_from= \
        train.output_dir=runs/attributes_scratch                                                     # from scratch
    accelerate launch tasks/attributes/train.py --config configs/attributes.yaml data.attribute_dropout=0 \
        train.output_dir=runs/attributes_joint                                    # baseline: joint, no per-attr drop

Each attribute is dropped to "unspecified" independently with P = data.attribute_dropout (gen.guidance.drop_conditions
with elementwise={"attrs": K}), and the whole condition with P = data.condition_dropout, so every subset of attributes
(including the empty one, the unconditional model) is a learned condition. Every option has a default below;
`--dry-run` prints the resolved config.
"""
from __future__ import annotations

import os
import sys

import torch

from gen.guidance import keep_key
from gen.train import DIFFUSION_DEFAULTS, TRAIN_DEFAULTS, TrainTask, run_cli
from gen.unet import ConditionalUNet
from tasks.attributes.faces import ATTRIBUTES, FaceDataset
from tasks.attributes.model import GROUP, AttributeModel

DEFAULTS = dict(
    model=dict(
        base_channels=32,          # U-Net width of the first level (ignored with init_from: the backbone's is used)
        channel_mult=[1, 2, 2],    # width multiplier per level (ignored with init_from)
        layers_per_block=1,        # ResBlocks per level (ignored with init_from)
        attention_levels=[2],      # levels with self- and cross-attention (ignored with init_from)
        head_dim=32,               # attention head width (ignored with init_from)
        patch_size=1,              # space-to-depth stem factor (ignored with init_from)
        dropout=0.0,               # ResBlock dropout (ignored with init_from)
        token_dim=64,              # width D of each attribute token (cross-attention context)
        init_from="",              # backbone folder (ConditionalUNet save_pretrained layout); "" = from scratch
    ),
    diffusion=dict(DIFFUSION_DEFAULTS),
    train=dict(TRAIN_DEFAULTS),
    data=dict(
        size=32,                   # image side: 32 or 64
        num_samples=20000,         # procedural train-split faces (rendered once, cached under data/cache/attributes)
        seed=0,                    # data seed of the procedural faces
        attribute_dropout=0.7,     # P(one attribute → unspecified), independently per attribute and sample
        condition_dropout=0.1,     # P(all attributes → unspecified at once): the unconditional model ε_∅
    ),
)


def build_model(mcfg: dict) -> AttributeModel:
    init = mcfg["init_from"]
    if init:
        if not os.path.exists(os.path.join(init, "config.json")):
            raise ValueError(f"model.init_from={init!r} is not a backbone folder (a ConditionalUNet save_pretrained "
                             "folder with config.json, e.g. runs/backbone_2d/checkpoints/step_0004000/ema); "
                             "use model.init_from= to train from scratch")
        return AttributeModel.from_backbone(ConditionalUNet.from_pretrained(init, use_safetensors=True), ATTRIBUTES, mcfg["token_dim"])
    ucfg = {k: v for k, v in mcfg.items() if k not in ("init_from", "token_dim")}
    ucfg.update(dims=2, in_channels=3)
    return AttributeModel(ATTRIBUTES, mcfg["token_dim"], unet_config=ucfg)


class _BatchTo:
    """Collated batch → (x_0 (B, 3, H, W), {"attrs": (B, K), "attrs.keep": (B, K)}), with whole-condition dropout.

    The whole-condition drop uses torch's global generator (seeded by the train seed, saved and restored with every
    checkpoint), because the loop's own generator only reaches gen.guidance.drop_conditions; the per-attribute drop
    happens there, AND-ed with these flags."""

    def __init__(self, condition_dropout: float):
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"data.condition_dropout must be in [0, 1], got {condition_dropout}")
        self.p = condition_dropout

    def __call__(self, batch):
        x, attrs = batch["image"], batch["attrs"]
        keep = (torch.rand(attrs.shape[0], 1) >= self.p).expand_as(attrs).clone()  # (B, K)
        return x, {GROUP: attrs, keep_key(GROUP): keep}


def check_backbone_diffusion(init_from: str, diffusion: dict) -> None:
    """A fine-tune must keep the backbone's noise schedule and parameterisation: compare with the backbone run's saved
    config (…/checkpoints/step_N/ema → …/checkpoints/step_N/config.yaml), when there is one."""
    path = os.path.join(os.path.dirname(os.path.abspath(init_from)), "config.yaml")
    if not os.path.exists(path):
        return
    import yaml

    with open(path) as f:
        bdiff = (yaml.safe_load(f) or {}).get("diffusion", {})
    for key in ("schedule", "T", "prediction_type"):
        if key in bdiff and bdiff[key] != diffusion[key]:
            raise ValueError(f"diffusion.{key}={diffusion[key]!r} differs from the backbone's {bdiff[key]!r} ({path}); "
                             f"set diffusion.{key}={bdiff[key]} to fine-tune it")


def build_task(cfg: dict) -> TrainTask:
    data = cfg["data"]
    if cfg["model"]["init_from"]:
        check_backbone_diffusion(cfg["model"]["init_from"], cfg["diffusion"])
    if not 0.0 <= data["attribute_dropout"] <= 1.0:
        raise ValueError(f"data.attribute_dropout must be in [0, 1], got {data['attribute_dropout']}")
    model = build_model(cfg["model"])
    dataset = FaceDataset(data["num_samples"], seed=data["seed"], size=data["size"], split="train", cache=True)
    return TrainTask(model, dataset, batch_to=_BatchTo(data["condition_dropout"]),
                     dropout={GROUP: data["attribute_dropout"]}, elementwise={GROUP: len(ATTRIBUTES)}, config=cfg)


def main(argv=None) -> dict:
    cfg, summary = run_cli(argv, __doc__.splitlines()[0], "configs/attributes.yaml", DEFAULTS, build_task)
    return summary or cfg


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
