#!/usr/bin/env bash
# The README's test command: install (with the dev and bench extras), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh dev,bench
exec .venv/bin/python -m pytest -q "$@"
