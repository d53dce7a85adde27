#!/usr/bin/env bash
# The main job: a real multi-agent demo. Needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh local
exec .venv/bin/agents demo "$@"
