#!/usr/bin/env bash
# The whole test suite on a fresh machine: builds .venv with a real ComfyUI
# (tests/setup_env.sh, idempotent), prints the versions it runs with, then runs pytest.
# Extra arguments go to pytest. -P: the checkout never goes on sys.path, where its kernels/
# would shadow Hugging Face's `kernels` package (tests/conftest.py passes this on to child processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup_env.sh
.venv/bin/python -P tests/print_versions.py
exec .venv/bin/python -P -m pytest -q --durations=10 tests "$@"
