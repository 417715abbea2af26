# Sourced by the set-up scripts (data/*/setup.sh, apps/setup.sh): one way to install missing Debian packages.
#
#   source "$ROOT/data/debian_packages.sh"
#   ensure_debian_packages pkg1 pkg2 ...   # installs the missing ones (as root, or through sudo); logs with `log`
#
# Sets DEBIAN_INSTALLED to the packages it installed (empty when all were present). Exits 1 when something is
# missing and there is neither root nor sudo.
ensure_debian_packages() {
  local p missing=() sudo=""
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  DEBIAN_INSTALLED=""
  if ((${#missing[@]} == 0)); then
    log "$* present"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "not root and no sudo: cannot install ${missing[*]}"; exit 1; fi
  fi
  log "installing ${missing[*]} (Debian)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  DEBIAN_INSTALLED="${missing[*]}"
}
