#!/usr/bin/env bash
# Install the dance task's external data:
#   - FluidSynth + the FluidR3 General MIDI soundfont (Debian fluidsynth, fluid-soundfont-gm): training music is
#     procedural MIDI rendered with real instrument samples (tasks/dance/midi.py);
#   - the held-out real recordings: game soundtracks unpacked from Debian packages into data/cache/dance/realmusic/
#     (apt-get download + dpkg-deb -x; nothing of them is installed, trained or tuned on; see data/dance/README.md);
#   - the tuning recordings (Debian asc-music) into data/cache/dance/tunemusic/, the same way.
#
# Idempotent and safe to re-run; a quick no-op when everything is present.
# Run as root from the repository root:  bash data/dance/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REAL_DIR="${ROOT}/data/cache/dance/realmusic"
# Debian 12 (bookworm) packages holding the held-out recordings (none of the music the developers' guide reserves)
REAL_PKGS=(a7xpg-data torus-trooper-data frozen-bubble-data abe-data pangzero)
# the tuning set (sampling defaults are chosen on it, never on the held-out set): another composer's soundtrack
TUNE_DIR="${ROOT}/data/cache/dance/tunemusic"
TUNE_PKGS=(asc-music)

log() { echo "[dance-setup] $*"; }

# --- FluidSynth + General MIDI soundfont -----------------------------------------
source "${ROOT}/data/debian_packages.sh"
ensure_debian_packages fluidsynth fluid-soundfont-gm

# --- recordings unpacked from Debian packages into the cache (never installed) -------------
# unpack_music DIR PKG...: the packages' .ogg/.mp3 files (> 300 kB) into DIR, once (a stamp names the packages)
unpack_music() {
  local dir="$1"; shift
  local pkgs=("$@") stamp="$dir/.packages" tmp deb
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then
    log "recordings present in ${dir}"
    return
  fi
  mkdir -p "${ROOT}/data/cache/dance"
  tmp="$(mktemp -d "${ROOT}/data/cache/dance/.real.XXXXXX")"
  log "fetching ${pkgs[*]} (apt-get download; unpacked into the cache only)"
  (cd "$tmp" && apt-get download -qq "${pkgs[@]}" 2>/dev/null) \
    || { apt-get update -qq; (cd "$tmp" && apt-get download -qq "${pkgs[@]}"); }
  mkdir -p "$tmp/x" "$tmp/out"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  find "$tmp/x" -type f \( -name '*.ogg' -o -name '*.mp3' \) -size +300k -exec cp {} "$tmp/out/" \;
  echo "${pkgs[*]}" > "$tmp/out/.packages"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
  rm -rf "$tmp"
  log "recordings: $(ls "$dir" | wc -l) files in ${dir}"
}

unpack_music "$REAL_DIR" "${REAL_PKGS[@]}"     # held-out: evaluation only (tasks/dance/realset.py)
unpack_music "$TUNE_DIR" "${TUNE_PKGS[@]}"     # tuning only (tasks/dance/tune.py)

# --- librosa's numba kernels, compiled once into their on-disk cache ------------------------------------------------
# (librosa caches its @jit / @guvectorize kernels in site-packages; two processes compiling the same kernel at once
# — a training run and the tests started together on a fresh set-up — can leave a torn cache file that segfaults every
# later load in numba's gufunc call. One process compiles them here, before anything runs concurrently.)
PY="${ROOT}/.venv/bin/python"
if [ -x "$PY" ]; then
  (cd "$ROOT" && "$PY" -c "
import numpy as np, librosa
from tasks.dance.audio import audio_features, SR
t = np.arange(4 * SR) / SR
y = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
audio_features(y, SR, 'warm-up')
librosa.onset.onset_detect(y=y, sr=SR)
") && log "librosa's numba kernels compiled (cache warm)"
fi
