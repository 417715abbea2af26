"""Music → dance generation: long-form windowed sampling, masked editing, and the file outputs.

    from tasks.dance.pipeline import DancePipeline
    pipe = DancePipeline.from_pretrained()                  # the shipped model ("dance"), or any pipeline folder
    res = pipe("song.mp3", seconds=30, seed=0)              # dict: motion (N, 151), root_pos, rotations, joints, …
    pipe.save(res, out="dance.mp4", bvh="dance.bvh", npz="dance.npz")

Long-form (EDGE, Tseng et al. 2023): windows of W = 150 frames with hop W/2, all sampled together as one batch; after
every sampler step (and in the initial noise) window k's first half is set to window k−1's second half through the
samplers' ``known`` constraint hook, so the windows are one trajectory: the stitched sequence is continuous by
construction (the held frames equal the previous window's frames exactly) and any music length works at the cost of
one batched sampling run. The last window is padded (music edge-replicated) and cropped.

Editing uses the same mechanism with user masks over the whole sequence (N, 151): 1 = keep the given motion there.
`joint_mask` selects channels of joints (e.g. `LOWER_BODY`: keep the given legs, generate the upper body),
`frame_mask` selects frames (in-betweening between given poses).

Foot lock (default on, `foot_lock=False` for the raw samples): the network's feet jitter by ~1 mm per frame where they
should stand still; `tasks.dance.footlock.lock_feet` plants them at the model's own predicted contacts by two-bone leg
IK (hip, knee and ankle rotations only; ~13 ms per 10 s).

Heading fill (default on, `heading_fill=False`): where the network is unsure which way the dancer faces, the root's 6-D
heading column comes out short and its direction flips from frame to frame; the heading angle is interpolated there
from the frames around (`tasks.dance.heading`; `heading_fill="vector"`: the first version, which interpolated the unit
vectors).

Rest in silence (default on, `rest_in_silence=False` to keep the network's motion there): where the music is silent for
a second or more, the motion settles into its own 0.5-s low-pass (`tasks.dance.rest`), before the foot lock.

Dynamics (`dynamics=` depth in [0, 1], 0 = off): the same low-pass blend, by depth · (1 − the music's loudness relative
to the song's loud passages), so quiet passages are danced smaller (`tasks.dance.dynamics`).

Beat snap (`beat_snap=` frames, 0 = off): the motion is retimed by a monotone time warp so that its kinetic beats within
that many frames of a music beat land on it (`tasks.dance.beatsnap`), before the foot lock.
"""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch

from typing import Mapping

from gen.guidance import guided_model
from gen.io import atomic_path
from gen.pipeline import GenPipeline, ProgressFn, step_callback
from gen.sampling import sample

from . import skeleton as sk
from .audio import FEATURE_DIM, load_music, model_music
from .beatsnap import snap_to_beats
from .dynamics import loudness_weight
from .footlock import lock_feet
from .heading import MODE as HEADING_MODE, MODES as HEADING_MODES, fill_uncertain_heading
from .model import DanceModel
from .rest import settle, silence_weight

WINDOW = 150
FPS = 30
LOWER_BODY = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
              "right_foot")
UPPER_BODY = tuple(n for n in sk.JOINT_NAMES if n not in LOWER_BODY)
OUTPUT_EXTS = {"out": (".mp4", ".gif"), "gif": (".gif",), "bvh": (".bvh",), "npz": (".npz",), "pkl": (".pkl",)}


# ---- masks ----------------------------------------------------------------------------------------------------------
def joint_mask(joints, root: bool = False, contacts: bool = False) -> np.ndarray:
    """(151,) bool selecting the 6D channels of `joints` (names or indices), plus the root translation / contacts."""
    m = np.zeros(sk.MOTION_DIM, dtype=bool)
    for j in joints:
        if isinstance(j, str):
            if j not in sk.JOINT_NAMES:
                raise ValueError(f"unknown joint {j!r}; accepted: {sk.JOINT_NAMES}")
            j = sk.JOINT_NAMES.index(j)
        if not 0 <= int(j) < sk.NUM_JOINTS:
            raise ValueError(f"joint index must be in [0, {sk.NUM_JOINTS}), got {j}")
        m[7 + 6 * int(j): 13 + 6 * int(j)] = True
    m[4:7] |= root
    m[:4] |= contacts
    return m


