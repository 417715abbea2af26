"""Atomic file output: write to a temp file in the destination folder, then rename; nothing half-written on error."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", prefix: str | None = None) -> Iterator[str]:
    """Yield a temp path next to `path`; on success it is renamed onto `path` with the usual 0666 & ~umask mode
    (mkstemp's 0600 would otherwise leak), on any error it is removed.

    `suffix` (and `prefix`, default mkstemp's "tmp") name the temp file: pass the real extension where a library picks
    the format from it (PIL, torchvision, matplotlib, np.savez which otherwise appends ".npz")."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=suffix, prefix=prefix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `path` to fill; when the block succeeds it is moved onto `path` (an existing folder
    there is replaced only then), on any error it is removed and `path` is left as it was."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, suffix: str = ".tmp") -> None:
    with atomic_path(path, suffix) as tmp, open(tmp, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, suffix: str = ".tmp") -> None:
    with atomic_path(path, suffix) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, suffix: str = ".tmp", newline: bool = True,
                      **json_kwargs) -> None:
    """json.dumps(obj, indent=2, **json_kwargs) (+ "\\n" unless newline=False), written atomically.
    Pass indent=None for json.dump's compact default."""
    json_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(obj, **json_kwargs) + ("\n" if newline else ""), suffix)


MAX_IMAGE_PIXELS = 4096 * 4096  # input images larger than this are refused before decoding


def open_image(path: str | os.PathLike, what: str = "image", max_pixels: int = MAX_IMAGE_PIXELS,
               accepted: str = "a readable image file (.png, .jpg, .jpeg, .webp, .bmp)"):
    """Open a user-given image safely: its size is read from the header and checked *before* any decoding (no
    decompression bombs), and every failure (missing, not an image, truncated, too large) is a ValueError that says
    what is wrong and what is accepted. Returns a loaded PIL image (the file is closed)."""
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path)
    try:
        with Image.open(name) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(f"{what} {name!r} is {w}×{h} pixels, over the limit of {max_pixels} pixels "
                                 f"(e.g. 4096×4096); scale it down first")
            im.load()
            return im.copy()
    except ValueError:
        raise
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as e:
        raise ValueError(f"cannot read {what} {name!r}: {e}; accepted: {accepted}") from None
