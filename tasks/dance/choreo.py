"""A procedural choreographer with a real step vocabulary (the training ground truth of the dance model).

The dancer is planned in world space and posed by inverse kinematics, so what the legs do is what the feet do:

1. **Footwork** (`MOVES`): step-touch, side step, grapevine, kick-ball-change, jazz box, waltz box and balance (3/4),
   march, walk forward / back, turns (quarter / half / full, stepping round) and hops. A move is a list of foot events
   on (fractional) counts: *step* (the foot lands and takes the weight), *touch* (lands, no weight), *kick* (ends in the
   air), *hop* (both feet leave the floor and land together). Every landing is exactly on a music beat (or its "&").
   A swinging foot follows a smoothstep path with a sin² lift; a supporting foot keeps its world position and heading
   exactly (no skating) until it lifts again.
2. **Phrasing**: moves come in 8-count phrases (A, A mirrored, B, B mirrored: travel goes out and comes back), chosen
   anew at every section start from the genre's vocabulary (`VOCAB`); an accented section start gets a hop; when the
   dancer is more than ~0.8 m from the centre the next move is the variant that heads back; turns bring the heading
   back to the front. Loudness (RMS per beat) scales step size, lift height, arm amplitude and bounce depth; a silent
   bar (RMS < 6 % of the song's loudest beat) has no steps: the dancer idles with a slow weight sway. With
   ``intensity="band"`` (the v2e world) the scale is instead the song-relative mean mel-band level (`beat_intensity`:
   0 … 1 over the 12 dB below the song's loud beats), and each phrase's moves are drawn near it (`MOVE_ENERGY`: quiet
   passages step-touch, loud ones hop and turn); on the tuning recordings that lifts the correlation of the dancer's
   1-s motion energy with loudness from 0.21-0.25 to 0.41-0.64 across the three vocabularies tried
   (reports/dance_world_ceiling.json).
3. **Body**: the pelvis sits over the supporting foot (weight transfer on the beat), dips on the beat (knee bounce,
   depth following loudness, lowered further where a wide stance needs it), yaws with the feet; spine, head and arms
   play 8-count arm phrases (`ARM_PHRASES`) with key poses on the beats (smoothstep easing: kinetic beats = music
   beats). Hips, knees and ankles come from two-bone IK (`tasks.dance.footlock.two_bone_ik`) to the planned ankles, the
   feet flat at their planned heading; contacts are measured from the resulting joint positions.

    python -c "from tasks.dance.choreo import make_pair_v2; p = make_pair_v2(0, 12); print(p['dance']['moves'])"
"""
from __future__ import annotations

import numpy as np

from . import skeleton as sk
from .footlock import two_bone_ik

FPS = 30
J = {name: i for i, name in enumerate(sk.JOINT_NAMES)}
W = 0.10                 # half stance width (ankles), metres
SILENT = 0.06            # a beat quieter than this fraction of the loudest beat is silence

# rest geometry (identity rotations, pelvis at the origin)
_REST = sk.forward_kinematics(np.zeros(3), np.tile(np.eye(3), (24, 1, 1))).astype(np.float64)
TOE = {s: sk.REST_OFFSETS[J[f"{s}_foot"]].astype(np.float64) for s in ("left", "right")}
ANKLE_H = {s: -TOE[s][1] for s in TOE}                       # ankle height when the foot is flat on the floor
HIP_OFF = {s: sk.REST_OFFSETS[J[f"{s}_hip"]].astype(np.float64) for s in ("left", "right")}
LEG_LEN = {s: float(np.linalg.norm(sk.REST_OFFSETS[J[f"{s}_knee"]]) + np.linalg.norm(sk.REST_OFFSETS[J[f"{s}_ankle"]]))
           for s in ("left", "right")}
PELVIS_FROM_ANKLES = -0.5 * (_REST[J["left_ankle"]] + _REST[J["right_ankle"]])  # pelvis − ankle midpoint at rest
STAND_H = float(PELVIS_FROM_ANKLES[1] + 0.5 * (ANKLE_H["left"] + ANKLE_H["right"]))  # straight-leg pelvis height


