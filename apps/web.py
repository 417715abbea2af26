"""The gensuite web app: one page with a tab per task (attributes, calligraphy, dance) and a tab of model cards.

    python -m apps.web                    # http://127.0.0.1:7860  (PORT=… or --port … to change it)
    make serve                            # the same, after `make setup`

A small self-contained server (the standard library's ThreadingHTTPServer) and one static page (`apps/web/`:
plain HTML/CSS/JS, no framework, nothing fetched from the internet, the 3-D skeleton viewer included). Why not Gradio:
it is a large install (FastAPI, uvicorn, pandas, a front-end bundle) that phones home (analytics, version check,
share links, CDN fonts) unless each of those is switched off, starts in seconds on this 2-core CPU, and its DOM is
a moving target for a browser test; this app starts in about a second, works offline by construction and its page is
ours to test.

HTTP API (JSON; the page uses exactly this):

    GET  /api/info                    attributes, regions, layouts, tasks
    GET  /api/styles                  the calligraphy model's style names, and the adapted styles (calligraphy-adapt,
                                      found in $GENSUITE_STYLES or ./styles) made from that model (loads it on first call)
    GET  /api/models                  the shipped models' cards (checkpoints/*/README.md) as HTML
    POST /api/upload?name=song.mp3    raw file body → {"id": …, "name": …}
    POST /api/run/<task>              parameters (JSON) → {"job": id}; one worker runs the jobs in order. Tasks:
                                      attributes {prompt, images: [upload ids], num, seed, steps, guidance, regions},
                                      attributes_edit {image: upload id, prompt, region, strength, num, seed, steps},
                                      calligraphy {...}, dance {...}
    GET  /api/job/<id>                {"state": queued|running|done|error, "progress", "message", "result", "error"}
    GET  /files/<job>/<name>          a job's outputs (byte ranges supported, for video seeking)

Models load lazily on first use, once, through `_load(task)`. Errors the pipelines raise on bad input (ValueError and
its subclasses: PromptError, PipelineError, …) come back as the job's `error` message; anything else as a one-line
"internal error" message, with the traceback only in the server's log.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import importlib
import inspect
import itertools
import json
import math
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
STATIC = Path(__file__).resolve().with_name("web")
DEFAULT_PORT = 7860
MAX_UPLOAD = 64 * 1024 * 1024  # bytes per uploaded file
MAX_JOBS = 64                  # finished jobs kept (their output folders are removed beyond that)
MAX_UPLOADS = 64               # uploaded files kept
TASKS = {  # task → (module, pipeline class, folder under checkpoints/)
    "attributes": ("tasks.attributes.pipeline", "AttributesPipeline", "attributes"),
    "calligraphy": ("tasks.calligraphy.pipeline", "CalligraphyPipeline", "calligraphy"),
    "dance": ("tasks.dance.pipeline", "DancePipeline", "dance"),
}
LIMITS = {"num": (1, 64), "steps": (1, 1000), "seed": (0, 2**31 - 1)}
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".png": "image/png", ".mp4": "video/mp4", ".gif": "image/gif",
                  ".json": "application/json", ".bvh": "text/plain; charset=utf-8", ".npz": "application/octet-stream",
                  ".svg": "image/svg+xml", ".ico": "image/x-icon"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def log(*a) -> None:
    print("[web]", *a, file=sys.stderr, flush=True)


# ---- models -----------------------------------------------------------------------------------------------------------
def _load(task: str):
    """The one place that loads a task's pipeline: the shipped model of that name (gen.pipeline's resolver), or the
    folder given by $GENSUITE_WEB_<TASK> (e.g. GENSUITE_WEB_CALLIGRAPHY=runs/calligraphy)."""
    module, cls_name, _ = TASKS[task]
    cls = getattr(importlib.import_module(module), cls_name)
    return cls.from_pretrained(os.environ.get(f"GENSUITE_WEB_{task.upper()}", task), device="auto")


_pipes: dict = {}
_pipe_locks = {t: threading.Lock() for t in TASKS}


def pipeline(task: str):
    """The task's pipeline, loaded on first use and cached (a failed load is retried on the next use)."""
    with _pipe_locks[task]:
        if task not in _pipes:
            t0 = time.time()
            _pipes[task] = _load(task)
            log(f"loaded {task} in {time.time() - t0:.1f} s")
        return _pipes[task]


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _default_steps(pipe, fallback: int = 20) -> int:
    """The pipeline's default number of sampler steps (for the progress display only)."""
    s = getattr(pipe, "sampling", None)
    if isinstance(s, dict) and s.get("steps"):
        return int(s["steps"])
    s = getattr(pipe, "steps", None)
    return int(s) if isinstance(s, (int, float)) and s > 0 else fallback


