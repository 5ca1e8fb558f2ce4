"""The pack driven through a real ComfyUI server's HTTP API and websocket.

The tiny test checkpoint (tests/comfy_test_pack) running core's default graph,
validation errors at ``/prompt``, ``/interrupt`` in the middle of a render, a
burst of queued prompts (with the server's memory watched) and the template list.
"""

from __future__ import annotations

import copy
import io
import json
import statistics
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
import requests
import torch
from PIL import Image

from comfy_harness import PACK_FOLDER_NAME, TINY_CHECKPOINT, core_txt2img_prompt, swap_in_tiny_checkpoint
from conftest import REPO

MB = 1 << 20
WORKFLOWS = Path(REPO, "workflows")


def animate_prompt(frames: int = 4, seed: int = 0, keep_preview: bool = True, **writer) -> dict:
    with open(f"{REPO}/workflows/api/animate_picture.json") as handle:
        prompt = json.load(handle)
    prompt["3"]["inputs"]["frames"] = frames
    prompt["2"]["inputs"]["seed"] = seed
    prompt["5"]["inputs"].update(writer)
    if not keep_preview:
        del prompt["6"]
    return prompt


def video_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def cached_nodes(entry: dict) -> list[str]:
    return [data["nodes"] for event, data in entry["status"]["messages"] if event == "execution_cached"][0]


# --- the tiny checkpoint ---------------------------------------------------------------


def test_tiny_checkpoint_has_the_outputs_of_checkpoint_loader_simple(comfy_server):
    tiny = comfy_server.get_json(f"/object_info/{TINY_CHECKPOINT}")[TINY_CHECKPOINT]
    core = comfy_server.get_json("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"]
    assert tiny["output"] == core["output"] == ["MODEL", "CLIP", "VAE"]
    assert tiny["category"] == "t2c_tests"


def test_tiny_checkpoint_keeps_the_sd15_block_layout():
    """Same block indices and attention places as SD1.5, so UNet patches address the same blocks."""
    from comfy_inprocess import encode, tiny_checkpoint

    model, clip = tiny_checkpoint(0)
    from comfy.ldm.modules.attention import SpatialTransformer

    unet = model.get_model_object("diffusion_model")

    def attention_at(blocks):
        return [i for i, block in enumerate(blocks) if any(isinstance(layer, SpatialTransformer) for layer in block)]

    assert len(unet.input_blocks) == 12 and len(unet.output_blocks) == 12
    assert attention_at(unet.input_blocks) == [1, 2, 4, 5, 7, 8]
    assert attention_at([unet.middle_block]) == [0]
    assert attention_at(unet.output_blocks) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    block = unet.output_blocks[4][1].transformer_blocks[0]
    context = encode(clip, "a lake")[0][0]
    assert block.attn1.heads == 8 and context.shape == (1, 77, block.attn2.to_k.in_features)
    # seeded: the same seed gives the same weights, another seed others
    again, _ = tiny_checkpoint(0)
    other, _ = tiny_checkpoint(1)
    weight = unet.output_blocks[4][0].out_layers[-1].weight
    assert torch.equal(again.get_model_object("diffusion_model").output_blocks[4][0].out_layers[-1].weight, weight)
    assert not torch.equal(other.get_model_object("diffusion_model").output_blocks[4][0].out_layers[-1].weight, weight)


def test_swap_replaces_only_the_checkpoint_loader():
    prompt = core_txt2img_prompt()
    swapped = swap_in_tiny_checkpoint(prompt, weights_seed=3)
    assert prompt["4"]["class_type"] == "CheckpointLoaderSimple"  # the original is untouched
    assert swapped["4"] == {"class_type": TINY_CHECKPOINT, "inputs": {"weights_seed": 3}}
    assert {k: v for k, v in swapped.items() if k != "4"} == {k: v for k, v in prompt.items() if k != "4"}


