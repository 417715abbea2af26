"""Built-in synthetic music + dance pairs, deterministic by seed (no downloads needed).

Music (numpy): drums (kick / snare / hat), bass, chords and a melody at 80-160 BPM; four genres with their own
rhythm pattern and timbre; a loudness envelope that changes every 4 bars (sections).

Dance (SMPL skeleton, 30 FPS): one key pose per music beat, eased between beats with smoothstep
``s(u) = 3u^2 - 2u^3`` so every joint's velocity is zero exactly on the beats (kinetic beats = music beats);
the pose amplitude follows the loudness around each beat; the move vocabulary depends on the genre;
the pelvis bounces through a knee bend whose depth pattern is on the beats; supporting feet are kept planted
by construction (the root is shifted so that weight-bearing feet do not move) and contacts are measured from
the resulting joint positions.

    python -c "from tasks.dance.synth import make_pair; p = make_pair(0, 8); print(p['song']['genre'], p['song']['bpm'])"
"""
from __future__ import annotations

import numpy as np

from gen.io import atomic_path

from . import skeleton as sk

FPS = 30
SR = 15360
GENRES = ("house", "hiphop", "rock", "waltz")
# genre -> (bpm range, beats per bar)
_GENRE_TEMPO = {"house": ((115.0, 132.0), 4), "hiphop": ((80.0, 100.0), 4), "rock": ((130.0, 160.0), 4),
                "waltz": ((84.0, 120.0), 3)}
# drum patterns as 16th steps in a bar (waltz: 12 steps); every beat carries a drum hit
_PATTERNS = {
    "house": dict(kick=[0, 4, 8, 12], snare=[4, 12], hat=[2, 6, 10, 14], bass=[2, 6, 10, 14], chord=[0, 8]),
    "hiphop": dict(kick=[0, 3, 8, 10], snare=[4, 12], hat=[0, 2, 4, 6, 8, 10, 12, 14], bass=[0, 3, 8, 10],
                   chord=[0]),
    "rock": dict(kick=[0, 8, 10], snare=[4, 12], hat=[0, 2, 4, 6, 8, 10, 12, 14], bass=[0, 2, 4, 6, 8, 10, 12, 14],
                 chord=[0, 2, 4, 6, 8, 10, 12, 14]),
    "waltz": dict(kick=[0], snare=[4, 8], hat=[2, 6, 10], bass=[0], chord=[4, 8]),
}
_PROGRESSIONS = [[0, 7, 9, 5], [0, 5, 7, 7], [9, 5, 0, 7], [0, 9, 5, 7]]  # semitones of bar roots


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _env(n, sr, attack, decay):
    t = np.arange(n) / sr
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t / decay)


def _osc(kind, f, n, sr, rng_phase=0.0):
    t = np.arange(n) / sr
    ph = 2 * np.pi * f * t + rng_phase
    if kind == "sine":
        return np.sin(ph)
    if kind == "saw":
        return 2.0 * ((f * t + rng_phase / (2 * np.pi)) % 1.0) - 1.0
    if kind == "square":
        return np.sign(np.sin(ph))
    if kind == "epiano":  # sine with decaying harmonics
        return np.sin(ph) + 0.4 * np.sin(2 * ph) * np.exp(-t * 6) + 0.2 * np.sin(3 * ph) * np.exp(-t * 9)
    raise ValueError(f"unknown oscillator {kind!r}")


def _drum(kind, sr, rng):
    if kind == "kick":
        n = int(0.25 * sr)
        t = np.arange(n) / sr
        f = 45.0 + 110.0 * np.exp(-t * 30)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 14)
    if kind == "snare":
        n = int(0.18 * sr)
        t = np.arange(n) / sr
        return (0.7 * rng.standard_normal(n) + 0.5 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t * 22)
    if kind == "hat":
        n = int(0.05 * sr)
        noise = np.diff(rng.standard_normal(n + 1))
        return 0.2 * noise * np.exp(-np.arange(n) / sr * 80)
    raise ValueError(kind)