@contextlib.contextmanager
def _count_steps(pipe, job: "Job", total: int, what: str):
    """Progress for pipelines without a `progress` argument: count the network's forward passes (one per sampler step
    for the samplers these pipelines use; the count is only shown, capped below 100 %)."""
    model = getattr(pipe, "model", None)
    if model is None or not hasattr(model, "register_forward_hook"):
        yield
        return
    calls = itertools.count(1)

    def hook(*_):
        job.step(min(next(calls), total), total, what)
    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# ---- parameters -----------------------------------------------------------------------------------------------------
def _int(params: dict, key: str, default: int | None = None) -> int | None:
    v = params.get(key, default)
    if v is None or v == "":
        return default
    try:
        f = float(v)
        if not f.is_integer():
            raise ValueError
        i = int(f)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key} must be a whole number, got {v!r}") from None
    lo, hi = LIMITS.get(key, (None, None))
    if lo is not None and not lo <= i <= hi:
        raise ValueError(f"{key} must be between {lo} and {hi}, got {i}")
    return i


def _float(params: dict, key: str, default: float | None = None, lo: float | None = None) -> float | None:
    v = params.get(key, default)
    if v is None or v == "":
        return default
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{key} must be a finite number, got {v!r}")
    if lo is not None and f < lo:
        raise ValueError(f"{key} must be ≥ {lo:g}, got {f:g}")
    return f


def _str(params: dict, key: str) -> str:
    v = params.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValueError(f"{key} must be text, got {type(v).__name__}")
    return v


# ---- uploads --------------------------------------------------------------------------------------------------------
class Uploads:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.names: dict[str, tuple[Path, str]] = {}
        self.lock = threading.Lock()

    def add(self, name: str, data: bytes) -> dict:
        uid = uuid.uuid4().hex[:16]
        base = os.path.basename(name.replace("\\", "/")) or "upload"
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", base)[-100:].lstrip(".") or "upload"
        d = self.root / uid
        d.mkdir()
        path = d / safe
        path.write_bytes(data)
        with self.lock:
            self.names[uid] = (path, base)
            for old in list(self.names)[:-MAX_UPLOADS]:  # dicts keep insertion order: the oldest first
                shutil.rmtree(self.names.pop(old)[0].parent, ignore_errors=True)
        return {"id": uid, "name": base, "bytes": len(data)}

    def get(self, uid) -> tuple[Path, str]:
        with self.lock:
            hit = self.names.get(uid) if isinstance(uid, str) else None
        if hit is None:
            raise ValueError("uploaded file not found (upload it again)")
        return hit


# ---- jobs -----------------------------------------------------------------------------------------------------------
class Job:
    def __init__(self, task: str, params: dict, root: Path):
        self.id = uuid.uuid4().hex[:16]
        self.task, self.params, self.folder = task, params, root / self.id
        self.state, self.message, self.error = "queued", "waiting", None
        self.progress: float | None = None
        self.result: dict | None = None
        self.created, self.started, self.finished = time.time(), None, None
        self.lock = threading.Lock()

    def stage(self, message: str, progress: float | None = None) -> None:
        with self.lock:
            self.message, self.progress = message, progress

    def step(self, i: int, n: int, what: str = "sampling") -> None:
        self.stage(f"{what}: step {i}/{n}", min(i / max(n, 1), 0.99))

    def url(self, name: str) -> str:
        return f"/files/{self.id}/{name}?t={int(self.created * 1000)}"

    def status(self) -> dict:
        with self.lock:
            end = self.finished or time.time()
            return {"job": self.id, "task": self.task, "state": self.state, "message": self.message,
                    "progress": self.progress, "error": self.error, "result": self.result,
                    "elapsed": None if self.started is None else round(end - self.started, 2)}


