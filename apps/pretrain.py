"""Backbone pretraining (unconditional) and class-conditional fine-tuning on the backbone's own procedural data.

    accelerate launch apps/pretrain.py --config configs/backbone_2d.yaml              # unconditional 2D backbone
    accelerate launch apps/pretrain.py --config configs/backbone_1d.yaml              # unconditional 1D backbone
    accelerate launch apps/pretrain.py --config configs/shapes_classcond.yaml \
        model.init_from=runs/backbone_2d/checkpoints/step_0004000/ema                 # label-conditional fine-tune

Every option has a default below; `--dry-run` prints the resolved config. Task data sets join the union here as the
tasks land (data.source); until then the procedural Shapes2D / Curves1D sets stand in.
"""
from __future__ import annotations

import sys

import torch

from gen.guidance import Term, guided_model
from gen.models import ClassConditionalModel
from gen.sampling import sample_ddim
from gen.schedule import DiffusionSchedule
from gen.toydata import Curves1D, Shapes2D
from gen.train import DIFFUSION_DEFAULTS, TRAIN_DEFAULTS, TrainTask, run_cli
from gen.unet import ConditionalUNet

DEFAULTS = dict(
    model=dict(
        dims=2,                    # 1: (B, C, T) sequences, 2: (B, C, H, W) images
        in_channels=3,             # data channels
        base_channels=64,          # width of the first level
        channel_mult=[1, 2, 2],    # width multiplier per level
        layers_per_block=2,        # ResBlocks per level (down path; up path has one more)
        attention_levels=[2],      # levels with self-attention (0 = full resolution)
        head_dim=32,               # attention head width
        patch_size=1,              # space-to-depth stem factor
        dropout=0.0,
        init_from="",              # a backbone folder (save_pretrained layout) to fine-tune from
    ),
    diffusion=dict(DIFFUSION_DEFAULTS),
    train=dict(TRAIN_DEFAULTS),
    data=dict(
        source="shapes2d",         # shapes2d | curves1d | faces | glyphs | union2d (faces + glyphs) | dance
        size=32,                   # image side (2D) or sequence length (1D)
        num_samples=20000,         # procedural samples (shapes, curves, faces) in the training set
        num_classes=4,             # classes in the procedural set
        class_conditional=False,   # train a label-conditional model (with dropout `label_dropout`) instead
        label_dropout=0.1,         # classifier-free guidance: P(label → learned null)
    ),
)


class _AsX(torch.utils.data.Dataset):
    """View a task data set as backbone items {"x": (C, *S)}: take `key`, replicate 1 channel to `channels`."""

    def __init__(self, ds, key: str, channels: int):
        self.ds, self.key, self.channels = ds, key, channels

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        x = self.ds[i][self.key]
        if x.shape[0] != self.channels:
            x = x.expand(self.channels, *x.shape[1:])
        return {"x": x, "label": 0}


SOURCES = ("shapes2d", "curves1d", "faces", "glyphs", "union2d", "dance")


def build_dataset(data: dict, model_cfg: dict):
    """The training set for `data.source`. Task sources (faces, glyphs, dance) are unlabelled: use them unconditionally.

    union2d = the 2D tasks' training data together (procedural faces RGB + calligraphy glyphs replicated to RGB), at
    data.size — the backbone the attribute and calligraphy tasks fine-tune from.
    """
    src = data["source"]
    if src == "shapes2d":
        return Shapes2D(data["num_samples"], data["size"], data["num_classes"], seed=0)
    if src == "curves1d":
        return Curves1D(data["num_samples"], model_cfg["in_channels"], data["size"], data["num_classes"], seed=0)
    parts = []
    if src in ("faces", "union2d"):
        from tasks.attributes.faces import FaceDataset
        parts.append(_AsX(FaceDataset(data["num_samples"], seed=0, size=data["size"], split="train", cache=True),
                          "image", model_cfg["in_channels"]))
    if src in ("glyphs", "union2d"):
        from tasks.calligraphy.data import GlyphDataset
        parts.append(_AsX(GlyphDataset("train", size=data["size"]), "image", model_cfg["in_channels"]))
    if src == "dance":
        from tasks.dance.data import DanceWindows
        # the same songs and windows as configs/dance.yaml's defaults
        parts.append(_AsX(DanceWindows(split="train", num_songs=128, seconds=12.0, stride=10), "x",
                          model_cfg["in_channels"]))
    if not parts:
        raise ValueError(f"unknown data.source {src!r}; accepted: {SOURCES}")
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


def sample_grid_fn(cfg: dict, conditional: bool):
    """TensorBoard sample grids for 2D data: 16 DDIM (20-step) samples from the EMA model; class rows if conditional."""
    if cfg["model"]["dims"] != 2:
        return None
    schedule = DiffusionSchedule.make(cfg["diffusion"]["schedule"], cfg["diffusion"]["T"])
    shape = (16, cfg["model"]["in_channels"], cfg["data"]["size"], cfg["data"]["size"])

    @torch.no_grad()
    def grid(model, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        if conditional:
            labels = torch.arange(16) % cfg["data"]["num_classes"]
            cond = {"label": labels, "label.keep": torch.ones(16, dtype=torch.bool)}
            f = guided_model(model, 3.0 * Term(cond), ClassConditionalModel.null_cond())
        else:
            f = lambda x, t: model(x, t)  # noqa: E731
        return sample_ddim(f, shape, schedule, steps=20, generator=g, prediction_type=cfg["diffusion"]["prediction_type"])
    return grid


def build_task(cfg: dict) -> TrainTask:
    mcfg = {k: v for k, v in cfg["model"].items() if k != "init_from"}
    mcfg["channel_mult"], mcfg["attention_levels"] = tuple(mcfg["channel_mult"]), tuple(mcfg["attention_levels"])
    data = cfg["data"]
    init = cfg["model"]["init_from"]
    if data["class_conditional"]:
        if init:
            model = ClassConditionalModel.from_backbone(ConditionalUNet.from_pretrained(init, use_safetensors=True), data["num_classes"])
        else:
            model = ClassConditionalModel(data["num_classes"], unet_config=mcfg)
        return TrainTask(model, build_dataset(data, mcfg),
                         batch_to=lambda b: (b["x"], {"label": b["label"]}),
                         dropout={"label": data["label_dropout"]}, sample_grid=sample_grid_fn(cfg, True), config=cfg)
    model = ConditionalUNet.from_pretrained(init, use_safetensors=True) if init else ConditionalUNet(**mcfg)
    return TrainTask(model, build_dataset(data, mcfg), batch_to=lambda b: (b["x"], {}),
                     forward=lambda m, x, t, c: m(x, t), sample_grid=sample_grid_fn(cfg, False), config=cfg)


def main(argv=None) -> dict:
    cfg, summary = run_cli(argv, __doc__.splitlines()[0], "configs/backbone_2d.yaml", DEFAULTS, build_task)
    return summary or cfg


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
