"""Issue 23's memory bounds: LoopClip's peak RSS, in a fresh process, adds at most 1.5x the clip's
IMAGE batch, ClipFlow's almost nothing. Speed is measured, not asserted: ``tests/benchmark_clip_loop.py``
times both methods against the pack's pixel render in one run (BENCHMARKS.md has the figures at
512^2 and 120 frames).
"""

from __future__ import annotations

import re
import subprocess
import sys

import torch

from conftest import TESTS

torch.set_num_threads(1)

SIZE, FRAMES = 256, 48


def memory_ratio(method: str) -> float:
    """Peak RSS that ``method`` adds in a fresh process, over the clip's IMAGE batch."""
    done = subprocess.run(
        [sys.executable, "-P", f"{TESTS}/benchmark_clip_loop.py", "--size", str(SIZE), "--frames", str(FRAMES),
         "--memory-of", method], capture_output=True, text=True, timeout=300, check=True)
    return float(re.search(r"= ([0-9.]+)x the input batch", done.stdout).group(1))


def test_loop_clip_adds_at_most_one_and_a_half_input_batches_and_clip_flow_almost_nothing():
    """LoopClip's loop is most of the clip here (0.9x with its working memory); ClipFlow holds a frame or
    two and the flow. The eulerian chain's render after it (its batch and working memory, 1.43x at 512^2)
    is the pack's existing render: BENCHMARKS.md."""
    assert 0 < memory_ratio("loop") <= 1.5
    assert memory_ratio("flow") <= 0.25  # a few MiB: OpenCV's pyramids and [H, W] maps (0.00x at 512^2)
