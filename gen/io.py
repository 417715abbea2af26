"""Atomic file output: write to a temp file in the destination folder, then rename; nothing half-written on error."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temp path next to `path`; on success it is renamed onto `path` with the usual 0666 & ~umask mode
    (mkstemp's 0600 would otherwise leak), on any error it is removed."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=suffix)
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


def atomic_write_text(path: str | os.PathLike, text: str, suffix: str = ".tmp") -> None:
    with atomic_path(path, suffix) as tmp, open(tmp, "w") as f:
        f.write(text)