class App:
    """Jobs, uploads and outputs of one server."""

    def __init__(self, outputs: Path):
        self.outputs = outputs
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.uploads = Uploads(outputs / "uploads")
        self.jobs: dict[str, Job] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._worker, name="gensuite-worker", daemon=True).start()

    def submit(self, task: str, params: dict) -> Job:
        if task not in RUNNERS:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(RUNNERS)}")
        if not isinstance(params, dict):
            raise ValueError("parameters must be a JSON object")
        job = Job(task, params, self.outputs / "jobs")
        job.folder.mkdir(parents=True)
        with self.lock:
            self.jobs[job.id] = job
            self.order.append(job.id)
            ahead = sum(1 for j in self.jobs.values() if j.state in ("queued", "running")) - 1
            self._prune()
        job.stage(f"waiting for {ahead} job{'s' * (ahead != 1)} ahead" if ahead else "starting")
        self.queue.put(job)
        return job

    def _prune(self) -> None:
        done = [i for i in self.order if self.jobs[i].state in ("done", "error")]
        for i in done[:max(0, len(done) - MAX_JOBS)]:
            shutil.rmtree(self.jobs[i].folder, ignore_errors=True)
            del self.jobs[i]
            self.order.remove(i)

    def job(self, jid: str) -> Job | None:
        with self.lock:
            return self.jobs.get(jid)

    def _worker(self) -> None:
        while True:
            job = self.queue.get()
            with job.lock:
                job.state, job.started = "running", time.time()
            try:
                result = RUNNERS[job.task](self, job)
                with job.lock:
                    job.result, job.state, job.progress = result, "done", 1.0
                    job.message = f"done in {time.time() - job.started:.1f} s"
            except Exception as e:  # noqa: BLE001 - every failure becomes a message, never a traceback in the page
                msg = self._message(e, job)
                if not isinstance(e, ValueError):
                    log(f"job {job.id} ({job.task}) failed:\n{traceback.format_exc()}")
                with job.lock:
                    job.state, job.error, job.message = "error", msg, "failed"
            finally:
                with job.lock:
                    job.finished = time.time()

    def _message(self, e: Exception, job: Job) -> str:
        if isinstance(e, (ValueError, FileNotFoundError)):
            msg = str(e) or type(e).__name__
        elif isinstance(e, MemoryError):
            msg = "out of memory: try fewer images / characters / seconds"
        else:
            msg = f"internal error ({type(e).__name__}: {e}); the details are in the server log"
        # the server's own paths mean nothing to the user: show uploads by the name they were uploaded with
        with self.uploads.lock:
            names = list(self.uploads.names.values())
        for path, name in names:
            msg = msg.replace(str(path), name)
        return msg.replace(str(job.folder) + os.sep, "").replace(str(self.outputs), "<outputs>")


# ---- the three tasks --------------------------------------------------------------------------------------------------
MAX_IMAGE_PROMPTS = 4  # uploaded images per attribute prompt


def _upload_ids(p: dict, key: str, limit: int) -> list[str]:
    ids = p.get(key) or []
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{key} must be a list of upload ids")
    if len(ids) > limit:
        raise ValueError(f"at most {limit} images, got {len(ids)}")
    return ids


def _save_png(image, path: Path) -> None:
    """A (3, H, W) tensor in [-1, 1] or an (H, W, 3) uint8 grid → PNG, atomically (a failed job leaves no file)."""
    from PIL import Image

    arr = image if not hasattr(image, "permute") else \
        ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)