def frame_mask(num_frames: int, keep) -> np.ndarray:
    """(N, 151) bool: True on the frames in `keep` (ints or (start, stop) ranges), e.g. in-betweening key poses."""
    m = np.zeros((num_frames, sk.MOTION_DIM), dtype=bool)
    for k in keep:
        a, b = (k, k + 1) if np.isscalar(k) else k
        if not 0 <= a < b <= num_frames:
            raise ValueError(f"frame range {k} is outside [0, {num_frames})")
        m[a:b] = True
    return m


# ---- the pipeline ---------------------------------------------------------------------------------------------------
class DancePipeline(GenPipeline):
    """A `DanceModel` plus its diffusion schedule and sampler settings.

    `DancePipeline(model, meta=None, *, steps=, scheduler=, guidance=, clip_x0=, foot_lock=, rest_in_silence=,
    heading_fill=, dynamics=, beat_snap=)`: keyword
    options override
    the settings in meta (pipeline.json `sampling`). guidance: music guidance weight; the defaults (ddim-eta, guidance 1:
    plain conditional, one network pass) were chosen on a tuning set apart from the evaluation's (`tasks.dance.tune`,
    reports/dance_tuning.json). foot_lock: plant the feet where
    the model's own contact labels say so, by leg IK (`tasks.dance.footlock`); False returns the raw samples.
    rest_in_silence: idle where the music is silent (`tasks.dance.rest`). dynamics: depth of the loudness-following
    (`tasks.dance.dynamics`; 0 = off). beat_snap: the most frames a kinetic beat is moved onto a music beat
    (`tasks.dance.beatsnap`; 0 = off); both defaults chosen on the tuning set
    (research/dance_dynamics_sweep.py)."""

    task = "dance"
    model_class = DanceModel
    default_sampling = {"scheduler": "ddim-eta", "steps": 20, "guidance": 1.0, "clip_x0": 10.0, "foot_lock": True,
                        "rest_in_silence": True, "heading_fill": True, "dynamics": 0.75, "beat_snap": 4}

    def __init__(self, model: DanceModel, meta: Mapping | None = None, *, steps: int | None = None,
                 scheduler: str | None = None, guidance: float | None = None, clip_x0: float | None = None,
                 foot_lock: bool | None = None, rest_in_silence: bool | None = None, heading_fill: bool | str | None = None,
                 dynamics: float | None = None, beat_snap: int | None = None):
        meta = dict(meta or {})
        cfg = model.config
        meta.setdefault("schedule", {"kind": cfg.schedule, "T": int(cfg.T)})
        meta.setdefault("prediction_type", cfg.prediction_type)
        super().__init__(model, meta)
        given = dict(steps=steps, scheduler=scheduler, guidance=guidance, clip_x0=clip_x0, foot_lock=foot_lock,
                     rest_in_silence=rest_in_silence, heading_fill=heading_fill, dynamics=dynamics, beat_snap=beat_snap)
        self.sampling.update({k: v for k, v in given.items() if v is not None})
        hf = self.sampling["heading_fill"]
        if not isinstance(hf, bool) and hf not in HEADING_MODES:
            raise ValueError(f"heading_fill must be true, false or a fill mode {HEADING_MODES}, got {hf!r}")
        if not 0.0 <= float(self.sampling["dynamics"]) <= 1.0:
            raise ValueError(f"dynamics must be a depth in [0, 1] (0 = off), got {self.sampling['dynamics']}")
        if int(self.sampling["beat_snap"]) < 0 or int(self.sampling["beat_snap"]) != self.sampling["beat_snap"]:
            raise ValueError(f"beat_snap must be a whole number of frames ≥ 0 (0 = off), got {self.sampling['beat_snap']}")

    @classmethod
    def meta_from_training(cls, cfg: dict) -> dict:
        return {}  # the schedule and prediction type are part of the model's own config

    steps = property(lambda self: self.sampling["steps"])
    scheduler = property(lambda self: self.sampling["scheduler"])
    guidance = property(lambda self: self.sampling["guidance"])
    clip_x0 = property(lambda self: self.sampling["clip_x0"])

    @property
    def foot_lock(self) -> bool:
        return bool(self.sampling["foot_lock"])

    @foot_lock.setter
    def foot_lock(self, value: bool) -> None:
        self.sampling["foot_lock"] = bool(value)

    def post_process(self, motion: np.ndarray, features: np.ndarray, foot_lock: bool | None = None) -> np.ndarray:
        """The passes after sampling: the heading filled where the network is unsure of it (`tasks.dance.heading`,
        when `sampling["heading_fill"]`), rest in silence (when `sampling["rest_in_silence"]`) and dynamics (depth
        `sampling["dynamics"]`) as one blend into the motion's low-pass (the larger weight of the two per frame), beat
        snap (`sampling["beat_snap"]` frames), then the foot lock (when `foot_lock`, default the pipeline's)."""
        hf = self.sampling["heading_fill"]
        if hf:
            motion = fill_uncertain_heading(motion, mode=hf if isinstance(hf, str) else HEADING_MODE)
        n = len(motion)
        weight = loudness_weight(features, n, float(self.sampling["dynamics"]))
        if self.sampling["rest_in_silence"]:
            weight = np.maximum(weight, silence_weight(features, n))
        motion = settle(motion, weight)
        if self.sampling["beat_snap"]:
            motion = snap_to_beats(motion, features, int(self.sampling["beat_snap"]))
        if self.foot_lock if foot_lock is None else foot_lock:
            motion = lock_feet(motion)
        return motion

    def _clipped(self, fn):
        """Static thresholding of x̂_0 (DDPM's clip_denoised; Saharia et al. 2022) expressed back as ε:
        x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t clamped to ±clip_x0 (normalised units; training data lie within ±10), then
        ε' = (x_t − √ᾱ_t x̂_0)/√(1−ᾱ_t). Needed near t = T−1 of the cosine schedule, where 1/√ᾱ_t ~ 10⁴ amplifies
        any ε error. Only for ε-prediction models (v / x_0 predictions do not divide by √ᾱ_t)."""
        if not self.clip_x0 or self.model.config.prediction_type != "epsilon":
            return fn
        alpha_bar = self.schedule.alpha_bar

        def f(x, t):
            eps = fn(x, t)
            ab = alpha_bar[t.round().long().cpu()].to(x.device, x.dtype).view(-1, *[1] * (x.ndim - 1))
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-self.clip_x0, self.clip_x0)
            return (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return f

    # -- sampling -------------------------------------------------------------------------------------------------
    def _sampler(self, fn, shape, generator, known, steps, scheduler, x_T=None, progress=None):
        return sample(fn, shape, self.schedule, sampler=scheduler, steps=steps, generator=generator, known=known,
                      prediction_type=self.model.config.prediction_type, x_T=x_T, device=self.device,
                      callback=step_callback(progress))

    def sample_motion(self, music: np.ndarray, *, seed: int = 0, steps: int | None = None,
                      scheduler: str | None = None, guidance: float | None = None, genre: int | None = None,
                      known: np.ndarray | None = None, mask: np.ndarray | None = None, window: int = WINDOW,
                      progress: ProgressFn | None = None) -> np.ndarray:
        """Motion (N, 151) (unnormalised) for music features (N, 35), long-form over windows of `window` frames.

        known (N, 151) / mask (N, 151) bool: keep `known` where mask is True (editing). guidance: classifier-free
        guidance weight w in ε = ε_∅ + w (ε_music − ε_∅) (1 = plain conditional)."""
        steps, scheduler = steps or self.steps, scheduler or self.scheduler
        guidance = self.guidance if guidance is None else guidance
        music = np.asarray(music, dtype=np.float32)
        if music.ndim != 2 or music.shape[1] != FEATURE_DIM or len(music) < 2:
            raise ValueError(f"music features must be (N ≥ 2, {FEATURE_DIM}), got {music.shape}")
        music = model_music(music, self.model.config.music_dim)  # + song-level rhythm channels for a 39-channel model
        n, hop = len(music), window // 2
        n_win = 1 + max(0, -(-(n - window) // hop))  # windows at 0, hop, 2·hop, … covering n frames
        total = (n_win - 1) * hop + window
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], total - len(a), 0)]) if total > len(a) else a  # noqa
        dev = self.device  # not ModelMixin.device: it imports diffusers.hooks (peft, ~1-2 s)
        music_t = torch.from_numpy(pad(music)).T.to(dev)  # (M, total)
        known_t = torch.zeros(sk.MOTION_DIM, total, device=dev)
        mask_t = torch.zeros(sk.MOTION_DIM, total, device=dev)
        if mask is not None:
            if known is None or np.shape(known) != (n, sk.MOTION_DIM) or np.shape(mask) != (n, sk.MOTION_DIM):
                raise ValueError(f"editing needs known and mask of shape ({n}, {sk.MOTION_DIM}); got "
                                 f"{None if known is None else np.shape(known)} and {np.shape(mask)}")
            known_n = self.model.normalize(torch.as_tensor(np.asarray(known, np.float32)).T.to(dev))
            known_t[:, :n] = known_n
            mask_t[:, :n] = torch.as_tensor(np.asarray(mask, dtype=np.float32)).T
        starts = [k * hop for k in range(n_win)]
        music_w = torch.stack([music_t[:, a:a + window] for a in starts])  # (n_win, M, W)
        known_w = torch.stack([known_t[:, a:a + window] for a in starts])
        mask_w = torch.stack([mask_t[:, a:a + window] for a in starts])
        edit = bool(mask_w.any())
        overlap = window - hop

        def tie(x):  # window k's first part is window k−1's last part: one trajectory (EDGE's long-form sampling)
            if n_win > 1:
                x = x.clone()
                for k in range(1, n_win):  # in order, so a chain of windows shares one value
                    x[k, :, :overlap] = x[k - 1, :, hop:]
            return x

        def constraint(x, renoise):
            if edit:  # the user's given motion, noised to the current level
                x = mask_w * renoise(known_w) + (1 - mask_w) * x
            return tie(x)
        g = torch.Generator().manual_seed(int(seed))
        x_T = tie(torch.randn((n_win, sk.MOTION_DIM, window), generator=g))
        with torch.no_grad():
            fn = self._clipped(guided_model(self.model, self.model.term(music_w, genre, guidance),
                                            DanceModel.null_cond(music_w)))
            x = self._sampler(fn, (n_win, sk.MOTION_DIM, window), g, constraint, steps, scheduler, x_T.to(dev),
                              progress)
        out = torch.zeros(sk.MOTION_DIM, total, device=dev)  # normalised motion, (151, total)
        for k, a in enumerate(starts):
            out[:, a:a + window] = x[k]
        return self.model.unnormalize(out[:, :n]).T.cpu().numpy()  # (N, 151)

    # -- music in, dance out ----------------------------------------------------------------------------------------
    def load_music(self, path, seconds: float | None = None) -> dict:
        """`tasks.dance.audio.load_music`: dict(audio (n,) at 15360 Hz, features (N, 35), seconds, source)."""
        return load_music(path, seconds)

    def __call__(self, music, seconds: float | None = None, *, seed: int = 0, genre: int | None = None,
                 **sample_kw) -> dict:
        """music: an audio path, what `load_music` returned for one (e.g. from `audio.MusicPrefetch`; `seconds` was
        applied then), or (N, 35) features. Returns dict(motion (N, 151), contacts (N, 4) bool, root_pos (N, 3),
        rotations (N, 24, 3, 3), joints (N, 24, 3), features (N, 35), audio (n,) or None, source, seconds_taken)."""
        t0 = time.time()
        source = None
        if isinstance(music, Mapping):
            feats, audio, source = music["features"], music["audio"], music["source"]
        elif isinstance(music, (str, os.PathLike)):
            m = self.load_music(music, seconds)
            feats, audio, source = m["features"], m["audio"], m["source"]
        else:
            feats, audio = np.asarray(music, np.float32), None
            if seconds is not None:
                feats = feats[: int(round(seconds * FPS)) + 1]
        motion = self.post_process(self.sample_motion(feats, seed=seed, genre=genre, **sample_kw), feats)
        res = motion_to_outputs(motion)
        res.update(features=feats, audio=audio, source=source, seconds_taken=time.time() - t0)
        return res

    def edit(self, music, known_motion: np.ndarray, mask: np.ndarray, *, seed: int = 0, **sample_kw) -> dict:
        """Masked sampling: keep `known_motion` (N, 151) where `mask` ((N, 151) or (151,) for all frames) is True."""
        feats = self.load_music(music)["features"] if isinstance(music, (str, os.PathLike)) else np.asarray(music)
        known_motion = np.asarray(known_motion, np.float32)
        n = min(len(feats), len(known_motion))
        mask = np.broadcast_to(np.asarray(mask, bool), (len(known_motion), sk.MOTION_DIM))[:n]
        motion = self.sample_motion(feats[:n], seed=seed, known=known_motion[:n], mask=mask, **sample_kw)
        if self.foot_lock:  # plant the generated part's feet; the given part stays exactly as given
            motion = np.where(mask, known_motion[:n], lock_feet(motion))
        return motion_to_outputs(motion)

    # -- files ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def save(res: dict, out: str | None = None, *, gif: str | None = None, bvh: str | None = None,
             npz: str | None = None, pkl: str | None = None, view: str = "3d") -> list[str]:
        """Write the requested outputs (MP4 with the music / GIF: the 3-D view, or with view="2d" the stick figure;
        BVH, AIST++-layout NPZ / pkl). All-or-nothing: everything is written to temp files next to the targets and
        renamed at the end."""
        return save_outputs(res, out=out, gif=gif, bvh=bvh, npz=npz, pkl=pkl, view=view)


