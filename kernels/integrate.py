"""Euler integration of a static velocity field (Holynski et al. 2021).

``F_{0->n}(p) = F_{0->n-1}(p) + F(p + F_{0->n-1}(p))``; the backward field
``F_{N->n}`` is the same integration of ``-F`` for ``N - n`` steps. One pass
keeps the running displacement and records every step, so a loop of ``N``
frames costs ``N`` flow look-ups per pixel (the paper's release recomputes
each frame from scratch, ``N^2 / 2``).

A pixel that leaves the frame stops: the flow is unknown outside the picture,
so its position is frozen where it left, and the splatting drops it because
that position lies outside the frame.

The step is the arithmetic of :func:`.warp.sample_bilinear` (bilinear in
pixel coordinates), arranged for speed: the forward and backward passes run
together as one batch of points, each step gathers one row of a
:func:`.warp.neighbour_table` per point, and all buffers are allocated once.
A frozen point reads the table's zero row, so it never moves again.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .errors import InputError
from .warp import bilinear_weights, neighbour_table

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Motion:
    """Where every moving pixel of the picture is in each frame of the loop.

    Attributes:
        flow: ``[2, H, W]`` velocity in pixels per frame (x right, y down).
        sources: ``[M]`` int64 flat indices ``y * W + x`` of the pixels whose
            flow is not zero. Every other pixel stays still in every frame.
        forward: ``[N + 1, 2, M]`` displacement ``F_{0->n}`` of each source.
        backward: ``[N + 1, 2, M]`` displacement ``F_{N->n}`` of each source.
    """

    flow: Tensor
    sources: Tensor
    forward: Tensor
    backward: Tensor

    @property
    def num_frames(self) -> int:
        return self.forward.shape[0] - 1

    @property
    def height(self) -> int:
        return self.flow.shape[1]

    @property
    def width(self) -> int:
        return self.flow.shape[2]

    def source_positions(self) -> tuple[Tensor, Tensor]:
        """Integer start positions ``(x [M], y [M])`` of the sources, as floats."""
        y, x = torch.div(self.sources, self.width, rounding_mode="floor"), self.sources % self.width
        return x.to(self.flow.dtype), y.to(self.flow.dtype)


HUGE_PAGE_MIN_BYTES = 16 << 20


def empty_output(shape: Sequence[int], dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """``torch.empty`` for a large fresh CPU output, backed by transparent huge pages where Linux offers them.

    Writing a freshly allocated tensor costs a page fault per 4 KiB page the
    first time each page is touched, which makes filling hundreds of MB of
    frames several times slower than the arithmetic that produces them. A
    private anonymous mapping advised ``MADV_HUGEPAGE`` faults 2 MiB at a time.
    The mapping lives as long as the tensor. Elsewhere (another OS, a GPU, a
    small tensor, THP disabled) this is plain ``torch.empty``.
    """
    numel = math.prod(shape)
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    on_cpu = device is None or torch.device(device).type == "cpu"
    if on_cpu and nbytes >= HUGE_PAGE_MIN_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            buffer.madvise(mmap.MADV_HUGEPAGE)
            return torch.frombuffer(buffer, dtype=dtype, count=numel).view(tuple(shape))
        except (OSError, ValueError, AttributeError):
            pass
    return torch.empty(tuple(shape), dtype=dtype, device=device)


FLOAT_INDEX_LIMIT = 1 << 24  # flat indices below this are exact in float32
CHECK_EVERY = 8  # steps between full checks for points that may leave the frame
CHUNK_POINTS = 1 << 16  # points integrated together through all steps (their buffers stay in cache)

Recorder = Callable[[int, int, int, Tensor], None]


class _Ticker:
    """Calls ``progress()`` ``calls`` times, evenly over ``work`` units done in any order."""

    def __init__(self, progress: Optional[Callable[[], None]], calls: int, work: int):
        self.progress, self.calls, self.work = progress, calls, max(work, 1)
        self.done = self.called = 0

    def add(self, units: int) -> None:
        self.done += units
        due = self.calls if self.done >= self.work else self.calls * self.done // self.work
        while self.called < due:
            self.called += 1
            if self.progress is not None:
                self.progress()


def _advect(
    table: Tensor,
    groups: Sequence[tuple[Tensor, bool, Recorder]],
    width: int,
    height: int,
    steps: int,
    progress: Optional[Callable[[], None]] = None,
    window: Optional[tuple[int, int, int, int]] = None,
) -> None:
    """Euler-integrate groups of points in a velocity field, or in its negation.

    Args:
        table: the :func:`.warp.neighbour_table` of a ``[C, H, W]`` field
            (``C`` is 2 for a flow) over ``window``.
        groups: ``(start [C, M] positions (x, y) in pixels, negate, record)``
            per group; a negated group moves along ``-F`` (``-F`` sampled is
            minus ``F`` sampled, exactly, so one table serves both).
            ``record(k, first, last, displacement [C, last - first])`` receives
            the displacement of points ``first .. last - 1`` of the group after
            ``k = 0 .. steps`` steps; the tensor is reused, copy what must be kept.
        steps: number of Euler steps.
        progress: called ``steps`` times per group, spread over the work.
        window: ``(top, left, rows, cols)`` of the table (default: the whole
            field); every point that is inside the field must stay inside it.

    Points are integrated in chunks of ``CHUNK_POINTS`` through all the
    steps, so that each chunk's buffers and the part of the table it reads
    stay in cache.
    """
    ticker = _Ticker(progress, steps * len(groups), steps * sum(start.shape[1] for start, _, _ in groups))
    speed = float(table.abs().max())
    for start, negate, record in groups:
        count = start.shape[1]
        if count == 0:
            record(0, 0, 0, start.new_zeros(start.shape))
        for first in range(0, count, CHUNK_POINTS):
            last = min(first + CHUNK_POINTS, count)

            def chunk_record(k: int, displacement: Tensor, first: int = first, last: int = last) -> None:
                record(k, first, last, displacement)

            _advect_chunk(table, speed, start[:, first:last], negate, width, height, steps, chunk_record, ticker, window)
    ticker.add(ticker.work)  # nothing to integrate: still report every step


def _advect_chunk(
    table: Tensor,
    speed: float,
    start: Tensor,
    negate: bool,
    width: int,
    height: int,
    steps: int,
    record: Callable[[int, Tensor], None],
    ticker: _Ticker,
    window: Optional[tuple[int, int, int, int]],
) -> None:
    """:func:`_advect` for one chunk of points.

    A point whose position is outside ``[0, W-1] x [0, H-1]`` before a step is
    frozen: from then on it reads the table's zero column and keeps its
    displacement, as :func:`.warp.sample_bilinear` times an inside mask would.
    Only points near the border are tested in each step: a full test every
    ``CHECK_EVERY`` steps lists those that could reach the border before the
    next one, given the largest velocity component.
    """
    channels, total = start.shape
    dtype, device = start.dtype, start.device
    displacement = torch.zeros((channels, total), dtype=dtype, device=device)
    record(0, displacement)
    pixels = table.shape[1] - 1
    top, left, _, cols = (0, 0, height, width) if window is None else window
    shift = top * cols + left
    float_index = height * width < FLOAT_INDEX_LIMIT
    # A step moves a point by at most ``speed`` per axis, up to rounding.
    margin = CHECK_EVERY * (speed * 1.001 + 0.01) + 0.01
    right, bottom = float(width - 1), float(height - 1)
    centre = torch.tensor([[right / 2], [bottom / 2]], dtype=dtype, device=device)
    upper = torch.tensor([[right], [bottom]], dtype=dtype, device=device)

    origin = start.clone()  # a frozen point's origin becomes centre - displacement
    position = torch.empty_like(displacement)
    lower = torch.empty_like(displacement)
    fractions = torch.empty((2, 2, total), dtype=dtype, device=device)
    weight = torch.empty((4, total), dtype=dtype, device=device)
    index = torch.empty(total, dtype=torch.long, device=device)
    flat = torch.empty(total, dtype=dtype if float_index else torch.long, device=device)
    cell = None if float_index else torch.empty((2, total), dtype=torch.long, device=device)
    gathered = torch.empty((table.shape[0], total), dtype=dtype, device=device)
    corners = torch.empty((channels, 4, total), dtype=dtype, device=device)
    velocity = torch.empty((channels, total), dtype=dtype, device=device)
    frozen: Optional[Tensor] = None
    watch: Optional[Tensor] = None  # points to test in this step; None: all are far from the border

    def freeze(leaving: Tensor) -> None:
        nonlocal frozen
        if leaving.numel() == 0:
            return
        origin[:, leaving] = centre - displacement[:, leaving]
        position[:, leaving] = origin[:, leaving] + displacement[:, leaving]
        frozen = leaving if frozen is None else torch.cat((frozen, leaving))

    for k in range(1, steps + 1):
        torch.add(origin, displacement, out=position)
        if (k - 1) % CHECK_EVERY == 0:
            low, high = position.amin(dim=1).tolist(), position.amax(dim=1).tolist()
            if min(low) < margin or high[0] > right - margin or high[1] > bottom - margin:
                near = torch.lt(position, margin)
                near |= torch.gt(position, upper - margin)
                watch = torch.nonzero(near[0] | near[1]).squeeze(1)
            else:
                watch = None
        if watch is not None and watch.numel():
            seen = position[:, watch]
            outside = torch.lt(seen, 0.0)
            outside |= torch.gt(seen, upper)
            freeze(watch[outside[0] | outside[1]])
        bilinear_weights(position, lower, fractions, weight)
        if float_index:
            torch.add(lower[0], lower[1], alpha=cols, out=flat)
            index.copy_(flat)
        else:
            cell.copy_(lower)
            torch.add(cell[0], cell[1], alpha=cols, out=index)
        if shift:
            index.sub_(shift)
        if frozen is not None:
            index.index_fill_(0, frozen, pixels)
        torch.index_select(table, 1, index, out=gathered)
        torch.mul(gathered.view(channels, 4, -1), weight.unsqueeze(0), out=corners)
        torch.sum(corners, dim=1, out=velocity)
        if negate:
            displacement.sub_(velocity)
        else:
            displacement.add_(velocity)
        record(k, displacement)
        ticker.add(total)


def _check_field(flow: Tensor) -> None:
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise InputError("flow", f"expected a [2, H, W] velocity field, got shape {tuple(flow.shape)}")


def integrate_displacements(
    flow: Tensor,
    x0: Tensor,
    y0: Tensor,
    steps: int,
    out: Tensor,
    reverse: bool = False,
    progress: Optional[Callable[[], None]] = None,
) -> Tensor:
    """Record the cumulative displacement of points advected by ``flow``.

    Args:
        flow: ``[2, H, W]`` velocity in pixels per step.
        x0, y0: ``[M]`` start positions in pixels.
        steps: number of Euler steps.
        out: ``[steps + 1, 2, M]`` receives the displacement after ``k``
            steps at index ``k`` (or ``steps - k`` with ``reverse``).
        progress: called once per step.

    Returns:
        ``out``.
    """
    _check_field(flow)
    _, height, width = flow.shape
    start = torch.stack((x0, y0)).to(flow.dtype)

    def record(k: int, first: int, last: int, displacement: Tensor) -> None:
        out[steps - k if reverse else k, :, first:last] = displacement

    _advect(neighbour_table(flow), [(start, False, record)], width, height, steps, progress)
    return out


def euler_integrate(flow: Tensor, num_frames: int, progress: Optional[ProgressFn] = None) -> Motion:
    """Forward and backward cumulative displacements for a loop of ``num_frames``.

    Args:
        flow: ``[2, H, W]`` finite velocity field in pixels per frame.
        num_frames: ``N >= 1``; frame ``N`` of the loop equals frame 0.
        progress: ``progress(done, total)`` after each integration step.

    Returns:
        The :class:`Motion` of the pixels with non-zero flow.
    """
    _check_field(flow)
    if num_frames < 1:
        raise InputError("frames", f"must be at least 1, got {num_frames}")
    bad = (~torch.isfinite(flow)).any(dim=0)
    if bad.any():
        raise InputError(
            "flow",
            f"contains NaN or infinite values at {int(bad.sum())} pixels; "
            "the flow must be finite everywhere (0 where nothing moves)",
        )
    flow = flow.float()
    _, height, width = flow.shape
    sources = torch.nonzero((flow != 0).any(dim=0).reshape(-1)).squeeze(1)
    count = sources.shape[0]
    y0 = torch.div(sources, width, rounding_mode="floor").to(flow.dtype)
    x0 = (sources % width).to(flow.dtype)
    shape = (num_frames + 1, 2, count)
    forward = empty_output(shape, flow.dtype, flow.device)
    backward = empty_output(shape, flow.dtype, flow.device)

    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, 2 * num_frames)

    def record_forward(k: int, first: int, last: int, displacement: Tensor) -> None:
        forward[k, :, first:last] = displacement

    def record_backward(k: int, first: int, last: int, displacement: Tensor) -> None:
        backward[num_frames - k, :, first:last] = displacement

    window = None
    if count:
        # A point moves only while within one pixel of the support, so its cell
        # stays within 2 + max|F| of it.
        reach = math.ceil(float(flow.abs().max())) + 3
        ys, xs = torch.div(sources, width, rounding_mode="floor"), sources % width
        top, left = max(int(ys.min()) - reach, 0), max(int(xs.min()) - reach, 0)
        bottom, right = min(int(ys.max()) + reach, height - 1), min(int(xs.max()) + reach, width - 1)
        window = (top, left, bottom - top + 1, right - left + 1)
    table = neighbour_table(flow, window)
    start = torch.stack((x0, y0))
    groups = [(start, False, record_forward), (start, True, record_backward)]
    _advect(table, groups, width, height, num_frames, step, window)
    return Motion(flow=flow, sources=sources, forward=forward, backward=backward)