def _add(buf, x, start):
    if start >= len(buf):
        return
    end = min(len(buf), start + len(x))
    buf[start:end] += x[: end - start]


def make_song(seed: int, seconds: float = 10.0, genre: str | None = None, sr: int = SR) -> dict:
    """Procedural song. Returns dict(audio (N,) float32 in [-1, 1], sr, bpm, genre, beat_times (B,) seconds,
    beats_per_bar, section_gain (B,) loudness gain per beat)."""
    if not 2.0 <= seconds <= 600.0:
        raise ValueError(f"make_song: seconds must be in [2, 600], got {seconds}")
    rng = np.random.default_rng(seed)
    if genre is None:
        genre = GENRES[int(rng.integers(len(GENRES)))]
    if genre not in GENRES:
        raise ValueError(f"make_song: genre must be one of {GENRES}, got {genre!r}")
    (lo, hi), bpb = _GENRE_TEMPO[genre]
    bpm = float(rng.uniform(lo, hi))
    beat = 60.0 / bpm
    step = beat / 4.0
    t0 = float(rng.uniform(0.15, 0.4))
    n = int(round(seconds * sr))
    beat_times = t0 + beat * np.arange(int(np.floor((seconds - t0 - 1e-6) / beat)) + 1)
    n_bars = int(np.ceil(len(beat_times) / bpb)) + 1
    # sections of 4 bars with their own loudness
    n_sections = n_bars // 4 + 1
    gains = rng.uniform(0.3, 1.0, size=n_sections)
    gains[int(rng.integers(n_sections))] = 1.0
    pat = _PATTERNS[genre]
    key = int(rng.integers(36, 44))  # bass midi root
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    timbre = {"house": ("saw", "saw"), "hiphop": ("sine", "epiano"), "rock": ("square", "saw"),
              "waltz": ("sine", "epiano")}[genre]
    drums = {k: _drum(k, sr, rng) for k in ("kick", "snare", "hat")}
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])  # pentatonic
    tracks = {k: np.zeros(n) for k in ("drums", "bass", "chords", "melody")}
    steps_per_bar = 4 * bpb
    for bar in range(n_bars):
        root = key + prog[bar % len(prog)]
        bar_start = t0 + bar * bpb * beat
        for s in range(steps_per_bar):
            ts = bar_start + s * step
            if genre == "hiphop" and s % 2 == 1:
                ts += 0.25 * step  # swing
            i = int(round(ts * sr))
            if i >= n:
                continue
            accent = 1.0 if s == 0 else (0.8 if s % 4 == 0 else 0.45)  # syncopated hits softer
            if s in pat["kick"]:
                _add(tracks["drums"], accent * drums["kick"], i)
            if s in pat["snare"]:
                _add(tracks["drums"], 0.6 * drums["snare"], i)
            if s in pat["hat"]:
                _add(tracks["drums"], drums["hat"], i)
            if s in pat["bass"]:
                m = int(0.9 * step * sr) if genre != "waltz" else int(2.5 * step * sr)
                note = _osc(timbre[0], _midi_hz(root), m, sr) * _env(m, sr, 0.005, 0.12)
                _add(tracks["bass"], (0.45 if s % 4 == 0 else 0.2) * note, i)
            if s in pat["chord"]:
                m = int(min(8, steps_per_bar) * step * sr) if len(pat["chord"]) <= 2 else int(1.8 * step * sr)
                ch = sum(_osc(timbre[1], _midi_hz(root + 24 + iv), m, sr, rng.uniform(0, 6.28)) for iv in (0, 4, 7))
                if genre == "rock":
                    ch = np.tanh(2.5 * ch)
                _add(tracks["chords"], (0.09 if s % 4 == 0 else 0.05) * ch * _env(m, sr, 0.02, 0.35), i)
            if s % 4 == 0 and rng.random() < 0.6:
                m = int(2 * step * sr)
                note = _midi_hz(root + 36 + scale[int(rng.integers(len(scale)))])
                _add(tracks["melody"], 0.08 * _osc("sine", note, m, sr) * _env(m, sr, 0.01, 0.2), i)
    mix = tracks["drums"] * 1.2 + tracks["bass"] + tracks["chords"] + tracks["melody"]
    # section loudness envelope, ramped over half a beat at section borders
    section_len = 4 * bpb * beat
    t = np.arange(n) / sr
    sec_idx = np.clip(((t - t0) / section_len).astype(int), 0, n_sections - 1)
    g = gains[sec_idx]
    ramp = max(1, int(0.5 * beat * sr))
    g = np.convolve(np.pad(g, (ramp // 2, ramp - 1 - ramp // 2), mode="edge"), np.ones(ramp) / ramp, mode="valid")
    mix = mix * g
    mix = 0.9 * mix / max(np.abs(mix).max(), 1e-9)
    beat_gain = gains[np.clip(((beat_times - t0) / section_len).astype(int), 0, n_sections - 1)]
    return dict(audio=mix.astype(np.float32), sr=int(sr), bpm=bpm, genre=genre, beat_times=beat_times,
                beats_per_bar=bpb, section_gain=beat_gain.astype(np.float32))


# ---------------------------------------------------------------- choreography
J = {name: i for i, name in enumerate(sk.JOINT_NAMES)}
_L1 = float(np.linalg.norm(sk.REST_OFFSETS[J["left_knee"]]))   # thigh
_L2 = float(np.linalg.norm(sk.REST_OFFSETS[J["left_ankle"]]))  # shank


def _neutral() -> np.ndarray:
    pose = np.zeros((24, 3))
    pose[J["left_shoulder"], 2] = -1.15
    pose[J["right_shoulder"], 2] = 1.15
    pose[J["left_elbow"], 1] = -0.3
    pose[J["right_elbow"], 1] = 0.3
    return pose


def _arm(pose, side, raise_=0.0, forward=0.0, elbow=0.0):
    """side +1 left / -1 right. raise_ lifts the arm sideways, forward swings it to the front, elbow bends."""
    sh, el = (J["left_shoulder"], J["left_elbow"]) if side > 0 else (J["right_shoulder"], J["right_elbow"])
    pose[sh, 2] += side * raise_
    pose[sh, 1] += -side * forward
    pose[el, 1] += -side * elbow


def _move(name, pose, side, A, legs):
    """Add move ``name`` (amplitude A in ~[0.35, 1]) to ``pose``; ``legs`` = dict of per-leg lift values."""
    if name == "pump":
        _arm(pose, side, raise_=1.9 * A, elbow=0.9 * A)
    elif name == "punch":
        _arm(pose, side, raise_=1.0 * A, forward=1.3 * A, elbow=-0.2 * A)
        _arm(pose, -side, elbow=1.2 * A)
    elif name == "clap":
        for s in (1, -1):
            _arm(pose, s, raise_=0.9 * A, forward=1.2 * A, elbow=0.5 * A)
    elif name == "wave":
        _arm(pose, side, raise_=2.2 * A, elbow=1.0 * A)
        _arm(pose, -side, raise_=0.5 * A)
    elif name == "twist":
        for j in ("spine1", "spine2", "spine3"):
            pose[J[j], 1] += side * 0.22 * A
        _arm(pose, side, forward=0.6 * A, elbow=0.8 * A)
        _arm(pose, -side, forward=-0.4 * A, elbow=0.8 * A)
    elif name == "nod":
        pose[J["neck"], 0] += 0.35 * A
        pose[J["head"], 0] += 0.2 * A
        _arm(pose, side, raise_=0.6 * A, elbow=1.2 * A)
        _arm(pose, -side, raise_=0.3 * A, elbow=0.6 * A)
    elif name == "lean":
        for j in ("spine1", "spine2", "spine3"):
            pose[J[j], 2] += -side * 0.12 * A
        _arm(pose, side, raise_=1.3 * A)
    elif name == "headbang":
        pose[J["neck"], 0] += 0.6 * A
        pose[J["spine3"], 0] += 0.25 * A
        _arm(pose, side, raise_=0.4 * A, forward=0.5 * A, elbow=1.0 * A)
    elif name == "guitar":
        _arm(pose, 1, raise_=0.7 * A, forward=0.9 * A, elbow=0.6 * A)
        _arm(pose, -1, raise_=(0.2 + 0.6 * (side > 0)) * A, forward=0.5 * A, elbow=1.1 * A)
        pose[J["spine2"], 0] += 0.15 * A
    elif name == "sweep":
        for s in (1, -1):
            _arm(pose, s, raise_=(1.4 if s == side else 0.6) * A, forward=0.3 * A)
        pose[J["spine2"], 2] += -side * 0.15 * A
    elif name in ("knee_lift", "kick"):
        legs["lift_" + ("left" if side > 0 else "right")] = (1.0 if name == "knee_lift" else 0.7) * A
        _arm(pose, -side, raise_=0.8 * A, forward=0.6 * A, elbow=0.8 * A)
        legs["kick"] = name == "kick"
    else:
        raise ValueError(f"unknown move {name!r}")


_VOCAB = {
    "house": ["pump", "knee_lift", "clap", "twist"],
    "hiphop": ["nod", "punch", "twist", "lean", "clap"],
    "rock": ["headbang", "guitar", "pump", "kick"],
    "waltz": ["sweep", "lean", "wave", "twist"],
}
# knee-bend depth (radians of hip flexion at full energy) for beats within a bar
_BOUNCE = {"house": [0.45, 0.15], "hiphop": [0.5, 0.25, 0.45, 0.1], "rock": [0.4, 0.1], "waltz": [0.3, 0.05, 0.12]}


def _leg_angles(a, lift, kick):
    """Hip / knee / ankle pitch for squat angle a (feet flat under the hips) plus a leg lift."""
    b = a + np.arcsin(np.clip(_L1 * np.sin(a) / _L2, -1, 1))  # knee flexion keeping the foot below the hip
    hip = -(a + np.where(kick, 1.2, 1.1) * lift)
    knee = b + np.where(kick, 0.2, 1.6) * lift
    ankle = (a - b) + 0.3 * lift
    return hip, knee, ankle


def beat_energy(audio: np.ndarray, sr: int, beat_times: np.ndarray) -> np.ndarray:
    """RMS loudness of the audio from each beat to the next, normalised to max 1. (B,)"""
    edges = np.append(beat_times, beat_times[-1] + np.median(np.diff(beat_times)) if len(beat_times) > 1 else
                      beat_times[-1] + 0.5)
    idx = np.clip((edges * sr).astype(int), 0, len(audio))
    rms = np.array([np.sqrt(np.mean(audio[a:b] ** 2)) if b > a else 0.0 for a, b in zip(idx[:-1], idx[1:])])
    return (rms / max(rms.max(), 1e-9)).astype(np.float32)


def make_dance(song: dict, seed: int) -> dict:
    """Choreography for ``song`` at 30 FPS.

    Returns dict(root_pos (T, 3), rotations (T, 24, 3, 3), contacts (T, 4), joints (T, 24, 3), moves (B,) list),
    T = floor(duration * 30) + 1 (the same frame count as ``audio.audio_features``).
    """
    rng = np.random.default_rng(seed)
    audio, sr, beats, genre = song["audio"], song["sr"], np.asarray(song["beat_times"]), song["genre"]
    if len(beats) < 2:
        raise ValueError("make_dance: the song needs at least 2 beats")
    T = int(np.floor(len(audio) / sr * FPS)) + 1
    energy = beat_energy(audio, sr, beats)
    amp = 0.35 + 0.65 * energy  # (B,)
    bpb = song.get("beats_per_bar", 4)
    vocab = _VOCAB[genre]
    B = len(beats)
    keys = np.zeros((B, 24, 3))
    leg_keys = np.zeros((B, 3))  # squat a, lift_left, lift_right
    kick_flags = np.zeros(B, dtype=bool)
    moves = []
    for k in range(B):
        side = 1 if k % 2 == 0 else -1
        name = vocab[int(rng.integers(len(vocab)))]
        if name in ("knee_lift", "kick") and k > 0 and (leg_keys[k - 1, 1] > 0 or leg_keys[k - 1, 2] > 0):
            name = vocab[0] if vocab[0] not in ("knee_lift", "kick") else "clap"  # no two lifts in a row
        pose = _neutral()
        legs = {"lift_left": 0.0, "lift_right": 0.0, "kick": False}
        _move(name, pose, side, amp[k], legs)
        pose[J["neck"], 1] += side * 0.1 * amp[k]  # small head turn every beat
        keys[k] = pose
        leg_keys[k] = [_BOUNCE[genre][k % bpb % len(_BOUNCE[genre])] * amp[k], legs["lift_left"], legs["lift_right"]]
        kick_flags[k] = legs["kick"]
        moves.append(name)
    # frame-wise interpolation with smoothstep between beat keys
    t = np.arange(T) / FPS
    k0 = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, B - 1)
    k1 = np.clip(k0 + 1, 0, B - 1)
    span = np.maximum(beats[k1] - beats[k0], 1e-6)
    u = np.clip((t - beats[k0]) / span, 0.0, 1.0)
    u[t < beats[0]] = 0.0
    s = u * u * (3 - 2 * u)  # (T,)
    pose = keys[k0] * (1 - s)[:, None, None] + keys[k1] * s[:, None, None]  # (T, 24, 3)
    legs = leg_keys[k0] * (1 - s)[:, None] + leg_keys[k1] * s[:, None]  # (T, 3)
    kick = np.where(s < 0.5, kick_flags[k0], kick_flags[k1])
    for side_name, col in (("left", 1), ("right", 2)):
        hip, knee, ankle = _leg_angles(legs[:, 0], legs[:, col], kick)
        pose[:, J[f"{side_name}_hip"], 0] = hip
        pose[:, J[f"{side_name}_knee"], 0] = knee
        pose[:, J[f"{side_name}_ankle"], 0] = ankle
    rotations = sk.axis_angle_to_matrix(pose.astype(np.float64))  # (T, 24, 3, 3)
    # root: keep weight-bearing feet where they are in the rest stance
    rest = sk.forward_kinematics(np.zeros(3), np.tile(np.eye(3), (24, 1, 1)))
    floor = -rest[sk.FOOT_JOINTS, 1].min()
    rest_feet = rest[sk.FOOT_JOINTS] + np.array([0.0, floor, 0.0])  # (4, 3)
    joints0 = sk.forward_kinematics(np.tile([0.0, floor, 0.0], (T, 1)), rotations)
    feet = joints0[:, sk.FOOT_JOINTS]  # (T, 4, 3)
    w_l = np.clip(1 - legs[:, 1] / 0.05, 0, 1)
    w_r = np.clip(1 - legs[:, 2] / 0.05, 0, 1)
    w = np.stack([w_l, w_l, w_r, w_r], axis=1) + 1e-6  # (T, 4)
    corr = ((rest_feet[None] - feet) * w[..., None]).sum(1) / w.sum(1, keepdims=True)  # (T, 3)
    root_pos = np.array([0.0, floor, 0.0]) + corr
    joints = joints0 + corr[:, None, :]
    contacts = sk.foot_contacts_from_positions(joints, vel_thresh=0.2, height_thresh=0.03, fps=FPS)
    return dict(root_pos=root_pos.astype(np.float32), rotations=rotations.astype(np.float32),
                contacts=contacts, joints=joints.astype(np.float32), moves=moves)


def make_pair(seed: int, seconds: float = 10.0, genre: str | None = None) -> dict:
    """dict(song=make_song(seed, seconds, genre), dance=make_dance(song, seed + 1))."""
    song = make_song(seed, seconds=seconds, genre=genre)
    return dict(song=song, dance=make_dance(song, seed + 1_000_003))


def write_wav(path, audio: np.ndarray, sr: int) -> None:
    """16-bit PCM wav, written atomically (temp file in the same folder, then os.replace)."""
    import soundfile as sf

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"write_wav: audio must be mono (N,), got {audio.shape}")
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(audio, -1, 1), int(sr), subtype="PCM_16", format="WAV")