def motion_to_outputs(motion: np.ndarray) -> dict:
    """(N, 151) motion → dict(motion, contacts (N, 4) bool, root_pos (N, 3), rotations (N, 24, 3, 3), joints)."""
    motion = np.asarray(motion, np.float32)
    contacts, root, rot = sk.unpack_motion(motion)
    joints = sk.forward_kinematics(root, rot)
    return dict(motion=motion, contacts=contacts > 0.5, root_pos=root, rotations=rot, joints=joints)


def check_output_paths(**paths) -> dict:
    """Validate output paths (extension, existing folder) before any work is done. Returns the non-empty ones."""
    out = {}
    for kind, p in paths.items():
        if not p:
            continue
        p = os.fspath(p)
        if not p.lower().endswith(OUTPUT_EXTS[kind]):
            raise ValueError(f"--{kind} {p!r}: extension must be one of {OUTPUT_EXTS[kind]}")
        d = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(d):
            raise ValueError(f"--{kind} {p!r}: folder {d!r} does not exist")
        out[kind] = p
    return out


VIEWS = ("3d", "2d")


def save_outputs(res: dict, view: str = "3d", **paths) -> list[str]:
    from .bvh import write_bvh
    from .render import render_3d_video, render_stick_video, save_npz, save_pkl

    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    paths = check_output_paths(**paths)
    with contextlib.ExitStack() as stack:  # every file to its temp first; all renamed only if all were written
        for kind, p in paths.items():
            tmp = stack.enter_context(atomic_path(p, suffix=os.path.splitext(p)[1], prefix=".tmp_"))
            if kind in ("out", "gif"):
                audio = res.get("source") if p.lower().endswith(".mp4") else None
                if view == "3d":
                    render_3d_video(res["joints"], tmp, fps=FPS, audio=audio, contacts=res.get("contacts"))
                else:
                    render_stick_video(res["joints"], tmp, fps=FPS, audio=audio)
            elif kind == "bvh":
                write_bvh(tmp, res["root_pos"], res["rotations"], fps=FPS)
            elif kind == "npz":
                save_npz(tmp, res["root_pos"], res["rotations"], motion=res["motion"], contacts=res["contacts"],
                         joints=res["joints"], fps=np.int64(FPS))
            elif kind == "pkl":
                save_pkl(tmp, res["root_pos"], res["rotations"], contacts=res["contacts"])
    return list(paths.values())
