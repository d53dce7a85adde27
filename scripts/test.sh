#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs everything it needs into .venv, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k queue -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test,local
exec .venv/bin/python -m pytest "$@"
