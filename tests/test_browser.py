"""The bundled workflows in ComfyUI's real graph editor (frontend 1.32), in headless Chromium.

Each UI-format workflow is loaded with ``app.loadGraphData``; every node type must
be registered and no node may be flagged with errors; the editor's own conversion
(``app.graphToPrompt``) must equal the API twin and be accepted and run by the
server. A screenshot of the loaded graph is written to ``workflows/<name>.jpg``:
it is the thumbnail of the template browser and the picture in the README.
Chromium (Debian package) and playwright (pip) come from tests/setup_env.sh.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from comfy_harness import shrink_for_cpu
from conftest import REPO

WORKFLOWS = Path(REPO, "workflows")
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))
CHROMIUM = os.environ.get("T2C_CHROMIUM", "/usr/bin/chromium")
# environment.md: Debian chromium without sandbox/GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
EDITOR_SETTINGS = {
    "Comfy.TutorialCompleted": True,  # else the templates dialog covers the canvas
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,  # the FPS/node-count overlay
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # draw widgets and text at any zoom
}
VIEWPORT = {"width": 1920, "height": 1080}
MAX_THUMBNAIL_BYTES = 300 * 1024

NODE_REPORT = """() => app.graph.nodes.map(n => ({
    id: n.id, type: n.type,
    registered: Object.prototype.hasOwnProperty.call(LiteGraph.registered_node_types, n.type),
    has_errors: !!n.has_errors,
}))"""

GRAPH_BOX = """() => {
    const ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const node of app.graph.nodes) {
        const [x, y, w, h] = node.boundingRect;  // includes the title bar
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
    }
    const s = ds.scale;
    return {x: rect.left + (x0 + ds.offset[0]) * s, y: rect.top + (y0 + ds.offset[1]) * s,
            width: (x1 - x0) * s, height: (y1 - y0) * s};
}"""


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; tests/setup_env.sh does it)")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; tests/setup_env.sh does it)")
    return sync_playwright


@pytest.fixture(scope="module")
def editor(comfy_server):
    """A page with ComfyUI's graph editor loaded from the test server; other hosts are blocked."""
    sync_playwright = _browser_or_skip()
    response = comfy_server.post("/settings", EDITOR_SETTINGS)
    assert response.status_code == 200
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            blocked = []

            def local_only(route):
                if route.request.url.startswith(comfy_server.url + "/"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", local_only)
            # frontend 1.32 shows a "Nodes 2.0" banner above the canvas until this key is set
            page.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
            page.goto(comfy_server.url + "/")
            page.wait_for_function(
                "window.app && app.graph && window.LiteGraph"
                " && Object.keys(LiteGraph.registered_node_types).includes('EulerIntegrate')",
                timeout=120_000,
            )
            page.blocked_requests = blocked
            yield page
        finally:
            browser.close()


def load(page, workflow: dict) -> list[str]:
    """Load a UI workflow into the editor; the page errors raised meanwhile."""
    errors: list[str] = []

    def record(error) -> None:
        errors.append(str(error))

    page.on("pageerror", record)
    try:
        page.keyboard.press("Escape")  # close a dialog a previous load may have opened
        page.evaluate("async workflow => { await app.loadGraphData(workflow); }", workflow)
        page.wait_for_timeout(300)  # let the canvas draw
    finally:
        page.remove_listener("pageerror", record)
    return errors


def screenshot(page, path: Path) -> None:
    """The loaded graph, fitted into the window, cropped to 16:9 around it, as JPEG."""
    page.evaluate("async () => { await app.extensionManager.command.execute('Workspace.ToggleFocusMode'); }")
    try:
        page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }")
        page.wait_for_timeout(800)  # FitView animates
        box = page.evaluate(GRAPH_BOX)
        margin = 24
        width = min(box["width"] + 2 * margin, VIEWPORT["width"])
        height = min(max(box["height"] + 2 * margin, width * 9 / 16), VIEWPORT["height"])
        left = min(max(0, box["x"] - margin), VIEWPORT["width"] - width)
        top = min(max(0, box["y"] + box["height"] / 2 - height / 2), VIEWPORT["height"] - height)
        data = page.screenshot(type="jpeg", quality=85, clip={"x": left, "y": top, "width": width, "height": height})
    finally:
        page.evaluate("async () => { await app.extensionManager.command.execute('Workspace.ToggleFocusMode'); }")
    path.write_bytes(data)


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


def needs_pack_models(workflow: dict) -> bool:
    """Whether a node names a file of the pack's model folders (``properties.models``)."""
    return any(m.get("directory", "").startswith("t2c_") for node in workflow["nodes"]
               for m in node.get("properties", {}).get("models", []))


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_in_the_editor_converts_and_runs(comfy_server, editor, path):
    workflow = json.loads(path.read_text())
    errors = load(editor, workflow)
    assert errors == []

    nodes = editor.evaluate(NODE_REPORT)
    assert sorted(n["id"] for n in nodes) == sorted(n["id"] for n in workflow["nodes"])
    missing = [n for n in nodes if not n["registered"]]
    assert missing == [], f"node types the editor does not know: {missing}"
    broken = [n for n in nodes if n["has_errors"]]
    assert broken == [], f"nodes flagged with errors: {broken}"

    # the graph as loaded: the template browser's thumbnail and the README's picture
    thumbnail = path.with_suffix(".jpg")
    screenshot(editor, thumbnail)
    assert thumbnail.stat().st_size < MAX_THUMBNAIL_BYTES
    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG"
        assert picture.width >= 640 and picture.width / picture.height <= 16 / 9 + 0.01
        pixels = picture.convert("L")
        assert pixels.getextrema()[1] - pixels.getextrema()[0] > 100  # nodes and text, not an empty canvas

    converted = editor.evaluate("async () => { const p = await app.graphToPrompt(); return [p.output, p.workflow]; }")
    prompt, saved_workflow = converted
    if not needs_pack_models(workflow):  # those run in test_paper_workflow.py, on a server holding tiny networks
        response = comfy_server.queue(shrink_for_cpu(prompt), workflow=saved_workflow)
        assert response.status_code == 200, response.text
        assert response.json()["node_errors"] == {}
        entry = comfy_server.wait(response.json()["prompt_id"])
        assert entry["status"]["status_str"] == "success", entry["status"]

    assert not any("127.0.0.1" in url for url in editor.blocked_requests)  # only other hosts were blocked

    twin = path.parent / "api" / path.name
    if twin.is_file():  # the editor's conversion equals the shipped API twin
        differences = prompt_differences(prompt, json.loads(twin.read_text()))
        assert differences == [], (
            f"{path.name} in the editor differs from {twin.name} (a node gained or changed inputs? update "
            "the API twin and rerun tests/make_ui_workflows.py): " + "; ".join(differences)
        )


def test_missing_node_types_are_detected(editor):
    """The checks above can fail: an unknown node type shows as unregistered or flagged."""
    workflow = json.loads(UI_WORKFLOWS[0].read_text())
    workflow["nodes"][0]["type"] = "T2CNoSuchNode"
    load(editor, workflow)
    nodes = editor.evaluate(NODE_REPORT)
    bad = [n for n in nodes if not n["registered"] or n["has_errors"]]
    assert [n["id"] for n in bad] == [workflow["nodes"][0]["id"]]
    editor.keyboard.press("Escape")