# ---------------------------------------------------------------- the step vocabulary
# event: (count, foot "L" | "R" | "B", kind "step" | "touch" | "kick" | "hop", x, z, turn) in the move's frame
# (origin between the feet at the move's start, +z forward, +x the dancer's left); written for the right foot
# leading to the dancer's right; `mirror` swaps feet and x. turn: heading change (rad) the foot lands with.
def _move_events(name: str, s: float) -> tuple[int, list]:
    """(length in counts, events) of move `name` at step size `s` (metres)."""
    R, L = -W, W
    if name == "step_touch":
        return 4, [(0, "R", "step", R - s, 0, 0), (1, "L", "touch", L - s, 0, 0), (2, "L", "step", L, 0, 0),
                   (3, "R", "touch", R, 0, 0)]
    if name == "side_step":
        return 4, [(0, "R", "step", R - s, 0, 0), (1, "L", "step", L - s, 0, 0), (2, "R", "step", R - 2 * s, 0, 0),
                   (3, "L", "step", L - 2 * s, 0, 0)]
    if name == "grapevine":
        return 4, [(0, "R", "step", R - s, 0, 0), (1, "L", "step", R - s + 0.06, -0.16, 0),
                   (2, "R", "step", R - 2 * s, 0, 0), (3, "L", "touch", L - 2 * s, 0, 0)]
    if name == "kick_ball_change":
        return 4, [(0, "R", "kick", R, 0.32, 0), (0.5, "R", "step", R, -0.08, 0), (1, "L", "step", L, 0, 0),
                   (2, "R", "kick", R, 0.32, 0), (2.5, "R", "step", R, -0.08, 0), (3, "L", "step", L, 0, 0)]
    if name == "jazz_box":
        return 4, [(0, "R", "step", 0.02, 0.22, 0), (1, "L", "step", L + 0.04, -0.12, 0),
                   (2, "R", "step", R - 0.06, -0.12, 0), (3, "L", "step", L, 0.02, 0)]
    if name == "march":
        return 4, [(0, "R", "step", R, 0, 0), (1, "L", "step", L, 0, 0), (2, "R", "step", R, 0, 0),
                   (3, "L", "step", L, 0, 0)]
    if name == "walk":
        return 4, [(0, "R", "step", R, s, 0), (1, "L", "step", L, 2 * s, 0), (2, "R", "step", R, 3 * s, 0),
                   (3, "L", "step", L, 3 * s, 0)]
    if name == "walk_back":
        return 4, [(0, "R", "step", R, -s, 0), (1, "L", "step", L, -2 * s, 0), (2, "R", "step", R, -3 * s, 0),
                   (3, "L", "step", L, -3 * s, 0)]
    if name in ("turn_quarter", "turn_half", "turn_full"):
        total = {"turn_quarter": np.pi / 2, "turn_half": np.pi, "turn_full": 2 * np.pi}[name]
        n = 2 if name == "turn_quarter" else 4
        ev = []
        for i in range(4):
            psi = -total * min(i + 1, n) / n  # clockwise seen from above: turning to the dancer's right
            foot, x0 = ("R", R) if i % 2 == 0 else ("L", L)
            x, z = np.cos(psi) * x0, -np.sin(psi) * x0
            ev.append((i, foot, "step", x, z, psi))
        return 4, ev
    if name == "hop":
        return 4, [(0, "B", "hop", 0, 0, 0), (1, "R", "step", R, 0, 0), (2, "L", "step", L, 0, 0),
                   (3, "B", "hop", 0, 0, 0)]
    if name == "jump_jack":
        return 4, [(0, "B", "hop", 0.12, 0, 0), (1, "B", "hop", 0, 0, 0), (2, "R", "step", R, 0, 0),
                   (3, "L", "step", L, 0, 0)]
    if name == "waltz_box":
        return 6, [(0, "L", "step", L, s, 0), (1, "R", "step", R - 0.6 * s, s, 0), (2, "L", "step", L - 0.6 * s, s, 0),
                   (3, "R", "step", R - 0.6 * s, 0, 0), (4, "L", "step", L, 0, 0), (5, "R", "step", R, 0, 0)]
    if name == "waltz_turn":
        ev = []
        for i in range(6):
            psi = -np.pi / 2 * (i + 1) / 6
            foot, x0 = ("L", L) if i % 2 == 0 else ("R", R)
            ev.append((i, foot, "step", np.cos(psi) * x0, -np.sin(psi) * x0, psi))
        return 6, ev
    if name == "balance":
        return 3, [(0, "R", "step", R - s, 0, 0), (1, "L", "touch", L - s, 0, 0), (2, "R", "step", R - s, 0, 0)]
    if name == "balance_back":
        return 3, [(0, "L", "step", L, 0, 0), (1, "R", "touch", R, 0, 0), (2, "L", "step", L, 0, 0)]
    if name == "idle":
        return 4, []
    raise ValueError(f"unknown move {name!r}")


