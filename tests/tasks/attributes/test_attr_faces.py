"""Procedural faces: determinism, held-out combinations, attribute locality, regions, dataset format and cache."""

import itertools
import os

import numpy as np
import pytest
import torch

from tasks.attributes.faces import (
    ATTRIBUTE_REGION,
    ATTRIBUTES,
    HELDOUT_COMBOS,
    REGIONS,
    FaceDataset,
    attrs_to_vector,
    heldout_statistics,
    is_heldout,
    region_mask,
    render_face,
    sample_attributes,
    vector_to_attrs,
)


def test_attribute_tables_are_consistent():
    assert len(ATTRIBUTES) >= 8 and len(set(ATTRIBUTES)) == len(ATTRIBUTES)
    assert set(ATTRIBUTE_REGION) == set(ATTRIBUTES)
    assert set(ATTRIBUTE_REGION.values()) <= set(REGIONS)
    for x0, y0, x1, y1 in REGIONS.values():
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert len(HELDOUT_COMBOS) >= 10 and len(set(HELDOUT_COMBOS)) == len(HELDOUT_COMBOS)
    assert sum(len(c) >= 3 for c in HELDOUT_COMBOS) >= 5
    assert all(c <= set(ATTRIBUTES) for c in HELDOUT_COMBOS)


def test_dataset_is_deterministic_and_seed_dependent():
    a = FaceDataset(n=12, seed=7, split="train")
    b = FaceDataset(n=12, seed=7, split="train")
    c = FaceDataset(n=12, seed=8, split="train")
    for i in range(12):
        ia, ib, ic = a.raw(i), b.raw(i), c.raw(i)
        assert ia[0].tobytes() == ib[0].tobytes() and ia[1].tobytes() == ib[1].tobytes()
        assert ia[0].tobytes() != ic[0].tobytes()
    # Order of access does not matter (item i is a pure function of seed, split, i).
    assert a.raw(5)[0].tobytes() == FaceDataset(n=12, seed=7, split="train").raw(5)[0].tobytes()


@pytest.mark.parametrize("size", [32, 64])
def test_item_format(size):
    ds = FaceDataset(n=3, seed=0, size=size, split="all")
    item = ds[1]
    assert item["image"].shape == (3, size, size) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["attrs"].shape == (len(ATTRIBUTES),) and set(item["attrs"].tolist()) <= {0.0, 1.0}
    with pytest.raises(IndexError):
        ds[3]


def test_heldout_combos_never_in_train_and_always_in_heldout():
    rng = np.random.default_rng(0)
    train = np.stack([sample_attributes(rng, "train") for _ in range(4000)])  # (N, K)
    for combo in HELDOUT_COMBOS:
        cols = [ATTRIBUTES.index(a) for a in combo]
        assert not train[:, cols].all(axis=1).any(), combo
    # Every attribute and every pair still appears in training.
    assert (train.mean(0) > 0.25).all()
    for i, j in itertools.combinations(range(len(ATTRIBUTES)), 2):
        assert (train[:, i] & train[:, j]).any(), (ATTRIBUTES[i], ATTRIBUTES[j])
    heldout = [sample_attributes(rng, "heldout") for _ in range(500)]
    assert all(is_heldout(v) for v in heldout)
    # Rendered dataset labels obey the same rule.
    ds = FaceDataset(n=3000, seed=1, split="train")
    assert not any(is_heldout(ds.attributes_at(i)) for i in range(3000))
    for i in range(20):  # and the rendered items carry those labels
        assert (ds[i]["attrs"].numpy() == ds.attributes_at(i)).all()


def test_heldout_statistics_exact():
    stats = heldout_statistics()
    assert 0.0 < stats["rejected_fraction"] < 0.6
    assert stats["pairs_unseen"] == [] and stats["pairs_total"] == len(ATTRIBUTES) * (len(ATTRIBUTES) - 1) // 2
    assert min(stats["train_marginals"].values()) > 0.3
    rng = np.random.default_rng(1)
    empirical = np.mean([is_heldout(sample_attributes(rng, "all")) for _ in range(4000)])
    assert abs(empirical - stats["rejected_fraction"]) < 0.03