def test_core_graph_runs_on_the_tiny_checkpoint_and_repeats_bit_for_bit(comfy_server):
    base = core_txt2img_prompt(seed=11, steps=4, size=64, prefix="t2c_tests/tiny_core")

    def render(weights_seed):
        entry = comfy_server.run(swap_in_tiny_checkpoint(base, weights_seed))
        (image,) = entry["outputs"]["9"]["images"]
        return entry, image["filename"], comfy_server.view(image)

    first, first_name, first_png = render(0)
    with Image.open(io.BytesIO(first_png)) as picture:
        assert picture.format == "PNG" and picture.size == (64, 64)
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 1.0  # a picture, not a constant

    _, _, other_png = render(1)  # other weights: another picture (and the seed-0 model leaves the cache)
    with Image.open(io.BytesIO(other_png)) as picture:
        assert np.abs(np.asarray(picture.convert("RGB"), dtype=np.float32) - pixels).mean() > 1.0

    again, again_name, again_png = render(0)
    assert "4" not in cached_nodes(again) and "3" not in cached_nodes(again)  # really rebuilt and resampled
    assert again_name != first_name  # a second file...
    assert again_png == first_png  # ...with the same bytes


# --- validation at /prompt ---------------------------------------------------------------


def test_wrong_connection_is_refused_with_the_node_and_input(comfy_server):
    prompt = animate_prompt(keep_preview=False)
    prompt["3"]["inputs"]["flow"] = ["1", 0]  # an IMAGE into EulerIntegrate's T2C_FLOW
    response = comfy_server.queue(prompt)
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    node = body["node_errors"]["3"]
    assert node["class_type"] == "EulerIntegrate"
    (error,) = node["errors"]
    assert error["type"] == "return_type_mismatch"
    assert error["extra_info"]["input_name"] == "flow" and error["extra_info"]["received_type"] == "IMAGE"


def test_out_of_range_value_is_refused_with_the_node_and_input(comfy_server):
    prompt = animate_prompt(keep_preview=False)
    prompt["3"]["inputs"]["frames"] = 0
    response = comfy_server.queue(prompt)
    assert response.status_code == 400
    node = response.json()["node_errors"]["3"]
    assert node["class_type"] == "EulerIntegrate"
    (error,) = node["errors"]
    assert error["type"] == "value_smaller_than_min" and error["extra_info"]["input_name"] == "frames"


def test_a_valid_output_branch_makes_the_server_run_half_the_graph(comfy_server):
    """Why the queue command treats node_errors in a 200 answer as a failure."""
    prompt = animate_prompt(seed=7)  # the flow preview (node 6) does not depend on node 3
    prompt["3"]["inputs"]["frames"] = 0
    response = comfy_server.queue(prompt)
    assert response.status_code == 200
    answer = response.json()
    assert list(answer["node_errors"]) == ["3"]
    entry = comfy_server.wait(answer["prompt_id"])
    assert set(entry["outputs"]) == {"6"}  # the video writer never ran


# --- interrupting a render -------------------------------------------------------------


def events_of(connection, prompt_id):
    """Decoded websocket messages about ``prompt_id`` (status broadcasts and previews skipped)."""
    while True:
        raw = connection.recv()  # the connection's timeout (60 s) fails the test if the server goes silent
        if isinstance(raw, bytes):
            continue
        message = json.loads(raw)
        if message.get("data", {}).get("prompt_id") == prompt_id:
            yield message["type"], message["data"]


