"""apps/web.py in a real headless browser: Debian's chromium driven by Playwright for Python.

One server (a subprocess on a free port, the shipped models) and one page for the whole module; every tab is run once
with small settings and checked on what it shows and serves, and once with a bad input, which must come back as a
message in the page and never as a traceback. Every request the page makes is checked to stay on this machine.

Needs /usr/bin/chromium (`bash apps/setup.sh`, run by `make setup`) and the `playwright` package (the test extra);
never `playwright install` (it downloads a browser of its own). A missing browser FAILS the test: only
GENSUITE_SKIP_BROWSER=1 skips it.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("GENSUITE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 120_000  # one generation on a busy 2-core CPU, model load included

pytestmark = pytest.mark.skipif(os.environ.get("GENSUITE_SKIP_BROWSER") == "1",
                                reason="GENSUITE_SKIP_BROWSER=1: browser test switched off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    port = _free_port()
    # two adapted-style folders on the server's style path: one made from the shipped calligraphy model (listed),
    # one from another model (left out); only their style.json is read for the list
    import json
    from tasks.calligraphy.adapt import fingerprint
    from tasks.calligraphy.pipeline import CalligraphyPipeline
    shipped = fingerprint(CalligraphyPipeline.from_pretrained("calligraphy").model)
    for name, fp in (("myhand", shipped), ("otherhand", "0" * 16)):
        (out / "styles" / name).mkdir(parents=True)
        (out / "styles" / name / "style.json").write_text(json.dumps({"name": name, "base_model": {"fingerprint": fp}}))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GENSUITE_STYLES": str(out / "styles")}
    env.setdefault("OMP_NUM_THREADS", "1")
    log = open(out / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "apps.web", "--port", str(port), "--outputs", str(out / "files")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"apps.web did not start on {url}:\n{log.read()[-4000:]}")
        time.sleep(0.2)
    yield {"url": url, "log": out / "server.log", "dir": out}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Debian's chromium is missing at {CHROMIUM}: install it with `bash apps/setup.sh` (or `make "
                    "setup`; it runs apt-get install -y --no-install-recommends chromium). Set "
                    "GENSUITE_SKIP_BROWSER=1 only to skip this browser test on purpose.", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]' (never `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    seen = {"external": [], "errors": []}

    def route(r):
        u = r.request.url
        if u.startswith(("data:", "blob:")) or urlparse(u).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:  # nothing may come from the internet
            seen["external"].append(u)
            r.abort()
    ctx.route("**/*", route)
    pg = ctx.new_page()
    pg.on("pageerror", lambda e: seen["errors"].append(str(e)))
    pg.goto(server["url"])
    pg.wait_for_selector("body[data-ready='1']")
    pg.seen = seen
    yield pg
    ctx.close()


# ---- helpers -------------------------------------------------------------------------------------------------------
def run_form(page, form: str, button: str) -> str:
    """Submit a tab's form and wait for its job to finish; returns 'done' or 'error'."""
    page.click(button)
    page.wait_for_function(f"document.querySelector('{form}').dataset.state !== 'running'", timeout=JOB_TIMEOUT_MS)
    return page.eval_on_selector(form, "f => f.dataset.state")


def error_text(page, form: str) -> str:
    box = page.locator(f"{form} pre.error")
    assert box.is_visible(), f"no error message shown in {form}"
    return box.inner_text()


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


def base_url(page) -> str:
    return page.url.split("#")[0].rstrip("/")


def get(page, src: str):
    r = page.request.get(base_url(page) + src if src.startswith("/") else src)
    assert r.ok, (src, r.status)
    return r


def decoded_image(page, selector: str) -> np.ndarray:
    from PIL import Image

    assert page.eval_on_selector(selector, "i => i.complete && i.naturalWidth > 0"), f"{selector} did not decode"
    src = page.get_attribute(selector, "src")
    body = get(page, src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def check_video(page, selector: str) -> bytes:
    page.wait_for_function("s => { const v = document.querySelector(s); return v.error || "
                           "(v.readyState >= 1 && v.videoWidth > 0); }", arg=selector, timeout=20_000)
    assert page.eval_on_selector(selector, "v => !v.error"), "the browser could not play the MP4"
    src = page.get_attribute(selector, "src")
    body = get(page, src).body()
    assert len(body) > 1000 and body[4:8] == b"ftyp", "not an MP4"
    r = page.request.get(base_url(page) + src, headers={"Range": "bytes=0-99"})  # what <video> uses to seek
    assert r.status == 206 and len(r.body()) == 100
    return body


def has_audio_stream(mp4: bytes, tmp_path: Path) -> bool:
    import imageio_ffmpeg

    f = tmp_path / "probe.mp4"
    f.write_bytes(mp4)
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(f)], capture_output=True, text=True)
    return "Audio:" in r.stderr


