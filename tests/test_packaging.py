"""Every third-party module the pack imports is declared in pyproject.toml.

A fresh ``pip install -e .`` (the README's quick start) must bring everything the
CLI needs; inside ComfyUI, ``requirements.txt`` must list the same.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from conftest import REPO as _REPO

REPO = Path(_REPO)

# Provided by the ComfyUI process the pack runs in, never installed by us.
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "folder_paths", "latent_preview",
                   "nodes", "server", "execution"}
# Optional backends, imported only when their node option is chosen (and said so in their errors).
OPTIONAL_MODULES = {"odise", "detectron2"}
# Modules whose distribution is named otherwise and may not be installed here.
DISTRIBUTIONS = {"cupy": "cupy-cuda12x"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    return _normalise(re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0])


def _pack_sources() -> list:
    folders = [REPO / "nodes", REPO / "kernels"]
    return [REPO / "__main__.py", REPO / "__init__.py"] + [p for f in folders for p in sorted(f.rglob("*.py"))]


def _imported_top_modules() -> set[str]:
    found = set()
    for path in _pack_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - COMFYUI_MODULES - OPTIONAL_MODULES - {"text2cinemagraph"}


def test_every_imported_package_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    declared |= {_requirement_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_top_modules()):
        dists = {_normalise(d) for d in providers.get(module, [DISTRIBUTIONS.get(module, module)])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_requirements_txt_matches_the_core_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    listed = {_requirement_name(line) for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert listed == core
    assert not listed & {"torch", "torchvision", "torchaudio"}, "ComfyUI brings its own torch"
