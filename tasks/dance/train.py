"""Train the music-to-dance model (fine-tuning the pretrained unconditional 1D backbone, or from scratch).

    accelerate launch apps/pretrain.py --config configs/backbone_1d.yaml                    # the backbone, first
    accelerate launch tasks/dance/train.py --config configs/dance.yaml                       # CPU default (fine-tune)
    accelerate launch tasks/dance/train.py --config configs/dance.yaml model.init_from=      # from scratch
    accelerate launch tasks/dance/train.py --config configs/dance_gpu.yaml                   # GPU scale

Every option has a default below; `--dry-run` prints the resolved config. With ``export.dir`` set, the final EMA
weights (self-contained: normalisation + schedule in the checkpoint) and a model card are written there.
"""
from __future__ import annotations

import os
import sys


from gen.train import DIFFUSION_DEFAULTS, TRAIN_DEFAULTS, TrainTask, run_cli
from gen.unet import ConditionalUNet

from tasks.dance.data import DEFAULT_CACHE, DanceWindows, music_stats
from tasks.dance.losses import make_aux_loss
from tasks.dance.model import DanceModel

DEFAULTS = dict(
    model=dict(
        base_channels=64,          # width of the first U-Net level
        channel_mult=[1, 2, 2],    # width multiplier per level (150 frames → 150, 75, 38 (padded) …)
        layers_per_block=1,        # ResBlocks per level (down path; up path has one more)
        attention_levels=[2],      # levels with self-attention (0 = full frame rate)
        head_dim=32,               # attention head width
        patch_size=1,              # temporal space-to-depth stem factor
        dropout=0.0,               # ResBlock dropout
        num_genres=4,              # genre label vocabulary (synth.GENRES); 0 = no genre condition
        music_dim=35,              # 35: EDGE's features; 39: + beat phase / period / relative loudness (rhythm_channels)
        init_from="",              # a 1D backbone folder (save_pretrained; dims=1, in_channels=151) to fine-tune from
        init_dance="",             # or a dance pipeline folder (e.g. checkpoints/dance): fine-tune its whole DanceModel
                                   # (architecture from it; the model.* sizes above are ignored; normalisation re-fit)
    ),
    diffusion=dict(DIFFUSION_DEFAULTS, schedule="cosine"),
    train=dict(TRAIN_DEFAULTS, output_dir="runs/dance"),
    data=dict(
        num_songs=128,             # synthetic training songs (seeds 0 … num_songs−1, all genres)
        seconds=12.0,              # length of each training song
        stride=10,                 # frames between consecutive 150-frame windows
        cache_dir=DEFAULT_CACHE,   # where songs (motion + features) are cached as .npz
        world="v1",                # v1: numpy synth + key-pose dancer; v2: FluidSynth/numpy music + choreo.py steps
        music_dropout=0.1,         # classifier-free guidance: P(music → learned null)
        genre_dropout=0.5,         # P(genre → learned null); high, so "no genre" is the common case at generation
    ),
    loss=dict(                     # EDGE's geometric losses on x̂_0 (tasks/dance/losses.py), weights relative to
        velocity=0.0,              # L_simple = 1; EDGE's: velocity 4.66, fk 1.016, foot 17.2 (0 = off)
        fk=0.0,
        foot=0.0,
    ),
    export=dict(
        dir="",                    # if set: the final EMA model + model card (README.md) are written here
    ),
)


def build_task(cfg: dict) -> TrainTask:
    mcfg, data = dict(cfg["model"]), cfg["data"]
    init, num_genres, init_dance = mcfg.pop("init_from"), mcfg.pop("num_genres"), mcfg.pop("init_dance")
    music_dim = mcfg.pop("music_dim")
    dcfg = cfg["diffusion"]
    dataset = DanceWindows("train", data["num_songs"], data["seconds"], data["stride"], data["cache_dir"],
                           world=data["world"], music_dim=music_dim)
    extra = dict(schedule=dcfg["schedule"], T=dcfg["T"], prediction_type=dcfg["prediction_type"], music_dim=music_dim)
    if init_dance:
        from tasks.dance.pipeline import DancePipeline

        model = DancePipeline.from_pretrained(init_dance).model.float()
        if model.config.prediction_type != dcfg["prediction_type"] or model.config.schedule != dcfg["schedule"]:
            raise ValueError(f"model.init_dance {init_dance!r} has prediction_type={model.config.prediction_type}, "
                             f"schedule={model.config.schedule}; the config asks for {dcfg['prediction_type']}, "
                             f"{dcfg['schedule']}")
        model = model.with_music_dim(music_dim)  # new rhythm channels enter through zero-initialised weights
    elif init:
        model = DanceModel.from_backbone(ConditionalUNet.from_pretrained(init, use_safetensors=True), num_genres=num_genres, **extra)
    else:
        mcfg["channel_mult"], mcfg["attention_levels"] = tuple(mcfg["channel_mult"]), tuple(mcfg["attention_levels"])
        model = DanceModel(unet_config=mcfg, num_genres=num_genres, **extra)
    model.set_stats((dataset.mean, dataset.std), music_stats(data["num_songs"], data["seconds"], data["cache_dir"],
                                                             data["world"], music_dim))
    dropout = {"music": data["music_dropout"]}
    if num_genres:
        dropout["genre"] = data["genre_dropout"]
    return TrainTask(model, dataset, batch_to=lambda b: (b["x"], {"music": b["music"], "genre": b["genre"]}),
                     dropout=dropout, config=cfg, aux_loss=make_aux_loss(model, cfg["loss"]))