MOVES = ("step_touch", "side_step", "grapevine", "kick_ball_change", "jazz_box", "march", "walk", "walk_back",
         "turn_quarter", "turn_half", "turn_full", "hop", "jump_jack", "waltz_box", "waltz_turn", "balance",
         "balance_back", "idle")
TRAVEL = {"side_step", "grapevine", "walk", "walk_back"}
VOCAB = {  # genre -> footwork (4/4 moves are 4 counts; 3/4 moves 3 or 6)
    "house": ["step_touch", "side_step", "kick_ball_change", "grapevine", "turn_half", "jump_jack"],
    "hiphop": ["step_touch", "march", "kick_ball_change", "side_step", "turn_quarter", "walk"],
    "rock": ["march", "hop", "side_step", "kick_ball_change", "turn_full", "walk"],
    "waltz": ["waltz_box", "waltz_turn", "balance"],
    "swing": ["kick_ball_change", "step_touch", "jazz_box", "turn_full", "side_step"],
    "funk": ["grapevine", "side_step", "kick_ball_change", "jazz_box", "turn_half"],
    "latin": ["jazz_box", "side_step", "step_touch", "turn_full", "walk"],
    "pop": ["step_touch", "grapevine", "jazz_box", "walk", "turn_half", "hop"],
    "reggae": ["step_touch", "march", "side_step", "turn_quarter"],
    "march": ["march", "walk", "turn_half", "side_step", "hop"],
}
ARM_PHRASES = {  # 8-count arm phrases (names of tasks.dance.synth._move upper-body moves), one per phrase
    "house": [["pump"] * 4 + ["clap"] * 4, ["twist", "twist", "pump", "pump"] * 2, ["wave"] * 4 + ["clap"] * 4],
    "hiphop": [["nod"] * 4 + ["punch"] * 4, ["lean", "lean", "nod", "nod"] * 2, ["punch", "twist"] * 4],
    "rock": [["headbang"] * 8, ["guitar"] * 4 + ["pump"] * 4, ["pump", "headbang"] * 4],
    "waltz": [["sweep"] * 6, ["lean", "sweep", "sweep"] * 2, ["wave"] * 3 + ["sweep"] * 3],
    "swing": [["clap", "twist"] * 4, ["sweep"] * 4 + ["clap"] * 4, ["twist"] * 8],
    "funk": [["punch", "twist"] * 4, ["lean"] * 4 + ["pump"] * 4, ["clap"] * 8],
    "latin": [["twist"] * 8, ["sweep", "twist"] * 4, ["wave"] * 4 + ["twist"] * 4],
    "pop": [["wave"] * 4 + ["clap"] * 4, ["pump"] * 8, ["sweep", "sweep", "clap", "clap"] * 2],
    "reggae": [["nod"] * 8, ["twist", "nod"] * 4, ["lean"] * 8],
    "march": [["pump"] * 8, ["punch"] * 8, ["clap"] * 4 + ["pump"] * 4],
}
# how much a move moves the body, 0 (calm) … 1 (big): with intensity="band" the phrase's moves are drawn near the
# music's intensity, so loud passages get the hops and turns and quiet ones the step-touches
MOVE_ENERGY = {"step_touch": 0.1, "march": 0.2, "balance": 0.2, "balance_back": 0.2, "waltz_box": 0.3,
               "side_step": 0.45, "grapevine": 0.5, "jazz_box": 0.45, "walk": 0.5, "walk_back": 0.5,
               "kick_ball_change": 0.6, "turn_quarter": 0.6, "turn_half": 0.75, "waltz_turn": 0.75,
               "turn_full": 0.9, "hop": 0.95, "jump_jack": 1.0, "idle": 0.0}
INTENSITY_RANGE_DB = 12.0   # intensity="band": 0 … 1 spans this many dB of mean mel-band level below the song's top
INTENSITY_SMOOTH = 3        # ... averaged over this many beats
BOUNCE = {"waltz": [1.0, 0.25, 0.45], "swing": [0.6, 1.0, 0.6, 1.0], "reggae": [0.5, 1.0, 0.5, 1.0]}  # per count


