"""What the weight-free renders keep of a photograph's detail, frame by frame (issue 19).

For each bundled photograph with water (``workflows/assets/*_mask.png``), direction, speed, loop
length and render, prints detail(t) (:func:`motion_measure.detail_curve` over the water eroded by
7 px: 1 = the picture's own fine texture) after one frame, its minimum and maximum over the loop
(frame N, the picture, included) and the pulse ``max - min``, the double exposure (ghost(t), the
correlation of each frame's detail with itself a loop's travel along the flow: about 0.5 where two
copies are mixed evenly, :func:`motion_measure.ghost_curve`), and the render's time (1 thread).

    .venv/bin/python -P tests/benchmark_render_quality.py [--speeds 0.25 0.5 1] [--frames 60 120]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
from motion_measure import detail_curve, ghost_curve  # noqa: E402
from text2cinemagraph.kernels import euler_integrate  # noqa: E402
from text2cinemagraph.kernels.morphology import erode  # noqa: E402
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow  # noqa: E402
from text2cinemagraph.nodes.stages.frames import render_frames  # noqa: E402
from text2cinemagraph.nodes.stages.renders import PIXEL_RENDERS, render_method  # noqa: E402
from text2cinemagraph.nodes.stages.resampled_frames import loop_period  # noqa: E402

ASSETS = os.path.join(os.path.dirname(HERE), "workflows", "assets")
PHOTOGRAPHS = ("by_the_water", "evening_glow")


def load(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``([H, W, 3] picture, [1, H, W] mask)`` of a bundled photograph."""
    picture = np.array(Image.open(os.path.join(ASSETS, name + ".jpg")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(ASSETS, name + "_mask.png")))
    return torch.from_numpy(picture).float() / 255, torch.from_numpy(mask).float()[None] / 255


def measure(picture, mask, direction: str, speed: float, frames: int, render: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(detail(t) for t = 0 .. N, ghost(t) over one loop, seconds of the render)``; ghost: the
    double exposure of two copies carried a loop's length apart (:func:`motion_measure.ghost_curve`)."""
    flow, _ = procedural_flow(mask, direction, speed, "generic", 0)
    motion = euler_integrate(flow, frames)
    start = time.perf_counter()
    video = render_frames(picture, motion, render_method(render))
    seconds = time.perf_counter() - start
    region = erode(mask[0] > 0.5, 7)
    period = loop_period(motion) if render == "resample" else frames
    ghost = ghost_curve(video[:period:max(1, period // 12)], flow, period, region)
    return detail_curve(torch.cat((video, picture[None])), picture, region), ghost, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photographs", nargs="+", default=list(PHOTOGRAPHS))
    parser.add_argument("--directions", nargs="+", default=["left to right", "downwards"])
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 120])
    parser.add_argument("--renders", nargs="+", default=list(PIXEL_RENDERS), choices=list(PIXEL_RENDERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| photograph | direction | px/frame | frames | render | detail(1) | min | max | pulse | bounds | ghost mean | ghost max | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.photographs:
        picture, mask = load(name)
        for direction in args.directions:
            for speed in args.speeds:
                for frames in args.frames:
                    for render in args.renders:
                        detail, ghost, seconds = measure(picture, mask, direction, speed, frames, render)
                        low, high = float(detail.min()), float(detail.max())
                        met = "yes" if low >= 0.90 and high - low <= 0.10 else "no"
                        print(f"| {name} | {direction} | {speed:g} | {frames} | {render} | {float(detail[1]):.3f} | "
                              f"{low:.3f} | {high:.3f} | {high - low:.3f} | {met} | {float(ghost.mean()):.2f} | "
                              f"{float(ghost.max()):.2f} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
