"""LoopVideoWriter in a running ComfyUI: progress as it encodes, Cancel between frames, refusals at queue time."""

from __future__ import annotations

import json
import time
import uuid

from test_comfy_server import load_api_workflow

WRITER = "5"  # LoopVideoWriter's id in workflows/api/animate_picture.json


def slow_apng_prompt(prefix: str) -> dict:
    prompt = load_api_workflow("animate_picture.json")
    assert prompt[WRITER]["class_type"] == "LoopVideoWriter"
    for node in prompt.values():
        if node["class_type"] == "EulerIntegrate":
            node["inputs"]["frames"] = 8
    # 8 frames written 100 times at 512 px: long enough to cancel in the middle
    prompt[WRITER]["inputs"].update(format="apng", repeat_cycles=100, filename_prefix=prefix)
    return prompt


def test_apng_encoding_reports_progress_and_stops_on_cancel(comfy_server):
    client_id = uuid.uuid4().hex
    socket = comfy_server.websocket(client_id, timeout=120)
    try:
        response = comfy_server.queue(slow_apng_prompt("t2c_cancel/loop"), client_id=client_id)
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            message = socket.recv()
            if not isinstance(message, str):
                continue  # preview images
            event = json.loads(message)
            data = event.get("data", {})
            if event["type"] == "progress" and data.get("node") == WRITER:
                seen.append((data["value"], data["max"]))
                if data["value"] >= 3:
                    assert comfy_server.post("/interrupt", {}).status_code == 200
                    break
            if event["type"] in ("execution_success", "execution_error"):
                break
    finally:
        socket.close()
    entry = comfy_server.wait(prompt_id)
    # progress counted frame by frame from the start (not 100 % first), out of every frame to write;
    # newer ComfyUI throttles the updates, so values may be skipped but never run backwards
    assert seen and seen[0][0] <= 3 and seen[-1][0] >= 3 and all(total == 800 for _, total in seen)
    assert [value for value, _ in seen] == sorted({value for value, _ in seen})
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [name for name, _ in entry["status"]["messages"]]
    left = {path for path in comfy_server.output_files() if path.startswith("t2c_cancel")}
    assert left <= {"t2c_cancel"}  # neither the file nor a partial one


def test_a_gif_too_fast_to_play_is_refused_when_queued(comfy_server):
    prompt = load_api_workflow("animate_picture.json")
    # without its other output (a preview), the workflow has nothing valid left to run: HTTP 400
    prompt = {key: node for key, node in prompt.items() if node["class_type"] != "PreviewImage"}
    prompt[WRITER]["inputs"].update(format="gif", fps=60.0)
    response = comfy_server.queue(prompt)
    assert response.status_code == 400
    errors = response.json()["node_errors"][WRITER]["errors"]
    assert any("fps: is 60" in e["details"] and "at most 50 fps" in e["details"] for e in errors), errors


def test_a_valid_writer_passes_its_own_validation(comfy_server):
    from text2cinemagraph.nodes.video import LoopVideoWriter

    assert LoopVideoWriter.VALIDATE_INPUTS(format="gif", fps=50.0) is True
    assert LoopVideoWriter.VALIDATE_INPUTS(format="mp4", fps=120.0) is True
    assert LoopVideoWriter.VALIDATE_INPUTS(format=None, fps=None) is True  # linked inputs: checked at run time
    assert LoopVideoWriter.VALIDATE_INPUTS(format="avi", fps=None).startswith("format:")
    assert LoopVideoWriter.VALIDATE_INPUTS(format="mp4", fps=500.0).startswith("fps:")