def _mirror(events):
    swap = {"L": "R", "R": "L", "B": "B"}
    return [(c, swap[f], k, -x, z, -t) for c, f, k, x, z, t in events]


def _rot_xz(psi, x, z):
    """Rotate (x, z) by heading psi about +y (the dancer faces +z at psi = 0)."""
    return np.cos(psi) * x + np.sin(psi) * z, -np.sin(psi) * x + np.cos(psi) * z


# ---------------------------------------------------------------- planning
def beat_loudness(audio: np.ndarray, sr: int, beat_times: np.ndarray) -> np.ndarray:
    """RMS from each beat to the next, divided by the loudest beat's. (B,) in [0, 1]."""
    beats = np.asarray(beat_times, np.float64)
    step = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    edges = np.append(beats, beats[-1] + step)
    idx = np.clip((edges * sr).astype(int), 0, len(audio))
    rms = np.array([np.sqrt(np.mean(audio[a:b].astype(np.float64) ** 2)) if b > a else 0.0
                    for a, b in zip(idx[:-1], idx[1:])])
    return (rms / max(rms.max(), 1e-9)).astype(np.float64)


def beat_intensity(audio: np.ndarray, sr: int, beat_times: np.ndarray, range_db: float = INTENSITY_RANGE_DB,
                   smooth: int = INTENSITY_SMOOTH) -> np.ndarray:
    """How loud each beat sounds within its song, (B,) in [0, 1]: the mean mel-band level in dB (librosa's MFCC c0 /
    √128, a per-band log loudness: a full mix reads louder than one loud bass note of the same RMS), averaged from each
    beat to the next and over `smooth` beats, mapped linearly from `range_db` below the song's 95th-percentile beat
    (0) to it (1). Silent beats (`beat_loudness` < SILENT) are 0, every other beat ≥ 0.1: on recorded music the
    per-beat RMS spans only a few dB, so an RMS ratio to the loudest beat hardly moves (0.5-1 on the tuning clips)."""
    import librosa

    from .audio import HOP_LENGTH

    lin = beat_loudness(audio, sr, beat_times)
    mel = librosa.feature.melspectrogram(y=np.asarray(audio, np.float32), sr=sr, hop_length=HOP_LENGTH)
    band = librosa.power_to_db(mel).mean(0)
    beats = np.asarray(beat_times, np.float64)
    step = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    idx = np.clip((np.append(beats, beats[-1] + step) * sr / HOP_LENGTH).astype(int), 0, len(band))
    L = np.array([band[a:b].mean() if b > a else band.min() for a, b in zip(idx[:-1], idx[1:])])
    if smooth > 1 and len(L) >= smooth:
        L = np.convolve(np.pad(L, (smooth // 2, smooth - 1 - smooth // 2), mode="edge"), np.ones(smooth) / smooth,
                        "valid")
    ok = lin >= SILENT
    top = float(np.percentile(L[ok], 95)) if ok.any() else float(L.max())
    return np.where(ok, np.clip(1.0 + (L - top) / range_db, 0.1, 1.0), 0.0)


def plan(song: dict, seed: int, intensity: str = "rms") -> dict:
    """Foot events in world space. Returns dict(events [(time, foot, kind, x, z, heading, lift)], moves [(beat, name,
    mirror)], loud (B,), idle (B,) bool). ``intensity`` "rms": `loud` is `beat_loudness` (the v2 world); "band":
    `beat_intensity`, and each phrase's moves are drawn near its intensity (`MOVE_ENERGY`); idle is silence either way."""
    if intensity not in ("rms", "band"):
        raise ValueError(f"intensity must be 'rms' or 'band', got {intensity!r}")
    rng = np.random.default_rng(seed)
    beats = np.asarray(song["beat_times"], np.float64)
    B, bpb = len(beats), int(song.get("beats_per_bar", 4))
    genre = song.get("genre", "house")
    vocab = VOCAB.get(genre, VOCAB["house"])
    if bpb == 3:
        vocab = [m for m in vocab if m in ("waltz_box", "waltz_turn", "balance")] or VOCAB["waltz"]
    else:
        vocab = [m for m in vocab if _move_events(m, 0.2)[0] == 4]
    loud = beat_loudness(song["audio"], song["sr"], beats)
    idle = loud < SILENT
    if intensity == "band":
        loud = beat_intensity(song["audio"], song["sr"], beats)
    starts = set(int(s) for s in np.asarray(song.get("section_starts", np.arange(0, B, 4 * bpb))))
    accents = set(int(a) for a in np.asarray(song.get("accents", [])))
    beat_len = float(np.median(np.diff(beats)))

    def t_of(b: float) -> float:
        i = int(np.floor(b))
        if i + 1 < B:
            return beats[i] + (b - i) * (beats[i + 1] - beats[i])
        return beats[-1] + (b - B + 1) * beat_len

    feet = {"L": np.array([W, 0.0]), "R": np.array([-W, 0.0])}
    yaw = {"L": 0.0, "R": 0.0}
    events, moves = [], []
    phrase, k = [], 0
    b = 0
    while b < B:
        if b in starts or not phrase:
            if intensity == "band":  # moves near the phrase's intensity (the vocabulary's own spread decides how near)
                I = float(loud[b:b + 8].mean())
                e = np.array([MOVE_ENERGY[m] for m in vocab])
                pr = np.exp(-0.5 * ((e - I) / 0.2) ** 2) + 1e-3
                a, c = rng.choice(len(vocab), 2, replace=len(vocab) < 2, p=pr / pr.sum())
            else:
                a, c = rng.choice(len(vocab), 2, replace=len(vocab) < 2)
            phrase = [(vocab[a], False), (vocab[a], True), (vocab[c], False), (vocab[c], True)]
            k = 0
        name, mirror = phrase[k % len(phrase)]
        k += 1
        n_counts = _move_events(name, 0.2)[0]
        seg = slice(b, min(B, b + n_counts))
        L_move = float(loud[seg].mean()) if seg.stop > seg.start else 0.0
        if idle[seg].mean() > 0.5:
            name = "idle"
        elif b in accents and bpb == 4 and name not in ("hop", "jump_jack"):
            name = "hop"
        s = (0.08 + 0.26 * L_move) * (0.7 if name in ("walk", "walk_back") else 1.0)  # walk: stride 2s ≤ 0.5 m
        heading = float(np.arctan2(np.sin(0.5 * (yaw["L"] + yaw["R"])), np.cos(0.5 * (yaw["L"] + yaw["R"]))))
        if name.startswith("turn") or name == "waltz_turn":
            mirror = heading > 1e-3 if abs(heading) > 1e-3 else mirror  # turn back toward the front
        origin = 0.5 * (feet["L"] + feet["R"])
        if name in TRAVEL and np.linalg.norm(origin) > 0.8:
            cands = []
            for nm in ({"walk": ("walk", "walk_back"), "walk_back": ("walk", "walk_back")}.get(name, (name,))):
                for mir in (False, True):
                    n_, ev = _move_events(nm, s)
                    ev = _mirror(ev) if mir else ev
                    last = {f: (x, z) for _, f, _, x, z, _ in ev if f != "B"}
                    end = np.mean([_rot_xz(heading, *last.get(f, (W if f == "L" else -W, 0))) for f in "LR"], 0)
                    cands.append((np.linalg.norm(origin + end), nm, mir))
            _, name, mirror = min(cands)
        n_counts, ev = _move_events(name, s)
        ev = _mirror(ev) if mirror else ev
        moves.append((b, name, bool(mirror)))
        lift = 0.04 + 0.10 * L_move
        for count, foot, kind, x, z, turn in ev:
            bb = b + count
            if bb >= B - 1e-6 or (np.floor(bb) < B and idle[int(np.floor(bb))]):
                continue
            wx, wz = _rot_xz(heading, x, z)
            t = t_of(bb)
            if foot == "B":  # both feet jump; x widens (jumping jack) or narrows the stance back to W
                for f, sgn in (("L", 1.0), ("R", -1.0)):
                    fx, fz = _rot_xz(heading, sgn * (W + x), z)
                    feet[f] = origin + np.array([fx, fz])
                    yaw[f] = heading
                    events.append((t, f, "hop", feet[f][0], feet[f][1], heading, 0.06 + 0.08 * L_move))
            else:
                p = origin + np.array([wx, wz])
                events.append((t, foot, kind, p[0], p[1], heading + turn, lift * (2.2 if kind == "kick" else 1.0)))
                feet[foot] = p
                yaw[foot] = heading + turn
        b += n_counts
    return dict(events=events, moves=moves, loud=loud, idle=idle)


# ---------------------------------------------------------------- trajectories
def _smooth(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _foot_tracks(events, T: int, beat_len: float):
    """Per foot: ankle xz (T, 2), lift (T,) above the floor, heading (T,); and weight on the right foot (T,)."""
    t = np.arange(T) / FPS
    out = {}
    hop_lift = np.zeros(T)
    for f, x0 in (("L", W), ("R", -W)):
        keys = [(-1.0, x0, 0.0, 0.0, 0.0, "step")]
        for (te, ff, kind, x, z, psi, lift) in events:
            if ff == f:
                keys.append((te, x, z, psi, lift, kind))
        xz = np.zeros((T, 2))
        lift_t = np.zeros(T)
        psi_t = np.zeros(T)
        air = np.zeros(T, bool)
        for i in range(len(keys)):
            t0 = keys[i][0]
            t1 = keys[i + 1][0] if i + 1 < len(keys) else np.inf
            sel = (t >= t0) & (t < t1)
            xz[sel] = keys[i][1:3]
            psi_t[sel] = keys[i][3]
            if keys[i][5] == "kick":
                air[sel] = True
                lift_t[sel] = keys[i][4]
        # swings: the last part of each interval moves the foot to the next key
        for i in range(1, len(keys)):
            (tp, xp, zp, pp, lp, kp), (tk, xk, zk, pk, lk, kk) = keys[i - 1], keys[i]
            gap = tk - max(tp, 0.0)
            dur = min(0.55 * beat_len, 0.36, 0.9 * gap) if kk != "hop" else min(0.6 * beat_len, 0.3)
            if kp == "kick":  # the kicked foot comes straight back down
                dur = min(0.9 * gap, 0.5 * beat_len)
            sel = (t >= tk - dur) & (t < tk)
            u = (t[sel] - (tk - dur)) / dur
            sm = _smooth(u)
            xz[sel] = np.array([xp, zp]) + sm[:, None] * (np.array([xk, zk]) - np.array([xp, zp]))
            psi_t[sel] = pp + sm * (pk - pp)
            if kk == "kick":  # up to the kick height, arriving on the count
                base = lp if kp == "kick" else 0.0
                lift_t[sel] = base + (lk - base) * np.sin(0.5 * np.pi * u) ** 2
            elif kp == "kick":
                lift_t[sel] = lp * (1 - sm)
            else:
                moved = np.hypot(xk - xp, zk - zp) > 1e-6 or abs(pk - pp) > 1e-6 or kk == "hop"
                if moved or kk == "step":
                    lift_t[sel] = lk * np.sin(np.pi * u) ** 2
            if kk == "hop":
                air[sel] = True
                if f == "L":
                    hop_lift[sel] = lk * np.sin(np.pi * u) ** 2
        out[f] = (xz, lift_t, psi_t)
    # weight: on the foot that last stepped (touches and kicks leave it), shifted over a third of a beat
    wt = np.full(T, 0.5)
    key_t, key_w = [0.0], [0.5]
    for (te, ff, kind, *_rest) in events:
        if kind == "step":
            key_t.append(te)
            key_w.append(1.0 if ff == "R" else 0.0)
        elif kind == "hop" and ff == "L":
            key_t.append(te)
            key_w.append(0.5)
    key_t, key_w = np.array(key_t), np.array(key_w)
    for i in range(1, len(key_t)):
        a, c = key_t[i] - 0.5 * beat_len, key_t[i]
        sel = t >= a
        u = _smooth((t[sel] - a) / max(c - a, 1e-3))
        wt[sel] = key_w[i - 1] + u * (key_w[i] - key_w[i - 1])
    return out, wt, hop_lift


def _interp_keys(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Smoothstep interpolation between keys (values (K, ...)) at times (K,): zero velocity on every key."""
    k0 = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    k1 = np.clip(k0 + 1, 0, len(times) - 1)
    span = np.maximum(times[k1] - times[k0], 1e-6)
    s = _smooth((t - times[k0]) / span)
    s[t < times[0]] = 0.0
    shape = (-1,) + (1,) * (values.ndim - 1)
    return values[k0] * (1 - s).reshape(shape) + values[k1] * s.reshape(shape)


def _ry(psi):
    c, s = np.cos(psi), np.sin(psi)
    z, o = np.zeros_like(psi), np.ones_like(psi)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*np.shape(psi), 3, 3)


def make_dance_v2(song: dict, seed: int, intensity: str = "rms") -> dict:
    """The dance for `song` (dict with audio, sr, beat_times, beats_per_bar, genre and optionally section_starts,
    accents). Returns dict(root_pos (T, 3), rotations (T, 24, 3, 3), contacts (T, 4), joints (T, 24, 3), moves,
    events, planted (T, 2) bool (left, right: the foot is held still by construction)), T = floor(duration·30) + 1.
    ``intensity``: what scales the moves (`plan`): "rms" (the v2 world) or "band" (the v2e world)."""
    from .synth import _arm, _move, _neutral

    audio, sr = song["audio"], int(song["sr"])
    beats = np.asarray(song["beat_times"], np.float64)
    if len(beats) < 4:
        raise ValueError("make_dance_v2: the song needs at least 4 beats")
    T = int(np.floor(len(audio) / sr * FPS)) + 1
    t = np.arange(T) / FPS
    beat_len = float(np.median(np.diff(beats)))
    bpb = int(song.get("beats_per_bar", 4))
    genre = song.get("genre", "house")
    P = plan(song, seed, intensity)
    loud, idle = P["loud"], P["idle"]
    tracks, w_right, hop_lift = _foot_tracks(P["events"], T, beat_len)
    rng = np.random.default_rng([seed, 5])

    # loudness per frame (smooth), idle sway
    loud_t = _interp_keys(beats, loud, t)
    idle_t = _interp_keys(beats, idle.astype(np.float64), t)
    sway = 0.5 + 0.12 * np.sin(2 * np.pi * t / 4.0 + rng.uniform(0, 6.28))
    w = (1 - idle_t) * w_right + idle_t * sway

    # ankles (world): xz from the tracks, height = flat-foot ankle height + lift
    ank = {}
    for f, side in (("L", "left"), ("R", "right")):
        xz, lift, psi = tracks[f]
        ank[f] = (np.stack([xz[:, 0], ANKLE_H[side] + lift, xz[:, 1]], 1), psi)
    heading = np.arctan2(np.sin(ank["L"][1]) + np.sin(ank["R"][1]), np.cos(ank["L"][1]) + np.cos(ank["R"][1]))

    # pelvis: over the weighted feet, bounce on the beat (depth ∝ loudness), hop arcs, reach limit
    mid = 0.5 * (ank["L"][0] + ank["R"][0])
    lean = 0.7 * (w - 0.5)[:, None] * (ank["R"][0] - ank["L"][0])
    off = np.stack(_rot_xz(heading, PELVIS_FROM_ANKLES[0], PELVIS_FROM_ANKLES[2]), 1)
    pelvis = np.zeros((T, 3))
    pelvis[:, [0, 2]] = mid[:, [0, 2]] + lean[:, [0, 2]] + off
    pattern = np.array(BOUNCE.get(genre, [1.0] * bpb)[:bpb] + [1.0] * max(0, bpb - len(BOUNCE.get(genre, []))))
    depth = (0.015 + 0.13 * loud) * pattern[np.arange(len(beats)) % bpb] * (1 - idle)
    # dip keys: down on every beat, up between beats
    kt = np.concatenate([beats, beats[:-1] + 0.5 * np.diff(beats)])
    kv = np.concatenate([depth, np.zeros(len(beats) - 1)])
    o = np.argsort(kt)
    dip = _interp_keys(kt[o], kv[o], t)
    pelvis[:, 1] = STAND_H - 0.035 - dip + hop_lift
    for f, side in (("L", "left"), ("R", "right")):  # keep each ankle reachable (97 % of the leg's length)
        hip = pelvis + np.stack([_rot_xz(heading, HIP_OFF[side][0], HIP_OFF[side][2])[0], np.full(T, HIP_OFF[side][1]),
                                 _rot_xz(heading, HIP_OFF[side][0], HIP_OFF[side][2])[1]], 1)
        d_h = np.hypot(*(ank[f][0][:, [0, 2]] - hip[:, [0, 2]]).T)
        limit = ank[f][0][:, 1] + np.sqrt(np.maximum((0.97 * LEG_LEN[side]) ** 2 - d_h ** 2, 0.0)) - HIP_OFF[side][1]
        pelvis[:, 1] = np.minimum(pelvis[:, 1], limit)

    # upper body: 8-count arm phrases, key poses on the beats
    phrases = ARM_PHRASES.get(genre, ARM_PHRASES["house"])
    keys = np.zeros((len(beats), 24, 3))
    starts = sorted(set(int(s) for s in np.asarray(song.get("section_starts", [0]))) | {0})
    ph = phrases[int(rng.integers(len(phrases)))]
    for k in range(len(beats)):
        if k in starts:
            ph = phrases[int(rng.integers(len(phrases)))]
        pose = _neutral()
        amp = 0.0 if idle[k] else 0.15 + 0.85 * loud[k]
        side = 1 if k % 2 == 0 else -1
        legs = {"lift_left": 0.0, "lift_right": 0.0, "kick": False}
        _move(ph[(k - max(s for s in starts if s <= k)) % len(ph)], pose, side, amp, legs)
        pose[J["neck"], 1] += side * 0.08 * amp
        pose[J["spine1"], 0] += 0.06 * amp
        keys[k] = pose
    neutral = _neutral()
    upper = _interp_keys(beats, keys, t)
    upper[t < beats[0]] = neutral
    # idle: arms hang, a slow breath-like sway
    upper = upper * (1 - idle_t)[:, None, None] + neutral[None] * idle_t[:, None, None]
    _arm_sway = 0.04 * np.sin(2 * np.pi * t / 4.0)
    upper[:, J["left_shoulder"], 2] += _arm_sway * idle_t
    upper[:, J["right_shoulder"], 2] += _arm_sway * idle_t
    rot = sk.axis_angle_to_matrix(upper.astype(np.float64))  # (T, 24, 3, 3)
    # pelvis orientation: heading, roll toward the weighted foot, pitch with the dip
    roll = -0.06 * (w - 0.5) * 2
    pitch = 1.2 * dip
    root_aa = np.stack([pitch, np.zeros(T), roll], 1)
    rot[:, 0] = _ry(heading) @ sk.axis_angle_to_matrix(root_aa)
    # legs: start bent (knees forward), then IK to the ankles
    for side in ("left", "right"):
        rot[:, J[f"{side}_hip"]] = sk.axis_angle_to_matrix(np.tile([-0.25, 0.0, 0.0], (T, 1)))
        rot[:, J[f"{side}_knee"]] = sk.axis_angle_to_matrix(np.tile([0.5, 0.0, 0.0], (T, 1)))
        rot[:, J[f"{side}_ankle"]] = np.eye(3)
    Pj, G = sk.forward_kinematics(pelvis, rot, return_global=True)
    for f, side in (("L", "left"), ("R", "right")):
        two_bone_ik(rot, G, Pj, side, ank[f][0], np.arange(T))
        g_knee = G[:, 0] @ rot[:, J[f"{side}_hip"]] @ rot[:, J[f"{side}_knee"]]
        rot[:, J[f"{side}_ankle"]] = np.swapaxes(g_knee, -1, -2) @ _ry(ank[f][1])  # foot flat at its heading
    joints = sk.forward_kinematics(pelvis, rot)
    contacts = sk.foot_contacts_from_positions(joints, vel_thresh=0.2, height_thresh=0.03, fps=FPS)
    planted = np.stack([np.r_[True, np.all(np.abs(np.diff(ank[f][0], axis=0)) < 1e-12, 1)] &
                        (tracks[f][1] < 1e-9) for f in "LR"], 1)
    return dict(root_pos=pelvis.astype(np.float32), rotations=rot.astype(np.float32), contacts=contacts,
                joints=joints.astype(np.float32), moves=P["moves"], events=P["events"], planted=planted,
                loud=loud, idle=idle)


# ---------------------------------------------------------------- the training world
def make_song_v2(seed: int, seconds: float = 12.0, cache_dir: str | None = None) -> dict:
    """Training / evaluation music: 3 of 4 seeds are FluidSynth renders (`tasks.dance.midi`), 1 of 4 the numpy synth."""
    from .midi import DEFAULT_CACHE, make_song_gm
    from .synth import make_song

    if seed % 4 == 3:
        song = make_song(seed, seconds)
        song.update(coarse_genre=song["genre"], source="numpy")
        return song
    return make_song_gm(seed, seconds, cache_dir=DEFAULT_CACHE if cache_dir is None else cache_dir)


def make_pair_v2(seed: int, seconds: float = 12.0) -> dict:
    """dict(song=make_song_v2(seed, seconds), dance=make_dance_v2(song, seed + 1_000_003))."""
    song = make_song_v2(seed, seconds)
    return dict(song=song, dance=make_dance_v2(song, seed + 1_000_003))
