"""The generate CLIs' one error path (gen.cli): every bad input → exit 2, one `prog: error:` line, no traceback, no
output file. Probes a reviewer ran by hand, then a hypothesis fuzz over the attribute CLI's argument space."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.attributes import generate as attr_cli
from tasks.calligraphy import generate as cal_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(cli, argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    err = capsys.readouterr().err
    return rc, err


def _clean_error(rc, err, prog):
    assert rc == 2, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith(f"{prog}: error")], err


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    Image.new("L", (32, 32), 0).save(d / "black.png")
    (d / "notes.txt").write_text("not an image")
    big = d / "big.png"
    Image.new("1", (5000, 5000), 1).save(big)  # 25 M pixels, over the 4096² limit, a small file
    return d


ATTR_PROBES = {
    "steps 0": ["--steps", "0"], "steps -5": ["--steps", "-5"], "steps > T": ["--steps", "5000"],
    "guidance nan": ["--guidance", "nan"], "guidance inf": ["--guidance", "inf"], "num 0": ["--num", "0"],
    "num huge": ["--num", "100000"], "unknown sampler": ["--scheduler", "bogus"], "out is a folder": ["--out", "."],
    "out in a missing folder": ["--out", "missing/g.png"], "out not png": ["--out", "g.txt"],
    "bad prompt": ["--prompt", "glases"], "mask not an image": ["--region", "glasses={img}/notes.txt"],
    "black mask": ["--region", "glasses={img}/black.png"], "device missing": ["--device", "cuda:7"],
    "bad device": ["--device", "tpu"],
}


@pytest.mark.parametrize("case", sorted(ATTR_PROBES))
def test_attribute_cli_bad_inputs(case, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--prompt", "glasses", "--num", "2", "--steps", "2", "--out", "g.png"]
    argv += [a.format(img=images) for a in ATTR_PROBES[case]]
    if case == "device missing":
        import torch
        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    rc, err = _run(attr_cli, argv, capsys)
    _clean_error(rc, err, "attributes-generate")
    assert os.listdir(tmp_path) == []


CAL_PROBES = {
    "latin text": ["--text", "abc"], "empty text": ["--text", "  "], "cell 0": ["--cell", "0"],
    "steps > T": ["--steps", "5000"], "guidance nan": ["--guidance", "nan"], "out txt": ["--out", "w.txt"],
    "out is a folder": ["--out", "."], "reference not an image": ["--reference", "{img}/notes.txt"],
    "reference too large": ["--reference", "{img}/big.png"], "reference blank": ["--reference", "{img}/black.png"],
    "unknown style": ["--style", "bogus"], "video ext": ["--video", "w.avi"],
}


@pytest.mark.parametrize("case", sorted(CAL_PROBES))
def test_calligraphy_cli_bad_inputs(case, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--text", "永和", "--steps", "2", "--out", "w.png"]
    override = [a.format(img=images) for a in CAL_PROBES[case]]
    rc, err = _run(cal_cli, argv + override, capsys)
    _clean_error(rc, err, "calligraphy-generate")
    assert os.listdir(tmp_path) == []


def test_calligraphy_cli_accepts_the_project_samplers(tmp_path, capsys):
    """--scheduler ancestral (the project's DDPM loop) and a diffusers class name both work (both were refused)."""
    for i, s in enumerate(("ancestral", "DDIMScheduler")):
        rc, err = _run(cal_cli, ["--text", "永", "--steps", "2", "--scheduler", s, "--out", str(tmp_path / f"{i}.png")],
                       capsys)
        assert rc == 0, err
        assert np.asarray(Image.open(tmp_path / f"{i}.png")).size > 0


NUMS = st.sampled_from(["-1", "0", "1", "2", "3", "100000", "x", "1.5"])
STEPS = st.sampled_from(["-5", "0", "1", "2", "1001", "abc", "2.0"])
FLOATS = st.sampled_from(["0", "1", "6", "-2", "1e308", "nan", "inf", "-inf", "x"])
PROMPTS = st.lists(st.sampled_from(["glasses", "~hat", "2*beard", "smile@mouth", "&", "~", "wizard", "@eyes",
                                    "glasses@nowhere", "(", "1e9*smile", ""]), max_size=4).map(" & ".join)
SCHEDULERS = st.sampled_from(["euler_a", "dpm++", "ancestral", "ddim-eta", "ddim", "bogus", "DDIMScheduler"])
OUTS = st.sampled_from(["g.png", "g.txt", ".", "missing/g.png", "g.PNG"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num=NUMS, steps=STEPS, guidance=FLOATS, prompt=PROMPTS, scheduler=SCHEDULERS, out=OUTS)
def test_fuzz_attribute_cli_exit_0_with_a_png_or_exit_2_with_one_error_and_no_file(
        num, steps, guidance, prompt, scheduler, out, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("fuzz")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        argv = ["--prompt", prompt, "--num", num, "--steps", steps, "--guidance", guidance, "--scheduler", scheduler,
                "--out", out, "--threads", "1"]
        rc, err = _run(attr_cli, argv, capsys)
        files = os.listdir(d)
        if rc == 0:
            assert files == [out] and Image.open(d / out).format == "PNG"
        else:
            _clean_error(rc, err, "attributes-generate")
            assert files == []
    finally:
        os.chdir(cwd)


TEXTS = st.lists(st.sampled_from(["永", "和", " ", "a", "1", "。", "九", "\u3000", "é"]), max_size=4).map("".join)
CELLS = st.sampled_from(["-1", "0", "8", "24", "5000", "x"])
STYLES = st.sampled_from(["gyosho", "0.7*gyosho+0.3*ukai", "bogus", "0*ukai", "-1*ukai", "gyosho+", ""])
CAL_OUTS = st.sampled_from(["w.png", "w.jpg", "w.txt", ".", "missing/w.png"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, cell=CELLS, style=STYLES, steps=STEPS, out=CAL_OUTS)
def test_fuzz_calligraphy_cli(text, cell, style, steps, out, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("fuzzc")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        argv = ["--text", text, "--cell", cell, "--style", style, "--steps", steps, "--out", out, "--threads", "1"]
        rc, err = _run(cal_cli, argv, capsys)
        files = os.listdir(d)
        if rc == 0:
            assert files == [out] and Image.open(d / out).size[0] > 0
        else:
            _clean_error(rc, err, "calligraphy-generate")
            assert files == []
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    from tasks.dance.synth import make_song, write_wav

    p = tmp_path_factory.mktemp("song") / "song.wav"
    s = make_song(3, seconds=3.0)
    write_wav(str(p), s["audio"], s["sr"])
    return p


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.sampled_from(["-1", "0", "0.5", "2", "100", "x", "nan"]),
       steps=st.sampled_from(["0", "1", "2", "5000", "x"]), guidance=FLOATS,
       scheduler=st.sampled_from(["ddim-eta", "dpm++", "ancestral", "bogus"]),
       bvh=st.sampled_from(["d.bvh", "d.txt", ".", "missing/d.bvh"]))
def test_fuzz_dance_cli(seconds, steps, guidance, scheduler, bvh, song, tmp_path_factory, capsys):
    from tasks.dance import generate as dance_cli

    d = tmp_path_factory.mktemp("fuzzd")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        argv = ["--music", str(song), "--seconds", seconds, "--steps", steps, "--guidance", guidance,
                "--scheduler", scheduler, "--bvh", bvh, "--threads", "1"]
        rc, err = _run(dance_cli, argv, capsys)
        files = os.listdir(d)
        if rc == 0:
            assert files == [bvh] and (d / bvh).read_text().startswith("HIERARCHY")
        else:
            _clean_error(rc, err, "dance-generate")
            assert files == []
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("rc, body", [(0, "None"), (3, "3"), (2, "(_ for _ in ()).throw(ValueError('bad x'))")])
def test_the_cli_process_ends_in_run_with_its_output_flushed_and_a_caller_of_main_goes_on(rc, body):
    """gen.cli.run ends the console script's own process (status kept, stdout / stderr flushed first), so the
    interpreter's teardown is not paid after the outputs exist; a process that merely calls main() goes on."""
    import subprocess
    import sys

    code = ("import sys; from gen.cli import run; print('written', end=''); "
            f"r = run(lambda: {body}, 'x-generate'); print(' after', r)")
    own = subprocess.run([sys.executable, "-c", f"import sys; sys.argv[0] = '/usr/bin/x-generate'; {code}"],
                         capture_output=True, text=True, cwd=ROOT)
    assert own.returncode == rc and own.stdout == "written"  # flushed, and nothing after run()
    assert ("bad x" in own.stderr) == (rc == 2)
    caller = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert caller.returncode == 0 and caller.stdout == f"written after {rc}\n"