def _read_uploaded_images(app: App, ids: list[str], size: int, what: str) -> list[tuple[str, str]]:
    """Every uploaded image read (and its size checked) before any sampling: [(path, name)]; an unreadable file is an
    error that names it."""
    from tasks.attributes.terms import load_image

    out = []
    for uid in ids:
        path, name = app.uploads.get(uid)
        load_image(str(path), size, what)
        out.append((str(path), name))
    return out


def _by_name(lines, files: list[tuple[str, str]]) -> list[str]:
    """The server's upload paths in messages → the names the files were uploaded with."""
    out = []
    for line in lines:
        for path, name in files:
            line = line.replace(path, name)
        out.append(line)
    return out


def run_attributes(app: App, job: Job) -> dict:
    """A composite prompt (attribute names, plain words) and, optionally, uploaded image prompts: each image is an
    Img(...) term combined with the typed prompt (`Img(a) & Img(b) & T(prompt)`)."""
    p = job.params
    prompt = _str(p, "prompt")
    num, seed = _int(p, "num", 16), _int(p, "seed", 0)
    steps, guidance = _int(p, "steps"), _float(p, "guidance", lo=0.0)
    regions = p.get("regions") or None
    if regions is not None and not (isinstance(regions, dict) and all(isinstance(v, str) for v in regions.values())):
        raise ValueError("regions must map attribute names to region names")
    image_ids = _upload_ids(p, "images", MAX_IMAGE_PROMPTS)
    job.stage("loading the attribute model")
    pipe = pipeline("attributes")
    from tasks.attributes.pipeline import to_grid

    files = _read_uploaded_images(app, image_ids, pipe.size, "image prompt") if image_ids else []
    query = prompt
    if files:
        from tasks.attributes.terms import Expr, Img, T

        query = Expr(tuple(Img(path) for path, _ in files) + ((T(prompt),) if prompt.strip() else ()))
    total = steps or _default_steps(pipe)
    kw = {k: v for k, v in dict(num=num, seed=seed, steps=steps, guidance=guidance, regions=regions).items()
          if v is not None}  # left out: the pipeline's own default
    job.stage("sampling", 0.0)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resize notes come back in the result instead
        if _accepts(pipe.__call__, "progress"):
            images = pipe(query, **kw, progress=lambda i, n: job.step(i, n))
        else:
            with _count_steps(pipe, job, total, "sampling"):
                images = pipe(query, **kw)
    seconds = time.time() - t0
    _save_png(to_grid(images), job.folder / "grid.png")
    return {"image": job.url("grid.png"), "prompt": prompt, "num": int(images.shape[0]),
            "size": list(images.shape[-2:]), "seconds": round(seconds, 2), "images": [n for _, n in files],
            "understood": _by_name(getattr(pipe, "understood", []), files),
            "notes": _by_name(getattr(pipe, "notes", []), files)}


def run_attributes_edit(app: App, job: Job) -> dict:
    """"This face, with sunglasses": an uploaded face, a prompt, a region (a name of faces.REGIONS, or "" = the regions
    of the attributes the prompt names) and a strength → pipe.edit; pixels outside the region are kept."""
    p = job.params
    (image_id,) = _upload_ids(p, "image", 1) or [None]
    if image_id is None:
        raise ValueError("upload the face to edit first (a PNG or JPEG image)")
    prompt = _str(p, "prompt")
    if not prompt.strip():
        raise ValueError("write what the edit should add or remove, e.g. 'sunglasses' or '~hat'")
    region = _str(p, "region").strip() or None
    from tasks.attributes.faces import REGIONS

    if region is not None and region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; regions: {', '.join(REGIONS)} (or leave it empty: the regions "
                         "of the attributes the prompt names)")
    strength = _float(p, "strength", 0.8)
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength:g}")
    num, seed, steps = _int(p, "num", 4), _int(p, "seed", 0), _int(p, "steps")
    guidance = _float(p, "guidance", lo=0.0)
    job.stage("loading the attribute model")
    pipe = pipeline("attributes")
    from tasks.attributes.pipeline import to_grid

    files = _read_uploaded_images(app, [image_id], pipe.size, "edit image")
    ((path, name),) = files
    from tasks.attributes.terms import load_image

    x0, _ = load_image(path, pipe.size, "edit image")
    job.stage("editing", 0.0)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = pipe.edit(path, prompt, region=region, strength=strength, num=num, seed=seed, steps=steps,
                           guidance=guidance, progress=lambda i, n: job.step(i, n, "editing"))
    seconds = time.time() - t0
    _save_png(x0, job.folder / "input.png")
    _save_png(to_grid(images), job.folder / "grid.png")
    return {"image": job.url("grid.png"), "input": job.url("input.png"), "prompt": prompt, "source": name,
            "region": region or "auto", "strength": strength, "num": int(images.shape[0]),
            "size": list(images.shape[-2:]), "seconds": round(seconds, 2),
            "understood": _by_name(getattr(pipe, "understood", []), files),
            "notes": _by_name(getattr(pipe, "notes", []), files)}


