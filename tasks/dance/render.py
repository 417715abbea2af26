"""Dance videos (MP4 with music / GIF) and AIST++-layout exports. All outputs are atomic.

Two views: `render_3d_video` (tasks/dance/render3d.py: perspective camera, floor grid, capsule body, shadows, contact
marks; 512 px) and `render_stick_video` (front view left, side view right, orthographic stick figure; 256 px). Frames
are drawn with PIL and piped to the ffmpeg binary of ``imageio_ffmpeg``, which encodes them with the music (AAC) in one
pass; GIFs through imageio.
"""
from __future__ import annotations

import itertools
import os
import pickle
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from gen.io import atomic_path

from . import skeleton as sk

X264_PRESET = "ultrafast"  # see _encode_mp4

VIDEO_EXTS = (".mp4", ".gif")


def _tmp_path(path, suffix):
    """A scratch file next to `path` (for intermediates that are deleted, never renamed into place)."""
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    return tmp


def _frames(joints: np.ndarray, size: int = 256) -> list:
    from PIL import Image, ImageDraw

    j = np.asarray(joints, dtype=np.float64)
    half = size // 2
    y0 = j[..., 1].min()
    y1 = j[..., 1].max()
    span = max(y1 - y0, 1.0) * 1.15
    scale = size / span
    cx, cz = np.median(j[:, 0, 0]), np.median(j[:, 0, 2])
    frames = []
    for t in range(len(j)):
        im = Image.new("RGB", (size, size), (250, 250, 250))
        d = ImageDraw.Draw(im)
        d.line([(half, 0), (half, size)], fill=(200, 200, 200))
        for view, (ax, c0, off) in enumerate(((0, cx, half // 2), (2, cz, half + half // 2))):
            def pt(k):
                return (off + (j[t, k, ax] - c0) * scale * (-1 if ax == 0 else 1) * 0.5 * 2,
                        size - 8 - (j[t, k, 1] - y0) * scale)
            for k, p in enumerate(sk.PARENTS):
                if p < 0:
                    continue
                col = (200, 60, 60) if sk.JOINT_NAMES[k].startswith("left") else (60, 60, 200)
                d.line([pt(p), pt(k)], fill=col, width=3)
            d.line([(view * half, size - 8), ((view + 1) * half, size - 8)], fill=(120, 120, 120))
        frames.append(np.asarray(im))
    return frames


def _check_video_args(path, joints, who: str) -> tuple[str, str, np.ndarray]:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTS:
        raise ValueError(f"{who}: unsupported extension {ext!r}; accepted {VIDEO_EXTS}")
    j = np.asarray(joints)
    if j.ndim != 3 or j.shape[1:] != (24, 3) or len(j) < 1:
        raise ValueError(f"{who}: joints must be (T, 24, 3), got {j.shape}")
    return path, ext, j


def render_stick_video(joints, path, fps: int = 30, audio=None, size: int = 256) -> str:
    """joints (T, 24, 3) -> ``path`` (.mp4 or .gif). ``audio``: None, a wav path, or (samples (N,), sr).
    Audio is muxed as AAC into MP4 (ignored for GIF). Returns ``path``; on error no file is left behind."""
    path, ext, j = _check_video_args(path, joints, "render_stick_video")
    return write_video(_frames(j, size), path, fps, audio)


def render_3d_video(joints, path, fps: int = 30, audio=None, contacts=None, size: int = 512) -> str:
    """The 3-D view (`tasks.dance.render3d`: perspective camera, floor grid, capsule body, shadows, contact marks) of
    joints (T, 24, 3) -> ``path`` (.mp4 with the music muxed, or .gif at half the frame rate). Atomic like
    `render_stick_video`."""
    from .render3d import iter_frames_3d

    path, ext, j = _check_video_args(path, joints, "render_3d_video")
    frames = iter_frames_3d(j, contacts, size)
    if ext == ".gif":  # every other frame: a 30-s GIF at 512 px stays a few tens of MB
        return write_video((f for i, f in enumerate(frames) if i % 2 == 0), path, fps / 2, None)
    return write_video(frames, path, fps, audio)


def write_video(frames, path, fps: float = 30, audio=None) -> str:
    """Frames (an iterable of (H, W, 3) uint8; each is consumed before the next is asked for) -> ``path`` (.mp4 /
    .gif), audio muxed into MP4 as AAC in the same ffmpeg pass that encodes the video (cut to the shorter of the two).
    Atomic: on error no file is left behind."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    scratch = []  # intermediate files (a wav of in-memory audio), always removed
    try:
        with atomic_path(path, suffix=ext) as final:
            if ext == ".gif":
                import imageio.v2 as imageio

                with imageio.get_writer(final, format="GIF", duration=1000.0 / fps, loop=0) as w:
                    for f in frames:
                        w.append_data(f)
                return path
            wav = None
            if isinstance(audio, (str, os.PathLike)):
                wav = os.fspath(audio)
                if not os.path.isfile(wav):
                    raise ValueError(f"render_stick_video: audio file not found: {wav}")
            elif audio is not None:
                from .synth import write_wav

                samples, sr = audio
                wav = _tmp_path(path, ".wav")
                scratch.append(wav)
                write_wav(wav, np.asarray(samples, dtype=np.float32).reshape(-1), int(sr))
            _encode_mp4(frames, final, fps, wav)
            return path
    finally:
        for t in scratch:
            if os.path.exists(t):
                os.remove(t)


def _encode_mp4(frames, path: str, fps: float, wav: str | None) -> None:
    """H.264 (x264 preset ultrafast, CRF 15: the encoder is the slowest part of `dance-generate` after sampling; for a
    30-s dance at 512 px it takes 1.4 s of one core against 2.3 s for veryfast, same quality target, 5.3 MB against
    1.5 MB; in the CLI, where it shares the CPU with the drawing, 7.8 s against 9.5 s, median of 3 alternating runs) +
    AAC from ``wav`` (the "fast" coder: 0.15 s for 30 s of music against 0.65 s for the default twoloop, same size),
    one ffmpeg process reading raw frames from a pipe (a separate mux pass cost ~1 s of a 30-s dance). Raises
    RuntimeError with ffmpeg's message when it fails (e.g. an audio file it cannot read)."""
    import imageio_ffmpeg

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("write_video: no frames")
    h, w = first.shape[:2]
    ph, pw = h % 2, w % 2  # yuv420p needs even sides: pad by edge replication
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w + pw}x{h + ph}", "-r", str(Fraction(fps).limit_denominator(1001)), "-i", "-"]
    if wav:
        cmd += ["-i", wav, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-aac_coder", "fast", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", X264_PRESET, "-crf", "15", "-pix_fmt", "yuv420p", "-f", "mp4", path]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for f in itertools.chain([first], it):
                if ph or pw:
                    f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
                proc.stdin.write(np.ascontiguousarray(f, np.uint8).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: its exit status and message say why
        except BaseException:
            proc.kill()
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise RuntimeError(f"ffmpeg failed (exit {rc}): {err.read().decode(errors='replace').strip()[-500:]}")


def _aist_dict(root_pos, rotations):
    root_pos = np.asarray(root_pos, dtype=np.float32)
    rot = np.asarray(rotations, dtype=np.float32)
    if root_pos.ndim != 2 or root_pos.shape[1] != 3 or rot.shape != (len(root_pos), 24, 3, 3):
        raise ValueError(f"expected root_pos (T, 3) and rotations (T, 24, 3, 3), got {root_pos.shape}, {rot.shape}")
    aa = sk.matrix_to_axis_angle(rot).reshape(len(rot), 72)
    return dict(smpl_poses=aa.astype(np.float32), smpl_trans=root_pos, smpl_scaling=np.array([1.0], np.float32))


def save_npz(path, root_pos, rotations, **extra) -> str:
    """AIST++ layout (smpl_poses (T, 72) axis-angle, smpl_trans (T, 3), smpl_scaling [1.0]) + extra arrays, .npz."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"save_npz: path must end with .npz, got {path!r}")
    data = _aist_dict(root_pos, rotations)
    data.update({k: np.asarray(v) for k, v in extra.items()})
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **data)
    return path


def save_pkl(path, root_pos, rotations, **extra) -> str:
    """Same layout as ``save_npz`` as an AIST++-style pickle (readable by ``aist.AISTDataset``)."""
    path = os.fspath(path)
    if not path.endswith(".pkl"):
        raise ValueError(f"save_pkl: path must end with .pkl, got {path!r}")
    data = _aist_dict(root_pos, rotations)
    data.update(extra)
    with atomic_path(path, suffix=".pkl") as tmp, open(tmp, "wb") as f:
        pickle.dump(data, f)
    return path
