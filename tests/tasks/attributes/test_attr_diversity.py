"""Within-prompt diversity: the statistic itself, and the report's shape on a tiny model."""
import json

import pytest
import torch

from tasks.attributes import diversity
from tasks.attributes.model import AttributeModel
from tasks.attributes.pipeline import AttributesPipeline


def test_pairwise_rmse_values():
    black, white = -torch.ones(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert diversity.pairwise_rmse(torch.cat([black, white])) == pytest.approx(1.0)
    assert diversity.pairwise_rmse(torch.cat([black, black, black])) == 0.0
    # three images, distances 1, 0.5, 0.5 → mean 2/3; the crop sees only the centre (where two of them agree)
    grey = torch.zeros(1, 3, 8, 8)
    assert diversity.pairwise_rmse(torch.cat([black, white, grey])) == pytest.approx(2 / 3)
    edge = white.clone()
    edge[..., 2:6, 2:6] = -1
    assert diversity.pairwise_rmse(torch.cat([black, edge]), crop=True) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        diversity.pairwise_rmse(black)


def test_report_on_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    model = AttributeModel(token_dim=16, unet_config=dict(base_channels=16, channel_mult=(1, 2), layers_per_block=1,
                                                          attention_levels=(1,), head_dim=8))
    AttributesPipeline(model, {"schedule": {"kind": "cosine", "T": 50},
                               "task_config": {"attribute_scale": {"smile": 2.0}}}).save_pretrained(str(tmp_path / "m"))
    r = diversity.main(["--model", str(tmp_path / "m"), "--out", str(tmp_path / "d.json"), "--n-per", "2",
                        "--n-combos", "2", "--steps", "2"])
    assert json.loads((tmp_path / "d.json").read_text())["variants"].keys() == r["variants"].keys()
    assert r["variants"]["default"]["attribute_scale"] == {"smile": 2.0}
    assert r["variants"]["no_attribute_scale"]["attribute_scale"] == {}
    assert len(r["combos"]) == 2 and 0 < r["real_renders"]["seen_3"]["image"] < 1