def run_calligraphy(app: App, job: Job) -> dict:
    p = job.params
    text = _str(p, "text")
    mode = _str(p, "mode") or "style"
    kw: dict = {"seed": _int(p, "seed", 0)}
    if _int(p, "steps") is not None:
        kw["steps"] = _int(p, "steps")
    if _float(p, "guidance", lo=0.0) is not None:
        kw["guidance"] = _float(p, "guidance", lo=0.0)
    layout = _str(p, "layout") or "vertical"
    if mode == "style":
        style = _str(p, "style").strip()
        if not style:
            raise ValueError("choose a style or write a style mix such as 0.7*gyosho+0.3*ukai")
        kw["style"] = style
    elif mode == "references":
        ids = p.get("references") or []
        if not isinstance(ids, list) or not ids:
            raise ValueError("upload at least one reference image of the style to imitate")
        kw["references"] = [str(app.uploads.get(i)[0]) for i in ids]
    elif mode == "prompt":
        sp = _str(p, "style_prompt")
        if not sp.strip():
            raise ValueError("write a style description, e.g. 'bold brush, heavy ink'")
        kw["style_prompt"] = sp
    else:
        raise ValueError(f"unknown style source {mode!r}; use style, references or prompt")
    job.stage("loading the calligraphy model")
    pipe = pipeline("calligraphy")
    chars = pipe.check_text(text) if hasattr(pipe, "check_text") else list(text)
    png, mp4 = job.folder / "work.png", job.folder / "work.mp4"
    total = kw.get("steps") or _default_steps(pipe)
    job.stage(f"writing {len(chars)} character{'s' * (len(chars) != 1)}", 0.0)
    t0 = time.time()
    if _accepts(getattr(pipe, "glyphs", None), "progress"):
        info = pipe.write(text, png, video=mp4, layout=layout, progress=lambda i, n: job.step(i, n), **kw)
    else:
        with _count_steps(pipe, job, total, "sampling"):
            info = pipe.write(text, png, video=mp4, layout=layout, **kw)
    return {"image": job.url("work.png"), "video": job.url("work.mp4"), "characters": len(chars),
            "size": list(info.get("size", ())) if isinstance(info, dict) else None, "seconds": round(time.time() - t0, 2)}


