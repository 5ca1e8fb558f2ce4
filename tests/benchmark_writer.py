"""Peak memory and time of LoopVideoWriter's encoding (``write_loop``).

    .venv/bin/python tests/benchmark_writer.py --width 1536 --height 1024 --frames 120 --format mp4

Reports the RSS the writer adds on top of the IMAGE batch it is given (the
batch is allocated before measuring), and the same for chunked (streamed)
input, where no batch exists at all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # noqa: E402,F401  (imports this checkout as text2cinemagraph)
from peak_memory import GIB, peak_rss  # noqa: E402

from text2cinemagraph.nodes.stages.video import write_loop  # noqa: E402


def moving_frames(frames: int, height: int, width: int, start: int = 0, count: int | None = None) -> torch.Tensor:
    """A deterministic loop: a smooth picture whose left third drifts, ``[n, H, W, 3]``."""
    y = torch.linspace(0, 1, height).view(height, 1, 1)
    x = torch.linspace(0, 1, width).view(1, width, 1)
    rgb = torch.tensor([0.9, 0.6, 0.3]).view(1, 1, 3)
    base = (0.5 + 0.4 * torch.sin(6.28 * (3 * x + 2 * y) + rgb * 4)).expand(height, width, 3)
    count = frames - start if count is None else count
    out = base.unsqueeze(0).repeat(count, 1, 1, 1)
    for i in range(count):
        shift = (start + i) * width // (3 * frames)
        out[i, :, : width // 3] = torch.roll(base[:, : width // 3], shift, dims=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--format", default="mp4")
    parser.add_argument("--chunk", type=int, default=0, help="stream chunks of this many frames (0: one batch)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        if args.chunk:
            source = (
                moving_frames(args.frames, args.height, args.width, s, min(args.chunk, args.frames - s))
                for s in range(0, args.frames, args.chunk)
            )
            batch_gib = 0.0
        else:
            source = moving_frames(args.frames, args.height, args.width)
            batch_gib = source.numel() * 4 / GIB
        began = time.perf_counter()
        with peak_rss() as memory:
            write_loop(source, os.path.join(folder, "loop"), format=args.format, fps=30)
        seconds = time.perf_counter() - began
    print(
        f"{args.format} {args.width}x{args.height}x{args.frames} chunk={args.chunk or 'batch'}: "
        f"batch {batch_gib:.2f} GiB, RSS at start {memory.start / GIB:.2f} GiB, peak {memory.peak / GIB:.2f} GiB, "
        f"writer added {memory.added / GIB:.2f} GiB, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
