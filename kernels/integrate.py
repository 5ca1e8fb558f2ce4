"""Euler integration of a static velocity field (Holynski et al. 2021).

``F_{0->n}(p) = F_{0->n-1}(p) + F(p + F_{0->n-1}(p))``; the backward field
``F_{N->n}`` is the same integration of ``-F`` for ``N - n`` steps. One pass
keeps the running displacement and records every step, so a loop of ``N``
frames costs ``N`` flow look-ups per pixel (the paper's release recomputes
each frame from scratch, ``N^2 / 2``).

A pixel that leaves the frame stops: the flow is unknown outside the picture,
so its position is frozen where it left, and the splatting drops it because
that position lies outside the frame.

The step is bilinear sampling in pixel coordinates (the arithmetic of
:func:`.warp.corner_weights`), arranged for speed: each step gathers one
column of a :func:`.warp.neighbour_table` per point, shared by the forward
and backward passes, and points go through the steps in cache-sized chunks
whose buffers are allocated once. A frozen point reads the table's zero
column, so it never moves again.

A loop can be integrated in parts (:class:`LoopIntegrator`): the forward pass
continues from one part to the next, and the backward pass, which reaches the
first frames last, resumes from checkpoints of its state.

The recorded trajectories are stored compactly (:class:`Motion`): int16
multiples of a power-of-two quantum (``2^-8`` px or finer), so a loop of
``N`` frames costs ``8 (N + 1)`` bytes per moving pixel instead of 16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .errors import InputError
from .warp import bilinear_weights, neighbour_table

ProgressFn = Callable[[int, int], None]


def vector_speed(vectors: Tensor) -> Tensor:
    """``[...]`` lengths of ``[2, ...]`` vectors (x, y): a flow's speed in px/frame (``torch.hypot``;
    ``norm(dim=0)`` is 70x slower)."""
    return torch.hypot(vectors[0], vectors[1])


FRAME_BYTES = 8  # stored bytes per moving pixel and frame: int16 (x, y), forward and backward
MIN_QUANTUM_BITS = 8  # trajectories are stored as int16 when 2^-8 px (or finer) covers their range


@dataclass(frozen=True)
class Motion:
    """Where every moving pixel of the picture is in each frame of the loop.

    Attributes:
        flow: ``[2, H, W]`` velocity in pixels per frame (x right, y down).
        sources: ``[M]`` int64 flat indices ``y * W + x`` of the pixels whose
            flow is not zero. Every other pixel stays still in every frame.
        forward_stored: ``[L, 2, M]`` displacement ``F_{0->n}`` of each source
            for the frames ``n = first_frame .. first_frame + L - 1`` (all
            ``N + 1`` by default), in units of ``quantum`` (int16, or float32
            with quantum 1 for motions too long for int16).
        backward_stored: ``[L, 2, M]`` displacement ``F_{N->n}``, likewise.
        quantum: a power of two; displacement = stored * quantum, exactly.
        loop_frames: ``N`` (default ``L - 1``).
        first_frame: the first frame stored.
    """

    flow: Tensor
    sources: Tensor
    forward_stored: Tensor
    backward_stored: Tensor
    quantum: float = 1.0
    loop_frames: Optional[int] = None
    first_frame: int = 0

    @property
    def num_frames(self) -> int:
        return self.loop_frames if self.loop_frames is not None else self.forward_stored.shape[0] - 1

    @property
    def stored_frames(self) -> range:
        """The frames ``n`` whose displacements are stored."""
        return range(self.first_frame, self.first_frame + self.forward_stored.shape[0])

    @property
    def height(self) -> int:
        return self.flow.shape[1]

    @property
    def width(self) -> int:
        return self.flow.shape[2]

    @property
    def forward(self) -> Tensor:
        """``[N + 1, 2, M]`` float32 ``F_{0->n}`` (decoded; :meth:`displacements` for one frame)."""
        return self.forward_stored.float() * self.quantum

    @property
    def backward(self) -> Tensor:
        """``[N + 1, 2, M]`` float32 ``F_{N->n}``."""
        return self.backward_stored.float() * self.quantum

    def displacements(self, n: int, device=None) -> tuple[Tensor, Tensor]:
        """``(F_{0->n} [2, M], F_{N->n} [2, M])`` float32 for a stored frame ``n``, on ``device``."""
        n -= self.first_frame
        return tuple(
            stored[n].to(device if device is not None else stored.device).float().mul_(self.quantum)
            for stored in (self.forward_stored, self.backward_stored)
        )

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.flow, self.sources, self.forward_stored,
                                                          self.backward_stored))

    def to(self, device) -> "Motion":
        """This motion on ``device`` (itself when already there)."""
        if self.flow.device == torch.device(device):
            return self
        moved = (t.to(device) for t in (self.flow, self.sources, self.forward_stored, self.backward_stored))
        return Motion(*moved, quantum=self.quantum, loop_frames=self.loop_frames, first_frame=self.first_frame)

    def speeds(self, sources: Optional[Tensor] = None, dtype: Optional[torch.dtype] = None) -> Tensor:
        """``[M]`` the flow's speed (:func:`vector_speed`) at the sources (or at ``sources``, flat
        indices), computed in ``dtype`` (default the flow's)."""
        vectors = self.flow.flatten(1)[:, self.sources if sources is None else sources]
        return vector_speed(vectors.to(dtype) if dtype is not None else vectors)

    def source_positions(self) -> tuple[Tensor, Tensor]:
        """Integer start positions ``(x [M], y [M])`` of the sources, as floats."""
        y, x = torch.div(self.sources, self.width, rounding_mode="floor"), self.sources % self.width
        return x.to(self.flow.dtype), y.to(self.flow.dtype)


def motion_bytes(moving_pixels: int, num_frames: int, height: int, width: int,
                 stored_frames: Optional[int] = None) -> int:
    """Bytes of the :class:`Motion` of ``moving_pixels`` sources over ``num_frames`` (int16 storage),
    storing ``stored_frames`` frames (default: all ``N + 1``)."""
    stored = num_frames + 1 if stored_frames is None else stored_frames
    return moving_pixels * (8 + FRAME_BYTES * stored) + 8 * height * width


def _checkpoints(parts: int, part_frames: int) -> int:
    """Backward checkpoints kept for ``parts`` parts of ``part_frames`` frames: one per later part
    (each as large as a stored frame) while they take at most a quarter of a part, else none."""
    return parts - 1 if 4 * (parts - 1) <= part_frames else 0


def integrator_bytes(moving_pixels: int, parts: int, part_frames: int) -> int:
    """Bytes a :class:`LoopIntegrator` keeps between the ``parts`` of a loop, beyond the parts' motions:
    start positions, both passes' displacements and its backward checkpoints (float32 x, y)."""
    return moving_pixels * 8 * (3 + _checkpoints(parts, part_frames))


CHECK_EVERY = 8  # steps between full checks for points that may leave the frame
CHUNK_POINTS = 1 << 16  # points integrated together through all steps (their buffers stay in cache)

Recorder = Callable[[int, int, int, Tensor], None]


class _Chunk:
    """Points ``first .. last - 1`` of one pass, after :attr:`step` Euler steps.

    A point whose position is outside ``[0, W-1] x [0, H-1]`` before a step is
    frozen: from then on it reads the table's zero column and keeps its
    displacement, as bilinear sampling times an inside mask would. While the
    chunk advances, a frozen point's origin is ``centre - displacement``, so
    that its position stays inside; between advances only the displacement
    and the list of frozen points are kept (the origin follows from them).
    """

    def __init__(self, first: int, last: int, device):
        self.first, self.last, self.step = first, last, 0
        self.displacement = torch.zeros((2, last - first), device=device)
        self.frozen: Optional[Tensor] = None

    def state(self) -> tuple[int, Tensor, Optional[Tensor]]:
        """``(step, displacement, frozen)``: what :meth:`restore` needs."""
        return self.step, self.displacement.clone(), self.frozen

    def restore(self, state: tuple[int, Tensor, Optional[Tensor]]) -> None:
        self.step, displacement, self.frozen = state
        self.displacement = displacement.clone()

    def _origin(self, start: Tensor, centre: Tensor) -> Tensor:
        origin = start[:, self.first : self.last].clone()
        if self.frozen is not None:
            origin[:, self.frozen] = centre - self.displacement[:, self.frozen]
        return origin

    def advance(self, field: "_Field", negate: bool, until: int, record: Callable[[int, Tensor], None],
                step_done: Callable[[int], None]) -> None:
        """Make steps :attr:`step` + 1 .. ``until``; ``record(k, displacement [2, K])`` after each
        (the tensor is reused: copy what must be kept).

        Only points near the border are tested in each step: a full test on
        the first step and every ``CHECK_EVERY`` steps lists those that could
        reach the border before the next one, given the largest velocity component.
        """
        if until <= self.step:
            return
        table, (width, height), (top, left, _, cols) = field.table, field.size, field.window
        displacement = self.displacement
        total, dtype, device = displacement.shape[1], displacement.dtype, displacement.device
        pixels, shift = table.shape[1] - 1, top * cols + left
        # A step moves a point by at most ``speed`` per axis, up to rounding.
        margin = CHECK_EVERY * (field.speed * 1.001 + 0.01) + 0.01
        right, bottom = float(width - 1), float(height - 1)
        centre = torch.tensor([[right / 2], [bottom / 2]], dtype=dtype, device=device)
        origin = self._origin(field.start, centre)
        upper = torch.tensor([[right], [bottom]], dtype=dtype, device=device)
        position = torch.empty_like(displacement)
        lower = torch.empty_like(displacement)
        fractions = torch.empty((2, 2, total), dtype=dtype, device=device)
        weight = torch.empty((4, total), dtype=dtype, device=device)
        index = torch.empty(total, dtype=torch.long, device=device)
        cell = torch.empty((2, total), dtype=torch.long, device=device)
        gathered = torch.empty((table.shape[0], total), dtype=dtype, device=device)
        corners = torch.empty((2, 4, total), dtype=dtype, device=device)
        velocity = torch.empty((2, total), dtype=dtype, device=device)
        watch: Optional[Tensor] = None  # points to test in this step; None: all are far from the border

        for k in range(self.step + 1, until + 1):
            torch.add(origin, displacement, out=position)
            if k == self.step + 1 or (k - 1) % CHECK_EVERY == 0:
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
                leaving = watch[outside[0] | outside[1]]
                if leaving.numel():
                    origin[:, leaving] = centre - displacement[:, leaving]
                    position[:, leaving] = origin[:, leaving] + displacement[:, leaving]
                    self.frozen = leaving if self.frozen is None else torch.cat((self.frozen, leaving))
            bilinear_weights(position, lower, fractions, weight)
            cell.copy_(lower)
            torch.add(cell[0], cell[1], alpha=cols, out=index)
            if shift:
                index.sub_(shift)
            if self.frozen is not None:
                index.index_fill_(0, self.frozen, pixels)
            torch.index_select(table, 1, index, out=gathered)
            torch.mul(gathered.view(2, 4, -1), weight.unsqueeze(0), out=corners)
            torch.sum(corners, dim=1, out=velocity)
            if negate:
                displacement.sub_(velocity)
            else:
                displacement.add_(velocity)
            record(k, displacement)
            step_done(total)
        self.step = until


@dataclass(frozen=True)
class _Field:
    """The velocity field as the integration reads it: a :func:`.warp.neighbour_table` over ``window``
    (``(top, left, rows, cols)``, every pixel a moving point can read), its largest component, and
    where the points start."""

    table: Tensor
    window: tuple[int, int, int, int]
    size: tuple[int, int]  # (W, H)
    speed: float
    start: Tensor  # [2, M] the points' start positions (x, y)


class _Pass:
    """All points of one pass (``F`` forward, ``-F`` backward: ``-F`` sampled is minus ``F``
    sampled, exactly, so one table serves both), in chunks of ``CHUNK_POINTS``.

    Points are integrated chunk by chunk, so that each chunk's buffers and
    the part of the table it reads stay in cache.
    """

    def __init__(self, count: int, negate: bool, device):
        self.count, self.negate, self.device = count, negate, device
        self.restart()

    def restart(self) -> None:
        self.chunks = [_Chunk(first, min(first + CHUNK_POINTS, self.count), self.device)
                       for first in range(0, self.count, CHUNK_POINTS)]

    @property
    def step(self) -> int:
        return self.chunks[0].step if self.chunks else 0

    def advance(self, field: _Field, until: int, record: Optional[Recorder], step_done) -> None:
        """Steps up to ``until``, each recorded (``record(k, first, last, displacement)``, the
        current step's too) when ``record`` is given."""
        for chunk in self.chunks:
            if record is None:
                chunk.advance(field, self.negate, until, lambda k, d: None, step_done)
                continue
            record(chunk.step, chunk.first, chunk.last, chunk.displacement)

            def chunk_record(k: int, displacement: Tensor, chunk: _Chunk = chunk) -> None:
                record(k, chunk.first, chunk.last, displacement)

            chunk.advance(field, self.negate, until, chunk_record, step_done)

    def checkpoint(self) -> list:
        return [chunk.state() for chunk in self.chunks]

    def restore(self, checkpoint: list) -> None:
        for chunk, state in zip(self.chunks, checkpoint):
            chunk.restore(state)


def _check_field(flow: Tensor) -> None:
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise InputError("flow", f"expected a [2, H, W] velocity field, got shape {tuple(flow.shape)}")


def _quantum(flow: Tensor, steps: int) -> float:
    """The finest power of two that stores every displacement of the loop in int16, or 1.0 (float32
    storage) when that would be coarser than ``2^-MIN_QUANTUM_BITS`` px."""
    _, height, width = flow.shape
    speed = float(flow.abs().max())
    bound = min(speed * steps, max(height, width) + speed) + 1.0
    bits = math.floor(math.log2(32767.0 / bound))
    return 2.0**-bits if bits >= MIN_QUANTUM_BITS else 1.0


class _Trajectories:
    """``[N + 1, 2, M]`` stored displacements, written chunk by chunk as the integration records them.

    Stored values are ``round(displacement / quantum)``. Rounding never moves a
    point inside the frame out of it (the frame's edges lie on the quantum
    grid); :meth:`keep_outside_` makes sure none that ended outside moves in.
    """

    def __init__(self, loop: int, frames: range, count: int, quantum: float, device, reverse: bool):
        dtype = torch.int16 if quantum < 1.0 else torch.float32
        self.stored = torch.empty((len(frames), 2, count), dtype=dtype, device=device)
        self.quantum, self.loop, self.first, self.reverse = quantum, loop, frames.start, reverse
        # Steps to integrate: frame n is k = n steps forward, or N - n steps backward.
        self.steps = loop - frames.start if reverse else frames.stop - 1
        self.scratch = torch.empty((2, min(count, CHUNK_POINTS)), device=device)
        self.exact_end: Optional[Tensor] = torch.empty((2, count), device=device)  # float32 F at the last step


    def record(self, k: int, first: int, last: int, displacement: Tensor) -> None:
        if k == self.steps:
            self.exact_end[:, first:last] = displacement
        index = (self.loop - k if self.reverse else k) - self.first
        if not 0 <= index < self.stored.shape[0]:
            return
        target = self.stored[index, :, first:last]
        if self.stored.dtype == torch.float32:
            target.copy_(displacement)
            return
        scratch = self.scratch[:, : last - first]
        torch.mul(displacement, 1.0 / self.quantum, out=scratch)
        target.copy_(scratch.round_())

    def keep_outside_(self, start: Tensor, size: tuple[int, int]) -> None:
        """Points whose exact end position ``start + F`` (``[2, M]``) is outside the frame but rounds onto
        its edge get the end rounded outwards, in every trailing step that stored that same value."""
        if self.stored.dtype == torch.float32 or self.exact_end is None:
            return
        end = self.stored[0 if self.reverse else -1]
        exact_end, self.exact_end = self.exact_end, None
        exact = start + exact_end
        upper = torch.tensor([[size[0] - 1.0], [size[1] - 1.0]], device=start.device)
        stored_at = start + end.float() * self.quantum
        slipped = ((exact < 0) & (stored_at >= 0)) | ((exact > upper) & (stored_at <= upper))
        points = torch.nonzero(slipped.any(dim=0)).squeeze(1)
        if points.numel() == 0:
            return
        scaled = exact_end[:, points] / self.quantum
        outward = torch.where(exact[:, points] < 0, scaled.floor(), torch.where(exact[:, points] > upper,
                                                                               scaled.ceil(), scaled.round()))
        old = end[:, points].clone()
        length = self.stored.shape[0]
        for n in range(length) if self.reverse else range(length - 1, -1, -1):
            same = (self.stored[n][:, points] == old).all(dim=0)
            if not bool(same.any()):
                break
            self.stored[n][:, points[same]] = outward[:, same].to(self.stored.dtype)
            points, old, outward = points[same], old[:, same], outward[:, same]


class LoopIntegrator:
    """Euler integration of one loop in parts: :meth:`motion` stores the frames asked for.

    Asked for consecutive parts in increasing frame order, the forward pass
    continues where the last part ended, and the backward pass (which reaches
    the first frames last) resumes from checkpoints saved while integrating
    the first part, at the starts of the ``parts`` announced, when these take
    at most a quarter of a part's memory (otherwise it starts again for each
    part). Any other order gives the same trajectories, for more steps.

    Args:
        flow: ``[2, H, W]`` finite velocity field in pixels per frame.
        num_frames: ``N >= 1``; frame ``N`` of the loop equals frame 0.
        parts: the frame ranges that will be asked for, if known (for the checkpoints).
    """

    def __init__(self, flow: Tensor, num_frames: int, parts: Sequence[range] = ()):
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
        self.flow = flow = flow.float()
        self.num_frames = num_frames
        _, height, width = flow.shape
        self.sources = torch.nonzero((flow != 0).any(dim=0).reshape(-1)).squeeze(1)
        ys, xs = torch.div(self.sources, width, rounding_mode="floor"), self.sources % width
        self.start = torch.stack((xs, ys)).to(flow.dtype)
        self.quantum = _quantum(flow, num_frames)
        self.window = (0, 0, height, width)
        if self.sources.numel():
            # A point moves only while within one pixel of the support, so its cell
            # stays within 2 + max|F| of it.
            reach = math.ceil(float(flow.abs().max())) + 3
            top, left = max(int(ys.min()) - reach, 0), max(int(xs.min()) - reach, 0)
            bottom, right = min(int(ys.max()) + reach, height - 1), min(int(xs.max()) + reach, width - 1)
            self.window = (top, left, bottom - top + 1, right - left + 1)
        count, device = self.sources.numel(), flow.device
        self.forward, self.backward = _Pass(count, False, device), _Pass(count, True, device)
        # Backward steps at which a later part starts (frame n is backward step N - n).
        parts = [part for part in parts if part]
        kept = _checkpoints(len(parts), min((len(part) for part in parts), default=0))
        self.wanted = sorted({num_frames - (part.stop - 1) for part in parts[1:]}) if kept else []
        self.checkpoints: dict[int, list] = {}  # backward step -> the pass's state there

    def motion(self, frames: Optional[range] = None, progress: Optional[ProgressFn] = None) -> Motion:
        """The :class:`Motion` storing ``frames`` (consecutive; default all ``N + 1``; an empty range
        stores none). ``progress(done, total)`` counts the steps made."""
        num_frames = self.num_frames
        frames = frames if frames is not None else range(num_frames + 1)
        if frames.step != 1 or (len(frames) and not 0 <= frames.start < frames.stop <= num_frames + 1):
            raise InputError("frames", f"the stored frames {frames} must be consecutive, within 0..{num_frames}")
        count = self.sources.shape[0]
        passes = [_Trajectories(num_frames, frames, count, self.quantum, self.flow.device, reverse)
                  for reverse in (False, True)]
        motion = Motion(self.flow, self.sources, passes[0].stored, passes[1].stored, self.quantum, num_frames,
                        frames.start)
        if count == 0 or not frames:
            for trajectories in passes:
                trajectories.stored.zero_()
            return motion
        forward_steps = (frames.start, frames.stop - 1)
        backward_steps = (num_frames - (frames.stop - 1), num_frames - frames.start)
        if self.forward.step > forward_steps[0]:
            self.forward.restart()
        if self.backward.step > backward_steps[0]:
            self._resume_backward(backward_steps[0])
        ticks = (forward_steps[1] - self.forward.step) + (backward_steps[1] - self.backward.step)
        step_done = _step_counter(ticks, count, progress)
        table = neighbour_table(self.flow, self.window)  # held while integrating only
        field = _Field(table, self.window, (self.flow.shape[2], self.flow.shape[1]), float(table.abs().max()),
                       self.start)
        self.forward.advance(field, forward_steps[0], None, step_done)
        self.forward.advance(field, forward_steps[1], passes[0].record, step_done)
        # Announced parts do not overlap, so every checkpoint lies on the way to some part's first step.
        for wanted in self.wanted:
            if self.backward.step < wanted <= backward_steps[0]:
                self.backward.advance(field, wanted, None, step_done)
                self.checkpoints[wanted] = self.backward.checkpoint()
        self.backward.advance(field, backward_steps[0], None, step_done)
        self.backward.advance(field, backward_steps[1], passes[1].record, step_done)
        for trajectories in passes:
            trajectories.keep_outside_(self.start, field.size)
        return motion

    def _resume_backward(self, step: int) -> None:
        """Put the backward pass at the latest checkpoint at or before ``step`` (or its start)."""
        saved = [s for s in self.checkpoints if s <= step]
        if saved:
            self.backward.restore(self.checkpoints[max(saved)])
        else:
            self.backward.restart()


def _step_counter(ticks: int, count: int, progress: Optional[ProgressFn]) -> Callable[[int], None]:
    """A ``step_done(points)`` callback that reports ``progress(steps done, ticks)`` as points advance."""
    work, done = max(ticks * count, 1), 0

    def step_done(points: int) -> None:
        nonlocal done
        before, done = done, done + points
        if progress is not None and ticks * done // work > ticks * before // work:
            progress(ticks * done // work, ticks)

    return step_done


def euler_integrate(
    flow: Tensor,
    num_frames: int,
    progress: Optional[ProgressFn] = None,
    frames: Optional[range] = None,
) -> Motion:
    """Forward and backward cumulative displacements for a loop of ``num_frames``.

    Args:
        flow: ``[2, H, W]`` finite velocity field in pixels per frame.
        num_frames: ``N >= 1``; frame ``N`` of the loop equals frame 0.
        progress: ``progress(done, total)`` as the integration advances (``total``: the steps of
            both passes, ``2 N`` for the whole loop).
        frames: store only these consecutive frames (default ``range(N + 1)``), so
            that a long loop can be rendered in parts with less memory (a
            :class:`LoopIntegrator` integrates successive parts with fewer
            steps). An empty range integrates nothing: the motion then only
            names its sources and the render integrates the frames it needs.

    Returns:
        The :class:`Motion` of the pixels with non-zero flow, on the flow's device.
    """
    return LoopIntegrator(flow, num_frames).motion(frames, progress)
