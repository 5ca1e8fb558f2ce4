"""ComfyUI's graph editor in headless Chromium (Playwright), for the browser tests and
``make_thumbnails.py``.

Chromium is Debian's package and playwright comes from pip (tests/setup_env.sh);
every request to a host other than the test server is aborted.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
# Frontend 1.58's stores are not ready the moment app.graph exists (comfyui-facts.md, "Newer ComfyUI").
SETTLE_MS = 3000

NODE_REPORT = """() => app.graph.nodes.map(n => ({
    id: n.id, type: n.type,
    registered: Object.prototype.hasOwnProperty.call(LiteGraph.registered_node_types, n.type),
    has_errors: !!n.has_errors,
}))"""

# Dialogs (missing nodes/models in 1.32), toasts, and 1.58's warning overlay ("Media input missing",
# "<file> is missing"): the visible ones' text.
WARNINGS = """() => [...document.querySelectorAll('.p-dialog, .p-toast-message, [data-testid="error-overlay"]')]
    .filter(e => e.getClientRects().length > 0)
    .map(e => e.innerText.trim().replace(/\\s+/g, ' '))"""

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


def browser_missing() -> str | None:
    """Why the editor cannot be opened here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; tests/setup_env.sh does it)"
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium; tests/setup_env.sh does it)"
    return None


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_editor(browser, server):
    """A new page with ComfyUI's graph editor from ``server``, ready to load graphs.

    ``page.blocked_requests`` lists the requests to other hosts that were aborted.
    """
    response = server.post("/settings", EDITOR_SETTINGS)
    assert response.status_code == 200, response.text
    page = browser.new_page(viewport=VIEWPORT)
    blocked: list[str] = []

    def local_only(route):
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    # frontend 1.32 shows a "Nodes 2.0" banner above the canvas until this key is set
    page.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
    page.goto(server.url + "/")
    page.wait_for_function(
        "window.app && app.graph && window.LiteGraph"
        " && Object.keys(LiteGraph.registered_node_types).includes('EulerIntegrate')",
        timeout=120_000,
    )
    page.wait_for_timeout(SETTLE_MS)
    page.blocked_requests = blocked
    return page


def frontend_version(page) -> str:
    return page.evaluate("window.__COMFYUI_FRONTEND_VERSION__")


def load(page, workflow: dict) -> list[str]:
    """Load a UI workflow into the editor; the page errors raised meanwhile (a throwing load included)."""
    errors: list[str] = []

    def record(error) -> None:
        errors.append(str(error))

    page.on("pageerror", record)
    try:
        page.evaluate("async workflow => { await app.loadGraphData(workflow); }", workflow)
    except Exception as error:  # playwright re-raises what loadGraphData threw
        errors.append(str(error))
    finally:
        page.wait_for_timeout(1000)  # let the canvas draw and the warnings appear
        page.remove_listener("pageerror", record)
    return errors


def warnings(page) -> list[str]:
    return page.evaluate(WARNINGS)


def nodes(page) -> list[dict]:
    return page.evaluate(NODE_REPORT)


def editor_prompt(page) -> tuple[dict, dict]:
    """``(API prompt, UI workflow)`` as the editor converts the loaded graph for ``/prompt``."""
    return page.evaluate("async () => { const p = await app.graphToPrompt(); return [p.output, p.workflow]; }")


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
