"""The bundled workflows in ComfyUI's real graph editor, in headless Chromium, once per tested frontend
(``conftest.editor``: the frontend ComfyUI 0.3.75 pins and the newest one).

Each UI-format workflow is loaded with ``app.loadGraphData``: it must raise nothing, show no
dialog or warning (missing nodes, models or media), register every node type and flag no node;
the editor's own conversion (``app.graphToPrompt``) must equal the API twin and be accepted and
run by the server. Nothing here writes into the repository: ``tests/make_thumbnails.py`` renders
the template thumbnails on request.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import editor_harness as editor_page
from comfy_harness import PINNED_FRONTEND, shrink_for_cpu
from conftest import REPO

WORKFLOWS = Path(REPO, "workflows")
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))


def prompt_differences(editor: dict, shipped: dict) -> list[str]:
    """Readable differences between two API prompts, node by node and input by input."""
    found = [f"node {i} only in the editor" for i in editor.keys() - shipped.keys()]
    found += [f"node {i} only in the API file" for i in shipped.keys() - editor.keys()]
    for node_id in sorted(editor.keys() & shipped.keys()):
        ours, theirs = editor[node_id], shipped[node_id]
        if ours["class_type"] != theirs["class_type"] or ours.get("_meta") != theirs.get("_meta"):
            found.append(f"node {node_id}: class/title {ours['class_type']}/{ours.get('_meta')} "
                         f"vs {theirs['class_type']}/{theirs.get('_meta')}")
        for name in sorted(ours["inputs"].keys() | theirs["inputs"].keys()):
            a, b = ours["inputs"].get(name, "<absent>"), theirs["inputs"].get(name, "<absent>")
            if a != b:
                found.append(f"node {node_id}.{name}: editor {a!r}, API file {b!r}")
    return found


PACK_MODEL_NODES = {"ODISESegment", "FlowPredictor", "SymmetricSplatFrameGen"}


def needs_pack_models(workflow: dict) -> bool:
    """Whether the workflow runs the pack's networks or a segmentation model (active ODISESegment,
    or a learned FlowPredictor / SymmetricSplatFrameGen): files this server does not hold."""
    for node in workflow["nodes"]:
        values = node.get("widgets_values") or []
        if node.get("mode", 0) == 0 and node["type"] in PACK_MODEL_NODES and (node["type"] == "ODISESegment" or (
                node["type"] in ("FlowPredictor", "SymmetricSplatFrameGen") and "learned" in values)):
            return True
    return False


def test_the_server_serves_the_frontend_under_test(editor):
    version, _, page = editor
    assert editor_page.frontend_version(page) == version


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_opens_cleanly_converts_and_runs(editor, path):
    version, server, page = editor
    workflow = json.loads(path.read_text())
    assert editor_page.load(page, workflow) == []
    if not needs_pack_models(workflow):  # newer frontends warn of its absent model files; see below
        assert editor_page.warnings(page) == []

    nodes = editor_page.nodes(page)
    assert sorted(str(n["id"]) for n in nodes) == sorted(str(n["id"]) for n in workflow["nodes"])
    missing = [n for n in nodes if not n["registered"]]
    assert missing == [], f"node types the editor does not know: {missing}"
    # newer frontends flag a node whose model file is absent here (the paper workflow's networks)
    absent_files = PACK_MODEL_NODES if needs_pack_models(workflow) else set()
    broken = [n for n in nodes if n["has_errors"] and n["type"] not in absent_files]
    assert broken == [], f"nodes flagged with errors: {broken}"

    prompt, saved_workflow = editor_page.editor_prompt(page)
    twin = path.parent / "api" / path.name
    differences = prompt_differences(prompt, json.loads(twin.read_text()))
    assert differences == [], (
        f"{path.name} in frontend {version} differs from api/{twin.name} (a node gained or changed inputs? "
        "update the API twin and rerun tests/make_ui_workflows.py): " + "; ".join(differences)
    )

    if not needs_pack_models(workflow):  # runs in test_paper_workflow.py, on a server holding tiny networks
        response = server.queue(shrink_for_cpu(prompt), workflow=saved_workflow)
        assert response.status_code == 200, response.text
        assert response.json()["node_errors"] == {}
        entry = server.wait(response.json()["prompt_id"], timeout=600)
        assert entry["status"]["status_str"] == "success", entry["status"]
    assert not any(url.startswith(server.url) for url in page.blocked_requests)  # only other hosts were blocked


def test_missing_node_types_are_detected(editor):
    """The checks above can fail: an unknown node type shows as unregistered or flagged."""
    _, _, page = editor
    workflow = json.loads(UI_WORKFLOWS[0].read_text())
    workflow["nodes"][0]["type"] = "T2CNoSuchNode"
    editor_page.load(page, workflow)
    bad = [n for n in editor_page.nodes(page) if not n["registered"] or n["has_errors"]]
    assert [str(n["id"]) for n in bad] == [str(workflow["nodes"][0]["id"])]


def test_a_missing_checkpoint_is_reported(editor):
    """The warning check can fail: a checkpoint the server lacks raises the missing-model warning."""
    _, _, page = editor
    workflow = json.loads((WORKFLOWS / "text_to_cinemagraph.json").read_text())
    loader = next(n for n in workflow["nodes"] if n["type"] == "CheckpointLoaderSimple")
    loader["widgets_values"] = ["t2c_absent.safetensors"]
    loader["properties"]["models"] = [dict(loader["properties"]["models"][0], name="t2c_absent.safetensors")]
    assert editor_page.load(page, workflow) == []
    assert any("t2c_absent.safetensors" in text for text in editor_page.warnings(page))


def test_a_missing_input_picture_is_reported_by_the_newest_frontend(editor):
    """Why the templates use T2CExampleImage: a LoadImage whose file is absent is flagged (1.58)."""
    version, _, page = editor
    if version == PINNED_FRONTEND:
        pytest.skip("frontend 1.32 does not check LoadImage files on load")
    workflow = json.loads((WORKFLOWS / "animate_picture.json").read_text())
    example = next(n for n in workflow["nodes"] if n["type"] == "T2CExampleImage")
    loader = copy.deepcopy(example)
    loader.update(type="LoadImage", widgets_values=["t2c_absent.png", "image"])
    workflow["nodes"][workflow["nodes"].index(example)] = loader
    assert editor_page.load(page, workflow) == []
    assert any("missing" in text.lower() for text in editor_page.warnings(page))
