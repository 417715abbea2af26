"""Fontsource (npm) CJK fonts: fetch the pinned packages and merge their unicode-range subsets into one TTF each.

    python -m tasks.calligraphy.fontsource            # fetch missing packages (npm pack) and merge → data/cache/fonts/
    python -m tasks.calligraphy.fontsource --list     # the pinned packages and where their merged font goes

Fontsource ships a Google Fonts CJK family as ~100 unicode-range subsets (``files/<id>-<n>-<weight>-normal.woff``,
plus named subsets such as ``chinese-simplified``). We read the zlib ``.woff`` files (no brotli needed) with fontTools
and merge them with ``fontTools.merge.Merger`` (the first subset that maps a code point wins; the vertical tables are
dropped), then save a plain TrueType file. Packages and merged fonts live in the git-ignored ``data/cache/``.
``data/calligraphy/setup.sh`` runs this after the virtual environment exists.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / "data" / "cache"
PACKAGE_DIR = CACHE / "fontsource"
FONT_DIR = CACHE / "fonts"

# package id → pinned version (all SIL OFL 1.1; versions checked with `npm view @fontsource/<id> version license`)
PACKAGES = {
    "ma-shan-zheng": "5.3.1",
    "zhi-mang-xing": "5.3.0",
    "liu-jian-mao-cao": "5.3.0",
    "long-cang": "5.3.0",
    "zcool-xiaowei": "5.3.0",
    "zcool-kuaile": "5.3.0",
    "zcool-qingke-huangyou": "5.3.0",
    "yuji-syuku": "5.3.0",
    "yuji-boku": "5.3.0",
    "yuji-mai": "5.3.0",
    "zen-kurenaido": "5.3.0",
    "yusei-magic": "5.3.0",
    "kaisei-decol": "5.3.0",
    "zen-antique": "5.3.0",
    "hina-mincho": "5.2.8",
    "dela-gothic-one": "5.3.0",
    "rampart-one": "5.3.0",
    "potta-one": "5.3.0",
    "yomogi": "5.3.0",
    "huninn": "5.3.0",
    "cactus-classical-serif": "5.3.0",
    "kiwi-maru": "5.3.0",
    "hachi-maru-pop": "5.3.0",
    "mochiy-pop-one": "5.3.0",
    "chiron-hei-hk": "5.3.1",
    "zen-maru-gothic": "5.3.0",
    "stick": "5.3.0",
}


def merged_path(pkg: str) -> Path:
    """Where the merged TTF of one package goes (the font_path of its style)."""
    return FONT_DIR / f"{pkg}.ttf"


def _subset_files(pkg_dir: Path, pkg: str) -> list[Path]:
    """The .woff subsets of the lightest regular weight ≥ 400 (400 when present), numbered subsets first."""
    files = sorted((pkg_dir / "files").glob(f"{pkg}-*-normal.woff"))
    pat = re.compile(rf"^{re.escape(pkg)}-(.+)-(\d+)-normal\.woff$")
    by_weight: dict[int, list[tuple[str, Path]]] = {}
    for f in files:
        m = pat.match(f.name)
        if m and m.group(1) not in ("latin", "latin-ext", "vietnamese", "cyrillic", "cyrillic-ext", "greek"):
            by_weight.setdefault(int(m.group(2)), []).append((m.group(1), f))
    if not by_weight:
        raise FileNotFoundError(f"no CJK .woff subsets in {pkg_dir / 'files'}")
    weight = 400 if 400 in by_weight else min(by_weight, key=lambda w: (w < 400, abs(w - 400)))
    subsets = by_weight[weight]
    ranges = _subset_ranges(pkg_dir)
    if ranges:  # only the subsets that hold BMP ideographs (the rest can overflow a 16-bit glyph count when merged)
        subsets = [(k, f) for k, f in subsets if _has_ideographs(ranges.get(k, ""))]
    key = lambda s: (0, int(s[0])) if s[0].isdigit() else (1, 0)
    return [f for _, f in sorted(subsets, key=lambda s: (key(s), s[0]))]


def _subset_ranges(pkg_dir: Path) -> dict:
    """unicode.json: {"[0]": "U+4e00-4e3f,...", "latin": ...} → {"0": ..., "latin": ...}."""
    import json

    f = pkg_dir / "unicode.json"
    if not f.is_file():
        return {}
    return {k.strip("[]"): v for k, v in json.loads(f.read_text()).items()}


def _has_ideographs(ranges: str, lo: int = 0x4E00, hi: int = 0x9FFF) -> bool:
    for part in ranges.split(","):
        part = part.strip().removeprefix("U+").removeprefix("u+")
        if not part:
            continue
        a, _, b = part.partition("-")
        try:
            a_, b_ = int(a, 16), int(b or a, 16)
        except ValueError:
            continue
        if a_ <= hi and b_ >= lo:
            return True
    return False


def merge_package(pkg_dir: Path, pkg: str, out: Path) -> int:
    """Merge one unpacked package's subsets into `out` (atomic). Returns the number of mapped code points."""
    from fontTools.merge import Merger, Options

    files = _subset_files(pkg_dir, pkg)
    font = Merger(options=Options(drop_tables=["vhea", "vmtx", "VORG", "GSUB", "GPOS"])).merge([str(f) for f in files])
    font.flavor = None
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        font.save(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(font.getBestCmap() or {})


def fetch_package(pkg: str, version: str) -> Path:
    """`npm pack @fontsource/<pkg>@<version>` unpacked into data/cache/fontsource/<pkg>/ (kept when the version matches)."""
    dest = PACKAGE_DIR / pkg
    stamp = dest / ".version"
    if stamp.is_file() and stamp.read_text().strip() == version:
        return dest
    PACKAGE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=PACKAGE_DIR, prefix=f".{pkg}.") as tmp:
        subprocess.run(["npm", "pack", "--silent", f"@fontsource/{pkg}@{version}"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as t:
            t.extractall(tmp, filter="data")
        (Path(tmp) / "package" / ".version").write_text(version + "\n")
        # keep only what we read: the .woff subsets, the licence and the metadata
        for f in (Path(tmp) / "package" / "files").glob("*.woff2"):
            f.unlink()
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(Path(tmp) / "package", dest)
    return dest


def ensure_all(verbose: bool = True) -> dict:
    """Fetch and merge every pinned package that is missing; returns {pkg: merged font path}."""
    done = {}
    for pkg, version in PACKAGES.items():
        out = merged_path(pkg)
        vstamp = out.with_suffix(".version")
        if out.is_file() and vstamp.is_file() and vstamp.read_text().strip() == version:
            done[pkg] = out
            continue
        d = fetch_package(pkg, version)
        n = merge_package(d, pkg, out)
        vstamp.write_text(version + "\n")
        if verbose:
            print(f"[calligraphy-setup] @fontsource/{pkg}@{version}: {n} code points → {out}", flush=True)
        done[pkg] = out
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tasks.calligraphy.fontsource", description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print the pinned packages and exit")
    args = p.parse_args(argv)
    if args.list:
        for pkg, v in PACKAGES.items():
            print(f"@fontsource/{pkg}@{v}\t{merged_path(pkg)}")
        return 0
    ensure_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
