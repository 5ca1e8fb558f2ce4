#!/usr/bin/env bash
# The whole test suite on a fresh machine: builds .venv with a real ComfyUI
# (tests/setup_env.sh, idempotent), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup_env.sh
exec .venv/bin/python -m pytest -q tests "$@"
