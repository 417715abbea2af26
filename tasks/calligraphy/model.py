"""Text-to-calligraphy model: a 2D `ConditionalUNet` conditioned on a content glyph and a style vector.

Conditions (a dict of batched tensors; see `gen.guidance` for the ``"g.keep"`` convention):

    content       (B, 1, H, W)    the character in the plain content font (Noto Sans), ink +1 on −1; concatenated to x_t
    content.keep  (B,) bool       False → learned constant (group "content", `NullableImage`)
    style_source  (B,) long       where the style vector comes from: 0 = style id, 1 = reference glyphs, 2 = text
    style_id      (B,) long       index into the training styles                         (source 0)
    refs          (B, K, 1, H, W) K reference glyphs of the style (any characters)      (source 1)
    refs_mask     (B, K) bool     which of the K references are real (mean over those)
    text_emb      (B, text_dim)   a sentence embedding of a style description            (source 2)
    style.keep    (B,) bool       False → learned null style vector (group "style", `NullableEmbedding`)

All three style sources map into the same cond_dim space; the vector enters the U-Net as ``cond_vec`` (FiLM in every
ResBlock). Content and style are dropped independently in training, so classifier-free guidance can weigh them apart.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gen._diffusers import ConfigMixin, ModelMixin, register_to_config
from gen.conditioning import NullableEmbedding, NullableImage
from gen.guidance import keep_key
from gen.unet import ConditionalUNet

SOURCE_ID, SOURCE_REFS, SOURCE_TEXT = 0, 1, 2


class StyleEncoder(nn.Module):
    """Small CNN over K reference glyphs, mean-pooled over the real ones: (B, K, 1, H, W) → (B, dim)."""

    def __init__(self, dim: int, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, dim))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, refs: Tensor, mask: Tensor | None = None) -> Tensor:
        b, k = refs.shape[:2]
        f = self.net(refs.flatten(0, 1)).view(b, k, -1)                   # (B, K, D)
        m = torch.ones(b, k, device=refs.device) if mask is None else mask.to(refs.device, f.dtype)
        pooled = (f * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)  # mean over real references
        return self.out(pooled)


class CalligraphyModel(ModelMixin, ConfigMixin):
    """U-Net + content glyph (concatenated channel) + style vector (id | references | text) with learned nulls."""

    @register_to_config
    def __init__(self, style_names: tuple = (), image_size: int = 32, cond_dim: int = 128, text_dim: int = 384,
                 style_encoder_width: int = 32, unet_config: dict | None = None):
        super().__init__()
        if not style_names:
            raise ValueError("CalligraphyModel needs the list of training style names (style_names)")
        ucfg = dict(unet_config or {})
        ucfg.update(dims=2, in_channels=1, extra_in_channels=1, cond_dim=cond_dim)
        ucfg.pop("out_channels", None)
        for k in ("channel_mult", "attention_levels"):
            if k in ucfg:
                ucfg[k] = tuple(ucfg[k])
        self.unet = ConditionalUNet(**ucfg)
        self.content = NullableImage(1)
        self.style_table = nn.Embedding(len(style_names), cond_dim)
        self.style_encoder = StyleEncoder(cond_dim, style_encoder_width)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.style_null = NullableEmbedding(cond_dim)

    @classmethod
    def from_backbone(cls, backbone: ConditionalUNet, style_names, image_size: int, cond_dim: int = 128,
                      text_dim: int = 384, style_encoder_width: int = 32) -> "CalligraphyModel":
        """Attach the calligraphy conditions to an unconditional (RGB or gray) 2D backbone. At step 0 the output is the
        backbone's channel mean on the glyph replicated to its channels, for any condition (zero-initialised paths)."""
        if backbone.config.dims != 2:
            raise ValueError(f"the calligraphy model needs a 2D backbone, got dims={backbone.config.dims}")
        unet = ConditionalUNet.from_backbone(backbone, in_channels=1, extra_in_channels=1, cond_dim=cond_dim)
        ucfg = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        model = cls(tuple(style_names), image_size, cond_dim, text_dim, style_encoder_width, ucfg)
        model.unet = unet
        return model

    @property
    def style_names(self) -> list[str]:
        return list(self.config.style_names)

    def style_vector(self, cond: dict) -> Tensor:
        """(B, cond_dim): the style vector from each sample's source, null where style.keep is False."""
        src = cond["style_source"].long()                                   # (B,)
        b = src.shape[0]
        d = self.config.cond_dim
        v = self.style_null.null.to(self.dtype).expand(b, d)
        if (src == SOURCE_ID).any():
            ids = cond["style_id"].long()
            n = len(self.config.style_names)
            bad = (src == SOURCE_ID) & ((ids < 0) | (ids >= n))
            if bad.any():
                raise ValueError(f"style_id must be in [0, {n}) where style_source is 0")
            v = torch.where((src == SOURCE_ID)[:, None], self.style_table(ids.clamp(0, n - 1)), v)
        if (src == SOURCE_REFS).any():
            sel = src == SOURCE_REFS                                          # encode only the rows that use refs
            mask = cond.get("refs_mask")
            enc = self.style_encoder(cond["refs"][sel], None if mask is None else mask[sel])
            v = v.clone()
            v[sel] = enc.to(v.dtype)
        if (src == SOURCE_TEXT).any():
            v = torch.where((src == SOURCE_TEXT)[:, None], self.text_proj(cond["text_emb"].to(self.dtype)), v)
        return self.style_null(v, cond.get(keep_key("style")))

    def forward(self, x_t: Tensor, t: Tensor, cond: dict) -> Tensor:
        """x_t (B, 1, H, W), t (B,) → ε̂ (B, 1, H, W)."""
        content = self.content(cond["content"], cond.get(keep_key("content")))   # (B, 1, H, W)
        return self.unet(x_t, t, cond_vec=self.style_vector(cond), cond_image=content)
