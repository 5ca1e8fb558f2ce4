"""The loop_video template in a real ComfyUI server: both loops written, their still part frozen."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from comfy_harness import shrink_for_cpu
from conftest import REPO


def apng_frames(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as animation:
        frames = []
        for index in range(animation.n_frames):
            animation.seek(index)
            frames.append(np.asarray(animation.convert("RGB"), dtype=np.int16))
    return np.stack(frames)


def test_loop_video_writes_both_loops_with_the_background_frozen(comfy_server):
    with open(f"{REPO}/workflows/api/loop_video.json") as handle:
        prompt = shrink_for_cpu(json.load(handle))  # a 128 px clip of 16 frames, an 8-frame eulerian loop
    for writer in ("3", "7"):
        prompt[writer]["inputs"].update(format="apng", filename_prefix=f"t2c_tests/loop_video_{writer}")
    outputs = comfy_server.run(prompt)["outputs"]
    (region_file,) = outputs["10"]["images"]
    region = np.asarray(Image.open(io.BytesIO(comfy_server.view(region_file))).convert("L")) > 127
    assert 0.1 < region.mean() < 0.9  # the derived region: the water, not everything or nothing
    loops = {writer: apng_frames(comfy_server.view(outputs[writer]["images"][0])) for writer in ("3", "7")}
    assert loops["7"].shape == (8, 128, 128, 3) and 8 <= loops["3"].shape[0] <= 12
    for frames in loops.values():
        still = frames[:, ~region]
        assert (still == still[0]).all()  # bit-identical outside the region in every frame
        inside = frames[:, region]
        steps = [np.abs(inside[(k + 1) % len(inside)] - inside[k]).mean() for k in range(len(inside))]
        assert min(steps) > 0 and steps[-1] <= 1.5 * np.median(steps[:-1])
    assert np.array_equal(loops["3"][0][~region], loops["7"][0][~region])  # both: the reference frame
