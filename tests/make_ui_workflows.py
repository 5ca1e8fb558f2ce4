"""Regenerates each ``workflows/NAME.json`` (UI format) from ``workflows/NAME_api.json``.

Run after editing an API-format workflow: ``python tests/make_ui_workflows.py``.
It starts a real ComfyUI (as the tests do) for the node definitions;
``test_workflow_twins.py`` checks that the two stay the same graph.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from comfy_harness import REPO, ComfyServer  # noqa: E402
from text2cinemagraph.nodes.workflow_format import api_to_ui  # noqa: E402


def main() -> None:
    comfy = os.environ.get("T2C_COMFYUI", str(REPO / ".venv" / "comfyui"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(comfy, Path(base))
        server.start()
        try:
            object_info = server.get_json("/object_info")
        finally:
            server.stop()
    for api_path in sorted((REPO / "workflows").glob("*_api.json")):
        ui = api_to_ui(json.loads(api_path.read_text()), object_info)
        ui_path = api_path.with_name(api_path.name.replace("_api.json", ".json"))
        ui_path.write_text(json.dumps(ui, indent=1) + "\n")
        print("wrote", ui_path.relative_to(REPO))


if __name__ == "__main__":
    main()
