"""The v2 dance world: FluidSynth-rendered procedural MIDI (tasks/dance/midi.py), the step-vocabulary choreographer
(tasks/dance/choreo.py) and the issue-17 dance measures (tasks/dance/metrics.py). FluidSynth and the GM soundfont are
installed by `make setup` (data/dance/setup.sh): these tests fail, not skip, without them."""
import numpy as np
import pytest

from tasks.dance import metrics as M
from tasks.dance.choreo import MOVES, VOCAB, make_dance_v2
from tasks.dance.midi import GM_GENRES, fluidsynth_available, make_song_gm, plan_song

FPS = 30


@pytest.fixture(scope="module")
def house():
    song = make_song_gm(11, 30.0, genre="house", cache_dir=None)
    return song, make_dance_v2(song, 5)


@pytest.fixture(scope="module")
def waltz():
    song = make_song_gm(12, 12.0, genre="waltz", cache_dir=None)
    return song, make_dance_v2(song, 6)


# ---------------------------------------------------------------- music
def test_fluidsynth_is_installed():
    assert fluidsynth_available(), "fluidsynth + fluid-soundfont-gm missing: run `make setup` (data/dance/setup.sh)"


def test_render_deterministic_cached_and_onsets_on_beats(tmp_path):
    import librosa

    a = make_song_gm(3, 8.0, genre="rock", cache_dir=None)
    b = make_song_gm(3, 8.0, genre="rock", cache_dir=str(tmp_path))
    c = make_song_gm(3, 8.0, genre="rock", cache_dir=str(tmp_path))  # from the cache
    assert a["source"] == "fluidsynth" and a["audio"].dtype == np.float32 and len(a["audio"]) == 8 * a["sr"]
    assert np.array_equal(a["audio"], b["audio"]) and np.array_equal(b["audio"], c["audio"])
    assert np.array_equal(a["beat_times"], c["beat_times"])
    assert not np.array_equal(a["audio"], make_song_gm(4, 8.0, genre="rock", cache_dir=None)["audio"])
    assert np.abs(a["audio"]).max() > 0.1  # instruments are audible
    onsets = librosa.onset.onset_detect(y=a["audio"], sr=a["sr"], units="time", hop_length=256)
    beats = a["beat_times"][~a["silent"]]
    hit = np.array([np.abs(onsets - t).min() < 0.05 for t in beats])
    assert hit.mean() >= 0.8, hit


def test_genres_meters_tempi_and_structure():
    assert len(GM_GENRES) >= 8
    assert any(g["meter"] == 3 for g in GM_GENRES.values()) and any(g["swing"] >= 0.3 for g in GM_GENRES.values())
    lo, hi = min(g["bpm"][0] for g in GM_GENRES.values()), max(g["bpm"][1] for g in GM_GENRES.values())
    assert lo <= 70 and hi >= 180
    kinds, drift = set(), []
    for seed, genre in enumerate(GM_GENRES):
        p = plan_song(seed, 60.0, genre)
        assert p["beats_per_bar"] == GM_GENRES[genre]["meter"]
        bpm = 60.0 / np.diff(p["beat_times"])
        assert abs(np.median(bpm) - p["bpm"]) < 5 and bpm.max() - bpm.min() < 9  # a few BPM of drift
        drift.append(bpm.max() - bpm.min())
        kinds |= set(p["section_kinds"])
        notes = [e for e in p["events"] if e[1] == "on"]
        assert any(e[2] == 9 for e in notes) and {0, 1}.issubset({e[2] for e in notes})  # drums, bass, chords
        assert plan_song(seed, 60.0, genre)["events"] == p["events"]  # deterministic
    assert max(drift) > 1.0 and {"intro", "verse", "chorus"} <= kinds


# ---------------------------------------------------------------- choreography
def test_planted_feet_do_not_move(house):
    _, d = house
    j = d["joints"].astype(np.float64)
    for side, (ankle, toe) in enumerate(M.FOOT_SIDES.values()):
        both = d["planted"][1:, side] & d["planted"][:-1, side]
        assert both.mean() > 0.3
        for k in (ankle, toe):
            v = np.linalg.norm(np.diff(j[:, k], axis=0), axis=-1)[both]
            assert v.max() < 1e-5  # float32 positions: exact up to rounding
    assert j[:, [7, 8, 10, 11], 1].min() > -1e-4  # nothing below the floor
    # contacts measured from the motion agree with the plan
    assert (d["contacts"][d["planted"][:, 0], 0] > 0.5).mean() > 0.9


