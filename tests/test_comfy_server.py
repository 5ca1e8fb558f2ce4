"""The pack inside a real ComfyUI server: node registration and the bundled workflow via /prompt."""

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import REPO

OUR_NODES = ["FlowPredictor", "EulerIntegrate", "SymmetricSplatFrameGen", "LoopVideoWriter"]


def load_api_workflow(name):
    with open(f"{REPO}/workflows/api/{name}") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.get_json("/object_info")


@pytest.mark.parametrize("node", OUR_NODES)
def test_node_is_registered_with_description_category_and_tooltips(object_info, node):
    info = object_info[node]
    assert info["category"] == "Text2Cinemagraph"
    assert len(info["description"]) > 40
    assert info["display_name"].startswith("T2C ")
    inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert inputs
    for name, spec in inputs.items():
        assert len(spec) > 1 and spec[1].get("tooltip"), f"{node}.{name} has no tooltip"


def test_the_example_pictures_are_served_for_the_drawing_canvas(comfy_server):
    import requests

    for prefix in ("", "/api"):  # the newer frontends ask under /api
        response = requests.get(f"{comfy_server.url}{prefix}/t2c/example_picture", params={"name": "lake"}, timeout=60)
        assert response.status_code == 200
        assert response.content == Path(REPO, "workflows", "assets", "lake.png").read_bytes()
    for name in ("nothing", "../../README.md", ""):
        response = requests.get(f"{comfy_server.url}/t2c/example_picture", params={"name": name}, timeout=60)
        assert response.status_code == 404


def test_custom_types_connect_only_to_their_kind(object_info):
    assert object_info["FlowPredictor"]["output"] == ["T2C_FLOW", "IMAGE"]
    assert object_info["EulerIntegrate"]["input"]["required"]["flow"][0] == "T2C_FLOW"
    assert object_info["SymmetricSplatFrameGen"]["input"]["required"]["motion"][0] == "T2C_MOTION"


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)


def test_animate_picture_workflow_writes_the_video(comfy_server):
    entry = comfy_server.run(load_api_workflow("animate_picture.json"))
    outputs = entry["outputs"]
    video_files = outputs["5"]["images"]
    assert outputs["5"]["animated"] == [True] and len(video_files) == 1
    assert video_files[0]["filename"].endswith(".mp4") and video_files[0]["type"] == "output"
    frames = decode(comfy_server.view(video_files[0]))
    assert frames.shape == (60, 512, 768, 3)
    picture = np.asarray(Image.open(f"{REPO}/workflows/assets/by_the_water.jpg").convert("RGB"), dtype=np.float32)
    assert np.abs(frames[0] - picture).mean() < 3  # frame 0 is the picture, up to h264's loss
    water = frames[:, 145:195]  # inside the traced water (workflows/assets/photo_masks.py)
    assert np.abs(water[15] - water[0]).mean() > 1.0  # the water moves
    sky = frames[:, :110]  # far from the water: still, up to the codec's noise
    assert np.abs(sky - sky[0]).mean() < 0.3 and np.abs(sky - sky[0]).max() <= 6
    assert len(outputs["6"]["images"]) == 1  # the flow preview
    leftovers = [p.name for p in comfy_server.output_dir.rglob(".*")]
    assert leftovers == []


def test_animate_picture_loop_is_seamless_in_a_lossless_file(comfy_server):
    prompt = load_api_workflow("animate_picture.json")
    prompt["5"]["inputs"].update(format="apng", filename_prefix="t2c_tests/lossless")
    prompt["3"]["inputs"]["frames"] = 30
    entry = comfy_server.run(prompt)
    with Image.open(io.BytesIO(comfy_server.view(entry["outputs"]["5"]["images"][0]))) as animation:
        assert animation.n_frames == 30 and animation.info["loop"] == 0
        frames = []
        for i in range(animation.n_frames):
            animation.seek(i)
            frames.append(np.asarray(animation.convert("RGB"), dtype=np.float32))
    steps = np.array([np.abs(frames[n + 1] - frames[n]).mean() for n in range(len(frames) - 1)])
    loop_step = np.abs(frames[0] - frames[-1]).mean()
    assert steps.min() > 0
    assert loop_step <= 1.05 * steps[0] and loop_step <= 1.5 * np.median(steps)