def run_dance(app: App, job: Job) -> dict:
    p = job.params
    if not p.get("audio"):
        raise ValueError("upload a music file first (wav, mp3, ogg or flac)")
    path, name = app.uploads.get(p.get("audio"))
    seconds = _float(p, "seconds")
    if seconds is not None and seconds <= 0:
        seconds = None  # 0 / empty: the whole file
    kw: dict = {"seed": _int(p, "seed", 0)}
    if _int(p, "steps") is not None:
        kw["steps"] = _int(p, "steps")
    job.stage("loading the dance model")
    pipe = pipeline("dance")
    total = kw.get("steps") or _default_steps(pipe)
    job.stage("reading the music", 0.0)
    t0 = time.time()
    if _accepts(pipe.__call__, "progress") or _accepts(getattr(pipe, "sample_motion", None), "progress"):
        res = pipe(str(path), seconds=seconds, progress=lambda i, n: job.step(i, n), **kw)
    else:
        with _count_steps(pipe, job, total, "dancing"):
            res = pipe(str(path), seconds=seconds, **kw)
    job.stage("rendering the video, BVH and NPZ", 0.99)
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.splitext(name)[0])[:40] or "dance"
    files = {"out": job.folder / f"{stem}.mp4", "bvh": job.folder / f"{stem}.bvh", "npz": job.folder / f"{stem}.npz"}
    pipe.save(res, out=str(files["out"]), bvh=str(files["bvh"]), npz=str(files["npz"]))
    from tasks.dance import skeleton as sk

    joints = res["joints"]
    (job.folder / "joints.json").write_text(json.dumps({
        "fps": 30, "parents": list(sk.PARENTS), "names": list(sk.JOINT_NAMES),
        "frames": [[round(float(v), 4) for v in frame.reshape(-1)] for frame in joints]}))
    return {"video": job.url(files["out"].name), "bvh": job.url(files["bvh"].name), "npz": job.url(files["npz"].name),
            "joints": job.url("joints.json"), "frames": int(len(joints)), "fps": 30,
            "music_seconds": round(len(joints) / 30, 2), "seconds": round(time.time() - t0, 2)}


RUNNERS = {"attributes": run_attributes, "attributes_edit": run_attributes_edit, "calligraphy": run_calligraphy,
           "dance": run_dance}


# ---- static information ---------------------------------------------------------------------------------------------
def info() -> dict:
    from tasks.attributes.faces import ATTRIBUTES, REGIONS

    try:
        from tasks.calligraphy.layout import LAYOUTS
    except Exception:  # noqa: BLE001 - optional
        LAYOUTS = ("vertical", "horizontal")
    return {"attributes": list(ATTRIBUTES), "regions": list(REGIONS), "layouts": list(LAYOUTS),
            "tasks": list(TASKS), "limits": LIMITS}


def model_cards() -> list[dict]:
    try:
        import markdown

        render = lambda t: markdown.markdown(t, extensions=["tables", "fenced_code"])  # noqa: E731
    except Exception:  # noqa: BLE001 - no markdown package: show the text as it is
        render = lambda t: f"<pre>{html.escape(t)}</pre>"  # noqa: E731
    cards = []
    for readme in sorted((ROOT / "checkpoints").glob("*/README.md")):
        text = readme.read_text(encoding="utf-8", errors="replace")
        cards.append({"name": readme.parent.name, "html": render(text),
                      "task": readme.parent.name if readme.parent.name in TASKS else None})
    return cards