def test_steps_land_on_beats(house):
    song, d = house
    h = M.foot_heights(d["joints"])
    beat_frames = song["beat_times"] * FPS
    half = np.concatenate([beat_frames, beat_frames[:-1] + 0.5 * np.diff(beat_frames)])
    landings = []
    for s in range(2):  # first floor frame after a lift of more than 1 cm
        down = np.concatenate([[1], (h[:, s] <= 1e-4).astype(np.int8)])
        ups, downs = np.flatnonzero(np.diff(down) == -1), np.flatnonzero(np.diff(down) == 1)
        landings += [e for a in ups for e in downs[downs > a][:1] if h[a:e, s].max() > 0.01]
    assert len(landings) > 40
    dist = np.array([np.abs(half - f).min() for f in landings])
    assert (dist <= 1.0).mean() >= 0.95


def test_travel_lifts_bounce_and_centre(house):
    song, d = house
    j = d["joints"]
    assert M.travel_per_30s(j) >= 1.0
    assert np.abs(d["root_pos"][:, [0, 2]]).max() < 1.6  # returns toward the centre
    assert M.lifts_per_bar(j, len(song["beat_times"]), 4) >= 1.5
    assert M.pelvis_vertical_std(j) >= 0.015
    names = {m[1] for m in d["moves"]}
    assert len(names) >= 3 and names <= set(MOVES)


def test_waltz_box_in_three_four(waltz):
    song, d = waltz
    assert song["beats_per_bar"] == 3
    names = [m[1] for m in d["moves"] if m[1] != "idle"]
    assert names and set(names) <= {"waltz_box", "waltz_turn", "balance", "hop"}
    assert set(names) <= set(VOCAB["waltz"]) | {"hop"}


def test_stillness_in_silence_and_deterministic():
    song = make_song_gm(21, 20.0, genre="pop", cache_dir=None)
    a = song["audio"].copy()
    a[int(8 * song["sr"]):int(14 * song["sr"])] = 0.0  # 6 s of silence
    d = make_dance_v2(dict(song, audio=a), 3)
    e = M.motion_energy(d["joints"])  # per second
    quiet, loud = e[9:13].mean(), np.r_[e[1:7], e[15:19]].mean()
    assert quiet < 0.2 * loud
    assert d["idle"].sum() >= 8
    same = make_dance_v2(dict(song, audio=a), 3)
    assert np.array_equal(same["joints"], d["joints"])  # deterministic


def test_v2s_world_silences_one_song_in_four_and_the_dance_stills_there(tmp_path):
    """world v2s: seeds ≡ 1 (mod 4) get one 4.5-8 s silence (a full 5-s training window), danced as idling; the
    other seeds are v2's songs unchanged."""
    from tasks.dance.audio import SR
    from tasks.dance.data import SILENCE_SECONDS, load_song, silence_span

    y = np.ones(12 * SR, np.float32)
    z = silence_span(y, SR, 5)
    n = int((z == 0).sum())
    assert SILENCE_SECONDS[0] * SR - 0.04 * SR <= n <= SILENCE_SECONDS[1] * SR
    assert np.array_equal(z, silence_span(y, SR, 5)) and not np.array_equal(z, silence_span(y, SR, 9))
    s = load_song(5, 12.0, str(tmp_path), world="v2s")
    assert not np.array_equal(s["motion"], load_song(5, 12.0, str(tmp_path), world="v2")["motion"])
    e = M.motion_energy(s["joints"])
    c0 = s["music"][:, 1]
    quiet = np.array([c0[30 * k:30 * k + 30].max() < c0.max() - 20 * np.sqrt(128) * 2 for k in range(len(e))])
    assert quiet.sum() >= 3 and e[quiet].mean() < 0.2 * e[~quiet].mean()
    other = load_song(6, 12.0, str(tmp_path), world="v2s")
    assert np.array_equal(other["motion"], load_song(6, 12.0, str(tmp_path), world="v2")["motion"])
    assert sorted(p.name for p in tmp_path.glob("song_*.npz")) == ["song_v2_5_12s.npz", "song_v2_6_12s.npz",
                                                                     "song_v2s_5_12s.npz"]


