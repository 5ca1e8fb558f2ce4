"""Benchmark of the motion half: our O(N) pixel render against the paper release's scheme.

Not a pytest test (nothing here is named ``test_*``); run it on demand:

    python tests/benchmark_motion.py                  # the full table (a few minutes)
    python tests/benchmark_motion.py --sizes 512 --frames 120 --threads 1
    python tests/benchmark_motion.py --frames 120 --memory-only   # peak RSS per node
    python tests/benchmark_motion.py --sizes 512 --frames 120 --repeats 7 --compare 8875d14
    python tests/benchmark_motion.py --sizes 512 --frames 120 --renders   # resample vs splat

For every size, loop length and thread count it times, on the same inputs in
one process:

* ours: :func:`euler_integrate` + :func:`render_pixel_frames` (median of
  ``--repeats`` runs);
* the release's scheme, re-implemented below: for every frame ``n`` the Euler
  integration is recomputed from scratch (``n`` forward steps of ``F`` and
  ``N - n`` backward steps of ``-F``), reading the flow at the rounded pixel
  position, marking any pixel that ever leaves the frame and sending it off
  the canvas; then the whole picture is softmax-splatted forward with
  ``alpha = 1 - n/N`` and backward with ``1 - alpha`` (``index_add_`` over all
  pixels, weights ``exp(Z)`` with ``Z = 0``) and divided by the summed weight
  (at least 1e-8). Every frame costs the same ``N`` integration steps and two
  splats, so where ``--release-frames`` limits the frames timed, the total is
  extrapolated linearly and marked ``*``.

The inputs are a random picture, a mask covering the bottom 32 % of it and
``procedural_flow(mask, "left to right", 0.5, "river", 0)``. It then prints
where the time of ours goes (integration, splatting, hole filling, writing the
frames, the rest of the render), and with ``--memory`` the peak RSS of each
node of FlowPredictor -> EulerIntegrate -> SymmetricSplatFrameGen ->
LoopVideoWriter (its ``write_loop``) at 512^2, 1536x1024 and 1920x1080.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections import defaultdict

import torch

from text2cinemagraph.kernels import euler_integrate
from text2cinemagraph.nodes.stages import frames as frames_module
from text2cinemagraph.nodes.stages.frames import render_pixel_frames
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow
from text2cinemagraph.nodes.stages.frames import render_frames
from text2cinemagraph.nodes.stages.renders import PIXEL_RENDERS, render_method


def make_inputs(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(picture [H, W, 3], flow [2, H, W])`` for a square picture of ``size`` pixels."""
    mask = torch.zeros(1, size, size)
    mask[:, round(size * 0.68) :] = 1.0
    flow, _ = procedural_flow(mask, "left to right", 0.5, "river", 0)
    generator = torch.Generator().manual_seed(seed)
    picture = torch.rand(size, size, 3, generator=generator)
    return picture, flow


# --- ours --------------------------------------------------------------------------------


def run_ours(picture: torch.Tensor, flow: torch.Tensor, frames: int) -> tuple[float, float]:
    """Seconds for ``(integration, render)``."""
    start = time.perf_counter()
    motion = euler_integrate(flow, frames)
    middle = time.perf_counter()
    video = render_pixel_frames(picture, motion)
    end = time.perf_counter()
    del video, motion
    return middle - start, end - middle


def run_render(picture: torch.Tensor, flow: torch.Tensor, frames: int, render: str) -> tuple[float, float]:
    """Seconds for ``(integration, render)`` with the weight-free render ``render`` (:data:`PIXEL_RENDERS`)."""
    start = time.perf_counter()
    motion = euler_integrate(flow, frames)
    middle = time.perf_counter()
    video = render_frames(picture, motion, render_method(render))
    end = time.perf_counter()
    del video, motion
    return middle - start, end - middle


def write_once(picture: torch.Tensor, frames: int) -> float:
    """Seconds to write the output batch once: ``torch.empty`` and the picture copied into every frame."""
    start = time.perf_counter()
    out = torch.empty((frames, *picture.shape))
    out.copy_(picture.expand_as(out))
    seconds = time.perf_counter() - start
    del out
    return seconds


