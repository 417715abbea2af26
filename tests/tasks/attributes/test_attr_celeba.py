"""CelebA loader on a tiny fixture written in the official file format."""

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.attributes.celeba import CelebADataset, read_attr_file

NAMES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Eyeglasses", "Smiling", "Wearing_Hat"]


def _write_fixture(root, n=6, w=178, h=218):
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(n, len(NAMES)))
    rows = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        img = np.zeros((h, w, 3), dtype=np.uint8)
        img[..., 0] = 40 * i  # identifiable red level
        img[:, : w // 2, 1] = 255  # left half green: shows the crop is centred
        Image.fromarray(img).save(root / "img_align_celeba" / name, quality=95)
        rows.append(name + "  " + " ".join(f"{v:2d}" for v in values[i]))  # double spaces, like the real file
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(NAMES) + " \n" + "\n".join(rows) + "\n")
    splits = [0, 0, 0, 1, 2, 2][:n]
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {s}\n" for i, s in enumerate(splits)))
    return values


def test_read_attr_file(tmp_path):
    values = _write_fixture(tmp_path)
    names, files, v = read_attr_file(tmp_path / "list_attr_celeba.txt")
    assert names == NAMES and files[0] == "000001.jpg" and len(files) == 6
    assert (v == (values == 1)).all()


@pytest.mark.parametrize("size", [32, 64])
def test_splits_attributes_and_images(tmp_path, size):
    values = _write_fixture(tmp_path)
    train = CelebADataset(tmp_path, split="train", attributes=["Smiling", "Eyeglasses"], size=size)
    assert len(train) == 3 and train.attributes == ("Smiling", "Eyeglasses")
    assert len(CelebADataset(tmp_path, split="val")) == 1 and len(CelebADataset(tmp_path, split="test")) == 2
    assert len(CelebADataset(tmp_path, split="all")) == 6
    item = train[2]
    assert item["image"].shape == (3, size, size) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    expected = (values[2, [NAMES.index("Smiling"), NAMES.index("Eyeglasses")]] == 1).astype(np.float32)
    assert torch.equal(item["attrs"], torch.from_numpy(expected))
    img = train.load_image(2)  # red = 80 everywhere; centred crop → left half green, right half not
    assert abs(int(img[..., 0].mean()) - 80) <= 3
    assert img[:, : size // 2 - 2, 1].mean() > 240 and img[:, size // 2 + 2:, 1].mean() < 15
    full = CelebADataset(tmp_path, split="test", size=size, center_crop=None)
    assert full[0]["attrs"].shape == (len(NAMES),)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="root folder"):
        CelebADataset(tmp_path / "nope")
    _write_fixture(tmp_path)
    with pytest.raises(ValueError, match="valid names: 5_o_Clock_Shadow"):
        CelebADataset(tmp_path, attributes=["Smiling", "Glasses"])
    with pytest.raises(ValueError, match="split"):
        CelebADataset(tmp_path, split="validation")
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        CelebADataset(tmp_path)


def test_malformed_attr_file(tmp_path):
    _write_fixture(tmp_path)
    p = tmp_path / "list_attr_celeba.txt"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(["7"] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match="says 7 images but 6 rows"):
        read_attr_file(p)
    p.write_text("\n".join(lines[:2] + [lines[2].replace("-1", " 0").replace(" 1", " 0")] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match="1 / -1"):
        read_attr_file(p)


def test_missing_image_is_reported(tmp_path):
    _write_fixture(tmp_path)
    (tmp_path / "img_align_celeba" / "000001.jpg").unlink()
    ds = CelebADataset(tmp_path, split="train")
    with pytest.raises(FileNotFoundError, match="000001.jpg"):
        ds[0]
