"""The attribute judge goes through gen.judge: the same weights as its old hand-written loop, a card with the class
record, and judges saved before gen.judge (no class record, same files) still load."""
import json

import torch
from torch import nn

from tasks.attributes.check_recognisable import tiny_cnn
from tasks.attributes.classifier import _tensors, load_classifier, train_classifier
from tasks.attributes.faces import ATTRIBUTES, FaceDataset


def _old_loop(steps, n_train, batch_size=64, lr=3e-3, seed=0, size=32):
    """tasks.attributes.classifier.train_classifier's loop before gen.judge, verbatim."""
    torch.manual_seed(seed)
    x, y = _tensors(FaceDataset(n_train, seed=1000 + seed, size=size, split="all", cache=True))
    model = tiny_cnn(len(ATTRIBUTES))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=g)
        xb = x[idx]
        flip = torch.rand(len(xb), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        xb = xb + 0.03 * torch.randn(xb.shape, generator=g)
        loss = loss_fn(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model


def test_same_weights_as_the_old_loop_and_legacy_folders_load(tmp_path):
    torch.set_num_threads(1)
    card = train_classifier(str(tmp_path / "j"), steps=5, n_train=32, n_eval=16, log=lambda *_: None)
    assert card["judge"] == {"class": "tiny_cnn", "init": {"k": len(ATTRIBUTES)}, "format": 1}
    new, card2 = load_classifier(str(tmp_path / "j"))
    assert card2 == card and {"accuracy", "heldout_accuracy", "render_version"} <= set(card)
    old = _old_loop(5, 32).state_dict()
    assert all(torch.equal(old[k], v) for k, v in new.state_dict().items())
    legacy = {k: v for k, v in card.items() if k != "judge"}  # a card written before gen.judge
    (tmp_path / "j" / "classifier.json").write_text(json.dumps(legacy))
    m, c = load_classifier(str(tmp_path / "j"))
    assert c == legacy and all(torch.equal(old[k], v) for k, v in m.state_dict().items())
