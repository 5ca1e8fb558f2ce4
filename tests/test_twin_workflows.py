"""The bundled twin-image workflows run end to end in a real ComfyUI with tiny random weights.

Each workflow runs as shipped except for the values ``comfy_harness.shrink_for_cpu``
changes so that it finishes on a 2-core CPU (tiny random checkpoint, 128 px, a few steps
and frames), and the output is written as a lossless apng so that motion can be measured.
"""

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import shrink_for_cpu
from conftest import REPO
from motion_measure import angle_of, in_sector, mean_motion
from text2cinemagraph.nodes.stages.directions import DIRECTION_SECTORS

FRAMES = 8


def cpu_sized(name: str) -> dict:
    with open(f"{REPO}/workflows/api/{name}.json") as handle:
        prompt = shrink_for_cpu(json.load(handle), frames=FRAMES)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "LoopVideoWriter":
            inputs.update(format="apng", filename_prefix=f"t2c_tests/{name}")
    return prompt


def frames_of(server, entry: dict, writer: str) -> list:
    with Image.open(io.BytesIO(server.view(entry["outputs"][writer]["images"][0]))) as animation:
        frames = []
        for i in range(animation.n_frames):
            animation.seek(i)
            frames.append(np.asarray(animation.convert("RGB"), dtype=np.float32) / 255.0)
    return frames


def node_of(prompt: dict, kind: str) -> str:
    return next(key for key, node in prompt.items() if node["class_type"] == kind)


@pytest.mark.parametrize("name", ["text_to_cinemagraph", "animate_painting", "direction_control"])
def test_twin_workflow_runs_to_a_seamless_loop(comfy_server, name):
    prompt = cpu_sized(name)
    entry = comfy_server.run(prompt, timeout=600)
    frames = frames_of(comfy_server, entry, node_of(prompt, "LoopVideoWriter"))
    assert len(frames) == FRAMES and frames[0].shape == (128, 128, 3)
    steps = [np.abs(frames[n + 1] - frames[n]).mean() for n in range(FRAMES - 1)]
    assert min(steps) > 0  # something moves
    assert np.abs(frames[0] - frames[-1]).mean() <= 1.5 * max(steps)
    still = np.all([np.all(f == frames[0], axis=-1) for f in frames], axis=0)
    assert 0.05 < still.mean() < 0.98  # a still part and a moving part
    outputs = entry["outputs"]
    assert len(outputs[node_of(prompt, "PreviewImage")]["images"]) == 1


def test_direction_phrase_in_the_prompt_steers_the_motion(comfy_server):
    prompt = cpu_sized("direction_control")
    entry = comfy_server.run(prompt, timeout=600)
    frames = torch.from_numpy(np.stack(frames_of(comfy_server, entry, node_of(prompt, "LoopVideoWriter"))))
    moving = (frames != frames[0]).any(dim=0).any(dim=-1)
    moving = ~torch.nn.functional.max_pool2d((~moving).float()[None, None], 9, 1, 4)[0, 0].bool()  # interior
    assert moving.sum() > 200
    dx, dy = mean_motion(frames, moving, range(1, FRAMES - 2))
    low, high = DIRECTION_SECTORS["right to left, downwards"]
    assert math.hypot(dx, dy) > 0.2
    assert in_sector(angle_of(dx, dy), low - 10, high + 10), angle_of(dx, dy)
