"""Small building blocks tasks use to turn raw conditions into what the U-Net takes, with learned null embeddings.

A group's null is a learned parameter used wherever its ``"g.keep"`` flag (see `gen.guidance`) is False, so classifier-
free guidance's ε_∅ comes from learned "unspecified" embeddings rather than zeros.

Devices: each module moves what it is given (labels, embeddings, images, keep flags) to its own parameters' device,
so a condition built on the CPU works with a model on a GPU.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class NullableEmbedding(nn.Module):
    """Replace an embedding by a learned null vector where keep is False.

    emb: (B, D) with keep (B,), or (B, K, D) with keep (B, K) (one null per element when `num_elements` = K).
    """

    def __init__(self, dim: int, num_elements: int | None = None):
        super().__init__()
        self.null = nn.Parameter(torch.zeros(dim) if num_elements is None else torch.zeros(num_elements, dim))

    def forward(self, emb: Tensor, keep: Tensor | None) -> Tensor:
        emb = emb.to(self.null.device)
        if keep is None:
            return emb
        keep = keep.to(emb.device).bool()
        while keep.ndim < emb.ndim:
            keep = keep.unsqueeze(-1)
        return torch.where(keep, emb, self.null.to(emb.dtype).expand_as(emb))


class LabelEmbedding(nn.Module):
    """Class label (B,) long → (B, D), learned null where keep is False."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes, dim)
        self.nullable = NullableEmbedding(dim)

    def forward(self, labels: Tensor, keep: Tensor | None = None) -> Tensor:
        if not torch.is_tensor(labels):
            labels = torch.as_tensor(labels, device=self.table.weight.device)
        labels = labels.long()
        # checked where the labels are (a meta tensor holds no values to check); nn.Embedding on a GPU would only
        # fail with an opaque device-side assert
        if labels.numel() and labels.device.type != "meta" and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got range [{int(labels.min())}, "
                             f"{int(labels.max())}]")
        return self.nullable(self.table(labels.to(self.table.weight.device)), keep)


class NullableImage(nn.Module):
    """Concatenated-channel condition (B, C, *S) → same, replaced by a learned per-channel constant where keep is False."""

    def __init__(self, channels: int):
        super().__init__()
        self.null = nn.Parameter(torch.zeros(channels))

    def forward(self, image: Tensor, keep: Tensor | None) -> Tensor:
        image = image.to(self.null.device)
        if keep is None:
            return image
        shape = (1, -1) + (1,) * (image.ndim - 2)
        keep = keep.to(image.device).bool().reshape(-1, *([1] * (image.ndim - 1)))
        return torch.where(keep, image, self.null.to(image.dtype).reshape(shape).expand_as(image))
