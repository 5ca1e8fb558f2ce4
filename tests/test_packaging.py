"""Every third-party module the pack imports is declared in pyproject.toml.

A fresh ``pip install -e .`` (the README's quick start) must bring everything the
CLI needs; inside ComfyUI, ``requirements.txt`` must list the same.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO as _REPO

REPO = Path(_REPO)

# Provided by the ComfyUI process the pack runs in, never installed by us.
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "folder_paths", "latent_preview",
                   "nodes", "server", "execution", "aiohttp"}  # aiohttp: the web framework of ComfyUI's server
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


def _modules_loaded_by(statement: str) -> list[str]:
    """The pack's modules a fresh interpreter has loaded after ``statement``."""
    code = f"{statement}; import sys; print('\\n'.join(sorted(m for m in sys.modules if m.startswith('text2cinemagraph'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_importing_a_stage_loads_no_node():
    stages = sorted(path.stem for path in (REPO / "nodes" / "stages").glob("*.py") if path.stem != "__init__")
    loaded = _modules_loaded_by("; ".join(f"import text2cinemagraph.nodes.stages.{stage}" for stage in stages))
    library = ("text2cinemagraph.nodes.stages", "text2cinemagraph.kernels")
    nodes = [m for m in loaded if m not in ("text2cinemagraph", "text2cinemagraph.nodes") and not m.startswith(library)]
    assert nodes == [], f"importing the stages loaded node modules: {nodes}"
    frames = _modules_loaded_by("import text2cinemagraph.nodes.stages.frames")
    assert "text2cinemagraph.nodes.stages.twin_attention" not in frames and len(frames) < 20, frames


def test_comfyui_still_finds_every_node_through_the_package():
    import text2cinemagraph
    from text2cinemagraph.nodes import registry

    assert text2cinemagraph.NODE_CLASS_MAPPINGS is registry.NODE_CLASS_MAPPINGS
    assert set(text2cinemagraph.NODE_DISPLAY_NAME_MAPPINGS) == set(registry.NODE_CLASS_MAPPINGS)
    assert not hasattr(text2cinemagraph, "comfy_entrypoint")  # newer ComfyUI asks for it; absence is an answer
