"""The GPU path, checked on a GPU: run this on a machine with a CUDA GPU (not part of the CPU suite).

    python tests/gpu_check.py                   # everything, a few minutes
    python tests/gpu_check.py --skip-workflow   # the render checks only
    python tests/gpu_check.py --smoke           # tiny sizes on the CPU: exercises the script itself

Checks and measures:

1. the CuPy splat kernel against ``splat_torch_`` (bit for bit where each pixel
   receives one term; otherwise equal up to the order of the atomic additions);
2. the render on the GPU (``SplatAccumulator``: the CuPy kernel) against the CPU
   render (``PairedAccumulator``): frame 0 and every pixel outside the animated
   region bit for bit, all frames within 1e-5; a motion integrated in parts on
   the GPU (as the nodes do for a large one) gives the same frames as the whole; the same for the
   resampling render (the default), within 1e-4 of the CPU;
3. integration + render seconds of the resampling (default) and splatting renders for 120
   frames at 512^2 and 3840x2160 (a third of the picture moving), and the peak VRAM;
4. the learned frame renderer (G_frame) on the GPU: equal to the CPU one on a
   small picture, and seconds for 120 frames at 512^2 with the full-size network;
5. the bundled ``text_to_cinemagraph`` workflow at 512^2, 50 steps, 120 frames on
   a ComfyUI server with a full-size SD1.5-layout checkpoint of random weights
   (timing and memory do not depend on the weights' values): seconds per node,
   end to end, and the server's peak VRAM (goal: under 10 s and 6 GB).

Prints a report to paste into BENCHMARKS.md. Exit status 0 when every check
passed (or, with a message, when there is no CUDA GPU), 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import conftest  # noqa: E402,F401  (``import text2cinemagraph`` loads this checkout)

torch.set_num_threads(os.cpu_count() or 1)  # conftest pins tests to one thread; this is a benchmark

FAILURES: list[str] = []


def check(condition: bool, what: str) -> None:
    print(f"  [{'ok' if condition else 'FAIL'}] {what}", flush=True)
    if not condition:
        FAILURES.append(what)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scene(height: int, width: int, frames: int, seed: int = 0):
    """``(picture [H, W, 3], flow [2, H, W])``: a smooth picture, the lower third moving."""
    import torch.nn.functional as F

    from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow

    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 9, 16, generator=generator)
    picture = F.interpolate(coarse, size=(height, width), mode="bicubic")[0].clamp(0, 1).permute(1, 2, 0)
    mask = torch.zeros(1, height, width)
    mask[:, height - height // 3 :] = 1.0
    flow, _ = procedural_flow(mask, "left to right", 0.5, "river", seed)
    return picture.contiguous(), flow


# --- 1 and 2: kernel and render parity -------------------------------------------------------


def kernel_parity(device: torch.device) -> None:
    from text2cinemagraph.kernels import splat_, splat_torch_

    print("1. splat kernel vs splat_torch_", flush=True)
    generator = torch.Generator().manual_seed(1)
    height, width, count = 96, 128, 8000
    values = torch.rand(4, count, generator=generator)
    scale = torch.rand(count, generator=generator)
    # Integer positions, one source per pixel: every pixel receives one term, so bit for bit.
    flat = torch.randperm(height * width, generator=generator)[:count]
    x, y = (flat % width).float(), (flat // width).float()
    expected = splat_torch_(torch.zeros(4, height * width), values, x, y, scale, width)
    got = splat_(torch.zeros(4, height * width, device=device), values.to(device), x.to(device), y.to(device),
                 scale.to(device), width).cpu()
    check(torch.equal(got, expected), "one term per pixel: identical bits")
    x = torch.rand(count, generator=generator) * (width + 4) - 2  # some off the frame
    y = torch.rand(count, generator=generator) * (height + 4) - 2
    expected = splat_torch_(torch.zeros(4, height * width), values, x, y, scale, width)
    got = splat_(torch.zeros(4, height * width, device=device), values.to(device), x.to(device), y.to(device),
                 scale.to(device), width).cpu()
    check(torch.allclose(got, expected, atol=1e-5), f"random positions: max diff {float((got - expected).abs().max()):.2e}")


def render_parity(device: torch.device, size: int) -> None:
    from text2cinemagraph.kernels import euler_integrate
    from text2cinemagraph.nodes.stages.frames import (
        PairedAccumulator,
        SplatAccumulator,
        animated_region,
        render_pixel_frames,
    )
    from text2cinemagraph.nodes.stages.resampled_frames import render_resampled_frames

    print("2. GPU render vs CPU render", flush=True)
    picture, flow = scene(size, size, 24, seed=2)
    cpu_motion = euler_integrate(flow, 24)
    gpu_motion = euler_integrate(flow.to(device), 24)
    check(torch.equal(gpu_motion.forward_stored.cpu(), cpu_motion.forward_stored)
          and torch.equal(gpu_motion.backward_stored.cpu(), cpu_motion.backward_stored),
          "integration on the GPU stores the same int16 trajectories as on the CPU")
    cpu = render_pixel_frames(picture, cpu_motion, accumulator=PairedAccumulator)
    gpu = render_pixel_frames(picture, cpu_motion, device=device, accumulator=SplatAccumulator)
    still = ~animated_region(cpu_motion)
    check(torch.equal(gpu[0], picture), "frame 0 is the picture, bit for bit")
    check(all(torch.equal(frame[still], picture[still]) for frame in gpu), "still pixels bit for bit in every frame")
    diff = float((gpu - cpu).abs().max())
    check(diff <= 1e-5, f"all frames within 1e-5 of the CPU render (max diff {diff:.2e})")
    deferred = euler_integrate(flow, 24, frames=range(0))  # what EulerIntegrate passes on for a large motion
    parts = render_pixel_frames(picture, deferred, device=device, accumulator=SplatAccumulator, part_frames=5)
    check(torch.equal(parts, gpu), "a motion integrated in parts on the GPU renders the same frames as the whole")

    print("2b. resampling render (the default) on the GPU vs the CPU", flush=True)
    cpu = render_resampled_frames(picture, cpu_motion)
    gpu = render_resampled_frames(picture, cpu_motion, device=device)
    check(torch.equal(gpu[0], picture), "frame 0 is the picture, bit for bit")
    check(all(torch.equal(frame[still], picture[still]) for frame in gpu), "still pixels bit for bit in every frame")
    diff = float((gpu - cpu).abs().max())  # grid_sample's arithmetic differs on the GPU
    check(diff <= 1e-4, f"all frames within 1e-4 of the CPU render (max diff {diff:.2e})")
    parts = render_resampled_frames(picture, deferred, device=device, part_frames=5)
    check(torch.equal(parts, gpu), "a motion integrated in parts on the GPU renders the same frames as the whole")


# --- 3: timings -----------------------------------------------------------------------------


def time_render(device: torch.device, height: int, width: int, frames: int, repeats: int,
                render: str = "splat") -> None:
    from text2cinemagraph.kernels import euler_integrate
    from text2cinemagraph.nodes.stages.frames import render_chunks
    from text2cinemagraph.nodes.stages.renders import render_method

    picture, flow = scene(height, width, frames)
    runs = []
    for _ in range(repeats + 1):  # the first run warms up (kernel compilation, allocator)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        synchronize(device)
        start = time.perf_counter()
        motion = euler_integrate(flow.to(device), frames)
        synchronize(device)
        middle = time.perf_counter()
        for chunk in render_chunks(picture, motion, render_method(render), chunk=8, device=device):
            del chunk  # frames reach the CPU chunk by chunk; a 4K batch would not fit in RAM
        synchronize(device)
        runs.append((middle - start, time.perf_counter() - middle))
        del motion
    runs = runs[1:]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    integrate = statistics.median(r[0] for r in runs)
    seconds = statistics.median(r[1] for r in runs)
    moving = int((flow != 0).any(dim=0).sum())
    print(f"  | {render} | {width}x{height} | {frames} | {moving} | {integrate:.3f} | {seconds:.3f} | "
          f"{integrate + seconds:.3f} | {peak:.2f} |", flush=True)


# --- 4: learned frames ----------------------------------------------------------------------


def learned_frames(device: torch.device, size: int, frames: int) -> None:
    from text2cinemagraph.kernels import euler_integrate
    from text2cinemagraph.nodes.stages.learned_frames import render_learned_frames
    from text2cinemagraph.nodes.stages.networks import FrameNetConfig, build_network

    def settled(config: FrameNetConfig):
        """A random G_frame whose spectral norms and statistics were settled as training would."""
        torch.manual_seed(0)
        net = build_network("frame", config).train()
        with torch.no_grad():
            for _ in range(4):
                features, _ = net.encode(torch.rand(2, 3, 48, 48) * 2 - 1)
                net.decode(features)
        return net.eval().requires_grad_(False)

    print("4. learned frame renderer (G_frame)", flush=True)
    tiny = settled(FrameNetConfig(ngf=8, feature_channels=8))
    picture, flow = scene(96, 96, 4, seed=3)
    motion = euler_integrate(flow, 4)
    on_cpu = render_learned_frames(picture, motion, tiny)
    on_gpu = render_learned_frames(picture, motion, tiny.to(device))
    diff = float((on_cpu - on_gpu).abs().max())
    check(diff <= 1e-4, f"tiny network: GPU frames within 1e-4 of the CPU's (max diff {diff:.2e})")
    check(torch.equal(on_gpu[0], picture), "frame 0 is the picture")

    network = settled(FrameNetConfig()).to(device)
    picture, flow = scene(size, size, frames)
    motion = euler_integrate(flow, frames)
    render_learned_frames(picture, euler_integrate(flow, 2), network)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    render_learned_frames(picture, motion, network)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"  full-size G_frame, {size}^2, {frames} frames: {seconds:.2f} s ({seconds / frames * 1000:.0f} ms a "
          f"frame), peak VRAM {peak:.2f} GiB", flush=True)


# --- 5: the whole workflow ------------------------------------------------------------------


class VramSampler:
    """Peak GPU memory of one process, sampled with nvidia-smi every 0.2 s."""

    def __init__(self, pid: int):
        self.pid, self.peak_mib, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                for line in out.stdout.splitlines():
                    pid, used = (part.strip() for part in line.split(","))
                    if int(pid) == self.pid:
                        self.peak_mib = max(self.peak_mib, int(used))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)

    def __enter__(self) -> "VramSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def workflow(gpu: bool, size: int, steps: int, frames: int) -> None:
    from comfy_harness import REPO, TEST_PACK, ComfyServer

    print(f"5. text_to_cinemagraph workflow: {size}^2, {steps} steps, {frames} frames", flush=True)
    prompt = json.loads((Path(REPO) / "workflows" / "api" / "text_to_cinemagraph.json").read_text())
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "CheckpointLoaderSimple":
            node["class_type"] = "T2CTestFullSizeCheckpoint" if gpu else "T2CTestTinyCheckpoint"
            node["inputs"] = {"weights_seed": 0}
        elif kind == "EmptyLatentImage":
            inputs.update(width=size, height=size)
        elif kind == "AttentionInjectingSampler":
            inputs["steps"] = steps
        elif kind == "EulerIntegrate":
            inputs["frames"] = frames
        elif kind == "AttentionClusterMask":
            inputs["overlap"] = 0.5  # random weights give loose clusters; the work is the same
    comfy_root = os.environ.get("T2C_COMFYUI", str(Path(REPO) / ".venv" / "comfyui"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(comfy_root, Path(base), extra_packs=(TEST_PACK,), cpu=not gpu)
        server.start()
        try:
            titles = {key: node["class_type"] for key, node in prompt.items()}
            client = uuid.uuid4().hex
            connection = server.websocket(client, timeout=600)
            with VramSampler(server.process.pid) as vram:
                start = time.perf_counter()
                response = server.queue(prompt, client_id=client)
                check(response.status_code == 200, "the server accepted the prompt")
                prompt_id = response.json()["prompt_id"]
                seconds, current, since = {}, None, start
                while True:
                    message = connection.recv()
                    if not isinstance(message, str):
                        continue
                    event = json.loads(message)
                    data = event.get("data", {})
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    if event["type"] in ("executing", "execution_success", "execution_error"):
                        now = time.perf_counter()
                        if current is not None:
                            seconds[current] = seconds.get(current, 0.0) + now - since
                        current, since = data.get("node"), now
                        if event["type"] != "executing" or current is None:
                            break
                total = time.perf_counter() - start
            entry = server.wait(prompt_id, timeout=600)
            check(entry["status"].get("status_str") == "success", "the workflow ran to the end")
        finally:
            server.stop()
    for node, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  | {node} {titles.get(node, '')} | {spent:.2f} |")
    print(f"  end to end: {total:.2f} s (goal < 10 s); server peak VRAM {vram.peak_mib / 1024:.2f} GiB (goal < 6 GiB)")
    if gpu:
        check(total < 10.0, "end to end under 10 s")
        check(vram.peak_mib < 6 * 1024, "peak VRAM under 6 GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script, no GPU)")
    parser.add_argument("--skip-workflow", action="store_true")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing was checked (use --smoke to exercise the script).")
        return 0
    device = torch.device("cpu" if args.smoke else "cuda")
    from text2cinemagraph.kernels import splat_cuda

    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu (smoke)'}; "
          f"torch {torch.__version__}; CuPy kernel available: {splat_cuda.available()}")
    if device.type == "cuda" and not splat_cuda.available():
        print("  CuPy is not installed: splat_ runs in plain torch on the GPU (pip install cupy-cuda12x)")
    kernel_parity(device)
    render_parity(device, 64 if args.smoke else 256)
    print("3. integration + render seconds (median of 3 after a warm-up; 4K: 1 run)")
    print("  | render | size | frames | moving pixels | integrate s | render s | total s | peak VRAM GiB |")
    print("  |---|---|---|---|---|---|---|---|")
    for render in ("resample", "splat"):
        if args.smoke:
            time_render(device, 64, 64, 12, 1, render)
        else:
            time_render(device, 512, 512, 120, 3, render)
            time_render(device, 2160, 3840, 120, 1, render)
    learned_frames(device, 64 if args.smoke else 512, 2 if args.smoke else 120)
    if not args.skip_workflow:
        if args.smoke:
            workflow(False, 64, 3, 6)
        else:
            workflow(True, 512, 50, 120)
    print("\nall checks passed" if not FAILURES else f"\nFAILED: {FAILURES}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
