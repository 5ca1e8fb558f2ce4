"""Benchmark of looping a clip (issue 23) against the pack's pixel render of a still picture.

Not a pytest test; run it on demand:

    python tests/benchmark_clip_loop.py                       # 120 frames at 512^2, 1 thread, 3 rounds
    python tests/benchmark_clip_loop.py --size 256 --frames 48 --threads 2

In one process, alternating, median of ``--repeats`` rounds:

* render: the pack's pixel render of a still picture of that size and length
  (``benchmark_motion.make_inputs``: a random picture, the bottom 32 % moving;
  :func:`euler_integrate` + :func:`render_resampled_frames`, the default render);
* loop: LoopClip's path on a synthetic clip of that size and length (region 32 %):
  region, span, and the loop written into one output batch;
* eulerian: ClipFlow's path (region + DIS flow averaged over the clip), then
  EulerIntegrate + SymmetricSplatFrameGen's render of a loop of that length.

Then the peak RSS each node chain adds while it runs (each in a fresh process, ComfyUI imported as a
library), over the clip's IMAGE batch (the chain's input): LoopClip, ClipFlow alone, and ClipFlow ->
EulerIntegrate -> SymmetricSplatFrameGen, every output kept alive as ComfyUI's cache keeps it (the
rendered loop's batch and the render's working memory included).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
import torch  # noqa: E402

from benchmark_motion import make_inputs  # noqa: E402
from peak_memory import peak_rss  # noqa: E402
from text2cinemagraph.kernels import euler_integrate  # noqa: E402
from text2cinemagraph.nodes.stages.clip_loop import clip_flow, loop_clip  # noqa: E402
from text2cinemagraph.nodes.stages.clips import TensorClip  # noqa: E402
from text2cinemagraph.nodes.stages.example_clip import advected_clip, disc_region, periodic_texture  # noqa: E402
from text2cinemagraph.nodes.stages.resampled_frames import render_resampled_frames  # noqa: E402


MEMORY_RUNS = ("loop", "flow", "eulerian")  # flow: ClipFlow alone; eulerian: with EulerIntegrate and the render


def node_chain(method: str, clip: torch.Tensor, frames: int) -> tuple:
    """The outputs of ``method``'s node chain on ``clip`` (an IMAGE batch [N, H, W, C])."""
    from comfy_inprocess import import_comfy

    import_comfy()
    from text2cinemagraph.nodes.clip_loop import ClipFlow, LoopClip
    from text2cinemagraph.nodes.motion import EulerIntegrate, SymmetricSplatFrameGen

    if method == "loop":
        return LoopClip().loop(0, 0.02, 4, 0, 4, images=clip)
    flow, image, mask, preview = ClipFlow().measure(0, 0.02, 4, images=clip)
    if method == "flow":
        return flow, image, mask, preview
    (motion,) = EulerIntegrate().integrate(flow, frames)
    (video,) = SymmetricSplatFrameGen().render(image, motion, "pixel")
    return flow, image, mask, preview, motion, video


def make_clip(size: int, frames: int) -> torch.Tensor:
    texture = periodic_texture(size, size, cells=size / 12, seed=1)
    background = periodic_texture(size, size, cells=size / 24, seed=2)
    return advected_clip(background, texture, disc_region(size, size, 0.32), (1.0, 0.5), frames, seed=3)


def run_render(picture, flow, frames: int) -> None:
    render_resampled_frames(picture, euler_integrate(flow, frames))


def run_loop(clip: torch.Tensor) -> int:
    chunks, span, _ = loop_clip(TensorClip(clip))
    out = torch.empty((span.period, *clip.shape[1:]))
    for _ in chunks(chunk=span.period, out=out):
        pass
    return span.period


def run_eulerian(clip: torch.Tensor, frames: int) -> None:
    flow, found = clip_flow(TensorClip(clip))
    render_resampled_frames(found.reference, euler_integrate(flow, frames))


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-of", choices=MEMORY_RUNS, help=argparse.SUPPRESS)  # one, in this process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    picture, flow = make_inputs(args.size)
    clip = make_clip(args.size, args.frames)
    runs = {"render": lambda: run_render(picture, flow, args.frames), "loop": lambda: run_loop(clip),
            "eulerian": lambda: run_eulerian(clip, args.frames), "flow": lambda: clip_flow(TensorClip(clip))}
    if args.memory_of:
        node_chain(args.memory_of, make_clip(64, 16), 8)  # imports and first-call set-up are not the chain's
        with peak_rss() as measured:
            outputs = node_chain(args.memory_of, clip, args.frames)
        del outputs
        batch = clip.numel() * 4
        print(f"  {args.memory_of:9s} peak RSS added {measured.added / 2**20:7.1f} MiB = {measured.added / batch:.2f}x "
              f"the input batch ({batch / 2**20:.0f} MiB)")
        return
    runs.pop("flow")  # timed within eulerian
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds[name].append(timed(run))
    render = statistics.median(seconds["render"])
    print(f"{args.frames} frames at {args.size}^2, {args.threads} thread(s), median of {args.repeats}:")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:9s} {median:6.2f} s  ({median / render:.2f}x render)  runs: "
              + ", ".join(f"{v:.2f}" for v in values))
    for name in MEMORY_RUNS:  # each in a fresh process: the peak is the method's own
        subprocess.run([sys.executable, "-P", __file__, "--size", str(args.size), "--frames", str(args.frames),
                        "--threads", str(args.threads), "--memory-of", name], check=True)


if __name__ == "__main__":
    main()