def test_attribute_vector_round_trip_and_validation():
    v = attrs_to_vector({"hat", "smile"})
    assert vector_to_attrs(v) == {"hat", "smile"} and v.sum() == 2
    assert (attrs_to_vector({"hat": True, "smile": False}) == attrs_to_vector({"hat"})).all()
    with pytest.raises(ValueError, match="valid attributes"):
        render_face({"wings"}, np.random.default_rng(0))


@pytest.mark.parametrize("size", [32, 64])
def test_each_attribute_changes_pixels_only_inside_its_region(size):
    rng = np.random.default_rng(123)
    for attr in ATTRIBUTES:
        mask = region_mask(ATTRIBUTE_REGION[attr], size) > 0  # (H, W)
        for trial in range(8 if size == 32 else 3):
            others = {a for a in ATTRIBUTES if a != attr and rng.random() < 0.5}
            seed = int(rng.integers(1 << 30))
            off = render_face(others, np.random.default_rng(seed), size).astype(int)
            on = render_face(others | {attr}, np.random.default_rng(seed), size).astype(int)
            changed = np.abs(on - off).max(-1) > 0  # (H, W)
            visible = np.abs(on - off).max(-1) > 40
            assert changed.sum() > 0, (attr, others)
            assert (changed & mask).sum() / changed.sum() >= 0.9, (attr, others)
            # Clearly visible: at least a few pixels change strongly, at 32×32 scale.
            assert visible.sum() >= 4 * (size // 32) ** 2, (attr, others, int(visible.sum()))


def test_region_mask_coverage():
    m = region_mask((0.25, 0.5, 0.75, 1.0), 32)
    assert m.shape == (32, 32) and m.dtype == np.float32
    assert m.sum() == pytest.approx(0.5 * 0.5 * 32 * 32)
    assert m[20, 16] == 1.0 and m[0, 0] == 0.0
    m = region_mask((0.1, 0.1, 0.2, 0.2), 10)  # exactly one pixel
    assert m.sum() == pytest.approx(1.0) and m[1, 1] == pytest.approx(1.0)
    assert region_mask("eyes", 64).shape == (64, 64)
    with pytest.raises(ValueError, match="valid regions"):
        region_mask("elbow", 32)
    with pytest.raises(ValueError, match="x0 < x1"):
        region_mask((0.5, 0.1, 0.2, 0.9), 32)


def test_cache_round_trip_is_atomic(tmp_path):
    ds = FaceDataset(n=16, seed=4, split="heldout", cache=True, cache_dir=tmp_path)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz")
    again = FaceDataset(n=16, seed=4, split="heldout", cache=True, cache_dir=tmp_path)  # loads the file
    plain = FaceDataset(n=16, seed=4, split="heldout")
    for i in range(16):
        assert torch.equal(ds[i]["image"], plain[i]["image"]) and torch.equal(again[i]["attrs"], plain[i]["attrs"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        FaceDataset(n=1, seed=0, split="val")
    with pytest.raises(ValueError, match="size"):
        FaceDataset(n=1, seed=0, size=48)
    with pytest.raises(ValueError, match="split"):
        sample_attributes(np.random.default_rng(0), "test")


def test_render_face_accepts_dict_or_set_and_consumes_rng_identically():
    a = render_face({"hat": True, "smile": False}, np.random.default_rng(3))
    b = render_face({"hat"}, np.random.default_rng(3))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and (a == b).all()
    # Nuisances take a fixed number of draws whatever the attributes: the generator ends in the same state.
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    render_face(set(), r1)
    render_face(set(ATTRIBUTES), r2)
    assert r1.random() == r2.random()
