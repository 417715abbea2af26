"""The attribute CLIP: open_clip model classes and ClipLoss, tokenizer, a training step, save/load, the train script
(2 steps, exact resume) and the probes' reading."""
import os

import pytest
import torch
from safetensors.torch import load_file

from tasks.attributes import train_clip
from tasks.attributes.clip import UNK, AttributeCLIP, TextError, Tokenizer, build_vocab, decode_text, load_clip, \
    read_images, tokenizer_for
from tasks.attributes.faces import ATTRIBUTES

TINY = dict(embed_dim=16, context_length=48, vision=dict(layers=1, width=32, head_width=16, patch_size=8),
            text=dict(layers=1, width=32, heads=2))


@pytest.fixture(scope="module")
def vocab():
    from tasks.attributes.captions import caption_for_sample

    return build_vocab([caption_for_sample(0, i, "train")[0] for i in range(200)], min_count=1)


def test_tokenizer_remaps_and_refuses_long_texts(vocab):
    tok = Tokenizer(vocab, 48)
    ids = tok(["a smiling man with glasses", "a zebra"])
    assert ids.shape == (2, 48) and ids.max() == tok.eot  # <eot> is the largest id (open_clip pools at the argmax)
    assert (ids[0] != UNK).all() and (ids[1] == UNK).any()
    assert tok.unknown_words("a zebra") == ["zebra"]
    with pytest.raises(TextError, match="too long"):
        tok(["glasses " * 60])


def test_training_step_lowers_the_loss(vocab):
    torch.manual_seed(0)
    model = AttributeCLIP(vocab=vocab, **TINY)
    from open_clip import CLIP

    assert isinstance(model.clip, CLIP)
    tok = tokenizer_for(model)
    from tasks.attributes.captions import caption_for_sample
    from tasks.attributes.faces import render_sample

    x = torch.stack([torch.from_numpy(render_sample(0, i, "train")[0]).permute(2, 0, 1).float() / 127.5 - 1
                     for i in range(8)])
    t = tok([caption_for_sample(0, i, "train")[0] for i in range(8)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = train_clip.clip_loss_fn()
    first = train_clip.train_step(model, opt, x, t, loss_fn)
    for _ in range(5):
        last = train_clip.train_step(model, opt, x, t, loss_fn)
    assert last < first - 0.1


def test_save_load_roundtrip_gives_identical_embeddings(vocab, tmp_path):
    torch.manual_seed(1)
    model = AttributeCLIP(vocab=vocab, **TINY).eval()
    model.save_pretrained(str(tmp_path / "model"), safe_serialization=True)
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in os.listdir(tmp_path / "model"))
    loaded, tok = load_clip(str(tmp_path))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    t = tok(["a smiling man", "no hat", "wearing shades"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), loaded.encode_image(x))
        assert torch.equal(model.encode_text(t), loaded.encode_text(t))
    assert len(read_images(loaded, x)) == 3 and set(read_images(loaded, x)[0].spec) == set(ATTRIBUTES)
    with pytest.raises(ValueError, match="no CLIP model"):
        load_clip(str(tmp_path / "nowhere"))


def test_decode_text_reports_what_was_understood(vocab):
    torch.manual_seed(0)
    model = AttributeCLIP(vocab=vocab, **TINY).eval()
    tok = tokenizer_for(model)
    k = len(ATTRIBUTES)
    with torch.no_grad():  # a probe that says "not named" for everything, except smile = on
        model.text_probe[2].weight.zero_()
        bias = torch.zeros(k, 3)
        bias[:, 2] = 5.0
        bias[ATTRIBUTES.index("smile")] = torch.tensor([0.0, 5.0, 0.0])
        model.text_probe[2].bias.copy_(bias.flatten())
    u = decode_text(model, tok, "a smiling man")
    assert u.spec == {"smile": True} and "smile" in u.describe()
    with torch.no_grad():
        model.text_probe[2].bias[ATTRIBUTES.index("smile") * 3 + 1] = -5.0
    with pytest.raises(TextError, match="names nothing.*never seen: zebra"):
        decode_text(model, tok, "a zebra")
    with pytest.raises(TextError, match="empty"):
        decode_text(model, tok, "  ")


def test_train_script_two_steps_and_exact_resume(tmp_path):
    args = ["--config", "configs/attributes_clip.yaml", "train.steps=4", "train.ckpt_every=2", "train.batch_size=8",
            "data.num_samples=32", "train.log_every=1", "model.embed_dim=16", "model.vision.layers=1",
            "model.vision.width=32", "model.vision.head_width=16", "model.vision.patch_size=8",
            "model.text.layers=1", "model.text.width=32", "model.text.heads=2", "train.warmup_steps=1",
            "train.eval_faces=0"]
    a, b = tmp_path / "a", tmp_path / "b"
    out = train_clip.main(args + [f"train.output_dir={a}"])
    assert out["step"] == 4 and os.path.isdir(a / "checkpoints" / "step_0000004" / "model")
    train_clip.main(args + [f"train.output_dir={b}", "train.steps=4"])
    import shutil

    shutil.rmtree(b / "checkpoints" / "step_0000004")
    train_clip.main(args + [f"train.output_dir={b}", "--resume"])
    wa = load_file(str(a / "checkpoints/step_0000004/model/diffusion_pytorch_model.safetensors"))
    wb = load_file(str(b / "checkpoints/step_0000004/model/diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(SystemExit):
        train_clip.main(args + ["train.steps=0"])


@pytest.mark.skipif(not os.path.isdir(os.path.join(os.path.dirname(__file__), "../../../checkpoints/attributes_clip")),
                    reason="no shipped CLIP")
def test_shipped_clip_reads_simple_phrases():
    model, tok = load_clip("attributes_clip")
    assert decode_text(model, tok, "wearing sunglasses").spec == {"sunglasses": True}
    assert decode_text(model, tok, "no hat").spec == {"hat": False}
    assert decode_text(model, tok, "bearded, wearing shades").spec == {"beard": True, "sunglasses": True}
    with pytest.raises(TextError, match="names nothing"):
        decode_text(model, tok, "a dog")