def renders_table(sizes, frames: int, thread_counts, repeats: int) -> None:
    """Integration + render of every weight-free render, alternated in one process (median of runs),
    against the splatting and against writing the output batch once."""
    print("| size | frames | threads | render | integrate s | render s | total s | x splat | x writing the batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for size in sizes:
            picture, flow = make_inputs(size)
            runs = defaultdict(list)
            for render in PIXEL_RENDERS:
                run_render(picture, flow, frames, render)  # warm-up
            for _ in range(repeats):
                runs["write"].append(write_once(picture, frames))
                for render in PIXEL_RENDERS:
                    runs[render].append(run_render(picture, flow, frames, render))
            write = statistics.median(runs["write"])
            splat = statistics.median(sum(run) for run in runs["splat"])
            for render in PIXEL_RENDERS:
                integrate = statistics.median(run[0] for run in runs[render])
                rendering = statistics.median(run[1] for run in runs[render])
                total = statistics.median(sum(run) for run in runs[render])
                print(f"| {size}^2 | {frames} | {threads} | {render} | {integrate:.3f} | {rendering:.3f} | "
                      f"{total:.3f} | {total / splat:.2f} | {total / write:.1f} |", flush=True)


class PhaseTimer:
    """Wraps the render's phases (accumulate, finish, write) with wall-clock timers."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.originals = {}

    def __enter__(self) -> "PhaseTimer":
        phases = {
            (frames_module.PairedAccumulator, "accumulate"): "splatting",
            (frames_module.PixelFinisher, "__call__"): "hole filling + normalising",
            (frames_module, "_write_frame"): "writing frames",
        }
        for (owner, name), label in phases.items():
            original = getattr(owner, name)
            self.originals[owner, name] = original

            def timed(*args, _original=original, _label=label, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_label] += time.perf_counter() - start

            setattr(owner, name, timed)
        return self

    def __exit__(self, *exc) -> None:
        for (owner, name), original in self.originals.items():
            setattr(owner, name, original)


def time_phases(picture: torch.Tensor, flow: torch.Tensor, frames: int) -> dict[str, float]:
    """Seconds per phase of one run of ours."""
    with PhaseTimer() as timer:
        start = time.perf_counter()
        motion = euler_integrate(flow, frames)
        middle = time.perf_counter()
        video = render_pixel_frames(picture, motion)
        end = time.perf_counter()
    phases = {"integration": middle - start}
    phases.update(timer.seconds)
    phases["rest of render (plan, allocation, frame 0)"] = (end - middle) - sum(timer.seconds.values())
    phases["total"] = end - start
    del video, motion
    return phases


def accumulator_table(sizes, frames: int, repeats: int) -> None:
    """Render seconds with each CPU accumulator (the 15 % rule for the paired layout), median of runs."""
    print(f"\nRender seconds by accumulator, {frames} frames, {torch.get_num_threads()} thread(s):")
    for size in sizes:
        picture, flow = make_inputs(size)
        motion = euler_integrate(flow, frames)
        row = []
        for accumulator in (frames_module.PairedAccumulator, frames_module.SplatAccumulator):
            render_pixel_frames(picture, motion, accumulator=accumulator)  # warm-up
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                render_pixel_frames(picture, motion, accumulator=accumulator)
                runs.append(time.perf_counter() - start)
            row.append(statistics.median(runs))
            print(f"  {size}^2 {accumulator.__name__}: {row[-1]:.3f} s (runs {', '.join(f'{r:.3f}' for r in runs)})",
                  flush=True)
        print(f"  {size}^2: paired complex64 layout saves {100 * (1 - row[0] / row[1]):.0f} % of the render")


# --- peak memory of the node chain --------------------------------------------------------


MEMORY_SIZES = ((512, 512), (1536, 1024), (1920, 1080))


def chain_memory(width: int, height: int, frames: int) -> dict[str, float]:
    """Peak RSS (GiB above the start, after a small warm-up run of the chain) per node of
    FlowPredictor -> EulerIntegrate -> SymmetricSplatFrameGen -> LoopVideoWriter's write_loop (mp4)."""
    import tempfile

    from comfy_inprocess import import_comfy
    from peak_memory import GIB, current_rss, peak_rss

    import_comfy()
    from text2cinemagraph.nodes.motion import EulerIntegrate, FlowPredictor, SymmetricSplatFrameGen
    from text2cinemagraph.nodes.stages.video import write_loop

    def inputs(height: int, width: int):
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(1, 3, 8, 8, generator=generator)
        image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")[0]
        mask = torch.zeros(1, height, width)
        mask[:, round(height * 0.68):] = 1.0
        return image.clamp(0, 1).permute(1, 2, 0).unsqueeze(0).contiguous(), mask

    # A first small run loads what the nodes import lazily (a server has done so after its first prompt).
    image, mask = inputs(64, 64)
    flow, _ = FlowPredictor().predict(image, mask, "procedural", "left to right", 0.5, "river", 0)
    (motion,) = EulerIntegrate().integrate(flow, 4)
    (video,) = SymmetricSplatFrameGen().render(image, motion, "pixel")
    with tempfile.TemporaryDirectory() as folder:
        write_loop(video, os.path.join(folder, "loop.mp4"), format="mp4")
    image, mask = inputs(height, width)
    base = current_rss()
    result = {"batch GiB": frames * height * width * 3 * 4 / GIB}
    with peak_rss() as memory:
        flow, _ = FlowPredictor().predict(image, mask, "procedural", "left to right", 0.5, "river", 0)
    result["FlowPredictor"] = (memory.peak - base) / GIB
    with peak_rss() as memory:
        (motion,) = EulerIntegrate().integrate(flow, frames)
    result["EulerIntegrate"] = (memory.peak - base) / GIB
    result["motion MiB"] = motion.nbytes / 2**20
    with peak_rss() as memory:
        (video,) = SymmetricSplatFrameGen().render(image, motion, "pixel")
    result["SymmetricSplatFrameGen"] = (memory.peak - base) / GIB
    with tempfile.TemporaryDirectory() as folder, peak_rss() as memory:
        write_loop(video, os.path.join(folder, "loop.mp4"), format="mp4")
    result["LoopVideoWriter (write_loop)"] = (memory.peak - base) / GIB
    result["chain peak / batch"] = max(v for k, v in result.items() if k[0].isupper() and "GiB" not in k) \
        / result["batch GiB"]
    return result


def memory_table(frames: int) -> None:
    """One fresh process per size (so no size inherits another's heap), 1 thread."""
    import json
    import subprocess
    import sys

    print(f"\nPeak RSS above the process's start, GiB, {frames} frames (IMAGE batch float32):")
    print("| size | IMAGE batch | FlowPredictor | EulerIntegrate | SymmetricSplatFrameGen | LoopVideoWriter | "
          "chain peak / batch | motion MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for width, height in MEMORY_SIZES:
        code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(__file__)!r}); import torch; "
                "torch.set_num_threads(1); import benchmark_motion as b; "
                f"print(json.dumps(b.chain_memory({width}, {height}, {frames})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {width}x{height} | {r['batch GiB']:.2f} | {r['FlowPredictor']:.2f} | {r['EulerIntegrate']:.2f} | "
              f"{r['SymmetricSplatFrameGen']:.2f} | {r['LoopVideoWriter (write_loop)']:.2f} | "
              f"{r['chain peak / batch']:.2f} | {r['motion MiB']:.0f} |", flush=True)


