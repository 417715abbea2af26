#!/usr/bin/env bash
# Install the dance task's external data:
#   - FluidSynth + the FluidR3 General MIDI soundfont (Debian fluidsynth, fluid-soundfont-gm): training music is
#     procedural MIDI rendered with real instrument samples (tasks/dance/midi.py);
#   - the held-out real recordings: game soundtracks unpacked from Debian packages into data/cache/dance/realmusic/
#     (apt-get download + dpkg-deb -x; nothing of them is installed, trained or tuned on; see data/dance/README.md).
#
# Idempotent and safe to re-run; a quick no-op when everything is present.
# Run as root from the repository root:  bash data/dance/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REAL_DIR="${ROOT}/data/cache/dance/realmusic"
# Debian 12 (bookworm) packages holding the held-out recordings (none of the music the developers' guide reserves)
REAL_PKGS=(a7xpg-data torus-trooper-data frozen-bubble-data abe-data pangzero)

log() { echo "[dance-setup] $*"; }

# --- FluidSynth + General MIDI soundfont -----------------------------------------
source "${ROOT}/data/debian_packages.sh"
ensure_debian_packages fluidsynth fluid-soundfont-gm

# --- held-out real recordings (unpacked, not installed) ----------------------------
stamp="${REAL_DIR}/.packages"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${REAL_PKGS[*]}" ]; then
  log "real recordings present in ${REAL_DIR}"
else
  mkdir -p "${ROOT}/data/cache/dance"
  tmp="$(mktemp -d "${ROOT}/data/cache/dance/.real.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching ${REAL_PKGS[*]} (apt-get download; unpacked into the cache only)"
  (cd "$tmp" && apt-get download -qq "${REAL_PKGS[@]}" 2>/dev/null) \
    || { apt-get update -qq; (cd "$tmp" && apt-get download -qq "${REAL_PKGS[@]}"); }
  mkdir -p "$tmp/x"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  mkdir -p "$tmp/out"
  find "$tmp/x" -type f \( -name '*.ogg' -o -name '*.mp3' \) -size +300k -exec cp {} "$tmp/out/" \;
  echo "${REAL_PKGS[*]}" > "$tmp/out/.packages"
  rm -rf "$REAL_DIR"
  mv "$tmp/out" "$REAL_DIR"
  log "real recordings: $(ls "$REAL_DIR" | wc -l) files in ${REAL_DIR}"
fi
