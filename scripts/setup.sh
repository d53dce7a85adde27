#!/usr/bin/env bash
# Set up .venv/ with exactly the versions locked in uv.lock: the CLI, the local model, tests, lint, benchmarks.
# Idempotent: a second run checks the lock and returns in about a second.
# Needs only python3 (3.11+) with venv and pip; uv itself is installed, pinned, into .tools/uv/.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
uv=.tools/uv/bin/uv
if [ ! -x "$uv" ] || [ "$("$uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION into .tools/uv/" >&2
  python3 -m venv .tools/uv
  .tools/uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# llama-cpp-python builds from source; the portable flags avoid a crash of native builds on these CPUs.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
export UV_PYTHON_DOWNLOADS=never  # use this machine's python3, never fetch one

building=0
if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llama_cpp") is None)' 2>/dev/null; then
  building=1
  echo "setup: installing the locked dependencies; llama-cpp-python compiles from source for the local model:" \
       "about 4-6 minutes on 2 cores the first time (uv caches the wheel, later set-ups take seconds)" >&2
fi

# bytecode compiled once here: every `agents` process (and each of the tests' hundreds) then loads it rather than
# compiling the openai SDK and the rest from source, even where PYTHONDONTWRITEBYTECODE is set
"$uv" sync --locked --all-extras --all-groups --python python3 --quiet --compile-bytecode &
sync=$!
if [ "$building" = 1 ]; then
  ( started=$SECONDS
    while sleep 30; do
      kill -0 "$sync" 2>/dev/null || exit 0
      echo "setup: still installing ($((SECONDS - started)) s)" >&2
    done ) &
  heartbeat=$!
fi
status=0
wait "$sync" || status=$?
[ -n "${heartbeat:-}" ] && kill "$heartbeat" 2>/dev/null || true
[ "$status" = 0 ] || { echo "setup: uv sync failed (exit $status)" >&2; exit "$status"; }
[ "$building" = 0 ] || echo "setup: done; the CLI is .venv/bin/agents (or scripts/agents, or . .venv/bin/activate)" >&2