# ---- the tabs ------------------------------------------------------------------------------------------------------
def test_attributes_tab(page):
    page.click("#tab-attributes")
    # the toggles and the region picker build the prompt
    page.fill("#attr-prompt", "")
    page.dispatch_event("#attr-prompt", "input")
    page.check("input[name='attr-glasses'][value='on']")
    page.select_option("tr[data-attribute='glasses'] select", "eyes")
    page.check("input[name='attr-hat'][value='off']")
    assert page.input_value("#attr-prompt") == "glasses@eyes & ~hat"
    page.check("input[name='attr-hat'][value='any']")
    page.fill("#attr-prompt", page.input_value("#attr-prompt") + " & 2*beard")
    page.dispatch_event("#attr-prompt", "input")  # typing updates the toggles
    assert page.is_checked("input[name='attr-beard'][value='on']")
    assert page.input_value("#attr-prompt") == "glasses@eyes & 2*beard"
    page.fill("#attr-num", "4")
    page.fill("#attr-steps", "6")
    page.evaluate("""() => { window.statusLog = []; const f = document.querySelector('#attr-form');
        new MutationObserver(() => window.statusLog.push([f.querySelector('.status .msg').textContent,
            !f.querySelector('.status progress').hidden, f.querySelector('button.run').disabled]))
          .observe(f.querySelector('.status'), {subtree: true, childList: true, characterData: true}); }""")
    assert run_form(page, "#attr-form", "#attr-run") == "done", error_text(page, "#attr-form")
    # long work shows progress: a status line (model loading / sampler steps) with a progress bar, button disabled
    shown = page.evaluate("window.statusLog")
    assert any(("loading" in m or "step" in m) and bar and disabled for m, bar, disabled in shown), shown
    grid = decoded_image(page, "#attr-image")
    assert grid.shape[0] >= 64 and grid.shape[1] >= 64 and grid.std() > 10, grid.shape
    assert "4 images" in page.inner_text("#attr-meta")

    page.fill("#attr-prompt", "glasses & wizard")
    assert run_form(page, "#attr-form", "#attr-run") == "error"
    msg = error_text(page, "#attr-form")
    assert "unknown attribute 'wizard'" in msg and "valid attributes" in msg, msg
    no_traceback(msg)


EXAMPLES = ROOT / "tasks" / "attributes" / "examples"


def _not_an_image(path: Path) -> str:
    path.write_text("this is not an image\n" * 20)
    return str(path)


def _big_face(path: Path) -> str:
    from PIL import Image

    with Image.open(EXAMPLES / "soldier.png") as im:
        im.resize((64, 64), Image.NEAREST).save(path)
    return str(path)


def test_attributes_image_prompt(page, tmp_path):
    """Two uploaded images (the bundled soldier + badge pair) and a typed prompt → one grid, with what each image was
    read as; a file that is not an image → the server's message naming it, no image."""
    page.click("#tab-attributes")
    page.fill("#attr-prompt", "hat")
    page.dispatch_event("#attr-prompt", "input")
    page.set_input_files("#attr-images", [str(EXAMPLES / "soldier.png"), str(EXAMPLES / "badge.png")])
    page.fill("#attr-num", "2")
    page.fill("#attr-steps", "4")
    assert run_form(page, "#attr-form", "#attr-run") == "done", error_text(page, "#attr-form")
    grid = decoded_image(page, "#attr-image")
    assert grid.shape[:2] == (36, 70) and grid.std() > 10, grid.shape  # two 32×32 faces, 2-px gaps
    meta, understood = page.inner_text("#attr-meta"), page.inner_text("#attr-understood")
    assert "Img(soldier.png) & Img(badge.png) & hat" in meta, meta
    assert "soldier.png" in understood and "badge.png" in understood, understood
    assert str(ROOT) not in understood and "uploads" not in understood  # names, not the server's paths

    first = page.get_attribute("#attr-image", "src")
    page.set_input_files("#attr-images", [str(EXAMPLES / "soldier.png"), _not_an_image(tmp_path / "notes.png")])
    assert run_form(page, "#attr-form", "#attr-run") == "error"
    msg = error_text(page, "#attr-form")
    assert "cannot read image prompt 'notes.png'" in msg and "accepted" in msg, msg
    assert str(tmp_path) not in msg
    no_traceback(msg)
    assert page.get_attribute("#attr-image", "src") == first  # no new image
    page.set_input_files("#attr-images", [])


