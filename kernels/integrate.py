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


def _advect(
    tables: Sequence[Tensor],
    counts: Sequence[int],
    start: Tensor,
    width: int,
    height: int,
    steps: int,
    record: Callable[[int, Tensor], None],
    progress: Optional[Callable[[], None]] = None,
) -> None:
    """Euler-integrate groups of points, each group in its own velocity field.

    Args:
        tables: one :func:`.warp.neighbour_table` of a ``[2, H, W]`` field per group.
        counts: number of points of each group; the points are concatenated
            in group order.
        start: ``[2, A]`` start positions (x, y) in pixels.
        steps: number of Euler steps.
        record: ``record(k, displacement [2, A])`` after ``k = 0 .. steps``
            steps; the tensor is reused, copy what must be kept.
        progress: called once per group after each step.

    A point whose position is outside ``[0, W-1] x [0, H-1]`` before a step is
    frozen: from then on it reads the table's zero row and keeps its
    displacement, as :func:`.warp.sample_bilinear` times an inside mask would.
    """
    total = start.shape[1]
    dtype, device = start.dtype, start.device
    displacement = torch.zeros((2, total), dtype=dtype, device=device)
    record(0, displacement)
    if total == 0:
        for _ in range(steps):
            for _ in counts:
                if progress is not None:
                    progress()
        return
    origin = start.clone()  # a frozen point's origin becomes -displacement: its position reads 0
    position = torch.empty_like(displacement)
    lower = torch.empty_like(displacement)
    fractions = torch.empty((2, 2, total), dtype=dtype, device=device)
    weight = torch.empty((4, total), dtype=dtype, device=device)
    cell = torch.empty((2, total), dtype=torch.long, device=device)
    index = torch.empty(total, dtype=torch.long, device=device)
    channels = tables[0].shape[1] // 4
    gathered = torch.empty((total, channels * 4), dtype=dtype, device=device)
    corners = torch.empty((channels, 4, total), dtype=dtype, device=device)
    velocity = torch.empty((channels, total), dtype=dtype, device=device)
    corner_view = gathered.view(total, channels, 4).permute(1, 2, 0)  # [C, 4, A] view
    zero_row = tables[0].shape[0] - 1
    spans = []
    begin = 0
    for table, count in zip(tables, counts):
        spans.append((table, begin, begin + count))
        begin += count
    frozen: Optional[Tensor] = None
    right, bottom = width - 1, height - 1
    for k in range(1, steps + 1):
        torch.add(origin, displacement, out=position)
        low, high = torch.aminmax(position, dim=1)
        (low_x, low_y), (high_x, high_y) = low.tolist(), high.tolist()
        if low_x < 0 or low_y < 0 or high_x > right or high_y > bottom:
            x, y = position[0], position[1]
            outside = (x < 0) | (x > right) | (y < 0) | (y > bottom)
            leaving = torch.nonzero(outside).squeeze(1)
            origin[:, leaving] = -displacement[:, leaving]
            position[:, leaving] = 0.0
            frozen = leaving if frozen is None else torch.cat((frozen, leaving))
        bilinear_weights(position, lower, fractions, weight)
        cell.copy_(lower)
        torch.add(cell[0], cell[1], alpha=width, out=index)
        if frozen is not None:
            index.index_fill_(0, frozen, zero_row)
        for table, first, last in spans:
            torch.index_select(table, 0, index[first:last], out=gathered[first:last])
        torch.mul(corner_view, weight.unsqueeze(0), out=corners)
        torch.sum(corners, dim=1, out=velocity)
        displacement.add_(velocity)
        record(k, displacement)
        if progress is not None:
            for _ in spans:
                progress()


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

    def record(k: int, displacement: Tensor) -> None:
        out[steps - k if reverse else k] = displacement

    _advect([neighbour_table(flow)], [start.shape[1]], start, width, height, steps, record, progress)
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
    forward = torch.empty(shape, dtype=flow.dtype, device=flow.device)
    backward = torch.empty(shape, dtype=flow.dtype, device=flow.device)

    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, 2 * num_frames)

    def record(k: int, displacement: Tensor) -> None:
        forward[k].copy_(displacement[:, :count])
        backward[num_frames - k].copy_(displacement[:, count:])

    table = neighbour_table(flow)
    start = torch.stack((torch.cat((x0, x0)), torch.cat((y0, y0))))
    _advect([table, -table], [count, count], start, width, height, num_frames, record, step)
    return Motion(flow=flow, sources=sources, forward=forward, backward=backward)
