"""gen.io: temp file in the destination folder, renamed on success with the umask mode, removed on error."""
import json
import os
import stat

import numpy as np
import pytest

from gen.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_success_renames_with_umask_mode(tmp_path, umask_027):
    dest = tmp_path / "out.txt"
    with atomic_path(dest) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".tmp") and tmp != str(dest)
        assert not dest.exists()
        with open(tmp, "w") as f:
            f.write("hello")
    assert dest.read_text() == "hello"
    assert os.listdir(tmp_path) == ["out.txt"]
    assert _mode(dest) == 0o666 & ~umask_027  # not mkstemp's 0600


def test_replaces_existing_file(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    atomic_write_text(dest, "new")
    assert dest.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_exception_leaves_no_temp_and_no_destination(tmp_path):
    dest = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(dest) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_exception_keeps_existing_destination(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest):
            raise KeyboardInterrupt
    assert dest.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_exception_after_writer_removed_temp(tmp_path):
    """A writer that deleted/moved its temp itself: the original error still reaches the caller."""
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "x.bin") as tmp:
            os.unlink(tmp)
            raise ValueError
    assert os.listdir(tmp_path) == []


def test_suffix_and_prefix_name_the_temp(tmp_path):
    seen = []
    with atomic_path(tmp_path / "a.npz", suffix=".npz", prefix=".a.") as tmp:
        seen.append(os.path.basename(tmp))
        np.savez(tmp, x=np.arange(3))  # np.savez appends ".npz" unless the name already ends with it
    assert seen[0].startswith(".a.") and seen[0].endswith(".npz")
    assert os.listdir(tmp_path) == ["a.npz"]
    with np.load(tmp_path / "a.npz") as f:
        assert f["x"].tolist() == [0, 1, 2]


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "no" / "such" / "f.txt", "x")
    assert os.listdir(tmp_path) == []


def test_write_bytes(tmp_path, umask_027):
    dest = tmp_path / "b.bin"
    atomic_write_bytes(dest, b"\x00\x01\xff")
    assert dest.read_bytes() == b"\x00\x01\xff" and _mode(dest) == 0o640


def test_write_json_formats(tmp_path):
    obj = {"b": [1, 2], "a": "é"}
    p = tmp_path / "r.json"
    atomic_write_json(p, obj)
    assert p.read_text() == json.dumps(obj, indent=2) + "\n"
    atomic_write_json(p, obj, newline=False)
    assert p.read_text() == json.dumps(obj, indent=2)
    atomic_write_json(p, obj, indent=None, newline=False)  # json.dump(obj, f)'s compact default
    assert p.read_text() == json.dumps(obj)
    atomic_write_json(p, obj, ensure_ascii=False, sort_keys=True)
    assert p.read_text(encoding="utf-8") == json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    assert os.listdir(tmp_path) == ["r.json"]


def test_write_json_unserialisable_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "r.json", {"x": object()})
    assert os.listdir(tmp_path) == []
