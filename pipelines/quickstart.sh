#!/usr/bin/env bash
# The README's main command: install, then train -> evaluate -> export -> serve -> query on
# MovieLens-100K with the bundled MiniLM. Extra arguments go to `tfrec-llm run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh
exec .venv/bin/tfrec-llm run --config pipelines/movielens_100k.yaml --json runs/movielens_100k/results.json "$@"
