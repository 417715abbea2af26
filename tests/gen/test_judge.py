"""gen.judge: one loop that trains a judge, safetensors + JSON card persistence that never unpickles."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gen.judge import judge_tensors, load_judge, read_card, save_judge, train_judge
from gen.toydata import Shapes2D, shape_judge


class TinyJudge(nn.Module):
    def __init__(self, k: int = 3, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(width, k))

    def forward(self, x):
        return self.net(x)


class OtherJudge(TinyJudge):
    pass


@pytest.fixture(scope="module")
def toy():
    return Shapes2D(96, size=8, num_classes=3, seed=0)


def _train(toy, seed=0, steps=8, **kw):
    torch.manual_seed(seed)
    return train_judge(TinyJudge(3), toy.tensors(), steps=steps, batch_size=16, lr=1e-2, seed=seed, **kw)


def test_train_save_load_same_predictions(toy, tmp_path):
    x, y = toy.tensors()
    before = [p.detach().clone() for p in TinyJudge(3).parameters()]
    judge = _train(toy)
    assert not judge.training
    card = save_judge(judge, tmp_path / "j", {"trained_on": "Shapes2D(96, 8 px, seed 0)", "heldout_accuracy": 0.5},
                      init={"k": 3})
    assert sorted(os.listdir(tmp_path / "j")) == ["judge.json", "judge.safetensors"]
    assert card["judge"] == {"class": "TinyJudge", "init": {"k": 3}, "format": 1}
    assert read_card(tmp_path / "j") == card == json.loads((tmp_path / "j" / "judge.json").read_text())
    loaded, card2 = load_judge(TinyJudge, tmp_path / "j")
    assert card2["trained_on"].startswith("Shapes2D") and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), judge(x))
    assert any(not torch.equal(a, b) for a, b in zip(before, judge.parameters()))  # it did train
    # saving again replaces the folder atomically (no temp folders left behind)
    save_judge(judge, tmp_path / "j", {"trained_on": "again"}, init={"k": 3})
    assert read_card(tmp_path / "j")["trained_on"] == "again"
    assert sorted(os.listdir(tmp_path)) == ["j"]


def test_same_seed_same_weights_and_the_global_rng_is_left_alone(toy):
    a = _train(toy, seed=0)
    state = torch.get_rng_state()
    b = _train(toy, seed=0)   # _train seeds the global RNG for the init; the loop must not draw from it
    torch.manual_seed(0)
    TinyJudge(3)
    assert torch.equal(torch.get_rng_state(), state)  # after train_judge: as right after the model was built
    c = _train(toy, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_dataset_input_and_options(toy):
    x, y = judge_tensors(toy, keys=("x", "label"))
    tx, ty = toy.tensors()
    assert torch.equal(x, tx) and torch.equal(y, ty)
    torch.manual_seed(0)
    d = train_judge(TinyJudge(3), toy, keys=("x", "label"), steps=8, batch_size=16, lr=1e-2, seed=0)
    t = _train(toy)
    assert all(torch.equal(d.state_dict()[k], t.state_dict()[k]) for k in t.state_dict())
    logged = []
    _train(toy, optimizer="adamw", weight_decay=1e-4, lr_schedule="onecycle", pct_start=0.1,
           augment=lambda xb, g: xb.flip(-1), log=lambda s, v: logged.append((s, v)), log_every=4)
    assert [s for s, _ in logged] == [4, 8] and all(v > 0 for _, v in logged)
    multi = torch.stack([ty == 0, ty == 1, ty == 2], 1).float()                     # multi-label targets
    torch.manual_seed(0)
    train_judge(TinyJudge(3), (tx, multi), steps=2, batch_size=8, loss=F.binary_cross_entropy_with_logits)
    for bad in (dict(optimizer="sgd"), dict(lr_schedule="cosine"), dict(steps=0)):
        with pytest.raises(ValueError):
            train_judge(TinyJudge(3), (tx, ty), **{"steps": 2, **bad})
    with pytest.raises(ValueError, match="keys"):
        judge_tensors(toy, keys=("image", "label"))
    with pytest.raises(ValueError):
        judge_tensors((tx, ty[:5]))


def test_shape_judge_is_the_loop_it_replaced():
    """gen.toydata.shape_judge now goes through train_judge: the same weights as its old hand-written loop."""
    data = Shapes2D(128, size=8, num_classes=3, seed=1)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                        nn.Linear(32, data.k))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, y = data.tensors()
    for _ in range(6):
        idx = torch.randint(0, len(y), (64,), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    new = shape_judge(data, steps=6, seed=0)
    old = net.state_dict()
    assert all(torch.equal(old[k], v) for k, v in new.state_dict().items())


def test_refused_folders(toy, tmp_path):
    judge = _train(toy, steps=1)
    # only a pickle-based checkpoint: never loaded
    pk = tmp_path / "pickle_only"
    pk.mkdir()
    torch.save(judge.state_dict(), pk / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle"):
        load_judge(TinyJudge, pk)
    with pytest.raises(ValueError, match="no judge weights"):
        load_judge(TinyJudge, tmp_path / "missing")
    # a card that names another class
    save_judge(judge, tmp_path / "j", {"trained_on": "toy"}, init={"k": 3})
    with pytest.raises(ValueError, match="unknown judge class 'TinyJudge'"):
        load_judge(OtherJudge, tmp_path / "j")
    card = read_card(tmp_path / "j")
    card["judge"]["class"] = "EvilJudge"
    (tmp_path / "j" / "judge.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="unknown judge class 'EvilJudge'"):
        load_judge(TinyJudge, tmp_path / "j")
    # a card without the class record, weights that do not fit, a reserved card key
    del card["judge"]
    (tmp_path / "j" / "judge.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="no judge class record"):
        load_judge(TinyJudge, tmp_path / "j")
    save_judge(judge, tmp_path / "k", {}, init={"k": 3, "width": 4})
    with pytest.raises(ValueError, match="do not fit"):
        load_judge(TinyJudge, tmp_path / "k")
    with pytest.raises(ValueError, match="reserved"):
        save_judge(judge, tmp_path / "m", {"judge": 1})
    with pytest.raises(TypeError):
        save_judge(judge, tmp_path / "m", {"not json": object()})
    assert not (tmp_path / "m").exists()
