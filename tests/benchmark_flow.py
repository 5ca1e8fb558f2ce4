"""Benchmark of the weight-free flows against the pixel render of 10 frames of the same picture.

Not a pytest test (nothing here is named ``test_*``); run it on demand, with the
package to time first on ``PYTHONPATH`` (the tests' ``build/import_root`` links
this checkout; a ``git archive`` of an earlier commit times that one):

    PYTHONPATH=build/import_root python -P tests/benchmark_flow.py --threads 1 2 --repeats 3

Cases, on a 1920x1080 picture whose lower half is water (as in issue 20):

* FlowPredictor ``procedural``: :func:`procedural_flow` ("left to right"), then
  the node's colour-wheel preview;
* MotionBrush ``procedural`` with 20 and 200 arrows and 2 anchors: the drawing
  parsed and scaled, :func:`drawn_flow`, then the node's preview with the
  arrows drawn on it;
* 20,000 arrows on a 128x96 picture (what an API client can send);
* the reference: :func:`euler_integrate` + :func:`render_pixel_frames` of 10
  frames of the 1080p picture with the procedural flow.

"flow s" is the flow alone, "node s" adds the preview the node returns; each is
the median of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch

import text2cinemagraph
from text2cinemagraph.kernels import euler_integrate
from text2cinemagraph.nodes.stages.drawn_motion import draw_arrows, drawn_flow, parse_drawing
from text2cinemagraph.nodes.stages.frames import render_pixel_frames
from text2cinemagraph.nodes.stages.procedural_flow import flow_to_rgb, procedural_flow

HD = (1080, 1920)
SMALL = (96, 128)


def water(height: int, width: int) -> torch.Tensor:
    """``[H, W]`` bool: the lower half of the picture."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[height // 2 :] = True
    return mask


def drawing_text(height: int, width: int, arrows: int, seed: int = 0) -> str:
    """A drawing of ``arrows`` arrows in the lower half, pointing roughly rightwards, and 2 anchors."""
    generator = torch.Generator().manual_seed(seed)
    short = min(height, width)
    x0 = torch.rand(arrows, generator=generator) * width * 0.8
    y0 = height * (0.55 + 0.4 * torch.rand(arrows, generator=generator))
    length = short * (0.04 + 0.14 * torch.rand(arrows, generator=generator))
    angle = (torch.rand(arrows, generator=generator) - 0.5) * 0.8
    x1 = (x0 + length * angle.cos()).clamp(0, width)
    y1 = (y0 - length * angle.sin()).clamp(0, height)
    entries = [{"x0": a, "y0": b, "x1": c, "y1": d} for a, b, c, d in zip(*(t.tolist() for t in (x0, y0, x1, y1)))]
    anchors = [{"x": width * 0.3, "y": height * 0.8, "radius": short * 0.03},
               {"x": width * 0.7, "y": height * 0.7, "radius": short * 0.02}]
    return json.dumps({"version": 1, "width": width, "height": height, "arrows": entries, "anchors": anchors})


def procedural_case(height: int, width: int):
    mask = water(height, width).float()[None]

    def flow():
        return procedural_flow(mask, "left to right", 0.5, "river", 0)[0]

    return flow, flow_to_rgb


def drawn_case(height: int, width: int, arrows: int):
    text, mask = drawing_text(height, width, arrows), water(height, width)

    def flow():
        return drawn_flow(parse_drawing(text).scaled_to(height, width), mask, 1.0)[0]

    def preview(field):
        return draw_arrows(flow_to_rgb(field), parse_drawing(text).scaled_to(height, width))

    return flow, preview


def render_case(height: int, width: int):
    picture = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(1))
    field, _ = procedural_case(height, width)
    motion = field()

    def render():
        return render_pixel_frames(picture, euler_integrate(motion, 10))

    return render, None


CASES = {
    "FlowPredictor procedural, 1920x1080": lambda: procedural_case(*HD),
    "MotionBrush, 20 arrows, 1920x1080": lambda: drawn_case(*HD, 20),
    "MotionBrush, 200 arrows, 1920x1080": lambda: drawn_case(*HD, 200),
    "MotionBrush, 20,000 arrows, 128x96": lambda: drawn_case(*SMALL, 20_000),
    "reference: pixel render of 10 frames, 1920x1080": lambda: render_case(*HD),
}


def timed(run, preview, repeats: int) -> tuple[float, float]:
    """Medians ``(flow s, flow + preview s)`` over ``repeats`` runs after a warm-up."""
    flows, nodes = [], []
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        field = run()
        middle = time.perf_counter()
        if preview is not None:
            preview(field)
        end = time.perf_counter()
        if attempt:
            flows.append(middle - start)
            nodes.append(end - start)
    return statistics.median(flows), statistics.median(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=range(len(CASES)), type=int, default=list(range(len(CASES))))
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"package {text2cinemagraph.__file__}")
    print("| case | threads | flow s | node s (flow + preview) |")
    print("|---|---|---|---|")
    names = list(CASES)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for index in args.cases:
            flow_s, node_s = timed(*CASES[names[index]](), args.repeats)
            print(f"| {names[index]} | {threads} | {flow_s:.3f} | {node_s:.3f} |", flush=True)


if __name__ == "__main__":
    main()
