"""Music-conditioned motion diffusion model: the 1D `ConditionalUNet` over (B, 151, T) motion with frame-aligned music.

Conditions (each with a learned null for classifier-free guidance, Ho & Salimans 2021):

- ``music`` (B, M, T) raw features (M = ``music_dim``: EDGE's 35, or 39 with `tasks.dance.audio.rhythm_channels`
  computed over the whole song) → normalised with the model's buffers → `NullableImage` → concatenated to the
  motion channels (``cond_image``; group "music");
- ``genre`` (B,) long, optional → `LabelEmbedding` → ``cond_vec`` (FiLM; group "genre").

The checkpoint is self-contained: the motion and music normalisation (mean / std buffers) and the diffusion schedule
the model was trained with are part of its config / state, so ``DanceModel.from_pretrained(folder)`` is all that
generation needs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from gen._diffusers import ConfigMixin, ModelMixin, register_to_config
from gen.conditioning import LabelEmbedding, NullableImage
from gen.guidance import Term, keep_key
from gen.unet import ConditionalUNet

from .audio import FEATURE_DIM, RHYTHM_DIM
from .skeleton import MOTION_DIM

GROUPS = {"music": None, "genre": None}  # condition groups (all per-sample)


class DanceModel(ModelMixin, ConfigMixin):
    """U-Net + music (concatenated channels) + genre (global vector). cond: {"music": (B, music_dim, T), "genre": (B,),
    "music.keep": (B,) bool, "genre.keep": (B,) bool} (keep flags optional; a missing genre means "no genre")."""

    @register_to_config
    def __init__(self, unet_config: dict | None = None, num_genres: int = 4, schedule: str = "cosine", T: int = 1000,
                 prediction_type: str = "epsilon", music_dim: int = FEATURE_DIM):
        super().__init__()
        if music_dim not in (FEATURE_DIM, FEATURE_DIM + RHYTHM_DIM):
            raise ValueError(f"music_dim must be {FEATURE_DIM} or {FEATURE_DIM + RHYTHM_DIM}, got {music_dim}")
        ucfg = dict(unet_config or {})
        ucfg.update(dims=1, in_channels=MOTION_DIM, extra_in_channels=music_dim)
        ucfg.setdefault("cond_dim", 4 * ucfg.get("base_channels", 64) if num_genres else 0)
        self.unet = ConditionalUNet(**ucfg)
        self.music = NullableImage(music_dim)
        self.genre = LabelEmbedding(num_genres, self.unet.config.cond_dim) if num_genres else None
        self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
        self.register_buffer("motion_std", torch.ones(MOTION_DIM))
        self.register_buffer("music_mean", torch.zeros(music_dim))
        self.register_buffer("music_std", torch.ones(music_dim))

    @classmethod
    def from_backbone(cls, backbone: ConditionalUNet, num_genres: int = 4, music_dim: int = FEATURE_DIM,
                      **config) -> "DanceModel":
        """Attach music / genre conditioning to an unconditional 1D backbone (dims=1, in_channels=151) through
        zero-initialised layers: at fine-tuning step 0 the output equals the backbone's for any condition."""
        bcfg = backbone.config
        if bcfg.dims != 1 or bcfg.in_channels != MOTION_DIM or bcfg.extra_in_channels or bcfg.cond_dim:
            raise ValueError(f"the backbone must be an unconditional ConditionalUNet with dims=1, in_channels="
                             f"{MOTION_DIM}; got dims={bcfg.dims}, in_channels={bcfg.in_channels}, "
                             f"extra_in_channels={bcfg.extra_in_channels}, cond_dim={bcfg.cond_dim}")
        cfg = {k: v for k, v in bcfg.items() if not k.startswith("_")}
        cond_dim = 4 * cfg["base_channels"] if num_genres else 0
        cfg.update(extra_in_channels=music_dim, cond_dim=cond_dim)
        model = cls(unet_config=cfg, num_genres=num_genres, music_dim=music_dim, **config)
        model.unet = ConditionalUNet.from_backbone(backbone, extra_in_channels=music_dim, cond_dim=cond_dim)
        return model

    def with_music_dim(self, music_dim: int) -> "DanceModel":
        """A copy reading `music_dim` music channels (more than now): the new channels enter through zero-initialised
        input weights and a zero null, so before fine-tuning the output equals this model's for any condition."""
        have = self.config.music_dim
        if music_dim == have:
            return self
        if music_dim < have:
            raise ValueError(f"with_music_dim can only add channels: the model reads {have}, asked {music_dim}")
        cfg = {k: v for k, v in self.config.items() if not k.startswith("_")}
        cfg["unet_config"] = {k: v for k, v in self.unet.config.items() if not k.startswith("_")}
        cfg["music_dim"] = music_dim
        new = type(self)(**cfg)
        new.unet = ConditionalUNet.from_backbone(self.unet, extra_in_channels=music_dim)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("unet.")}
        for k in ("music.null", "music_mean", "music_std"):
            grown = new.state_dict()[k].clone()
            grown[:have] = state[k]
            state[k] = grown
        missing, unexpected = new.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("unet.") for k in missing):
            raise RuntimeError(f"with_music_dim: unexpected {unexpected}, missing {missing}")
        return new.to(self.device, self.dtype)

    def set_stats(self, motion: tuple, music: tuple) -> "DanceModel":
        """Store the normalisation: motion (mean (151,), std (151,)), music (mean (M,), std (M,))."""
        for name, (mean, std) in (("motion", motion), ("music", music)):
            getattr(self, f"{name}_mean").copy_(torch.as_tensor(mean, dtype=torch.float32))
            getattr(self, f"{name}_std").copy_(torch.as_tensor(std, dtype=torch.float32))
        return self

    # ---- normalisation (motion in (B, 151, T) channel layout) ------------------------------------------------------
    def normalize(self, motion: Tensor) -> Tensor:
        return (motion - self.motion_mean[:, None]) / self.motion_std[:, None]

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.motion_std[:, None] + self.motion_mean[:, None]

    def forward(self, x_t: Tensor, t: Tensor, cond: dict) -> Tensor:
        if x_t.ndim != 3 or x_t.shape[1] != MOTION_DIM:
            raise ValueError(f"x_t must be (B, {MOTION_DIM}, T), got {tuple(x_t.shape)}")
        music = cond["music"].to(x_t.device, x_t.dtype)
        m = self.config.music_dim
        if music.shape != (x_t.shape[0], m, x_t.shape[2]):
            raise ValueError(f"music must be (B, {m}, T) = {(x_t.shape[0], m, x_t.shape[2])}, got {tuple(music.shape)}")
        music = (music - self.music_mean[:, None]) / self.music_std[:, None]
        music = self.music(music, cond.get(keep_key("music")))  # (B, M, T)
        vec = None
        if self.genre is not None:
            genre = cond.get("genre")
            if genre is None:  # no genre given: the learned null for every sample
                genre = torch.zeros(x_t.shape[0], dtype=torch.long, device=x_t.device)
                keep = torch.zeros(x_t.shape[0], dtype=torch.bool, device=x_t.device)
            else:
                keep = cond.get(keep_key("genre"))
            vec = self.genre(genre, keep)
        return self.unet(x_t, t, cond_vec=vec, cond_image=music)

    # ---- guidance helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def condition(music: Tensor, genre: int | None = None) -> dict:
        """Condition dict for one window: music (1, 35, T) raw features, genre index or None."""
        return {"music": music, "music.keep": torch.ones(music.shape[0], dtype=torch.bool, device=music.device),
                "genre": torch.full((music.shape[0],), 0 if genre is None else int(genre), dtype=torch.long,
                                    device=music.device),
                "genre.keep": torch.full((music.shape[0],), genre is not None, dtype=torch.bool, device=music.device)}

    def term(self, music: Tensor, genre: int | None = None, weight: float = 1.0) -> Term:
        return Term(self.condition(music, genre), weight, label="music")

    @staticmethod
    def null_cond(music: Tensor) -> dict:
        """Everything dropped: ε_∅ for classifier-free guidance."""
        b = music.shape[0]
        d = music.device
        return {"music": music, "music.keep": torch.zeros(b, dtype=torch.bool, device=d),
                "genre": torch.zeros(b, dtype=torch.long, device=d),
                "genre.keep": torch.zeros(b, dtype=torch.bool, device=d)}
