"""Ready-made conditional models on top of `ConditionalUNet`, used by the backbone demo, tests and experiments.

Task modules define their own condition encoders the same way: a `ModelMixin` holding the U-Net plus small embedding
modules, whose ``forward(x_t, t, cond)`` maps a condition dict (with ``"g.keep"`` flags) to U-Net inputs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._diffusers import ConfigMixin, ModelMixin, register_to_config
from .conditioning import LabelEmbedding
from .guidance import Term, keep_key, model_device
from .unet import ConditionalUNet


class ClassConditionalModel(ModelMixin, ConfigMixin):
    """U-Net + class-label embedding (with a learned null) fed as the global condition vector.

    cond: {"label": (B,) long, "label.keep": (B,) bool (optional)}.
    """

    @register_to_config
    def __init__(self, num_classes: int = 10, unet_config: dict | None = None):
        super().__init__()
        ucfg = dict(unet_config or {})
        ucfg.setdefault("cond_dim", 4 * ucfg.get("base_channels", 64))
        self.unet = ConditionalUNet(**ucfg)
        self.label = LabelEmbedding(num_classes, self.unet.config.cond_dim)

    @classmethod
    def from_backbone(cls, backbone: ConditionalUNet, num_classes: int) -> "ClassConditionalModel":
        """Attach a label condition to an unconditional backbone through zero-initialised layers."""
        cfg = {k: v for k, v in backbone.config.items() if not k.startswith("_")}
        cfg["cond_dim"] = 4 * cfg["base_channels"]
        model = cls(num_classes=num_classes, unet_config=cfg)
        model.unet = ConditionalUNet.from_backbone(backbone, cond_dim=cfg["cond_dim"])
        return model

    def forward(self, x_t: Tensor, t: Tensor, cond: dict) -> Tensor:
        emb = self.label(cond["label"], cond.get(keep_key("label")))
        return self.unet(x_t, t, cond_vec=emb)

    # guidance helpers
    def term(self, label: int, weight: float = 1.0) -> Term:
        d = model_device(self)  # not ModelMixin.device: it imports diffusers.hooks (and torch._dynamo)
        return Term({"label": torch.tensor([label], device=d), "label.keep": torch.tensor([True], device=d)}, weight,
                    label=str(label))

    @staticmethod
    def null_cond(device=None) -> dict:
        return {"label": torch.tensor([0], device=device), "label.keep": torch.tensor([False], device=device)}
