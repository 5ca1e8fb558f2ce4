"""Prints what a test run runs with: the packages that move most, ComfyUI, its frontends, then ``pip freeze``.

``tests/run.sh`` calls it first, so every CI log says which versions passed or failed.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMFY = REPO / ".venv" / "comfyui"
WATCHED = ["torch", "torchvision", "transformers", "diffusers", "kernels", "huggingface_hub", "kornia",
           "numpy", "scipy", "av", "pillow", "comfyui_frontend_package", "playwright", "pytest"]


def installed(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def comfyui_version() -> str:
    path = COMFY / "comfyui_version.py"
    found = re.search(r'__version__\s*=\s*"([^"]+)"', path.read_text(errors="replace")) if path.is_file() else None
    return found.group(1) if found else "not installed"


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"ComfyUI {comfyui_version()} ({COMFY})")
    frontends = sorted(path.name for path in (REPO / ".venv" / "frontends").glob("*"))
    print(f"newest frontend served beside it: {', '.join(frontends) or 'none'}")
    for name in WATCHED:
        print(f"{name} {installed(name)}")
    print("--- pip freeze", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], check=False)
    print("---", flush=True)


if __name__ == "__main__":
    main()