@pytest.mark.parametrize(
    "node, settings",
    [
        ("4", {"frames": 400}),  # splatting 400 frames at 512 px: ~10 s uninterrupted
        ("5", {"frames": 60, "repeat_cycles": 100}),  # encoding 6000 frames: ~45 s uninterrupted
    ],
    ids=["while-splatting", "while-encoding"],
)
def test_interrupt_stops_the_render_leaves_no_file_and_the_next_prompt_runs(comfy_server, node, settings):
    before = comfy_server.output_files()
    client_id = uuid.uuid4().hex
    connection = comfy_server.websocket(client_id)
    try:
        settings = dict(settings)
        frames = settings.pop("frames")
        prompt = animate_prompt(frames=frames, seed=100 + frames, **settings)
        prompt_id = comfy_server.queue(prompt, client_id=client_id).json()["prompt_id"]
        interrupted_at = None
        seen = []
        for kind, data in events_of(connection, prompt_id):
            seen.append((kind, data.get("node")))
            if kind == "progress" and data["node"] == node and interrupted_at is None:
                interrupted_at = data["value"]
                assert comfy_server.post("/interrupt", {"prompt_id": prompt_id}).status_code == 200
            if kind == "progress" and data["node"] == node:
                last_value, total = data["value"], data["max"]
            if kind in ("execution_success", "execution_error", "execution_interrupted"):
                break
    finally:
        connection.close()
    assert kind == "execution_interrupted" and data["node_id"] == node
    assert last_value < total  # stopped before the node's end
    assert ("executed", "5") not in seen  # the writer produced nothing
    entry = comfy_server.wait(prompt_id)
    assert entry["status"]["status_str"] == "error" and "5" not in entry["outputs"]
    after = comfy_server.output_files()
    assert after == before, f"left behind: {sorted(after - before)}"  # no .partial temp file, no video
    assert comfy_server.get_json("/queue") == {"queue_running": [], "queue_pending": []}

    follow_up = comfy_server.run(animate_prompt(frames=4, seed=200 + frames))
    (video,) = follow_up["outputs"]["5"]["images"]
    assert video_frames(comfy_server.view(video)) == 4


# --- a burst of prompts ----------------------------------------------------------------


def test_twenty_queued_prompts_complete_and_memory_stays_flat(comfy_server):
    base = animate_prompt(frames=4)
    ids = []
    for i in range(20):
        prompt = copy.deepcopy(base)
        prompt["2"]["inputs"]["seed"] = 5000 + i  # a new flow each time: nothing downstream of the picture is cached
        response = comfy_server.queue(prompt)
        assert response.status_code == 200, response.text
        ids.append(response.json()["prompt_id"])
    rss, videos = [], set()
    for prompt_id in ids:  # ComfyUI runs them in queue order
        entry = comfy_server.wait(prompt_id, timeout=120)
        rss.append(comfy_server.rss_bytes())
        assert entry["status"]["status_str"] == "success"
        assert "2" not in cached_nodes(entry)
        (video,) = entry["outputs"]["5"]["images"]
        videos.add(video["filename"])
    assert len(videos) == 20
    assert comfy_server.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    # Bound: one prompt holds >= 15 MB of tensors (4 frames of 512x512 RGB float32 = 12.6 MB, the
    # flow 2 MB, the uint8 copy for encoding 3 MB); a server keeping each prompt's data would grow
    # by >= 150 MB over ten prompts, and the medians of the two halves would differ by about that.
    # Measured on this machine, RSS after each prompt wanders by +-35 MB around a flat level
    # (allocator noise), so 80 MB separates noise from a per-prompt leak.
    first, last = statistics.median(rss[:10]), statistics.median(rss[10:])
    assert last - first < 80 * MB, [round(r / MB) for r in rss]


# --- template browser ---------------------------------------------------------------


def test_bundled_workflows_are_listed_as_templates_with_thumbnails(comfy_server):
    templates = comfy_server.get_json("/api/workflow_templates")
    bundled = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    assert sorted(templates[PACK_FOLDER_NAME]) == bundled  # the API twins in workflows/api/ are not listed
    assert {"animate_picture", "text_to_cinemagraph", "animate_painting", "direction_control"} <= set(bundled)
    for name in bundled:
        served = requests.get(f"{comfy_server.url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json", timeout=30)
        assert served.status_code == 200 and served.json() == json.loads((WORKFLOWS / f"{name}.json").read_text())
    for name in bundled:
        thumbnail = requests.get(f"{comfy_server.url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg", timeout=30)
        assert thumbnail.status_code == 200, f"workflows/{name}.jpg missing (tests/make_thumbnails.py renders it)"
        with Image.open(io.BytesIO(thumbnail.content)) as picture:
            assert picture.format == "JPEG" and picture.width >= 256
