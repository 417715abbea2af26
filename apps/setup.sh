#!/usr/bin/env bash
# Install what the web app's browser test (tests/apps/test_web.py) needs from Debian: the chromium browser, driven
# headless by Playwright for Python (the `playwright` package of the test extra). Never `playwright install`: it
# downloads a browser build of its own from outside the package registries.
#
# Idempotent and safe to re-run; a quick no-op when chromium is present. GENSUITE_SKIP_BROWSER=1 skips it (the
# browser test then skips too). Run as root (or with sudo) from anywhere:  bash apps/setup.sh
set -euo pipefail

PKGS=(chromium)  # Debian 12 (bookworm): chromium 156.0.8078.114-1~deb12u1 when this was written

log() { echo "[apps-setup] $*"; }

if [ "${GENSUITE_SKIP_BROWSER:-}" = 1 ]; then
  log "GENSUITE_SKIP_BROWSER=1: not installing ${PKGS[*]}"
  exit 0
fi

source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/data/debian_packages.sh"
ensure_debian_packages "${PKGS[@]}"
if [ ! -x /usr/bin/chromium ]; then
  log "/usr/bin/chromium is missing after the install"; exit 1
fi
log "$(/usr/bin/chromium --version 2>/dev/null | head -1)"
