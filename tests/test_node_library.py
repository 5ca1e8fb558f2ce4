"""How the pack shows in ComfyUI's node library and in the registry: help pages, advanced inputs,
search aliases, registry metadata."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import requests

from conftest import REPO
from make_node_docs import DOCS, pack_nodes, render
from text2cinemagraph.nodes.registry import NODE_CLASS_MAPPINGS

ALIASES = {"cinemagraph", "seamless loop", "animate water", "loop video"}
# Inputs that tune a stage rather than choose what it does: collapsed under "advanced" in the editor.
TUNING = {
    "AttentionInjectingSampler": {"attention_injection", "residual_injection", "negative_schedule"},
    "AttentionClusterMask": {"clusters", "overlap", "erosion"},
    "FlowPredictor": {"learned_clamp", "hint_scale"},
    "MotionBrush": {"learned_clamp"},
    "LoopVideoWriter": {"loop_count", "repeat_cycles", "quality"},
    "ODISESegment": {"threshold"},
}


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.get_json("/object_info")


def inputs_of(info: dict) -> dict:
    return {**info["input"]["required"], **info["input"].get("optional", {})}


def test_every_node_of_the_pack_is_served(object_info):
    assert pack_nodes(object_info) == sorted(NODE_CLASS_MAPPINGS)


def test_help_pages_are_current_and_served_where_the_editor_looks(comfy_server, object_info):
    for name in pack_nodes(object_info):
        info = object_info[name]
        page = DOCS / f"{name}.md"
        assert page.is_file() and page.read_text() == render(info), f"rerun tests/make_node_docs.py ({name})"
        # Frontends 1.32 and 1.58: /extensions/<python_module without "custom_nodes.">/docs/<node>.md
        pack = info["python_module"].split(".", 1)[1]
        served = requests.get(f"{comfy_server.url}/extensions/{pack}/docs/{name}.md", timeout=30)
        assert served.status_code == 200 and served.text == page.read_text()


def test_tuning_inputs_are_advanced_and_the_rest_are_not(object_info):
    for name in pack_nodes(object_info):
        advanced = {i for i, spec in inputs_of(object_info[name]).items() if len(spec) > 1 and spec[1].get("advanced")}
        assert advanced == TUNING.get(name, set()), name


def test_search_aliases_cover_the_words_people_search_with(object_info):
    declared = {name: getattr(cls, "SEARCH_ALIASES", []) for name, cls in NODE_CLASS_MAPPINGS.items()}
    assert ALIASES <= set().union(*declared.values())
    assert all("cinemagraph" in aliases for name, aliases in declared.items() if aliases)
    for name, aliases in declared.items():
        if "search_aliases" in object_info[name]:  # ComfyUI 0.3.75 does not send them; newer ones do
            assert object_info[name]["search_aliases"] == aliases


def test_registry_metadata():
    project = tomllib.loads(Path(REPO, "pyproject.toml").read_text())
    dependencies = " ".join(project["project"]["dependencies"]).lower()
    assert "torch" not in dependencies  # ComfyUI's own torch must never be replaced
    icon = project["tool"]["comfy"]["Icon"]
    assert icon.startswith("https://") and icon.endswith("/web/icon.png") and Path(REPO, "web", "icon.png").is_file()
    lines = Path(REPO, ".comfyignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert {"tests/", ".ci/", "*.pth", "*.safetensors"} <= set(ignored)
    assert not any(line.startswith(("workflows", "web", "nodes")) for line in ignored)
