"""Each bundled workflow ships in UI and API format; the two must be the same graph."""

import json
from pathlib import Path

import pytest

from conftest import REPO
from text2cinemagraph.nodes.client.workflow_format import ui_to_api

API_FILES = sorted(Path(REPO, "workflows", "api").glob("*.json"))


def test_every_workflow_has_both_formats():
    assert API_FILES
    for api_path in API_FILES:
        assert (api_path.parent.parent / api_path.name).is_file()


@pytest.mark.parametrize("api_path", API_FILES, ids=lambda p: p.stem)
def test_ui_twin_converts_to_the_api_twin(comfy_server, api_path):
    object_info = comfy_server.get_json("/object_info")
    api = json.loads(api_path.read_text())
    ui = json.loads((api_path.parent.parent / api_path.name).read_text())
    assert ui_to_api(ui, object_info) == api


def test_conversion_follows_widget_order_links_and_bypass():
    object_info = {
        "Src": {"input": {"required": {}}, "output": ["IMAGE"], "output_name": ["IMAGE"]},
        "Mid": {"input": {"required": {"image": ["IMAGE", {}]}}, "output": ["IMAGE"], "output_name": ["IMAGE"]},
        "Dst": {
            "input": {
                "required": {
                    "image": ["IMAGE", {}],
                    "seed": ["INT", {}],
                    "mode": [["a", "b"], {}],
                    "text": ["STRING", {}],
                }
            },
            "output": [],
            "output_name": [],
        },
    }
    ui = {
        "nodes": [
            {"id": 1, "type": "Src", "mode": 0, "inputs": [], "widgets_values": []},
            {"id": 2, "type": "Mid", "mode": 4, "inputs": [{"name": "image", "type": "IMAGE", "link": 1}]},
            {"id": 3, "type": "Dst", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 2},
                                                        {"name": "text", "type": "STRING", "link": None}],
             "widgets_values": [42, "randomize", "b", "hello"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    }
    assert ui_to_api(ui, object_info) == {
        "1": {"class_type": "Src", "inputs": {}},
        "3": {"class_type": "Dst", "inputs": {"image": ["1", 0], "seed": 42, "mode": "b", "text": "hello"}},
    }


def test_seed_companion_follows_the_frontend_that_saved_the_file():
    """Frontends up to 1.3x store control_after_generate after any INT named seed; newer ones only
    after inputs that declare it. Both files convert to the same prompt."""
    object_info = {
        "Other": {  # another pack's node that does not declare control_after_generate
            "input": {"required": {"seed": ["INT", {}], "mode": [["a", "b"], {}]}},
            "output": [], "output_name": [],
        },
        "Ours": {
            "input": {"required": {"seed": ["INT", {"control_after_generate": True}], "mode": [["a", "b"], {}]}},
            "output": [], "output_name": [],
        },
    }
    for values, kind in (([7, "fixed", "b"], "Other"), ([7, "b"], "Other"), ([7, "fixed", "b"], "Ours")):
        ui = {"nodes": [{"id": 1, "type": kind, "mode": 0, "inputs": [], "widgets_values": values}], "links": []}
        assert ui_to_api(ui, object_info) == {"1": {"class_type": kind, "inputs": {"seed": 7, "mode": "b"}}}


def test_pack_seeds_declare_control_after_generate(comfy_server):
    object_info = comfy_server.get_json("/object_info")
    ours = [name for name, info in object_info.items() if info["python_module"].endswith("ComfyUI-Text2Cinemagraph")]
    seeds = [
        (node, name, spec[1].get("control_after_generate"))
        for node in ours
        for group in object_info[node]["input"].values() if isinstance(group, dict)
        for name, spec in group.items() if spec[0] == "INT" and "seed" in name
    ]
    assert len(seeds) >= 3 and all(flag is True for _, _, flag in seeds), seeds
