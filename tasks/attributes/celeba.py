"""CelebA loader for users who already have the dataset (nothing is downloaded here; see data/attributes/README.md).

Expected folder layout (the official "Align&Cropped" release)::

    root/
      img_align_celeba/000001.jpg ...     178×218 aligned faces
      list_attr_celeba.txt                line 1: image count; line 2: 40 attribute names;
                                          then "filename v1 ... v40" with values 1 / -1 (whitespace separated)
      list_eval_partition.txt             "filename 0|1|2"  (0 train, 1 val, 2 test)

Yields the same dict as FaceDataset: {"image": (3, size, size) float32 in [-1, 1], "attrs": (K,) float32 0/1}.

Usage::

    ds = CelebADataset("/data/celeba", split="train", attributes=["Eyeglasses", "Smiling", "Wearing_Hat"], size=64)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SPLITS = ("train", "val", "test", "all")
DEFAULT_CENTER_CROP = 140  # square side (px) cut from the 178×218 image centre before resizing, a common choice

# CelebA attributes closest to the procedural ones (for users who want a like-for-like attribute set).
PROCEDURAL_TO_CELEBA = {
    "glasses": "Eyeglasses",
    "moustache": "Mustache",
    "smile": "Smiling",
    "earrings": "Wearing_Earrings",
    "bangs": "Bangs",
    "hat": "Wearing_Hat",
    "beard": "No_Beard",  # inverted in CelebA: beard = 1 − No_Beard
}


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"CelebA {what} not found: {path} (expected layout: {IMAGE_DIR}/, {ATTR_FILE}, "
                                f"{PARTITION_FILE} under the root folder)")
    return path


def read_attr_file(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Parse list_attr_celeba.txt → (attribute names, filenames, (N, A) int8 values in {0, 1})."""
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and an attribute-name line, got {len(lines)} line(s)")
    try:
        count = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"{path}: line 1 must be the image count, got {lines[0]!r}") from None
    names = lines[1].split()
    rows = lines[2:]
    if len(rows) != count:
        raise ValueError(f"{path}: line 1 says {count} images but {len(rows)} rows follow")
    filenames: list[str] = []
    values = np.empty((count, len(names)), dtype=np.int8)
    for i, row in enumerate(rows):
        parts = row.split()
        if len(parts) != len(names) + 1:
            raise ValueError(f"{path}: line {i + 3} has {len(parts) - 1} values, expected {len(names)}")
        filenames.append(parts[0])
        try:
            v = np.array([int(p) for p in parts[1:]])
        except ValueError:
            raise ValueError(f"{path}: line {i + 3} has a non-integer value; values must be 1 or -1") from None
        if not np.all((v == 1) | (v == -1)):
            raise ValueError(f"{path}: line {i + 3} has values other than 1 / -1")
        values[i] = (v == 1)
    return names, filenames, values


def read_partition_file(path: str | os.PathLike) -> dict[str, int]:
    """Parse list_eval_partition.txt → {filename: 0 (train) | 1 (val) | 2 (test)}."""
    path = Path(path)
    out: dict[str, int] = {}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise ValueError(f"{path}: line {i + 1} must be 'filename 0|1|2', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


class CelebADataset(Dataset):
    """CelebA faces with binary attributes, in the FaceDataset item format.

    root: folder with img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt.
    split: "train" | "val" | "test" | "all". attributes: CelebA attribute names to return (in that order), or None for
    all 40. size: output side (32 or 64). center_crop: side of the square cut from the image centre before resizing
    (clipped to the image), or None for the largest centred square.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", attributes: Sequence[str] | None = None,
                 size: int = 32, center_crop: int | None = DEFAULT_CENTER_CROP):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size not in (32, 64):
            raise ValueError(f"size must be 32 or 64, got {size}")
        if center_crop is not None and center_crop <= 0:
            raise ValueError(f"center_crop must be a positive int or None, got {center_crop}")
        self.root = Path(root)
        _require(self.root, "root folder")
        self.image_dir = _require(self.root / IMAGE_DIR, "image folder")
        names, filenames, values = read_attr_file(_require(self.root / ATTR_FILE, "attribute file"))
        partition = read_partition_file(_require(self.root / PARTITION_FILE, "partition file"))

        if attributes is None:
            attributes = names
        unknown = [a for a in attributes if a not in names]
        if unknown:
            raise ValueError(f"unknown CelebA attribute(s) {unknown}; valid names: {', '.join(names)}")
        if len(set(attributes)) != len(attributes):
            raise ValueError(f"attributes contain duplicates: {list(attributes)}")
        self.attributes = tuple(attributes)
        columns = [names.index(a) for a in attributes]

        missing = [f for f in filenames if f not in partition]
        if missing:
            raise ValueError(f"{PARTITION_FILE} has no split for {len(missing)} image(s), e.g. {missing[0]!r}")
        keep = [i for i, f in enumerate(filenames) if split == "all" or partition[f] == SPLIT_CODES[split]]
        self.filenames = [filenames[i] for i in keep]
        self.attrs = values[keep][:, columns].astype(np.float32)  # (N, K)
        self.size, self.center_crop = size, center_crop

    def __len__(self) -> int:
        return len(self.filenames)

    def load_image(self, index: int) -> np.ndarray:
        """uint8 (size, size, 3): centre crop, then resize (bicubic, antialiased by PIL)."""
        path = self.image_dir / self.filenames[index]
        if not path.exists():
            raise FileNotFoundError(f"CelebA image listed in {ATTR_FILE} is missing: {path}")
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h) if self.center_crop is None else min(self.center_crop, w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.load_image(int(index))
        x = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W)
        return {"image": x, "attrs": torch.from_numpy(self.attrs[int(index)])}