def test_attributes_edit(page, tmp_path):
    """Upload a face, ask for sunglasses in the eyes region at strength 0.6: the input and the edits come back, the
    pixels outside the region are the input's; a wrong-size face is resized and said so; a bad upload is an error."""
    from tasks.attributes.faces import region_mask

    page.click("#tab-attributes")
    page.set_input_files("#edit-image", str(EXAMPLES / "soldier.png"))
    page.fill("#edit-prompt", "sunglasses")
    page.select_option("#edit-region", "eyes")
    page.eval_on_selector("#edit-strength", "e => { e.value = '0.6'; e.dispatchEvent(new Event('input', "
                                             "{bubbles: true})); }")
    assert page.inner_text("#edit-strength-value") == "0.60"
    page.fill("#edit-num", "2")
    page.fill("#edit-steps", "4")
    assert run_form(page, "#edit-form", "#edit-run") == "done", error_text(page, "#edit-form")
    face = decoded_image(page, "#edit-input")
    grid = decoded_image(page, "#edit-output")
    assert face.shape == (32, 32, 3) and grid.shape[:2] == (36, 70), (face.shape, grid.shape)
    outside = region_mask("eyes", 32) == 0
    for k in range(2):
        edited = grid[2:34, 2 + 34 * k:34 + 34 * k].astype(int)
        assert np.abs(edited - face.astype(int))[outside].max() <= 1  # known pixels come back
    meta = page.inner_text("#edit-meta")
    assert "soldier.png" in meta and "region eyes" in meta and "strength 0.60" in meta, meta

    page.set_input_files("#edit-image", _big_face(tmp_path / "big.png"))
    page.select_option("#edit-region", "")  # auto: the regions of the prompt's attributes
    assert run_form(page, "#edit-form", "#edit-run") == "done", error_text(page, "#edit-form")
    notes = page.inner_text("#edit-understood")
    assert "big.png" in notes and "64×64; resized to 32×32" in notes, notes
    assert "region auto" in page.inner_text("#edit-meta")

    page.set_input_files("#edit-image", _not_an_image(tmp_path / "face.png"))
    assert run_form(page, "#edit-form", "#edit-run") == "error"
    msg = error_text(page, "#edit-form")
    assert "cannot read edit image 'face.png'" in msg, msg
    no_traceback(msg)
    txt = tmp_path / "face.txt"
    txt.write_text("hello")
    page.set_input_files("#edit-image", str(txt))
    assert run_form(page, "#edit-form", "#edit-run") == "error"
    assert "face.txt is not an image" in error_text(page, "#edit-form")


