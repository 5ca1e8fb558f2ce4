"""Regenerates each ``workflows/NAME.json`` (UI format) from ``workflows/api/NAME.json``.

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


# Optional nodes shown bypassed in the editor (absent from the API twin).
ODISE_OPTION = {
    "20": {
        "class_type": "ODISESegment",
        "inputs": {
            "image": ["9", 0],
            "vocabulary": "water, waterfall, river, ocean, lake, sea",
            "backend": "auto",
            "model": "(no segmentation model installed - see tooltip)",
            "threshold": 0.4,
        },
        "_meta": {"title": "Optional: ODISESegment (un-bypass once a model is installed)"},
        "feeds": {"10": "segmentation"},
    }
}
BYPASSED = {"text_to_cinemagraph": ODISE_OPTION, "direction_control": ODISE_OPTION}

# properties.models: the files a node needs and the ComfyUI model folder (folder_paths key) they
# go in. No url: the release's networks ship in one Google Drive tarball, and the CLIPSeg model is
# a folder (CIDAS/clipseg-rd64-refined on Hugging Face); without a url the editor lists them
# but offers no download.
NETWORKS = "t2c_networks"  # models/text2cinemagraph
SEGMENTATION = "t2c_segmentation"  # models/text2cinemagraph/segmentation
MODELS = {
    "text_to_cinemagraph_paper": {
        "13": [{"name": "motion-pretrained/latest_net_G.pth", "directory": NETWORKS}],
        "15": [{"name": "video-pretrained/latest_net_G.pth", "directory": NETWORKS}],
        "20": [{"name": "clipseg-rd64-refined", "directory": SEGMENTATION}],
    }
}


def add_models(ui: dict, models: dict) -> dict:
    for node in ui["nodes"]:
        if str(node["id"]) in models:
            node.setdefault("properties", {})["models"] = models[str(node["id"])]
    return ui


def main() -> None:
    comfy = os.environ.get("T2C_COMFYUI", str(REPO / ".venv" / "comfyui"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(comfy, Path(base))
        server.start()
        try:
            object_info = server.get_json("/object_info")
        finally:
            server.stop()
    for api_path in sorted((REPO / "workflows" / "api").glob("*.json")):
        name = api_path.stem
        ui = api_to_ui(json.loads(api_path.read_text()), object_info, bypassed=BYPASSED.get(name))
        ui = add_models(ui, MODELS.get(name, {}))
        ui_path = REPO / "workflows" / (name + ".json")
        ui_path.write_text(json.dumps(ui, indent=1) + "\n")
        print("wrote", ui_path.relative_to(REPO))


if __name__ == "__main__":
    main()
