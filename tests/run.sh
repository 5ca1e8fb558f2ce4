#!/usr/bin/env bash
# The whole test suite on a fresh machine: builds .venv with a real ComfyUI
# (tests/setup_env.sh, idempotent), prints the versions it runs with, then runs pytest.
# Extra arguments go to pytest. -P: the checkout never goes on sys.path, where its kernels/
# would shadow Hugging Face's `kernels` package (tests/conftest.py passes this on to child processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup_env.sh
.venv/bin/python -P tests/print_versions.py
# The inner loop (-m "not server and not browser") runs on two processes (pytest-xdist): its tests
# are single-threaded and share nothing. Tests that start ComfyUI servers or Chromium run on one.
workers=()
if [[ " $* " == *"not server and not browser"* && " $* " != *" -n "* ]]; then
  workers=(-n 2)
fi
exec .venv/bin/python -P -m pytest -q --durations=10 "${workers[@]}" tests "$@"
