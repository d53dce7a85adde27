#!/usr/bin/env bash
# The main job: a real multi-agent demo, offline, on the embedded local model (no API key needed).
# With OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server) set, it uses that endpoint instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/agents demo "$@"