MODEL_CARD = """# Dance model (music → SMPL dance)

A classifier-free-guided DDPM over 5 s windows (150 frames at 30 FPS) of the 151-d EDGE motion vector
(4 foot contacts | absolute root translation | 24 × 6D joint rotations), conditioned on {music} music features
(concatenated channels, learned null) and optionally a genre label ({genres}).

- Architecture: `gen.unet.ConditionalUNet(dims=1)` wrapped by `tasks.dance.model.DanceModel`: {unet}
- Initialisation: {init}
- Data: {num_songs} synthetic songs × {seconds:g} s of world {world} (v1: `tasks.dance.synth`, numpy music + key
  poses on the beats; v2: `tasks.dance.choreo`, procedural MIDI rendered by FluidSynth with a GM soundfont or the numpy
  synth, danced with a step vocabulary: travel, turns, hops, planted feet; no real dance data), stride {stride}.
- Training: {steps} steps, batch {batch}, lr {lr:g}, EMA {ema}, diffusion {schedule} T={T} ({pred}); condition
  dropout music {md}, genre {gd}. Final training loss {loss}.
- Use: `dance-generate --music song.mp3 --out dance.mp4 --model <this folder>`; evaluation with
  `python -m tasks.dance.evaluate --model <this folder> --out report.json`.
- Limitations: trained on procedural choreography only (no mocap): no floor work, acrobatics or partner dancing;
  style labels are four coarse classes. Motion is at SMPL's neutral skeleton.
"""


def export(cfg: dict, summary: dict) -> str:
    """Write the run's final EMA (or raw) weights to ``export.dir`` as a pipeline folder with a model card, atomically."""
    from gen.pipeline import model_card
    from tasks.dance.pipeline import DancePipeline
    from tasks.dance.synth import GENRES

    pipe = DancePipeline.from_pretrained(cfg["train"]["output_dir"])
    m, d, t, dc = cfg["model"], cfg["data"], cfg["train"], cfg["diffusion"]
    unet = {k: m[k] for k in ("base_channels", "channel_mult", "layers_per_block", "attention_levels")}
    music = ("EDGE's 35-d" if m.get("music_dim", 35) == 35 else
             "EDGE's 35-d + 4 song-level rhythm channels (beat phase sin/cos, beat period, relative loudness:"
             " `tasks.dance.audio.rhythm_channels`)")
    init = (f"fine-tuned from the dance model `{m['init_dance']}`" if m.get("init_dance")
            else m["init_from"] or "from scratch")
    body = MODEL_CARD.format(genres=", ".join(GENRES), music=music, unet=unet, init=init,
                             num_songs=d["num_songs"], seconds=d["seconds"], stride=d["stride"], steps=summary["step"],
                             world=d.get("world", "v1"),
                             batch=t["batch_size"], lr=t["lr"], ema=t["ema_decay"], schedule=dc["schedule"], T=dc["T"],
                             pred=dc["prediction_type"], md=d["music_dropout"], gd=d["genre_dropout"],
                             loss=f"{summary['loss']:.4f}")
    title, _, rest = body.partition("\n")
    card = model_card(title.lstrip("# "), rest, sampling=pipe.sampling, config=cfg,
                      training={"command": "accelerate launch tasks/dance/train.py --config <config> (see the config "
                                           "below)", "steps": summary["step"]})
    return pipe.save_pretrained(cfg["export"]["dir"], card=card)


def main(argv=None) -> dict:
    cfg, summary = run_cli(argv, __doc__.splitlines()[0], "configs/dance.yaml", DEFAULTS, build_task)
    if summary and cfg["export"]["dir"]:
        print(f"exported to {export(cfg, summary)}")
    return summary or cfg


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