# ---- the attribute endpoints without the browser ---------------------------------------------------------------------
def _post(server, path: str, data: bytes, ctype: str = "application/json") -> dict:
    import json

    req = urllib.request.Request(server["url"] + path, data=data, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def _upload(server, path: Path, name: str | None = None) -> str:
    return _post(server, f"/api/upload?name={name or path.name}", path.read_bytes(), "application/octet-stream")["id"]


def _run(server, task: str, params: dict) -> dict:
    import json

    s = _post(server, f"/api/run/{task}", json.dumps(params).encode())
    if "job" not in s:
        return s
    deadline = time.time() + JOB_TIMEOUT_MS / 1000
    while s.get("state") in ("queued", "running") and time.time() < deadline:
        time.sleep(0.25)
        with urllib.request.urlopen(f"{server['url']}/api/job/{s['job']}", timeout=10) as r:
            s = json.loads(r.read())
    return s


def _png(server, url: str) -> np.ndarray:
    from PIL import Image

    with urllib.request.urlopen(server["url"] + url, timeout=10) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def test_api_image_prompt(server, tmp_path):
    a, b = _upload(server, EXAMPLES / "soldier.png"), _upload(server, EXAMPLES / "badge.png")
    s = _run(server, "attributes", {"prompt": "", "images": [a, b], "num": 1, "steps": 3})
    assert s["state"] == "done", s
    r = s["result"]
    assert r["images"] == ["soldier.png", "badge.png"] and r["notes"] == []
    assert [line.split(" → ")[0] for line in r["understood"]] == ["Img('soldier.png')", "Img('badge.png')"]
    assert _png(server, r["image"]).shape == (32, 32, 3)  # one face: no grid gaps
    big = _upload(server, Path(_big_face(tmp_path / "big.png")))
    s = _run(server, "attributes", {"prompt": "a smiling man", "images": [big], "num": 1, "steps": 3})
    assert s["state"] == "done", s
    assert s["result"]["notes"] == ["image 'big.png' is 64×64; resized to 32×32"], s["result"]
    assert any(line.startswith("'a smiling man' → ") for line in s["result"]["understood"]), s["result"]
    # bad inputs: an error message, no output file
    bad = _upload(server, Path(_not_an_image(tmp_path / "x.png")))
    cases = [({"images": [bad]}, "cannot read image prompt 'x.png'"),
             ({"images": ["nope"]}, "uploaded file not found"),
             ({"images": [a] * 5}, "at most 4 images"),
             ({"images": [a], "prompt": "a red bicycle"}, "names nothing the model knows"),
             ({"prompt": "a smiling man " * 40}, "too long"),
             ({"prompt": "glasses & wizard"}, "unknown attribute 'wizard'")]
    for params, expected in cases:
        s = _run(server, "attributes", {"num": 1, "steps": 2, **params})
        assert s["state"] == "error" and expected in s["error"], (params, s)
        assert "Traceback" not in s["error"] and str(tmp_path) not in s["error"]
        assert not (server["dir"] / "files" / "jobs" / s["job"] / "grid.png").exists()


def test_api_edit(server, tmp_path):
    from tasks.attributes.faces import region_mask

    face = _upload(server, EXAMPLES / "soldier.png")
    s = _run(server, "attributes_edit", {"image": face, "prompt": "hat", "region": "top", "strength": 1.0, "num": 1,
                                         "steps": 3})
    assert s["state"] == "done", s
    r = s["result"]
    assert r["region"] == "top" and r["strength"] == 1.0 and r["source"] == "soldier.png"
    x, x0 = _png(server, r["image"]).astype(int), _png(server, r["input"]).astype(int)  # one face: no grid gaps
    assert x.shape == x0.shape == (32, 32, 3)
    assert np.abs(x - x0)[region_mask("top", 32) == 0].max() <= 1
    s = _run(server, "attributes_edit", {"image": face, "prompt": "wearing shades", "num": 1, "steps": 2})
    assert s["state"] == "done" and s["result"]["region"] == "auto", s
    assert any("sunglasses" in line for line in s["result"]["understood"]), s["result"]
    bad = _upload(server, Path(_not_an_image(tmp_path / "face.png")))
    cases = [({}, "upload the face to edit first"),
             ({"image": bad}, "cannot read edit image 'face.png'"),
             ({"image": face, "prompt": "  "}, "write what the edit should add or remove"),
             ({"image": face, "region": "elbow"}, "unknown region 'elbow'"),
             ({"image": face, "strength": 0}, "strength must be in (0, 1]"),
             ({"image": face, "strength": "lots"}, "strength must be a number"),
             ({"image": face, "prompt": "a red bicycle"}, "names nothing the model knows"),
             ({"image": face, "prompt": "a smiling man " * 40}, "too long")]
    for params, expected in cases:
        s = _run(server, "attributes_edit", {"prompt": "sunglasses", "num": 1, "steps": 2, **params})
        assert s["state"] == "error" and expected in s["error"], (params, s)
        assert "Traceback" not in s["error"]
        folder = server["dir"] / "files" / "jobs" / s["job"]
        assert not (folder / "grid.png").exists() and not (folder / "input.png").exists()


def test_calligraphy_tab(page, tmp_path):
    page.click("#tab-calligraphy")
    page.wait_for_selector("#cal-style-list option[value='gyosho']", state="attached", timeout=60_000)
    assert page.locator("#cal-style-list optgroup option[value='myhand']").count() == 1  # adapted from this model
    assert page.locator("#cal-style-list option[value='otherhand']").count() == 0      # adapted from another one
    page.select_option("#cal-style-list", "ukai")
    assert page.input_value("#cal-style") == "ukai"
    page.fill("#cal-style", "0.7*gyosho+0.3*ukai")  # a style mix
    page.fill("#cal-text", "永和")
    page.fill("#cal-steps", "8")
    assert run_form(page, "#cal-form", "#cal-run") == "done", error_text(page, "#cal-form")
    work = decoded_image(page, "#cal-image")
    assert work.std() > 10 and work.shape[0] > work.shape[1], work.shape  # two characters, vertical
    check_video(page, "#cal-video")
    assert "2 characters" in page.inner_text("#cal-meta")

    # the other two style sources: reference image uploads (the work just written) and a style description
    ref = tmp_path / "reference.png"
    ref.write_bytes(get(page, page.get_attribute("#cal-image", "src")).body())
    from PIL import Image
    with Image.open(ref) as im:  # one character per reference (a multi-character image must name its characters)
        im.crop((0, 0, im.width, im.height // 2)).save(ref)
    first = page.get_attribute("#cal-image", "src")
    page.set_input_files("#cal-refs", [str(ref), str(ref)])
    assert page.is_checked("input[name='cal-mode'][value='references']")
    assert run_form(page, "#cal-form", "#cal-run") == "done", error_text(page, "#cal-form")
    assert page.get_attribute("#cal-image", "src") != first and decoded_image(page, "#cal-image").std() > 10
    page.fill("#cal-style-prompt", "bold running script, heavy ink")
    assert page.is_checked("input[name='cal-mode'][value='prompt']")
    assert run_form(page, "#cal-form", "#cal-run") == "done", error_text(page, "#cal-form")
    assert decoded_image(page, "#cal-image").std() > 10

    page.fill("#cal-text", "  ")
    assert run_form(page, "#cal-form", "#cal-run") == "error"
    msg = error_text(page, "#cal-form")
    assert "empty text" in msg, msg
    no_traceback(msg)


def test_dance_tab(page, tmp_path):
    import soundfile as sf

    sr = 22050
    t = np.arange(3 * sr) / sr
    beat = (np.mod(t, 0.5) < 0.05).astype(np.float32)  # 120 BPM clicks over a chord
    y = 0.3 * beat * np.sin(2 * np.pi * 880 * t) + 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 330 * t)
    song = tmp_path / "song.wav"
    sf.write(song, y.astype(np.float32), sr)

    page.click("#tab-dance")
    page.set_input_files("#dance-audio", str(song))
    page.fill("#dance-seconds", "3")
    page.fill("#dance-steps", "8")
    assert run_form(page, "#dance-form", "#dance-run") == "done", error_text(page, "#dance-form")
    mp4 = check_video(page, "#dance-video")
    assert has_audio_stream(mp4, tmp_path), "the dance MP4 has no music"
    assert "90 frames" in page.inner_text("#dance-meta") or "91 frames" in page.inner_text("#dance-meta")

    # downloads: the BVH through a real click, the NPZ by its link
    with page.expect_download() as d:
        page.click("#dance-downloads a:text('BVH')")
    bvh = Path(d.value.path()).read_text()
    assert bvh.startswith("HIERARCHY") and "MOTION" in bvh and d.value.suggested_filename.endswith(".bvh")
    npz = np.load(io.BytesIO(get(page, page.get_attribute("#dance-downloads a:text('NPZ')", "href")).body()))
    assert npz["joints"].shape[1:] == (24, 3) and len(npz["joints"]) >= 89

    # the 3-D viewer: drawn, animating, and it orbits on drag
    assert page.is_visible("#skeleton")
    page.wait_for_function("Number(document.querySelector('#skeleton').dataset.draws || 0) > 0")
    lit = page.evaluate("""() => { const c = document.querySelector('#skeleton');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 120 || d[i + 1] > 120 || d[i + 2] > 120) n++;
        return n; }""")
    assert lit > 300, f"skeleton canvas looks empty ({lit} bright pixels)"
    f0 = page.get_attribute("#skeleton", "data-frame")
    page.wait_for_function(f"document.querySelector('#skeleton').dataset.frame !== '{f0}'", timeout=5000)
    before = page.evaluate("document.querySelector('#skeleton').toDataURL()")
    page.click("#skel-play")  # pause, then orbit
    box = page.locator("#skeleton").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 200, steps=5)
    page.mouse.up()
    assert page.evaluate("document.querySelector('#skeleton').toDataURL()") != before

    notes = tmp_path / "notes.txt"
    notes.write_text("this is not music\n" * 50)
    page.set_input_files("#dance-audio", str(notes))
    assert run_form(page, "#dance-form", "#dance-run") == "error"
    msg = error_text(page, "#dance-form")
    assert "cannot read audio file" in msg and "notes.txt" in msg, msg
    assert str(tmp_path) not in msg  # the server's upload path is not shown
    no_traceback(msg)


def test_models_tab(page):
    page.click("#tab-models")
    for name in ("attributes", "calligraphy", "dance"):
        page.wait_for_selector(f"#card-{name}", timeout=10_000)
        card = page.inner_text(f"#card-{name}")
        text = (ROOT / "checkpoints" / name / "README.md").read_text(encoding="utf-8")
        first = next(line for line in text.splitlines() if line.strip()).lstrip("#").replace("`", "").strip()
        assert first in card and len(card) > len(text) / 4, (name, card[:300])  # the whole card, rendered
        no_traceback(card)


def test_offline_and_clean(page, server):
    no_traceback(page.inner_text("body"))
    assert not page.seen["external"], f"the page tried to reach the internet: {page.seen['external']}"
    assert not page.seen["errors"], f"JavaScript errors: {page.seen['errors']}"
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-4000:]
