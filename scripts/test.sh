#!/usr/bin/env bash
# The whole check, on a fresh machine: set-up from uv.lock, then lint (ruff), format check, types (mypy), pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k queue -x). Any failing step fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "test: ruff check" >&2
.venv/bin/ruff check --quiet .
echo "test: ruff format --check" >&2
.venv/bin/ruff format --check --quiet .
echo "test: mypy" >&2
.venv/bin/mypy
echo "test: pytest" >&2
# one pytest worker per CPU (pytest-xdist): most tests wait on real subprocesses and a real HTTP server
exec .venv/bin/python -m pytest -n auto "$@"
