"""Renders each template's thumbnail, ``workflows/NAME.jpg``: the graph as the editor shows it.

Run on request after changing a workflow: ``python tests/make_thumbnails.py`` (the tests never
write into the repository). It starts a real ComfyUI with the frontend the tested backend pins,
whose template browser shows these pictures, and opens the editor in headless Chromium.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
import editor_harness as editor_page  # noqa: E402
from comfy_harness import REPO, TEST_PACK, ComfyServer  # noqa: E402

MAX_THUMBNAIL_BYTES = 300 * 1024


def main() -> None:
    missing = editor_page.browser_missing()
    if missing:
        raise SystemExit(missing)
    comfy = os.environ.get("T2C_COMFYUI", str(REPO / ".venv" / "comfyui"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(comfy, Path(base), extra_packs=(TEST_PACK,))
        server.start()
        try:
            with editor_page.chromium() as browser:
                for path in sorted((REPO / "workflows").glob("*.json")):
                    page = editor_page.open_editor(browser, server)
                    errors = editor_page.load(page, json.loads(path.read_text()))
                    if errors or editor_page.warnings(page):
                        raise SystemExit(f"{path.name} does not open cleanly: {errors} {editor_page.warnings(page)}")
                    thumbnail = path.with_suffix(".jpg")
                    editor_page.screenshot(page, thumbnail)
                    page.close()
                    size = thumbnail.stat().st_size
                    if size > MAX_THUMBNAIL_BYTES:
                        raise SystemExit(f"{thumbnail.name} is {size} bytes, over {MAX_THUMBNAIL_BYTES}")
                    print("wrote", thumbnail.relative_to(REPO), size, "bytes")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
