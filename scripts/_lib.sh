# Shared helpers for the set-up scripts. Source it; do not run it.
# shellcheck shell=bash
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${HSAI_VENVS:-$REPO_ROOT/.venvs}"

log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }

# find_python MAJOR.MINOR: print a python of that version (exact minor), from $PATH or pyenv.
find_python() {
  local want="$1" candidate
  for candidate in "python$want" "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/$want"*/bin/python | tr ' ' '\n' | sort -V | tail -n1)"; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# ensure_venv NAME PYTHON STAMP_INPUT... -- PIP_INSTALL_ARGS... [--then PIP_INSTALL_ARGS...]
# Creates $VENVS/NAME once and (re)installs only when the stamp inputs changed. Each `--then`
# starts another pip install run (e.g. one with --no-deps).
ensure_venv() {
  local name="$1" python="$2"; shift 2
  local inputs=() venv="$VENVS/$name"
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done
  shift
  local stamp
  stamp="$( { "$python" -V; cat "${inputs[@]}"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1)"
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ]; then
    log "$name environment is up to date ($venv)"
    return 0
  fi
  [ -x "$venv/bin/python" ] || { log "creating $name environment with $("$python" -V)"; "$python" -m venv "$venv"; }
  log "installing $name requirements (first run takes a few minutes)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
  local group=()
  for arg in "$@" --then; do
    if [ "$arg" = "--then" ]; then
      [ "${#group[@]}" -eq 0 ] || "$venv/bin/python" -m pip install --quiet "${group[@]}" 2> >(grep -v "^WARNING: Location" >&2)
      group=()
    else
      group+=("$arg")
    fi
  done
  echo "$stamp" > "$venv/.stamp"
}