# ---- HTTP -----------------------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    server_version = "gensuite-web"
    app: App  # set on the subclass made by make_server

    def log_message(self, fmt, *args) -> None:  # quiet: only errors go to the log
        pass

    # -- responses ---------------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, message: str, status: int = 400) -> None:
        self._json({"error": message}, status)

    def _file(self, path: Path) -> None:
        ctype = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        size = path.stat().st_size
        rng = self.headers.get("Range")
        extra = {"Accept-Ranges": "bytes"}
        if path.suffix.lower() in (".bvh", ".npz"):
            extra["Content-Disposition"] = f'attachment; filename="{path.name}"'
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start > end or start >= size:
                self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", ctype, {"Content-Range": f"bytes */{size}"})
                return
            with open(path, "rb") as f:
                f.seek(start)
                body = f.read(end - start + 1)
            self._send(HTTPStatus.PARTIAL_CONTENT, body, ctype, {**extra, "Content-Range": f"bytes {start}-{end}/{size}"})
            return
        self._send(200, path.read_bytes(), ctype, extra)

    # -- routes ------------------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        try:
            self._get(urlparse(self.path).path)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001
            log(f"GET {self.path} failed:\n{traceback.format_exc()}")
            self._error(f"internal error ({type(e).__name__})", 500)

    def _get(self, path: str) -> None:
        if path in ("/", "/index.html"):
            page = (STATIC / "index.html").read_text(encoding="utf-8")
            page = page.replace("/*GENSUITE_INFO*/null", json.dumps(info()))
            self._send(200, page.encode(), _CONTENT_TYPES[".html"])
        elif path == "/api/health":
            self._json({"ok": True, "loaded": sorted(_pipes)})
        elif path == "/api/info":
            self._json(info())
        elif path == "/api/styles":
            try:
                pipe = pipeline("calligraphy")
                self._json({"styles": list(pipe.styles), "adapted": pipe.adapted_styles()})
            except Exception as e:  # noqa: BLE001
                if not isinstance(e, ValueError):
                    log(f"calligraphy model failed to load:\n{traceback.format_exc()}")
                self._json({"error": f"cannot load the calligraphy model: {e}"})
        elif path == "/api/models":
            self._json({"models": model_cards()})
        elif path.startswith("/api/job/"):
            job = self.app.job(path.rsplit("/", 1)[-1])
            self._json(job.status()) if job else self._error("unknown job", 404)
        elif path.startswith("/static/"):
            name = unquote(path[len("/static/"):])
            f = STATIC / name
            if not _SAFE_NAME.match(name) or not f.is_file():
                return self._error("not found", 404)
            self._file(f)
        elif path.startswith("/files/"):
            parts = unquote(path).split("/")
            job = self.app.job(parts[2]) if len(parts) == 4 else None
            if job is None or not _SAFE_NAME.match(parts[3]) or not (job.folder / parts[3]).is_file():
                return self._error("not found", 404)
            self._file(job.folder / parts[3])
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._error("not found", 404)

    def do_POST(self) -> None:
        try:
            self._post(urlparse(self.path))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except ValueError as e:
            self._error(str(e))
        except Exception as e:  # noqa: BLE001
            log(f"POST {self.path} failed:\n{traceback.format_exc()}")
            self._error(f"internal error ({type(e).__name__})", 500)

    def _body(self, limit: int) -> bytes:
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if n > limit:
            raise ValueError(f"file too large ({n / 2**20:.1f} MiB; at most {limit / 2**20:.0f} MiB)")
        return self.rfile.read(n)

    def _post(self, url) -> None:
        if url.path == "/api/upload":
            name = parse_qs(url.query).get("name", ["upload"])[0]
            data = self._body(MAX_UPLOAD)
            if not data:
                raise ValueError(f"the uploaded file {name!r} is empty")
            self._json(self.app.uploads.add(name, data))
        elif url.path.startswith("/api/run/"):
            try:
                params = json.loads(self._body(1 << 20) or b"{}")
            except json.JSONDecodeError:
                raise ValueError("parameters must be JSON") from None
            job = self.app.submit(url.path.rsplit("/", 1)[-1], params)
            self._json(job.status())
        else:
            self._error("not found", 404)


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, outputs: str | os.PathLike | None = None):
    """(server, app): a ThreadingHTTPServer bound to host:port (port 0 picks a free one)."""
    out = Path(outputs) if outputs else Path(tempfile.mkdtemp(prefix="gensuite-web-"))
    app = App(out)
    handler = type("GensuiteHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server, app


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="The gensuite web app (attributes, calligraphy, dance, model cards).",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address to listen on")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)), help="port ($PORT)")
    ap.add_argument("--outputs", default=None,
                    help="folder for uploads and generated files (default: a temporary folder, removed on exit)")
    ap.add_argument("--preload", action="store_true", help="load all three models at start instead of on first use")
    a = ap.parse_args(argv)
    server, app = make_server(a.host, a.port, a.outputs)
    if a.preload:
        for t in TASKS:
            pipeline(t)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` still removes the temporary folder
    host, port = server.server_address[:2]
    print(f"gensuite web app on http://{host}:{port}  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if a.outputs is None:
            shutil.rmtree(app.outputs, ignore_errors=True)


if __name__ == "__main__":
    main()
