"""Conditional U-Net for 1D (B, C, T) and 2D (B, C, H, W) data, one architecture with `dims` ∈ {1, 2}.

A diffusers `ModelMixin`/`ConfigMixin`, so `save_pretrained` / `from_pretrained` work with safetensors. diffusers'
`UNet1DModel` has no conditioning at all (diffusers issues #4613, #3044); this one takes three kinds:

- ``cond_vec``    (B, cond_dim)             a global vector, added to the time embedding (FiLM in every ResBlock);
- ``cond_tokens`` (B, L, cross_dim)         a sequence, read by cross-attention, with ``token_mask`` (B, L) bool;
- ``cond_image``  (B, extra_in_channels, *S) extra channels concatenated to the input (a glyph, frame-aligned music).

Every conditioning path ends in a zero-initialised layer, so `from_backbone` can attach conditioning to a pretrained
unconditional model and reproduce it exactly at fine-tuning step 0.

CPU-minded design: a space-to-depth stem (`patch_size`) moves the first level off the full resolution, 2D activations
run channels_last (oneDNN's fast path), attention uses `scaled_dot_product_attention`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._diffusers import ConfigMixin, ModelMixin, register_to_config


def _conv(dims: int, *args, **kw) -> nn.Module:
    return (nn.Conv1d if dims == 1 else nn.Conv2d)(*args, **kw)


def _groups(ch: int, want: int = 32) -> int:
    g = min(want, ch)
    while ch % g:
        g -= 1
    return g


def zero_(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps t (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv → FiLM(emb) → GroupNorm → SiLU → conv, plus a skip (Dhariwal & Nichol 2021)."""

    def __init__(self, dims: int, cin: int, cout: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = _conv(dims, cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_(_conv(dims, cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else _conv(dims, cin, cout, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb).unsqueeze(-1).chunk(2, dim=1)  # (B, C, 1)
        if h.ndim == 4:
            scale, shift = scale.unsqueeze(-1), shift.unsqueeze(-1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over positions, optionally followed by cross-attention to condition tokens."""

    def __init__(self, ch: int, head_dim: int, cross_dim: int = 0):
        super().__init__()
        self.heads = max(1, ch // head_dim)
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = zero_(nn.Linear(ch, ch))
        self.cross = None
        if cross_dim:
            self.cross_norm = nn.LayerNorm(ch)
            self.q = nn.Linear(ch, ch)
            self.kv = nn.Linear(cross_dim, 2 * ch)
            self.sink = nn.Parameter(torch.zeros(1, 1, cross_dim))  # always-valid key, so an all-masked row is finite
            self.cross = zero_(nn.Linear(ch, ch))

    def _split(self, x: Tensor) -> Tensor:  # (B, N, C) -> (B, heads, N, C/heads)
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, tokens: Tensor | None = None, token_mask: Tensor | None = None) -> Tensor:
        shape = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        h0 = x.flatten(2).transpose(1, 2) + self.proj(a.transpose(1, 2).reshape(h.shape))
        if self.cross is not None and tokens is not None:
            b = x.shape[0]
            tokens = torch.cat([self.sink.expand(b, 1, -1).to(tokens.dtype), tokens], 1)  # (B, 1+L, D)
            mask = None
            if token_mask is not None:
                mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), token_mask.bool()], 1)
                mask = mask[:, None, None, :]  # (B, 1, 1, 1+L)
            ck, cv = self.kv(tokens).chunk(2, dim=-1)
            cq = self.q(self.cross_norm(h0))
            ca = F.scaled_dot_product_attention(self._split(cq), self._split(ck), self._split(cv), attn_mask=mask)
            h0 = h0 + self.cross(ca.transpose(1, 2).reshape(h0.shape))
        return h0.transpose(1, 2).reshape(shape)


class Down(nn.Module):
    def __init__(self, dims: int, ch: int):
        super().__init__()
        self.conv = _conv(dims, ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, dims: int, ch: int):
        super().__init__()
        self.conv = _conv(dims, ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _adapt_channels(w: Tensor, c_new: int, how: str) -> Tensor:
    """Map weights along dim 1 (input) / dim 0 (output) of size C to size c_new: identity, C → 1 (sum or mean)."""
    dim = 1 if how == "sum" else 0
    c_old = w.shape[dim]
    if c_old == c_new:
        return w
    if c_new == 1:
        return w.sum(dim, keepdim=True) if how == "sum" else w.mean(dim, keepdim=True)
    raise ValueError(f"cannot adapt {c_old} backbone channels to {c_new}; accepted: the same count, or 1")


class ConditionalUNet(ModelMixin, ConfigMixin):
    """ε/v/x_0-prediction U-Net: ``forward(sample, timestep, cond_vec, cond_tokens, token_mask, cond_image)``.

    Shapes: sample (B, in_channels, *S) with S = (T,) for dims=1, (H, W) for dims=2. Sizes not divisible by
    patch_size · 2^(levels−1) are padded (replicate) at the end and cropped back. Returns (B, out_channels, *S).
    """

    @register_to_config
    def __init__(self, dims: int = 2, in_channels: int = 3, out_channels: int | None = None, extra_in_channels: int = 0,
                 base_channels: int = 64, channel_mult: tuple = (1, 2, 2), layers_per_block: int = 2,
                 attention_levels: tuple = (2,), head_dim: int = 32, cond_dim: int = 0, cross_dim: int = 0,
                 patch_size: int = 1, dropout: float = 0.0):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        self.dims, self.patch = dims, patch_size
        out_channels = out_channels or in_channels
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = zero_(nn.Linear(cond_dim, emb_dim)) if cond_dim else None
        stem = (in_channels + extra_in_channels) * patch_size ** dims
        self.conv_in = _conv(dims, stem, base_channels, 3, padding=1)
        if extra_in_channels:  # zero the weights that read the extra channels
            with torch.no_grad():
                w = self.conv_in.weight.view(base_channels, in_channels + extra_in_channels, patch_size ** dims, -1)
                w[:, in_channels:] = 0

        chans = [base_channels * m for m in channel_mult]
        self.down, skips, ch = nn.ModuleList(), [base_channels], base_channels
        for lvl, c in enumerate(chans):
            for _ in range(layers_per_block):
                blk = nn.ModuleList([ResBlock(dims, ch, c, emb_dim, dropout)])
                if lvl in attention_levels:
                    blk.append(Attention(c, head_dim, cross_dim))
                self.down.append(blk)
                ch = c
                skips.append(ch)
            if lvl < len(chans) - 1:
                self.down.append(nn.ModuleList([Down(dims, ch)]))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(dims, ch, ch, emb_dim, dropout), Attention(ch, head_dim, cross_dim),
                                  ResBlock(dims, ch, ch, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for lvl, c in reversed(list(enumerate(chans))):
            for i in range(layers_per_block + 1):
                blk = nn.ModuleList([ResBlock(dims, ch + skips.pop(), c, emb_dim, dropout)])
                if lvl in attention_levels:
                    blk.append(Attention(c, head_dim, cross_dim))
                ch = c
                if lvl > 0 and i == layers_per_block:
                    blk.append(Up(dims, ch))
                self.up.append(blk)
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = zero_(_conv(dims, ch, out_channels * patch_size ** dims, 3, padding=1))
        self.factor = patch_size * 2 ** (len(chans) - 1)

    # -- space-to-depth stem ------------------------------------------------------------------------------------------
    def _patchify(self, x: Tensor) -> Tensor:
        p = self.patch
        if p == 1:
            return x
        if self.dims == 2:
            return F.pixel_unshuffle(x, p)
        b, c, t = x.shape  # (B, C, T) -> (B, C·p, T/p)
        return x.view(b, c, t // p, p).permute(0, 1, 3, 2).reshape(b, c * p, t // p)

    def _unpatchify(self, x: Tensor) -> Tensor:
        p = self.patch
        if p == 1:
            return x
        if self.dims == 2:
            return F.pixel_shuffle(x, p)
        b, cp, t = x.shape
        return x.view(b, cp // p, p, t).permute(0, 1, 3, 2).reshape(b, cp // p, t * p)

    def forward(self, sample: Tensor, timestep: Tensor | float | int, cond_vec: Tensor | None = None,
                cond_tokens: Tensor | None = None, token_mask: Tensor | None = None,
                cond_image: Tensor | None = None) -> Tensor:
        cfg = self.config
        if sample.ndim != self.dims + 2 or sample.shape[1] != cfg.in_channels:
            raise ValueError(f"sample must be (B, {cfg.in_channels}, {'T' if self.dims == 1 else 'H, W'}), "
                             f"got {tuple(sample.shape)}")
        size = sample.shape[2:]
        pad = [(-n) % self.factor for n in size]  # sizes not divisible by the U-Net's factor: pad at the end, crop back
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.expand(b) if t.ndim == 0 else t
        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels).to(sample.dtype))
        if self.cond_proj is not None and cond_vec is not None:
            emb = emb + self.cond_proj(cond_vec)
        emb = F.silu(emb)  # shared by every ResBlock's FiLM projection
        if cfg.extra_in_channels:
            if cond_image is None:
                raise ValueError(f"this model needs cond_image with {cfg.extra_in_channels} channels")
            sample = torch.cat([sample, cond_image.to(sample.dtype)], 1)
        if cond_tokens is not None and not cfg.cross_dim:
            raise ValueError("cond_tokens given but the model has cross_dim = 0")
        if any(pad):
            spec = [q for p in reversed(pad) for q in (0, p)]  # F.pad order: last dim first
            sample = F.pad(sample, spec, mode="replicate")
        x = self._patchify(sample)
        if self.dims == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.conv_in(x)
        hs = [h]
        for blk in self.down:
            h = self._run(blk, h, emb, cond_tokens, token_mask)
            hs.append(h)
        h = self._run(self.mid, h, emb, cond_tokens, token_mask)
        for blk in self.up:
            h = self._run(blk, torch.cat([h, hs.pop()], 1), emb, cond_tokens, token_mask)
        out = self.conv_out(F.silu(self.norm_out(h)))
        out = self._unpatchify(out)
        if any(pad):
            out = out[(..., *[slice(0, n) for n in size])]
        return out.contiguous()

    @staticmethod
    def _run(blk, h, emb, tokens, mask):
        for layer in blk:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, Attention):
                h = layer(h, tokens, mask)
            else:
                h = layer(h)
        return h

    @classmethod
    def from_backbone(cls, backbone: "ConditionalUNet", **cond_config) -> "ConditionalUNet":
        """A copy of `backbone` with conditioning paths (cond_dim, cross_dim, extra_in_channels) attached through
        zero-initialised layers: at step 0 its output equals the backbone's for any condition.

        in_channels / out_channels may change between 1 and C (e.g. an RGB backbone for grayscale glyphs): the input
        weights are summed over the RGB channels and the output weights averaged, so for a grayscale image replicated to
        RGB the new model's output equals the channel mean of the backbone's."""
        allowed = {"cond_dim", "cross_dim", "extra_in_channels", "dropout", "in_channels", "out_channels"}
        bad = set(cond_config) - allowed
        if bad:
            raise ValueError(f"from_backbone can only change {sorted(allowed)}, got {sorted(bad)}")
        bcfg = backbone.config
        cfg = {k: v for k, v in bcfg.items() if not k.startswith("_")}
        cfg["out_channels"] = cfg.get("out_channels") or cfg["in_channels"]
        if "in_channels" in cond_config and "out_channels" not in cond_config:
            cond_config["out_channels"] = cond_config["in_channels"]
        cfg.update(cond_config)
        model = cls(**cfg)
        state = backbone.state_dict()
        own = model.state_dict()
        p = bcfg.patch_size ** bcfg.dims
        c_old, c_new = bcfg.in_channels, cfg["in_channels"]
        # conv_in: (out, (C + K)·p, k…) viewed as (out, C + K, p, k…)
        w_old = state["conv_in.weight"].view(own["conv_in.weight"].shape[0], -1, p, *own["conv_in.weight"].shape[2:])
        merged = torch.zeros_like(own["conv_in.weight"]).view(w_old.shape[0], -1, p, *w_old.shape[3:])
        merged[:, :c_new] = _adapt_channels(w_old[:, :c_old], c_new, "sum")
        merged[:, c_new:c_new + bcfg.extra_in_channels] = w_old[:, c_old:]
        state["conv_in.weight"] = merged.view_as(own["conv_in.weight"])
        o_old = bcfg.out_channels or c_old
        if cfg["out_channels"] != o_old:  # conv_out: (o·p, ch, k…) viewed as (o, p, ch, k…)
            w = state["conv_out.weight"].view(o_old, p, *state["conv_out.weight"].shape[1:])
            state["conv_out.weight"] = _adapt_channels(w, cfg["out_channels"], "mean").reshape(own["conv_out.weight"].shape)
            bias = state["conv_out.bias"].view(o_old, p)
            state["conv_out.bias"] = _adapt_channels(bias, cfg["out_channels"], "mean").reshape(-1)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"backbone has parameters the new model lacks: {unexpected[:5]}")
        return model
