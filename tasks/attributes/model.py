"""The multi-label attribute model: a 2D `ConditionalUNet` conditioned on K binary attributes, each *tri-state*
(on / off / unspecified).

Every attribute k becomes one condition token of width D::

    token_k = value_emb[k, a_k] + attr_emb[k]        if keep_k   (a_k ∈ {0, 1}: off / on)
    token_k = null_k                                  otherwise   (learned "unspecified", gen.conditioning)

The K tokens are read by the U-Net's cross-attention (cond_tokens (B, K, D)) and, flattened through a small MLP, give
the global vector (cond_vec (B, cond_dim)) added to the time embedding. Training drops each attribute to
"unspecified" independently (``TrainTask(dropout={"attrs": p}, elementwise={"attrs": K})``), so every subset of
attributes is a learned condition and a term that specifies a single attribute is an in-distribution input.

cond dict: {"attrs": (B, K) float/long 0/1, "attrs.keep": (B, K) bool (optional; absent = all specified)}.

    model = AttributeModel(unet_config=dict(base_channels=32, channel_mult=(1, 2, 2), layers_per_block=1))
    model = AttributeModel.from_backbone(ConditionalUNet.from_pretrained("runs/backbone_2d/.../ema"))
    eps = model(x_t, t, {"attrs": a, "attrs.keep": keep})                # (B, 3, H, W)
    glasses = model.term({"glasses": True})                               # a gen.guidance.Term
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from gen._diffusers import ConfigMixin, ModelMixin, register_to_config
from gen.conditioning import NullableEmbedding
from gen.guidance import Term, keep_key
from gen.unet import ConditionalUNet
from tasks.attributes.faces import ATTRIBUTES

GROUP = "attrs"  # the condition group name (cond["attrs"], cond["attrs.keep"])


class AttributeModel(ModelMixin, ConfigMixin):
    """U-Net + K tri-state attribute tokens (cross-attention) and their pooled vector (FiLM)."""

    @register_to_config
    def __init__(self, attributes: Sequence[str] = ATTRIBUTES, token_dim: int = 64, unet_config: dict | None = None):
        super().__init__()
        self.attributes = tuple(attributes)
        k = len(self.attributes)
        ucfg = dict(unet_config or {})
        ucfg.setdefault("dims", 2)
        ucfg.setdefault("in_channels", 3)
        ucfg.setdefault("cond_dim", 4 * ucfg.get("base_channels", 64))
        ucfg["cross_dim"] = token_dim
        for key in ("channel_mult", "attention_levels"):
            if key in ucfg:
                ucfg[key] = tuple(ucfg[key])
        self.unet = ConditionalUNet(**ucfg)
        cond_dim = self.unet.config.cond_dim
        g = torch.Generator().manual_seed(0)
        self.value_emb = nn.Parameter(torch.randn(k, 2, token_dim, generator=g) * 0.5)  # (K, 2, D): off / on
        self.attr_emb = nn.Parameter(torch.randn(k, token_dim, generator=g) * 0.5)  # (K, D): which attribute
        self.null = NullableEmbedding(token_dim, num_elements=k)  # (K, D) learned "unspecified"
        self.to_vec = nn.Sequential(nn.Linear(k * token_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    @classmethod
    def from_backbone(cls, backbone: ConditionalUNet, attributes: Sequence[str] = ATTRIBUTES,
                      token_dim: int = 64) -> "AttributeModel":
        """Attach attribute conditioning to an unconditional backbone through zero-initialised layers: at step 0 the
        model's output equals the backbone's for every condition."""
        cfg = {k: v for k, v in backbone.config.items() if not k.startswith("_")}
        if cfg.get("dims") != 2:
            raise ValueError(f"the attribute model needs a 2D backbone (dims=2), got dims={cfg.get('dims')}")
        cfg["cond_dim"] = 4 * cfg["base_channels"]
        cfg["cross_dim"] = token_dim
        model = cls(attributes=attributes, token_dim=token_dim, unet_config=cfg)
        model.unet = ConditionalUNet.from_backbone(backbone, cond_dim=cfg["cond_dim"], cross_dim=token_dim)
        return model

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def encode(self, attrs: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        """attrs (B, K) 0/1, keep (B, K) bool or None → tokens (B, K, D), vector (B, cond_dim)."""
        k = self.num_attributes
        if attrs.ndim != 2 or attrs.shape[1] != k:
            raise ValueError(f"cond['attrs'] must be (B, {k}) with columns {list(self.attributes)}, "
                             f"got {tuple(attrs.shape)}")
        idx = attrs.round().long()
        if idx.numel() and (idx.min() < 0 or idx.max() > 1):
            raise ValueError("cond['attrs'] values must be 0 (off) or 1 (on)")
        cols = torch.arange(k, device=idx.device)
        tokens = self.value_emb[cols, idx] + self.attr_emb  # (B, K, D)
        tokens = self.null(tokens, keep)  # unspecified → learned null, per element
        return tokens, self.to_vec(tokens.flatten(1))

    def forward(self, x_t: Tensor, t: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        tokens, vec = self.encode(cond[GROUP].to(x_t.device), cond.get(keep_key(GROUP)))
        return self.unet(x_t, t, cond_vec=vec.to(x_t.dtype), cond_tokens=tokens.to(x_t.dtype))

    # -- guidance helpers ---------------------------------------------------------------------------------------------
    def condition(self, spec: Mapping[str, bool]) -> dict[str, Tensor]:
        """{name: True/False} → a batch-1 condition with those attributes on/off and all others unspecified."""
        return make_condition(spec, self.attributes)

    def term(self, spec: Mapping[str, bool], weight: float = 1.0, label: str = "") -> Term:
        return Term(self.condition(spec), weight, label=label or describe(spec))

    def null_cond(self) -> dict[str, Tensor]:
        """Every attribute unspecified: the unconditional input."""
        return make_condition({}, self.attributes)


def make_condition(spec: Mapping[str, bool], attributes: Sequence[str] = ATTRIBUTES) -> dict[str, Tensor]:
    """{name: bool} → {"attrs": (1, K) float, "attrs.keep": (1, K) bool}; names not in spec are unspecified."""
    attributes = tuple(attributes)
    unknown = sorted(set(spec) - set(attributes))
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; valid attributes: {', '.join(attributes)}")
    values = torch.tensor([[float(bool(spec.get(a, False))) for a in attributes]])
    keep = torch.tensor([[a in spec for a in attributes]])
    return {GROUP: values, keep_key(GROUP): keep}


def describe(spec: Mapping[str, bool]) -> str:
    return " & ".join(("" if on else "~") + a for a, on in spec.items()) or "unconditional"
