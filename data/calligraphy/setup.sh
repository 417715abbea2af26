#!/usr/bin/env bash
# Install the calligraphy task's external data: Debian font packages, the
# pinned hanzi-writer-data npm package (stroke medians) and the pinned
# @fontsource CJK font packages (merged into one TTF each under data/cache/fonts/).
# The fonts the developers' guide reserves for independent checks are never installed here.
#
# Idempotent and safe to re-run; a quick no-op when everything is present.
# Run as root from the repository root:  bash data/calligraphy/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${ROOT}/data/cache"
HWD_VERSION="2.0.1"
HWD_DIR="${CACHE}/hanzi-writer-data"

# All of these exist in Debian 12 (bookworm); checked with apt-cache policy.
FONT_PKGS=(
  fonts-arphic-ukai
  fonts-cwtex-kai
  fonts-cns11643-kai
  fonts-lxgw-wenkai
  fonts-aoyagi-kouzan-t
  fonts-aoyagi-soseki
  fonts-kouzan-mouhitsu
  fonts-noto-cjk
  fonts-arphic-uming
  fonts-arphic-bkai00mp
  fonts-arphic-bsmi00lp
  fonts-arphic-gbsn00lp
  fonts-cwtex-ming
  fonts-cwtex-fs
  fonts-cwtex-heib
  fonts-cwtex-yen
  fonts-cns11643-sung
  fonts-ipafont-mincho
  fonts-ipafont-gothic
  fonts-hanazono
  fonts-horai-umefont
  fonts-sawarabi-mincho
  fonts-sawarabi-gothic
  fonts-motoya-l-cedar
  fonts-motoya-l-maruberi
  fonts-oradano-mincho-gsrr
  fonts-babelstone-han
  fonts-wqy-zenhei
  fonts-wqy-microhei
  fonts-smiley-sans
  fonts-morisawa-bizud-gothic
  fonts-morisawa-bizud-mincho
  fonts-dotgothic16
)

log() { echo "[calligraphy-setup] $*"; }

# --- fonts ------------------------------------------------------------------
source "${ROOT}/data/debian_packages.sh"
ensure_debian_packages "${FONT_PKGS[@]}"
if [ -n "$DEBIAN_INSTALLED" ] && command -v fc-cache >/dev/null 2>&1; then fc-cache -f >/dev/null 2>&1 || true; fi

# --- hanzi-writer-data (npm, pinned) -----------------------------------------
stamp="${HWD_DIR}/.version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$HWD_VERSION" ] && [ -f "${HWD_DIR}/永.json" ]; then
  log "hanzi-writer-data@${HWD_VERSION} present"
else
  if ! command -v npm >/dev/null 2>&1; then
    log "npm missing: installing Debian's npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
  fi
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "${CACHE}/.hwd.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching hanzi-writer-data@${HWD_VERSION}"
  (cd "$tmp" && npm pack --silent "hanzi-writer-data@${HWD_VERSION}" >/dev/null)
  tgz="$(ls "$tmp"/hanzi-writer-data-*.tgz)"
  tar -xzf "$tgz" -C "$tmp"
  # npm tarballs unpack into package/
  echo "$HWD_VERSION" > "$tmp/package/.version"
  rm -rf "$HWD_DIR"
  mv "$tmp/package" "$HWD_DIR"
  # the package keeps one <char>.json per character at its top level
  n=$(find "$HWD_DIR" -maxdepth 1 -name '*.json' ! -name package.json | wc -l)
  log "hanzi-writer-data@${HWD_VERSION}: ${n} character files in ${HWD_DIR}"
fi

# --- @fontsource CJK fonts (npm, pinned in tasks/calligraphy/fontsource.py) ---
PY="${ROOT}/.venv/bin/python"
[ -x "$PY" ] || PY="python3"
(cd "$ROOT" && "$PY" -m tasks.calligraphy.fontsource)