# --- this checkout against an earlier commit ---------------------------------------------


def _timed_in_fresh_process(import_root: str, threads: int, size: int, frames: int, repeats: int) -> tuple:
    """Medians ``(integrate, render)`` of ``run_ours`` in a new process that imports the package found
    in ``import_root`` (a folder holding ``text2cinemagraph``)."""
    import json
    import subprocess
    import sys

    code = (f"import sys, json, statistics, torch; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"torch.set_num_threads({threads}); import benchmark_motion as b; "
            f"picture, flow = b.make_inputs({size}); b.run_ours(picture, flow, {frames}); "
            f"runs = [b.run_ours(picture, flow, {frames}) for _ in range({repeats})]; "
            "import text2cinemagraph; print(json.dumps([text2cinemagraph.__file__, "
            "statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)]))")
    env = {**os.environ, "PYTHONPATH": import_root}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    imported, integrate, render = json.loads(out.strip().splitlines()[-1])
    if not imported.startswith(import_root):
        raise RuntimeError(f"the timed process imported {imported}, not the package in {import_root}")
    return integrate, render


def compare_table(revision: str, sizes, frames: int, thread_counts, repeats: int, rounds: int) -> None:
    """This checkout against ``revision`` (``git archive``), alternated in fresh processes."""
    import subprocess
    import tempfile

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as folder:
        roots = {}
        for label, source in (("this checkout", checkout), (revision, None)):
            root = os.path.join(folder, str(len(roots)))
            os.makedirs(root)
            if source is None:
                source = os.path.join(folder, "archive")
                os.makedirs(source)
                archive = subprocess.run(["git", "-C", checkout, "archive", revision], capture_output=True, check=True)
                subprocess.run(["tar", "-x", "-C", source], input=archive.stdout, check=True)
            os.symlink(source, os.path.join(root, "text2cinemagraph"))
            roots[label] = root
        print(f"\nThis checkout against {revision}, {frames} frames, medians of {repeats} runs per process "
              "(integrate / render / total s):")
        print("| round | size | threads | " + " | ".join(roots) + " |")
        print("|---|---|---|" + "---|" * len(roots))
        for round_ in range(1, rounds + 1):
            for size in sizes:
                for threads in thread_counts:
                    cells = []
                    for root in roots.values():
                        integrate, render = _timed_in_fresh_process(root, threads, size, frames, repeats)
                        cells.append(f"{integrate:.3f} / {render:.3f} / {integrate + render:.3f}")
                    print(f"| {round_} | {size}^2 | {threads} | " + " | ".join(cells) + " |", flush=True)