def test_band_intensity_follows_a_quieter_passage_with_smaller_moves():
    """intensity="band" (the v2e world): the same song with 8 s turned down 9 dB (not silent) gets lower beat
    intensities there, calmer moves (MOVE_ENERGY) and less motion, and 1-s motion energy follows the features'
    loudness; v2 ("rms") is what the default gives, and the dance is deterministic."""
    from tasks.dance.audio import audio_features
    from tasks.dance.choreo import MOVE_ENERGY, beat_intensity

    song = make_song_gm(23, 24.0, genre="house", cache_dir=None)
    sr, bt = song["sr"], np.asarray(song["beat_times"])
    a = song["audio"].copy()
    a[8 * sr:16 * sr] *= 10 ** (-9 / 20)
    s = dict(song, audio=a)
    I0, I = beat_intensity(song["audio"], sr, bt), beat_intensity(a, sr, bt)
    span = (bt > 9) & (bt < 15)
    assert I[span].mean() < I0[span].mean() - 0.3 and np.all(I[span] >= 0.1) and np.all((I >= 0) & (I <= 1))
    d0, d = make_dance_v2(song, 4, intensity="band"), make_dance_v2(s, 4, intensity="band")
    assert M.motion_energy(d["joints"])[9:15].mean() < 0.75 * M.motion_energy(d0["joints"])[9:15].mean()
    calm = lambda dance: np.mean([MOVE_ENERGY[n] for b, n, _ in dance["moves"] if 9 < bt[b] < 15])  # noqa: E731
    assert calm(d) < calm(d0)
    assert M.energy_loudness_corr(d["joints"], audio_features(a, sr)) > 0.4
    assert np.array_equal(make_dance_v2(s, 4)["joints"], make_dance_v2(s, 4, intensity="rms")["joints"])
    assert np.array_equal(make_dance_v2(s, 4, intensity="band")["joints"], d["joints"])  # deterministic
    with pytest.raises(ValueError, match="intensity"):
        make_dance_v2(s, 4, intensity="loud")


# ---------------------------------------------------------------- measures
def test_measures_on_known_motion():
    T = 301
    j = np.zeros((T, 24, 3))
    j[:, :, 1] = 1.0
    j[:, [7, 10, 8, 11], 1] = 0.05
    assert M.foot_lifts(j) == 0 and M.travel_per_30s(j) == 0.0
    j[40:50, [7, 10], 1] += 0.06          # a 10-frame lift of the left foot
    j[100:102, [8, 11], 1] += 0.06        # 2 frames: too short
    assert M.foot_lifts(j) == 1
    assert M.lifts_per_bar(j, num_beats=8) == pytest.approx(0.5)
    walk = j.copy()
    walk[:, :, 2] += np.linspace(0, 2.0, T)[:, None]  # 2 m in 10 s
    assert M.travel_per_30s(walk) == pytest.approx(6.0)
    music = np.zeros((T, 35))
    music[:, 1] = np.repeat(np.arange(11) % 2, 30)[:T]  # loud, quiet, loud, ...
    moving = j.copy()
    moving[:, 20, 0] += np.cumsum(0.02 * music[:, 1])  # the hand moves only in the loud seconds
    assert M.energy_loudness_corr(moving, music) > 0.9


def test_evaluate_measures_the_other_songs_dance():
    from tasks.dance.audio import audio_features
    from tasks.dance.evaluate import measure_set
    from tasks.dance.synth import make_song

    songs = [make_song(s, 8.0, genre=g) for s, g in ((1, "house"), (2, "rock"))]
    clips = [dict(name=f"s{i}", music=audio_features(s["audio"], s["sr"])) for i, s in enumerate(songs)]
    dances = [make_dance_v2(s, 0)["joints"] for s in songs]
    r = measure_set(dances, clips)
    assert set(r["per_clip"]) == {"s0", "s1"}
    beats0 = clips[0]["music"][:, -1] > 0.5
    assert r["per_clip"]["s0"]["bas_other_song"] == pytest.approx(
        M.bas_fact(dances[1][:len(dances[0])], np.flatnonzero(beats0)))
    assert r["bas_fact"] == pytest.approx(np.mean([r["per_clip"][k]["bas_fact"] for k in ("s0", "s1")]))
    assert r["bas_fact"] > r["bas_other_song"]  # the ground-truth dances follow their own music
