# Helpers for the newest-Home Assistant test environment, shared by scripts/setup_ha_newest and
# scripts/ha_newest_exec. Source it after _lib.sh; do not run it.
#
# Two routes, chosen by scripts/setup_ha_newest and recorded in $HA_NEWEST_STATE:
#   venv  a Python >= $HA_NEWEST_MIN_PYTHON on this machine -> $VENVS/ha-$HA_NEWEST
#   root  otherwise: a Debian sid root in $HA_NEWEST_ROOT (python3.14 from Debian) with the venv
#         inside it at $HA_NEWEST_ROOT_VENVS/ha-$HA_NEWEST. Commands run there through chroot in a
#         private mount namespace, with the checkout mounted at its own path, so every mount is
#         gone when the command ends, whatever way it ends.
# shellcheck shell=bash

HA_NEWEST=2026.10
HA_NEWEST_MIN_PYTHON=3.14.2
HA_NEWEST_REQS="$REPO_ROOT/requirements/ha-$HA_NEWEST.txt"
HA_NEWEST_STATE="$VENVS/ha-$HA_NEWEST.route"
ROOTS="${HSAI_ROOTS:-$REPO_ROOT/.roots}"
HA_NEWEST_ROOT="$ROOTS/ha-$HA_NEWEST"
HA_NEWEST_LOCK="$ROOTS/ha-$HA_NEWEST.lock"
HA_NEWEST_ROOT_VENVS=/opt/venvs
HA_NEWEST_SUITE=sid
# Marker inside the root: commands that find it know they already run in there.
HA_NEWEST_MARKER=/etc/home-security-ai-root
# Debian packages of the root. "a|b" takes the first name the archive knows (library renames).
HA_NEWEST_ROOT_BASE="python3.14,python3.14-venv,ca-certificates"
HA_NEWEST_ROOT_PACKAGES=(
  # building the few Home Assistant dependencies that ship no wheel for the newest Python
  gcc g++ python3.14-dev
  # Home Assistant at run time
  tzdata libturbojpeg0
  # the sidecar's interpreter (from the host, mounted) and OpenCV/torch wheels load these
  "libssl3t64|libssl3" "libffi8" "libsqlite3-0" "libbz2-1.0" "liblzma5" "zlib1g" "libuuid1"
  "libreadline8t64|libreadline8" "libncursesw6" "libexpat1" "libgomp1"
  "libgl1" "libglib2.0-0t64|libglib2.0-0" "libsm6" "libice6" "libx11-6" "libxext6" "libxrender1"
  "libfontconfig1" "libfreetype6"
)

# ha_newest_inputs: a hash of what the environment is made from, for a quick staleness check.
ha_newest_inputs() {
  { cat "$HA_NEWEST_REQS"; echo "$HA_NEWEST_SUITE $HA_NEWEST_ROOT_BASE ${HA_NEWEST_ROOT_PACKAGES[*]}"; } \
    | sha256sum | cut -d' ' -f1
}

# ha_newest_state KEY: a value recorded by the last successful set-up (empty when none).
ha_newest_state() {
  [ -f "$HA_NEWEST_STATE" ] || return 0
  sed -n "s/^$1=//p" "$HA_NEWEST_STATE" | head -n1
}

# ha_newest_python: a Python >= HA_NEWEST_MIN_PYTHON on this machine ($HSAI_HA_NEWEST_PYTHON, then
# python3.14 from PATH or pyenv).
ha_newest_python() {
  local python
  python="${HSAI_HA_NEWEST_PYTHON:-$(find_python 3.14)}" || return 1
  [ -n "$python" ] || return 1
  "$python" -c "import sys; sys.exit(sys.version_info[:3] < tuple(map(int, '$HA_NEWEST_MIN_PYTHON'.split('.'))))" \
    2>/dev/null || return 1
  command -v "$python"
}

# debian_mirror: the Debian archive this machine's own apt sources name ($HSAI_DEBIAN_MIRROR wins).
debian_mirror() {
  if [ -n "${HSAI_DEBIAN_MIRROR:-}" ]; then echo "$HSAI_DEBIAN_MIRROR"; return 0; fi
  local codename files=() f
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 1
  # One-line and deb822 entries alike; prefer the entry for this release's main suite, then any
  # entry whose path ends in /debian.
  awk -v codename="$codename" '
    function consider(uri, suites,   n, i, s) {
      n = split(suites, s, /[ \t]+/)
      for (i = 1; i <= n; i++) if (codename != "" && s[i] == codename && !best) best = uri
      if (!fallback && uri ~ /\/debian\/?$/) fallback = uri
    }
    FNR == 1 { flush() }
    /^[ \t]*#/ { next }
    /^deb[ \t]/ {
      line = $0; sub(/\[[^]]*\]/, "", line); split(line, w, /[ \t]+/)
      consider(w[2], w[3]); next
    }
    function flush() { if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "") { split(uris, u, /[ \t]+/); consider(u[1], suites) } types = uris = suites = "" }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "types:" { sub(/^[^:]*:[ \t]*/, ""); types = $0; next }
    tolower($1) == "uris:" { sub(/^[^:]*:[ \t]*/, ""); uris = $0; next }
    tolower($1) == "suites:" { sub(/^[^:]*:[ \t]*/, ""); suites = $0; next }
    END { flush(); if (best) print best; else if (fallback) print fallback; else exit 1 }
  ' "${files[@]}"
}