# --- the release's scheme, re-implemented -------------------------------------------------


def release_displacement(flow: torch.Tensor, steps: int, grid: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``[2, H, W]`` displacement after ``steps`` Euler steps from scratch, nearest-pixel flow look-ups.

    A pixel that ever leaves the frame is marked; at the end marked pixels are
    sent off the canvas (so the splat drops them).
    """
    _, height, width = flow.shape
    ys, xs = grid
    flat = flow.reshape(2, -1)
    displacement = torch.zeros_like(flow)
    left = torch.zeros((height, width), dtype=torch.bool)
    for _ in range(steps):
        col = torch.round(xs + displacement[0]).long()
        row = torch.round(ys + displacement[1]).long()
        left |= (col < 0) | (col > width - 1) | (row < 0) | (row > height - 1)
        index = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
        displacement = displacement + flat[:, index.reshape(-1)].view(2, height, width)
    displacement[:, left] = -4.0 * max(height, width)
    return displacement


def release_splat_(accum: torch.Tensor, values: torch.Tensor, x: torch.Tensor, y: torch.Tensor, width: int) -> None:
    """Bilinear forward splat of every pixel's ``values [C, P]`` to ``(x, y) [P]``; corners off the frame drop."""
    height = accum.shape[1] // width
    x0 = torch.floor(x)
    y0 = torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            cx, cy = x0 + dx, y0 + dy
            valid = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).reshape(-1)
            weight = (wx * wy * valid).reshape(-1)
            accum.index_add_(1, index, values * weight)


def run_release(picture: torch.Tensor, flow: torch.Tensor, frames: int, timed_frames: int) -> tuple[float, int]:
    """Seconds for all ``frames`` (extrapolated from ``timed_frames`` evenly spaced ones) and the count timed."""
    height, width, channels = picture.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    chosen = sorted({round(i * frames / timed_frames) for i in range(timed_frames)} & set(range(frames)))
    output = torch.empty((len(chosen), height, width, channels))
    start = time.perf_counter()
    planar = picture.permute(2, 0, 1).reshape(channels, -1)
    z = torch.zeros(height * width)
    weight = torch.exp(z)
    carried = torch.cat((planar * weight, weight[None]))  # softmax splatting, Z = 0
    for slot, n in enumerate(chosen):
        alpha = 1.0 - n / frames
        forward = release_displacement(flow, n, (ys, xs))
        backward = release_displacement(-flow, frames - n, (ys, xs))
        accum = torch.zeros((channels + 1, height * width))
        release_splat_(accum, carried * alpha, (xs + forward[0]).reshape(-1), (ys + forward[1]).reshape(-1), width)
        release_splat_(accum, carried * (1.0 - alpha), (xs + backward[0]).reshape(-1),
                       (ys + backward[1]).reshape(-1), width)
        colour = accum[:channels] / accum[channels].clamp_min(1e-8)
        output[slot] = colour.T.reshape(height, width, channels)
    seconds = time.perf_counter() - start
    return seconds * frames / len(chosen), len(chosen)


