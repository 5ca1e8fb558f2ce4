"""Benchmark: the learned networks at full (release) size on one 512x512 picture.

    .venv/bin/python tests/benchmark_networks.py [--threads 1 2] [--repeats 3] [--device cpu|cuda]

Each measurement runs in a fresh process (so that peak memory is its own):
G_flow (one flow prediction), the hint network, and G_frame's encoder (once
per loop) and decoder (once per frame; whole picture and the window the
``learned`` frame method decodes for a mask covering the lower 35% of the
picture). Weights are random: the time does not depend on them. Prints a
Markdown table: median seconds, and peak resident memory (CPU) or peak
allocated GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = ("g_flow", "hint", "g_frame_encode", "g_frame_decode", "g_frame_decode_window")


def measure(case: str, threads: int, repeats: int, device: str) -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    from text2cinemagraph.nodes.stages.learned_frames import decode_window
    from text2cinemagraph.nodes.stages.networks import build_network, fold_spectral_norm

    kind = {"g_flow": "flow", "hint": "hint"}.get(case, "frame")
    torch.manual_seed(0)
    network = fold_spectral_norm(build_network(kind).eval()).to(device).requires_grad_(False)
    size = 512
    if case == "g_flow":
        inputs = (torch.rand(1, 4, size, size, device=device), torch.randn(1, 77, 768, device=device))
        run = lambda: network(*inputs)  # noqa: E731
    elif case == "hint":
        x = torch.rand(1, 6, size, size, device=device)
        run = lambda: network(x)  # noqa: E731
    elif case == "g_frame_encode":
        x = torch.rand(1, 3, size, size, device=device)
        run = lambda: network.encode(x)  # noqa: E731
    else:
        height = size
        if case == "g_frame_decode_window":
            region = torch.zeros(size, size, dtype=torch.bool)
            region[int(size * 0.65) :, :] = True
            rows, cols = decode_window(region, network.config.multiple)
            height = rows.stop - rows.start
        features = torch.randn(1, 64, height, size, device=device)
        run = lambda: network.decode(features)  # noqa: E731
    times = []
    with torch.inference_mode():
        run()  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        memory = torch.cuda.max_memory_allocated() / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parameters = sum(p.numel() for p in network.parameters())
    return {"case": case, "threads": threads, "seconds": statistics.median(times), "memory_mib": memory,
            "parameters": parameters, "device": device}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--one", nargs=2, metavar=("CASE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.repeats, args.device)))
        return 0
    rows = []
    for case in args.cases:
        for threads in args.threads:
            command = [sys.executable, os.path.abspath(__file__), "--one", case, str(threads),
                       "--repeats", str(args.repeats), "--device", args.device]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(f"# {rows[-1]}", file=sys.stderr)
    memory_label = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"| network / step (512x512, {args.device}) | parameters | threads | median s | {memory_label} |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['parameters'] / 1e6:.1f}M | {row['threads']} | {row['seconds']:.2f} | "
              f"{row['memory_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
