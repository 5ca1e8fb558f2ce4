"""Issue 23's memory bound: each node chain that loops a clip adds, in a fresh process, at most 1.5x
the clip's IMAGE batch to the peak RSS. Speed is measured, not asserted: ``tests/benchmark_clip_loop.py``
times both methods against the pack's pixel render in one run (BENCHMARKS.md has the figures at
512^2 and 120 frames).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from conftest import TESTS

torch.set_num_threads(1)

# 512^2: at 256^2 the render's and OpenCV's size-independent buffers (about 20 MiB) are a third of the batch.
SIZE, FRAMES = 512, 48


def memory_ratio(method: str) -> float:
    """Peak RSS that ``method``'s node chain adds in a fresh process, over the clip's IMAGE batch."""
    done = subprocess.run(
        [sys.executable, "-P", f"{TESTS}/benchmark_clip_loop.py", "--size", str(SIZE), "--frames", str(FRAMES),
         "--memory-of", method], capture_output=True, text=True, timeout=300, check=True)
    return float(re.search(r"= ([0-9.]+)x the input batch", done.stdout).group(1))


@pytest.mark.parametrize("method", ["loop", "eulerian"])
def test_a_clip_loop_node_chain_adds_at_most_one_and_a_half_input_batches(method):
    """loop: LoopClip, whose output is a loop of up to the clip's length (0.6x measured). eulerian:
    ClipFlow -> EulerIntegrate -> SymmetricSplatFrameGen, whose rendered loop alone is 1.0x here
    (1.2x measured, with the flow and the render's working memory)."""
    assert 0.3 < memory_ratio(method) <= 1.5
