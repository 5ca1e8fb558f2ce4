"""Regenerates each ``workflows/NAME.json`` (UI format) from ``workflows/api/NAME.json``.

Run after editing an API-format workflow: ``python tests/make_ui_workflows.py``.
It starts a real ComfyUI (as the tests do) for the node definitions;
``test_workflow_twins.py`` checks that the two stay the same graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
from comfy_harness import REPO, fetch_object_info  # noqa: E402
from workflow_ui import api_to_ui  # noqa: E402


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

# The missing-model dialog of the editor offers this download for CheckpointLoaderSimple.
SD15_CHECKPOINT = {
    "name": "v1-5-pruned-emaonly.safetensors",
    "url": "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors",
    "directory": "checkpoints",
}
CHECKPOINT_STEP = "Pick an SD1.5 checkpoint in the first node (the missing-model dialog offers the download)."
QUEUE_STEP = "Queue: the loop is written to output/text2cinemagraph (previews show the twins, mask and flow)."
# What to do, in three lines, on a note beside each template's graph.
NOTES = {
    "text_to_cinemagraph": (
        CHECKPOINT_STEP,
        "Write your prompt in T2C Twin Prompt Builder: water, clouds or smoke in it will move.",
        QUEUE_STEP,
    ),
    "direction_control": (
        CHECKPOINT_STEP,
        "End your prompt with 'in <direction> direction', e.g. 'in left to right, downwards direction'.",
        QUEUE_STEP,
    ),
    "animate_painting": (
        CHECKPOINT_STEP,
        "Swap the example picture for LoadImage with your painting; describe it in 'Describe the painting'.",
        QUEUE_STEP,
    ),
    "text_to_cinemagraph_paper": (
        CHECKPOINT_STEP,
        "Needs models/text2cinemagraph/motion-pretrained/latest_net_G.pth, video-pretrained/latest_net_G.pth "
        "(the release's networks) and segmentation/clipseg-rd64-refined (or an ODISE folder).",
        QUEUE_STEP,
    ),
    "animate_picture": (
        "No model needed: queue as is to animate the example photograph (its water traced by hand).",
        "Your own picture: replace the example node with LoadImage and paint the moving part in the mask editor.",
        "Direction and speed are set in T2C Flow Predictor; the loop is written to output/text2cinemagraph.",
    ),
    "draw_motion": (
        "No model needed: queue as is: the sky drifts right, the lake flows left, the red anchor stays still.",
        "On T2C Motion Brush drag arrows along the motion; shift-click pins a point; Region paints what moves.",
        "The node shows the connected picture to draw on, before any run; Undo and Clear are on its toolbar.",
    ),
    "loop_video": (
        "No model needed: queue as is to loop the example clip (its background flickers and drifts).",
        "Your clip: replace the example node with your frames (AnimateDiff, Wan, LTX, SVD, a video loader).",
        "Two loops: the clip's own frames (Loop Clip) and its average motion (Clip Flow -> Euler -> Splat).",
    ),
}
NOTE_SIZE = [560, 110]


def as_template(ui: dict, name: str) -> dict:
    """The UI workflow with what a first open needs: model downloads and a note on what to do."""
    if name not in NOTES:
        raise SystemExit(f"workflows/api/{name}.json has no note: add its three lines to NOTES in {__file__}")
    for node in ui["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["properties"]["models"] = [SD15_CHECKPOINT]
    note_id = ui["last_node_id"] + 1
    top = min(node["pos"][1] for node in ui["nodes"])
    ui["nodes"].append({
        "id": note_id, "type": "Note", "pos": [40, top - NOTE_SIZE[1] - 60], "size": NOTE_SIZE, "flags": {},
        "order": len(ui["nodes"]), "mode": 0, "inputs": [], "outputs": [], "title": "What to do",
        "properties": {}, "widgets_values": ["\n".join(f"{i}. {line}" for i, line in enumerate(NOTES[name], 1))],
        "color": "#432", "bgcolor": "#653",
    })
    ui["last_node_id"] = note_id
    return ui


def main() -> None:
    object_info = fetch_object_info()
    for api_path in sorted((REPO / "workflows" / "api").glob("*.json")):
        name = api_path.stem
        ui = as_template(api_to_ui(json.loads(api_path.read_text()), object_info, bypassed=BYPASSED.get(name)), name)
        ui_path = REPO / "workflows" / (name + ".json")
        ui_path.write_text(json.dumps(ui, indent=1) + "\n")
        print("wrote", ui_path.relative_to(REPO))


if __name__ == "__main__":
    main()
