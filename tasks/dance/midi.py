"""Procedural songs played with real instrument samples: MIDI written here, rendered by FluidSynth with a General MIDI
soundfont (Debian `fluidsynth` + `fluid-soundfont-gm`, installed by `data/dance/setup.sh`).

A song is a sequence of sections (intro / verse / chorus / break / stop / outro, 4 or 8 bars each, each with its own
density and loudness) in one of ten genres (`GM_GENRES`, 70-180 BPM, 4/4 and 3/4, straight or swung), with a drum kit on
MIDI channel 10 (patterns per genre, fills in the last bar of a section, a crash on accents), bass, chords (comping
pattern per genre) and a lead melody (a motif on the genre's scale, repeated and varied per section). The tempo drifts
by a few BPM over the song; notes are humanised (timing ±5 ms, velocity). After rendering, production varies per song:
level, EQ tilt, FluidSynth reverb / chorus, instrument panning, a noise floor and an mp3 / ogg round trip.

Deterministic by seed (FluidSynth renders a file bit-exactly; the post-processing uses the song's own generator).
Renders are cached as ``<cache>/gm_<version>_<seed>_<seconds>s<_genre>.npz`` (git-ignored ``data/cache/dance/midi``).

    python -c "from tasks.dance.midi import make_song_gm; s = make_song_gm(0, 10); print(s['genre'], s['bpm'])"
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

SR = 15360                       # = tasks.dance.audio.SR: FluidSynth renders at the feature rate, no resampling
VERSION = 1                      # bump when the generator changes (cache key)
DEFAULT_CACHE = os.path.join("data", "cache", "dance", "midi")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
TICKS_PER_SECOND = 1920          # division 960 at the default tempo (120 BPM): note times are written in seconds

# GM drum notes (channel 10)
KICK, RIM, SNARE, CLAP, HAT, PEDAL, OHAT, CRASH, RIDE, TOM_L, TOM_M, TOM_H, COWBELL, SHAKER, CONGA = \
    36, 37, 38, 39, 42, 44, 46, 49, 51, 45, 47, 50, 56, 70, 63

# genre -> bpm range, beats per bar, swing (0 straight; 1/3 = triplet swing of 8ths), drum grid per bar in 16ths
# (3/4: 12 steps), bass steps (step, length in 16ths), chord steps, GM programs (bass, chords, lead), scale
GM_GENRES = {
    "house": dict(bpm=(118, 130), meter=4, swing=0.0, drums={KICK: [0, 4, 8, 12], CLAP: [4, 12], OHAT: [2, 6, 10, 14],
                  HAT: [0, 4, 8, 12]}, bass=[(2, 2), (6, 2), (10, 2), (14, 2)], chords=[(0, 3), (6, 2), (10, 3)],
                  programs=([38, 39, 33], [4, 81, 89, 0], [80, 81, 11]), scale="minor"),
    "hiphop": dict(bpm=(78, 98), meter=4, swing=0.12, drums={KICK: [0, 3, 8, 10], SNARE: [4, 12],
                   HAT: [0, 2, 4, 6, 8, 10, 12, 14]}, bass=[(0, 3), (3, 2), (8, 2), (10, 4)], chords=[(0, 8), (8, 8)],
                   programs=([33, 38, 34], [4, 5, 0, 88], [11, 80, 73]), scale="minor_penta"),
    "rock": dict(bpm=(110, 160), meter=4, swing=0.0, drums={KICK: [0, 8, 10], SNARE: [4, 12],
                 HAT: [0, 2, 4, 6, 8, 10, 12, 14]}, bass=[(s, 2) for s in range(0, 16, 2)],
                 chords=[(s, 2) for s in range(0, 16, 2)], programs=([34, 33], [29, 30, 27], [29, 30, 81]),
                 scale="minor_penta"),
    "waltz": dict(bpm=(84, 180), meter=3, swing=0.0, drums={KICK: [0], RIM: [4, 8], HAT: [0, 4, 8]},
                  bass=[(0, 4)], chords=[(4, 3), (8, 3)], programs=([32, 43], [0, 48, 21, 46], [40, 73, 71, 21]),
                  scale="major"),
    "swing": dict(bpm=(120, 180), meter=4, swing=1 / 3, drums={RIDE: [0, 4, 6, 8, 12, 14], PEDAL: [4, 12],
                  KICK: [0, 8], SNARE: [14]}, bass=[(0, 4), (4, 4), (8, 4), (12, 4)], chords=[(4, 2), (12, 2)],
                  programs=([32], [0, 26, 61], [65, 56, 66, 11]), scale="blues"),
    "funk": dict(bpm=(95, 115), meter=4, swing=0.0, drums={KICK: [0, 3, 10], SNARE: [4, 12, 15],
                 HAT: list(range(16))}, bass=[(0, 1), (3, 1), (6, 1), (7, 1), (10, 2), (14, 1)],
                 chords=[(2, 1), (6, 1), (10, 1), (13, 1)], programs=([36, 37, 33], [27, 28, 4], [61, 62, 17]),
                 scale="dorian"),
    "latin": dict(bpm=(150, 180), meter=4, swing=0.0, drums={CONGA: [2, 6, 7, 10, 14, 15], COWBELL: [0, 4, 8, 12],
                  KICK: [0, 8], RIM: [3, 6, 10, 12]}, bass=[(0, 3), (6, 2), (8, 3), (14, 2)],
                  chords=[(0, 2), (3, 2), (6, 2), (10, 2), (12, 2)], programs=([32, 33], [0, 2], [56, 61, 73]),
                  scale="major"),
    "pop": dict(bpm=(95, 128), meter=4, swing=0.0, drums={KICK: [0, 6, 8], SNARE: [4, 12],
                HAT: [0, 2, 4, 6, 8, 10, 12, 14]}, bass=[(0, 2), (6, 2), (8, 4), (14, 2)], chords=[(0, 8), (8, 8)],
                programs=([33, 38], [0, 4, 25, 48], [80, 73, 54, 11]), scale="major"),
    "reggae": dict(bpm=(70, 90), meter=4, swing=0.08, drums={KICK: [8], RIM: [8], HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
                   bass=[(0, 3), (4, 2), (7, 1), (10, 4)], chords=[(4, 1), (12, 1)], programs=([33, 34], [16, 4, 27],
                   [56, 65, 11]), scale="major"),
    "march": dict(bpm=(100, 124), meter=4, swing=0.0, drums={KICK: [0, 8], SNARE: [4, 12, 14], CRASH: []},
                  bass=[(0, 4), (8, 4)], chords=[(4, 2), (12, 2)], programs=([58, 57], [61, 60, 48], [56, 72, 73]),
                  scale="major"),
}
GENRE_NAMES = tuple(GM_GENRES)
# the model's four style labels (tasks.dance.synth.GENRES) for each genre
COARSE_GENRE = {"house": "house", "funk": "house", "pop": "house", "latin": "house", "hiphop": "hiphop",
                "reggae": "hiphop", "rock": "rock", "march": "rock", "swing": "rock", "waltz": "waltz"}
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "dorian": [0, 2, 3, 5, 7, 9, 10],
          "minor_penta": [0, 3, 5, 7, 10], "blues": [0, 3, 5, 6, 7, 10]}
PROGRESSIONS = {"major": [[0, 5, 7, 0], [0, 9, 5, 7], [0, 7, 9, 5], [5, 7, 0, 0]],
                "minor": [[0, 8, 3, 10], [0, 5, 8, 7], [0, 10, 8, 10]]}
# section kind -> (density 0..1, velocity scale); "stop" is a full silence (the beat grid goes on)
SECTIONS = {"intro": (0.35, 0.55), "verse": (0.7, 0.75), "chorus": (1.0, 1.0), "break": (0.25, 0.5),
            "stop": (0.0, 0.0), "outro": (0.45, 0.6)}


def soundfont() -> str:
    for p in SOUNDFONTS:
        if os.path.isfile(p):
            return p
    raise RuntimeError(f"no General MIDI soundfont found ({', '.join(SOUNDFONTS)}); run `make setup` "
                       "(data/dance/setup.sh installs Debian fluid-soundfont-gm)")


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and any(os.path.isfile(p) for p in SOUNDFONTS)


# ---------------------------------------------------------------- MIDI file (format 0, times in seconds)
def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: str, events: list) -> None:
    """events: (time_s, kind, channel, a, b) with kind 'on' (note a, velocity b), 'off' (note a), 'program' (a),
    'cc' (controller a, value b). Written as a format-0 file at 120 BPM, division 960 (1 tick = 1/1920 s)."""
    order = {"program": 0, "cc": 1, "off": 2, "on": 3}
    evs = sorted(events, key=lambda e: (int(round(e[0] * TICKS_PER_SECOND)), order[e[1]], e[2], e[3]))
    data, last = bytearray(), 0
    for t, kind, ch, a, b in evs:
        tick = max(0, int(round(t * TICKS_PER_SECOND)))
        data += _vlq(tick - last)
        last = tick
        if kind == "on":
            data += bytes([0x90 | ch, a & 0x7F, max(1, min(127, int(b)))])
        elif kind == "off":
            data += bytes([0x80 | ch, a & 0x7F, 0])
        elif kind == "program":
            data += bytes([0xC0 | ch, a & 0x7F])
        elif kind == "cc":
            data += bytes([0xB0 | ch, a & 0x7F, max(0, min(127, int(b)))])
        else:
            raise ValueError(kind)
    data += b"\x00\xff\x2f\x00"  # end of track
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 960))
        f.write(b"MTrk" + struct.pack(">I", len(data)) + bytes(data))


def render_midi(mid_path: str, seconds: float, sr: int = SR, reverb: tuple = (0.4, 0.3), chorus: bool = False,
                gain: float = 0.5) -> np.ndarray:
    """Render a MIDI file with the `fluidsynth` program. Returns stereo (n, 2) float32, n = round(seconds * sr)."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise RuntimeError("the `fluidsynth` program is missing; run `make setup` (data/dance/setup.sh installs it)")
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "out.wav")
        room, level = reverb
        cmd = ["fluidsynth", "-ni", "-q", "-g", f"{gain:.3f}", "-r", str(int(sr)), "-R", "1" if level > 0 else "0",
               "-C", "1" if chorus else "0", "-o", f"synth.reverb.room-size={room:.3f}",
               "-o", f"synth.reverb.level={level:.3f}", "-o", "synth.cpu-cores=1", "-T", "wav", "-O", "float",
               "-F", wav, soundfont(), mid_path]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not os.path.isfile(wav):
            raise RuntimeError(f"fluidsynth failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        y, _ = sf.read(wav, dtype="float32", always_2d=True)
    n = int(round(seconds * sr))
    out = np.zeros((n, 2), np.float32)
    out[:min(n, len(y))] = y[:n, :2] if y.shape[1] >= 2 else np.repeat(y[:n], 2, 1)
    return out


# ---------------------------------------------------------------- the song plan
def _section_plan(rng, n_bars: int) -> list[tuple[str, int]]:
    """[(kind, bars), ...] covering n_bars: intro, then verses / choruses with breaks and an occasional stop."""
    plan, used = [("intro", int(rng.choice([2, 4])))], 0
    used = plan[0][1]
    k = 0
    while used < n_bars:
        r = rng.random()
        if k > 0 and r < 0.18:
            kind, bars = "stop", int(rng.choice([1, 2]))
        elif r < 0.35:
            kind, bars = "break", int(rng.choice([2, 4]))
        else:
            kind, bars = ("verse", "chorus")[k % 2], int(rng.choice([4, 8]))
        plan.append((kind, bars))
        used += bars
        k += 1
    return plan


def _beat_times(rng, bpm: float, n_beats: int, t0: float) -> np.ndarray:
    """Beat onsets with a slow tempo drift of a few BPM (sinusoidal, random period and phase)."""
    drift = rng.uniform(0.0, 4.0)
    period = rng.uniform(8.0, 24.0)  # beats... in seconds of the nominal tempo
    phase = rng.uniform(0, 2 * np.pi)
    times = [t0]
    for _ in range(n_beats - 1):
        b = bpm + drift * np.sin(2 * np.pi * times[-1] / period + phase)
        times.append(times[-1] + 60.0 / b)
    return np.array(times)


def plan_song(seed: int, seconds: float, genre: str | None = None) -> dict:
    """The song as MIDI events + its structure (no audio). See `make_song_gm`."""
    rng = np.random.default_rng([seed, 77])
    if genre is None:
        genre = GENRE_NAMES[int(rng.integers(len(GENRE_NAMES)))]
    if genre not in GM_GENRES:
        raise ValueError(f"genre must be one of {GENRE_NAMES}, got {genre!r}")
    g = GM_GENRES[genre]
    bpb, steps = g["meter"], 4 * g["meter"]
    bpm = float(rng.uniform(*g["bpm"]))
    t0 = float(rng.uniform(0.1, 0.5))
    n_beats = int((seconds - t0) / (60.0 / (bpm - 4.0))) + 2 * bpb
    beats = _beat_times(rng, bpm, n_beats, t0)
    n_bars = n_beats // bpb
    plan = _section_plan(rng, n_bars)
    bass_prog, chord_prog, lead_prog = (int(rng.choice(p)) for p in g["programs"])
    scale = SCALES[g["scale"]]
    minor = g["scale"] in ("minor", "dorian", "minor_penta", "blues")
    progs = PROGRESSIONS["minor" if minor else "major"]
    prog = progs[int(rng.integers(len(progs)))]
    key = int(rng.integers(0, 12))
    swing = g["swing"]
    master = rng.uniform(0.75, 1.0)
    ev = []
    for ch, p in ((0, bass_prog), (1, chord_prog), (2, lead_prog)):
        ev.append((0.0, "program", ch, p, 0))
        ev.append((0.0, "cc", ch, 10, int(np.clip(64 + rng.normal(0, 25), 10, 118))))  # pan
        ev.append((0.0, "cc", ch, 91, int(rng.uniform(10, 90))))  # reverb send
        ev.append((0.0, "cc", ch, 7, int(rng.uniform(85, 115))))
    ev.append((0.0, "cc", 9, 7, int(rng.uniform(95, 125))))
    ev.append((0.0, "cc", 9, 91, int(rng.uniform(5, 50))))

    def step_time(bar: int, s: float) -> float:
        """Time of 16th-step s of bar (swing delays the off-beat 8ths, drift follows the beats)."""
        b = bar * bpb + s / 4.0
        frac = (s % 4) / 4.0
        if swing and abs(frac - 0.5) < 1e-6:
            b += swing * 0.5
        if swing and genre == "hiphop" and s % 2 == 1:
            b += swing * 0.25
        i = int(np.floor(b))
        if i + 1 >= len(beats):
            return beats[-1] + (b - len(beats) + 1) * (beats[-1] - beats[-2])
        return beats[i] + (b - i) * (beats[i + 1] - beats[i])

    def note(t, dur, ch, pitch, vel):
        t = t + rng.normal(0, 0.004 if ch == 9 else 0.006)
        ev.append((max(0.0, t), "on", ch, int(pitch), int(np.clip(vel * master + rng.normal(0, 6), 1, 127))))
        ev.append((max(0.0, t) + dur, "off", ch, int(pitch), 0))

    motif = rng.choice(len(scale) * 2, size=8) if len(scale) else None
    motif_rhythm = sorted(rng.choice(steps, size=int(rng.integers(3, 7)), replace=False))
    section_of_beat = np.zeros(n_beats, dtype=np.int64)
    loud_of_beat = np.zeros(n_beats, np.float32)
    section_starts, accents, kinds = [], [], []
    bar = 0
    for si, (kind, bars) in enumerate(plan):
        dens, vscale = SECTIONS[kind]
        section_starts.append(bar * bpb)
        kinds.append(kind)
        if kind == "chorus" or (kind == "verse" and si > 1 and rng.random() < 0.5):
            accents.append(bar * bpb)
        for b in range(bars):
            if bar >= n_bars:
                break
            lo, hi = bar * bpb, min((bar + 1) * bpb, n_beats)
            section_of_beat[lo:hi] = si
            loud_of_beat[lo:hi] = vscale
            if kind != "stop":
                root = key + prog[bar % len(prog)]
                last_bar = b == bars - 1 and kind in ("verse", "chorus") and rng.random() < 0.7
                # drums
                for drum, pat in g["drums"].items():
                    if kind in ("intro", "break") and drum not in (HAT, OHAT, RIDE, SHAKER, CONGA, KICK):
                        continue
                    if kind == "break" and drum == KICK and rng.random() < 0.5:
                        continue
                    for s in pat:
                        if last_bar and s >= steps - 4:
                            continue
                        acc = 1.0 if s == 0 else (0.85 if s % 4 == 0 else 0.65)
                        note(step_time(bar, s), 0.1, 9, drum, 110 * acc * vscale)
                if last_bar:  # fill: 16ths on snare / toms over the last beat
                    for j, s in enumerate(range(steps - 4, steps)):
                        note(step_time(bar, s), 0.1, 9, (SNARE, TOM_H, TOM_M, TOM_L)[j], 100 * vscale)
                if b == 0 and kind in ("chorus", "verse") and bar * bpb in accents:
                    note(step_time(bar, 0), 1.5, 9, CRASH, 115)
                # bass
                if dens >= 0.3:
                    for s, ln in g["bass"]:
                        if dens < 0.6 and s % 4:
                            continue
                        note(step_time(bar, s), max(0.05, step_time(bar, s + ln) - step_time(bar, s) - 0.02), 0,
                             36 + root % 12 + (7 if s % 8 == 4 and rng.random() < 0.3 else 0), 100 * vscale)
                # chords
                third = 3 if minor else 4
                for s, ln in g["chords"]:
                    if dens < 0.5 and s % 8:
                        continue
                    dur = max(0.05, step_time(bar, s + ln) - step_time(bar, s) - 0.02)
                    for iv in (0, third, 7):
                        note(step_time(bar, s), dur, 1, 60 + (root + iv) % 12 - (12 if (root + iv) % 12 > 7 else 0),
                             75 * vscale)
                # lead: the section's motif on the scale, varied
                if dens >= 0.7 or (kind == "intro" and rng.random() < 0.3):
                    shift = int(rng.integers(-2, 3)) if b % 2 else 0
                    for j, s in enumerate(motif_rhythm):
                        if rng.random() < 0.15:
                            continue
                        deg = int(motif[j % len(motif)]) + shift
                        pitch = 72 + key % 12 + 12 * (deg // len(scale)) + scale[deg % len(scale)]
                        dur = max(0.08, min(0.6, step_time(bar, s + 2) - step_time(bar, s)))
                        note(step_time(bar, s), dur, 2, pitch, 90 * vscale)
            bar += 1
    silent = np.array([plan[section_of_beat[i]][0] == "stop" for i in range(n_beats)])
    keep = beats < seconds - 0.05
    return dict(events=ev, genre=genre, bpm=bpm, beat_times=beats[keep], beats_per_bar=bpb,
                section_gain=loud_of_beat[keep], silent=silent[keep],
                section_starts=np.array([s for s in section_starts if s < keep.sum()], np.int64),
                section_kinds=[k for k, s in zip(kinds, section_starts) if s < keep.sum()],
                accents=np.array([a for a in accents if a < keep.sum()], np.int64), programs=(bass_prog, chord_prog,
                                                                                            lead_prog))


# ---------------------------------------------------------------- production
def _produce(stereo: np.ndarray, rng, sr: int) -> tuple[np.ndarray, dict]:
    """Mix-down and production variation: EQ tilt, stereo width, noise floor, level, codec round trip. (n,) mono."""
    from scipy.signal import butter, sosfilt

    info = {}
    mid, side = stereo.mean(1), 0.5 * (stereo[:, 0] - stereo[:, 1])
    width = rng.uniform(0.0, 1.0)
    left, right = mid + width * side, mid - width * side
    y = 0.5 * (left + right)  # the mono the features see; width changes only what a stereo listener would hear
    lo_gain, hi_gain = rng.uniform(-0.6, 0.9), rng.uniform(-0.7, 0.6)
    y = y + lo_gain * sosfilt(butter(2, 200, "low", fs=sr, output="sos"), y) \
        + hi_gain * sosfilt(butter(2, 3000, "high", fs=sr, output="sos"), y)
    info.update(eq_low=lo_gain, eq_high=hi_gain, width=width)
    peak = max(np.abs(y).max(), 1e-9)
    level = rng.uniform(0.25, 0.95)
    y = y * (level / peak)
    noise_db = rng.uniform(-70, -40)
    white = rng.standard_normal(len(y))
    pink = sosfilt(butter(1, 500, "low", fs=sr, output="sos"), white) * 3.0
    y = y + 10 ** (noise_db / 20) * (pink if rng.random() < 0.5 else white)
    info.update(level=level, noise_db=noise_db)
    codec = ["none", "ogg", "mp3"][int(rng.integers(3))]
    if codec != "none":
        y = _codec_round_trip(y.astype(np.float32), sr, codec)
    info["codec"] = codec
    return np.clip(y, -1, 1).astype(np.float32), info


def _codec_round_trip(y: np.ndarray, sr: int, codec: str) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x." + codec)
        if codec == "ogg":
            sf.write(path, y, sr, format="OGG", subtype="VORBIS")
        else:
            from scipy.signal import resample_poly  # MPEG rates: 15360 Hz → 16000 Hz and back

            sf.write(path, resample_poly(y, 25, 24).astype(np.float32), 16000, format="MP3",
                     subtype="MPEG_LAYER_III")
        z, _ = sf.read(path, dtype="float32", always_2d=False)
        if codec == "mp3":
            z = resample_poly(z, 24, 25).astype(np.float32)
    out = np.zeros_like(y)
    out[:min(len(y), len(z))] = z[:len(y)]
    return out


def make_song_gm(seed: int, seconds: float = 10.0, genre: str | None = None, cache_dir: str | None = DEFAULT_CACHE,
                 production: bool = True) -> dict:
    """A procedural song rendered through FluidSynth. Returns dict(audio (N,) float32 mono at 15360 Hz, sr, bpm,
    genre (one of `GENRE_NAMES`), coarse_genre (one of synth.GENRES), beat_times (B,) s, beats_per_bar,
    section_gain (B,) loudness scale per beat (0 = silence), silent (B,) bool, section_starts (S,) beat indices,
    accents (A,) beat indices, source "fluidsynth"). Cached in ``cache_dir`` (None: no cache)."""
    if not 2.0 <= seconds <= 600.0:
        raise ValueError(f"make_song_gm: seconds must be in [2, 600], got {seconds}")
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, f"gm_v{VERSION}_{int(seed)}_{seconds:g}s{'_' + genre if genre else ''}"
                                       f"{'' if production else '_dry'}.npz")
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
            return _song_dict(d)
    plan = plan_song(seed, seconds, genre)
    rng = np.random.default_rng([seed, 78])
    reverb = (rng.uniform(0.1, 0.9), rng.uniform(0.0, 0.8) if production else 0.2)
    chorus = bool(production and rng.random() < 0.3)
    with tempfile.TemporaryDirectory() as d:
        mid = os.path.join(d, "song.mid")
        write_midi(mid, plan["events"])
        stereo = render_midi(mid, seconds, SR, reverb=reverb, chorus=chorus)
    if production:
        audio, info = _produce(stereo, rng, SR)
    else:
        audio, info = stereo.mean(1), {}
        audio = (0.9 * audio / max(np.abs(audio).max(), 1e-9)).astype(np.float32)
    d = dict(audio=audio, sr=np.int64(SR), bpm=np.float64(plan["bpm"]), genre=np.str_(plan["genre"]),
             beat_times=plan["beat_times"], beats_per_bar=np.int64(plan["beats_per_bar"]),
             section_gain=plan["section_gain"], silent=plan["silent"], section_starts=plan["section_starts"],
             accents=plan["accents"], codec=np.str_(info.get("codec", "none")))
    if path:
        from gen.io import atomic_path

        os.makedirs(cache_dir, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **d)
    return _song_dict(d)


def _song_dict(d: dict) -> dict:
    return dict(audio=np.asarray(d["audio"], np.float32), sr=int(d["sr"]), bpm=float(d["bpm"]), genre=str(d["genre"]),
                coarse_genre=COARSE_GENRE[str(d["genre"])], beat_times=np.asarray(d["beat_times"], np.float64),
                beats_per_bar=int(d["beats_per_bar"]), section_gain=np.asarray(d["section_gain"], np.float32),
                silent=np.asarray(d["silent"], bool), section_starts=np.asarray(d["section_starts"], np.int64),
                accents=np.asarray(d["accents"], np.int64), codec=str(d["codec"]), source="fluidsynth")