# mounts_under DIR: prints the mount points at or below DIR in this mount namespace.
mounts_under() {
  local dir
  dir="$(readlink -f "$1")"
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# remove_root DIR: deletes a root directory, refusing while anything is mounted inside it.
remove_root() {
  [ -e "$1" ] || return 0
  if [ -n "$(mounts_under "$1")" ]; then
    log "refusing to delete $1: something is mounted inside it:"; mounts_under "$1" >&2; return 1
  fi
  rm -rf --one-file-system "$1"
}

# sidecar_prefix: the host directory the sidecar venv's interpreter comes from (the pyenv root for
# a pyenv interpreter), so that it can be mounted at the same path inside the root.
sidecar_prefix() {
  local python="$VENVS/sidecar/bin/python" real
  [ -e "$python" ] || return 0
  real="$(readlink -f "$python")"
  if [[ "$real" == */versions/*/bin/* ]]; then
    echo "${real%%/versions/*}"
  elif command -v pyenv >/dev/null 2>&1; then
    pyenv root
  fi
}

# in_root WORKDIR CMD...: runs CMD inside the root, in WORKDIR, in a private mount namespace, then
# replaces this process with it (the exit status is CMD's). The environment passes through except
# for host-only settings (pip configuration, PATH, library paths); set IN_ROOT_VENV to put a venv
# of the root first on PATH.
in_root() {
  local workdir="$1"; shift
  local binds=("$REPO_ROOT") prefix extra var
  # The sidecar venv (when kept outside the checkout) and its interpreter's installation.
  case "$VENVS/" in "$REPO_ROOT"/*) ;; *) [ -d "$VENVS" ] && binds+=("$VENVS") ;; esac
  prefix="$(sidecar_prefix)"
  local ro_binds=()
  [ -n "$prefix" ] && [ -d "$prefix" ] && ro_binds+=("$prefix")
  # The embedded detector's model, where the set-up keeps it: the sidecars the tests start in
  # the root then detect with the same model as on the host.
  local models="${XDG_CACHE_HOME:-$HOME/.cache}/home-security-ai/models"
  [ -d "$models" ] && ro_binds+=("$(readlink -f "$models")")
  # HSAI_NEWEST_BIND: more host directories (colon-separated) to mount read-only at their path.
  IFS=: read -r -a extra <<< "${HSAI_NEWEST_BIND:-}"
  for var in "${extra[@]}"; do [ -n "$var" ] && ro_binds+=("$(readlink -f "$var")"); done
  for var in $(compgen -e); do
    case "$var" in PIP_*|PYTHONHOME|LD_LIBRARY_PATH|LD_PRELOAD|XDG_CONFIG_DIRS|VIRTUAL_ENV|CONDA_*) unset "$var" ;; esac
  done
  local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  if [ -n "${IN_ROOT_VENV:-}" ]; then
    export VIRTUAL_ENV="$IN_ROOT_VENV"; path="$IN_ROOT_VENV/bin:$path"
  fi
  unset IN_ROOT_VENV
  export IN_ROOT_PATH="$path"
  # shellcheck disable=SC2016
  exec unshare --mount --propagation private -- bash -c '
    set -euo pipefail
    root="$1" workdir="$2" nrw="$3" nro="$4"; shift 4
    rw=("${@:1:$nrw}"); shift "$nrw"
    ro=("${@:1:$nro}"); shift "$nro"
    for dir in "${rw[@]}"; do mkdir -p "$root$dir"; mount --bind "$dir" "$root$dir"; done
    for dir in "${ro[@]}"; do
      mkdir -p "$root$dir"; mount --bind "$dir" "$root$dir"; mount -o remount,bind,ro "$root$dir"
    done
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc" 2>/dev/null || mount --rbind /proc "$root/proc"
    mount --rbind /sys "$root/sys"
    # Name resolution and the trusted CAs follow the host, read-only.
    for f in /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
      [ -f "$f" ] || continue
      [ -f "$root$f" ] && [ ! -L "$root$f" ] || { rm -f "$root$f"; cp "$f" "$root$f"; }
      mount --bind "$(readlink -f "$f")" "$root$f"; mount -o remount,bind,ro "$root$f"
    done
    [ -d "$root${HOME:-/nonexistent}" ] || export HOME=/root
    [ -z "${TMPDIR:-}" ] || [ -d "$root$TMPDIR" ] || unset TMPDIR
    export PATH="$IN_ROOT_PATH"; unset IN_ROOT_PATH
    exec chroot "$root" /bin/bash -c '\''cd "$1" && shift && exec "$@"'\'' in-root "$workdir" "$@"
  ' in_root "$HA_NEWEST_ROOT" "$workdir" "${#binds[@]}" "${#ro_binds[@]}" "${binds[@]}" "${ro_binds[@]}" "$@"
}