# --- driver -------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768])
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 120])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours per row (median)")
    parser.add_argument("--release-frames", type=int, default=24,
                        help="frames of the release's scheme timed above --full-release-max pixels (then extrapolated)")
    parser.add_argument("--full-release-max", type=int, default=512 * 512,
                        help="pictures up to this many pixels time every frame of the release's scheme")
    parser.add_argument("--no-release", action="store_true", help="time ours only")
    parser.add_argument("--memory", action="store_true",
                        help="also the peak RSS per node of the chain at 512^2, 1536x1024, 1920x1080")
    parser.add_argument("--memory-only", action="store_true", help="only the peak RSS table")
    parser.add_argument("--accumulators", action="store_true",
                        help="only the render time of each CPU accumulator (paired complex64 vs plain splat_)")
    parser.add_argument("--compare", metavar="REV",
                        help="only this checkout against git revision REV, alternated in fresh processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternations for --compare")
    parser.add_argument("--renders", action="store_true",
                        help="only integration + render of each weight-free render (resample, splat), alternated")
    args = parser.parse_args()

    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__}")
    print(f"load average at start: {os.getloadavg()}")
    if args.memory_only:
        memory_table(max(args.frames))
        return
    if args.renders:
        renders_table(args.sizes, max(args.frames), args.threads, args.repeats)
        return
    if args.compare:
        compare_table(args.compare, args.sizes, max(args.frames), args.threads, args.repeats, args.rounds)
        return
    if args.accumulators:
        for threads in args.threads:
            torch.set_num_threads(threads)
            accumulator_table(args.sizes, max(args.frames), args.repeats)
        return
    # Ours first, for every configuration, then the release's scheme: its large allocations can
    # fragment memory and slow the frame allocations of runs after it.
    ours = {}
    phase_tables = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            picture, flow = make_inputs(size)
            for frames in args.frames:
                run_ours(picture, flow, frames)  # warm-up
                runs = [run_ours(picture, flow, frames) for _ in range(args.repeats)]
                ours[threads, size, frames] = (
                    statistics.median(r[0] for r in runs),
                    statistics.median(r[1] for r in runs),
                    statistics.median(r[0] + r[1] for r in runs),
                )
                print(f"  ours {size}^2 x {frames} frames, {threads} thread(s): {ours[threads, size, frames][2]:.3f} s "
                      f"(runs: {', '.join(f'{r[0] + r[1]:.3f}' for r in runs)})", flush=True)
                if frames == max(args.frames):
                    phase_tables.append((size, frames, threads, time_phases(picture, flow, frames)))
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            picture, flow = make_inputs(size)
            for frames in args.frames:
                release, timed = (float("nan"), 0)
                if not args.no_release:
                    timed_frames = frames if size * size <= args.full_release_max else min(args.release_frames, frames)
                    release, timed = run_release(picture, flow, frames, timed_frames)
                    print(f"  release {size}^2 x {frames} frames, {threads} thread(s): {release:.1f} s "
                          f"({timed} frames timed)", flush=True)
                mark = "*" if 0 < timed < frames else ""
                rows.append((size, frames, threads, *ours[threads, size, frames], release, mark))

    print()
    print("| size | frames | threads | ours integrate s | ours render s | ours total s | release s | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for size, frames, threads, integrate, render, total, release, mark in rows:
        speedup = release / total if release == release else float("nan")
        print(f"| {size}^2 | {frames} | {threads} | {integrate:.3f} | {render:.3f} | {total:.3f} | "
              f"{release:.1f}{mark} | {speedup:.0f}x |")
    if any(row[-1] for row in rows):
        print(f"\n* release's scheme timed on {args.release_frames} evenly spaced frames and extrapolated "
              "linearly (every frame costs N integration steps and two whole-picture splats)")
    print("\nWhere the time of ours goes (one run, seconds):")
    for size, frames, threads, phases in phase_tables:
        total = phases["total"]
        parts = ", ".join(f"{name} {seconds:.3f} ({100 * seconds / total:.0f}%)"
                          for name, seconds in phases.items() if name != "total")
        print(f"  {size}^2 x {frames}, {threads} thread(s): total {total:.3f}: {parts}")
    if args.memory:
        memory_table(max(args.frames))
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
