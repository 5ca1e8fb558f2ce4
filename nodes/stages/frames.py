"""The render: symmetric softmax splatting of a picture into a seamless loop.

Frame ``n`` of ``N`` splats the picture forward by ``F_{0->n}`` with weight
``alpha = 1 - n/N`` and backward by ``F_{N->n}`` with weight ``1 - alpha``
(Holynski et al. 2021), each source weighted by ``exp(Z - max Z)`` (softmax
splatting, Niklaus & Liu 2020), and divides by the summed weight. The
picture is both the first and the last frame, so frame ``N`` would equal
frame 0 and the loop is seamless.

A render has three parts, and a frame passes through them in this order:

1. :class:`RenderPlan`, built once: the region any moving pixel can reach,
   the window (the region's bounding box, grown for a decoder), the sources'
   start positions and the schedule of when each leaves the window.
   :meth:`RenderPlan.positions` gives frame ``n``'s source positions; where
   the motion does not store frame ``n``, the plan integrates the part of the
   loop around it first (:func:`motion_parts`).
2. An accumulator adds the still pixels and frame ``n``'s two splatted copies
   of the sources into window-sized sums ``[what each pixel carries, weight]``:
   :class:`PairedAccumulator` (the CPU; channels paired into complex numbers)
   or :class:`SplatAccumulator` (:func:`...kernels.splat_`: the CuPy kernel on
   a GPU). Both add the same terms in the same order.
3. A finisher turns the sums into the window's colours: :class:`PixelFinisher`
   (normalise, fill holes) here, or the learned decoder of
   :mod:`.learned_frames`.

:func:`frame_chunks` only asks a method for each frame's window colours, given
the plan's positions (a ``FrameFn``): a splatting method's is
:func:`splatted_frame` (steps 2 and 3); the resampling render of
:mod:`.resampled_frames` reads the picture at the positions instead.

A method (:class:`RenderMethod`: :class:`SplatRender` here, the resampling and
learned renders of their modules, by name in :data:`.renders.RENDERS`) says what
a pixel carries and how a frame is finished; the one entry point,
:func:`render_chunks`, does the rest and yields the frames a few at a time
(bounded memory); :func:`render_frames` fills one ``[N, H, W, C]`` batch.
Every pixel outside the region is the picture's pixel, bit for bit, and
frame 0 is the picture.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Protocol

import torch
from torch import Tensor

from ...kernels import Motion, euler_integrate, splat_
from ...kernels.splat import softmax_weights
from ...kernels.integrate import LoopIntegrator
from ...kernels.errors import InputError
from ...kernels.morphology import bounding_box, dilate
from ...kernels.warp import bilinear_weights
from .inputs import single_picture

ProgressFn = Callable[[int, int], None]

HOLE_WEIGHT = 1e-6  # summed splat weight below which a pixel counts as a hole
SLICE = 1 << 16  # sources whose products and temporaries the CPU accumulator handles at once
MAX_FILL_PASSES = 32


def animated_region(motion: Motion) -> Tensor:
    """``[H, W]`` bool: every pixel a moving pixel can reach in any frame.

    A trajectory only moves while within one pixel of a non-zero flow value, so
    it ends at most ``1 + max|F|`` pixels outside the flow's support, and its
    bilinear footprint reaches one pixel further.
    """
    support = torch.zeros(motion.height * motion.width, dtype=torch.bool, device=motion.flow.device)
    support[motion.sources] = True
    if motion.sources.numel() == 0:
        return support.view(motion.height, motion.width)
    speed = float(motion.speeds(dtype=torch.float64).max())
    return dilate(support.view(motion.height, motion.width), math.ceil(speed) + 2)


def check_picture(image: Tensor, motion: Motion) -> Tensor:
    """Validate an IMAGE against the motion; returns the ``[H, W, C]`` picture."""
    image = single_picture(image)
    if tuple(image.shape[:2]) != (motion.height, motion.width):
        raise InputError(
            "motion",
            f"was computed for {motion.width}x{motion.height} but the picture is {image.shape[1]}x{image.shape[0]}",
        )
    return image


# --- 1. the plan ---------------------------------------------------------------------------


@dataclass
class _Exits:
    """Sources (indices into the ``2M`` copies) that end outside the window, in the order they leave."""

    leaving: Tensor  # [L]
    frames: list  # [L] ascending: forward, outside from that frame on; backward, outside up to it
    parked: Tensor  # [2, L] positions inside the window, used while dropped
    forward: bool


def motion_parts(motion: Motion, frames: range, part_frames: int, device) -> Iterator[Motion]:
    """Motions of ``motion``'s flow that together store every frame of ``frames``, in order.

    Frames ``motion`` stores come from it; the others are integrated from its
    flow on ``device`` by one :class:`...kernels.integrate.LoopIntegrator`, at
    most ``part_frames`` at a time, so that one part's trajectories are held
    at once.
    """
    stored, parts, n = motion.stored_frames, [], frames.start
    while n < frames.stop:
        if n in stored:
            parts.append(None)
            n = stored.stop
            continue
        stop = min(frames.stop, n + max(part_frames, 1))
        if stored and n < stored.start:
            stop = min(stop, stored.start)
        parts.append(range(n, stop))
        n = stop
    missing = [part for part in parts if part is not None]
    integrator = LoopIntegrator(motion.flow.to(device), motion.num_frames, missing) if missing else None
    for part in parts:
        yield motion if part is None else integrator.motion(part)


class RenderPlan:
    """Everything a render needs that does not change from frame to frame.

    Attributes:
        motion: the part of the :class:`Motion` (or the whole) that stores the
            frame last asked of :meth:`positions`, on the plan's device.
        num_frames: ``N``, the loop's length.
        region: ``[H, W]`` bool, :func:`animated_region`.
        rows, cols: the window, in picture pixels.
        inside: ``[h * w]`` bool, the region within the window (row-major).
        sources: ``[M]`` flat window indices of the moving pixels.
        position: ``[2, 2M]`` window coordinates of the forward copies, then
            the backward copies, for the frame last asked of :meth:`positions`.
    """

    def __init__(self, motion: Motion, device, margin: int = 0, multiple: int = 1,
                 part_frames: Optional[int] = None):
        self.device = torch.device(device)
        motion = motion.to(self.device)
        self.region = animated_region(motion)
        rows, cols = bounding_box(self.region, margin)
        top, left = rows.start // multiple * multiple, cols.start // multiple * multiple
        self.rows, self.cols = slice(top, rows.stop), slice(left, cols.stop)
        self.shape = (self.rows.stop - top, self.cols.stop - left)
        self.inside = self.region[self.rows, self.cols].reshape(-1)
        x0, y0 = motion.source_positions()
        x0, y0 = x0 - left, y0 - top  # integers: exact
        self.count = count = x0.shape[0]
        self.sources = y0.long() * self.shape[1] + x0.long()
        self.origin = torch.stack((torch.cat((x0, x0)), torch.cat((y0, y0))))
        self.position = torch.empty_like(self.origin)
        self.high = torch.tensor([[self.shape[1] - 1.0], [self.shape[0] - 1.0]], device=self.device)
        self.num_frames = motion.num_frames
        self.parts = motion_parts(motion, range(1, self.num_frames), part_frames or self.num_frames, self.device)
        self.motion: Optional[Motion] = None  # the part that holds the frame last asked of positions()
        self.exits: list[Optional[_Exits]] = []

    def _load(self, part: Motion) -> None:
        """Take the trajectories of the frames ``part`` stores (the same flow's motion, in part or whole)."""
        self.motion = part = part.to(self.device)  # _exits reads its stored frames
        first, last = part.stored_frames[0], part.stored_frames[-1]
        ends = part.displacements(last, self.device)[0], part.displacements(first, self.device)[1]
        x0, y0 = self.origin[0, : self.count], self.origin[1, : self.count]
        self.exits = [
            self._exits(part.forward_stored, ends[0], x0, y0, 0, True),
            self._exits(part.backward_stored, ends[1], x0, y0, self.count, False),
        ]

    def window(self, picture: Tensor) -> Tensor:
        """``[C, h * w]``: the window of an ``[H, W, C]`` picture, channels first."""
        return picture[self.rows, self.cols].permute(2, 0, 1).reshape(picture.shape[-1], -1)

    def _away(self, x: Tensor, y: Tensor) -> Tensor:
        return (x < 0) | (x > self.high[0, 0]) | (y < 0) | (y > self.high[1, 0])

    def _exits(self, stored: Tensor, end: Tensor, x0: Tensor, y0: Tensor, first: int, forward: bool):
        """The :class:`_Exits` of one pass (``None`` if every source stays in the window).

        The integrator freezes a pixel where it leaves the frame, so a source
        outside the window at the end of its pass (the last stored frame
        forward, the first backward) is outside from some frame on (forward)
        or up to some frame (backward); bisection finds that frame.
        """
        frames = self.motion.stored_frames
        x, y = x0 + end[0], y0 + end[1]
        leaving = torch.nonzero(self._away(x, y)).squeeze(1)
        if leaving.numel() == 0:
            return None
        # The frame just before the stored ones counts as inside: only stored frames are tested.
        inside_at = torch.full_like(leaving, frames[0] - 1 if forward else frames[-1] + 1)
        outside_at = torch.full_like(leaving, frames[-1] if forward else frames[0])
        quantum = self.motion.quantum
        while bool(((outside_at - inside_at).abs() > 1).any()):
            middle = torch.div(inside_at + outside_at, 2, rounding_mode="floor")
            middle = torch.where((outside_at - inside_at).abs() > 1, middle, outside_at)  # settled: stay
            step = stored[middle - frames[0], :, leaving].float() * quantum  # [L, 2]
            away = self._away(x0[leaving] + step[:, 0], y0[leaving] + step[:, 1])
            outside_at = torch.where(away, middle, outside_at)
            inside_at = torch.where(away, inside_at, middle)
        order = torch.argsort(outside_at, descending=not forward, stable=True)
        leaving, outside_at = leaving[order], outside_at[order]
        parked = torch.stack((x[leaving], y[leaving])).clamp_min(0.0)
        parked = torch.minimum(parked, self.high)
        frames = outside_at.tolist() if forward else outside_at.flip(0).tolist()
        return _Exits(leaving + first, frames, parked, forward)

    def positions(self, n: int) -> tuple[float, list[Tensor]]:
        """Fill :attr:`position` for frame ``n``; returns ``(alpha, dropped)``.

        Frames the motion does not store are integrated ``part_frames`` at a time
        (default: all at once) when first asked for (:func:`motion_parts`); a
        plan whose motion is not whole must be asked for frames in increasing order.
        ``dropped`` lists the sources outside the window in this frame (outside
        the picture, so the splat drops them); their positions are parked
        inside the window, so an accumulator must give them no weight.
        """
        if self.motion is None or n not in self.motion.stored_frames:
            self.motion, self.exits = None, []  # the part before is freed before the next is integrated
            part = next(self.parts, None)
            while part is not None and part.stored_frames.stop <= n:
                part = next(self.parts, None)
            if part is None or n not in part.stored_frames:
                raise ValueError(f"frame {n} asked out of order, or outside 1..{self.num_frames - 1}")
            self._load(part)
        count, position = self.count, self.position
        forward, backward = self.motion.displacements(n, self.device)
        torch.add(self.origin[:, :count], forward, out=position[:, :count])
        torch.add(self.origin[:, count:], backward, out=position[:, count:])
        dropped = []
        for exits in self.exits:
            if exits is None:
                continue
            if exits.forward:
                gone = bisect.bisect_right(exits.frames, n)
            else:
                gone = len(exits.frames) - bisect.bisect_left(exits.frames, n)
            if gone:
                position[:, exits.leaving[:gone]] = exits.parked[:, :gone]
                dropped.append(exits.leaving[:gone])
        if bool((position.amin(dim=1) < 0).any()) or bool((position.amax(dim=1, keepdim=True) > self.high).any()):
            # Not a frozen exit (a motion not made by euler_integrate): test every source.
            away = torch.nonzero(((position < 0) | (position > self.high)).any(dim=0)).squeeze(1)
            torch.minimum(position.clamp_min_(0.0), self.high, out=position)
            dropped.append(away)
        return 1.0 - n / self.num_frames, dropped


# --- 2. accumulators ------------------------------------------------------------------------


class Accumulator(Protocol):
    """Sums ``[carried channels..., weight]`` of a window, ``size`` columns, the first ``h * w`` the window."""

    zero: int  # a column that always holds 0

    def accumulate(self, plan: RenderPlan, alpha: float, dropped: list[Tensor]) -> None: ...

    def channel(self, c: int) -> Tensor: ...

    @property
    def sums(self) -> Tensor: ...


class PairedAccumulator:
    """The CPU accumulator: channels packed in pairs into complex64 numbers.

    One scattered complex addition adds two float channels (a complex times a
    weight stored as a complex with imaginary part 0 is two float products,
    exactly), which halves the ``index_add_`` calls. The sums hold the window
    row-major, then a row and two cells that only receive zero-weight
    corners and dropped sources (``trash``), then ``zero``.
    """

    def __init__(self, plan: RenderPlan, carried: Tensor):
        height, width = plan.shape
        channels = carried.shape[0]
        self.pairs = pairs = (channels + 1) // 2
        size = (height + 1) * width + 3
        self.trash, self.zero = height * width, size - 1
        still = carried.new_zeros((2 * pairs, size))
        still[:channels, : height * width] = carried
        still[:, plan.sources] = 0.0
        self.still = self._pack(still)
        values = still.new_zeros((2 * pairs, plan.count))
        values[:channels] = carried[:, plan.sources]
        self.values = self._pack(values.repeat(1, 2))  # forward copies, then backward copies
        count, device = plan.count, carried.device
        total = 2 * count
        # Forward copies, then backward copies, SLICE at a time (a slice holds copies of one kind).
        self.slices = [slice(first, min(first + SLICE, end)) for start, end in ((0, count), (count, total))
                       for first in range(start, end, SLICE)]
        part = min(count, SLICE)
        self.lower = torch.empty((2, part), device=device)
        self.fractions = torch.empty((2, 2, part), device=device)
        self.unscaled = torch.empty((4, part), device=device)
        self.cell = torch.empty((2, part), dtype=torch.long, device=device)
        self.contributions = torch.empty((pairs, part), dtype=torch.complex64, device=device)
        self.weight = torch.empty((4, total), device=device)
        # One slice's corner weights as complex numbers with imaginary part 0 (written through the
        # real view): a complex product with them is two float products, exactly.
        self.complex_weight = torch.zeros(part, dtype=torch.complex64, device=device)
        self.real_weight = torch.view_as_real(self.complex_weight)[..., 0]
        self.index = torch.empty(total, dtype=torch.long, device=device)
        self.accum = torch.empty((pairs, size), dtype=torch.complex64, device=device)
        self.corner_views = [self.accum[:, offset:] for offset in (0, 1, width, width + 1)]

    @staticmethod
    def _pack(planes: Tensor) -> Tensor:
        """``[2P, L]`` float channels -> ``[P, L]`` complex64 (channel ``2p`` real, ``2p + 1`` imaginary)."""
        pairs, length = planes.shape[0] // 2, planes.shape[1]
        return torch.view_as_complex(planes.view(pairs, 2, length).transpose(1, 2).contiguous())

    @property
    def sums(self) -> Tensor:
        """``[P, 2, size]`` float view (channel ``c`` is ``[c // 2, c % 2]``)."""
        return torch.view_as_real(self.accum).transpose(1, 2)

    def channel(self, c: int) -> Tensor:
        return torch.view_as_real(self.accum)[c // 2, :, c % 2]

    def accumulate(self, plan: RenderPlan, alpha: float, dropped: list[Tensor]) -> None:
        for part in self.slices:  # temporaries for a slice of the sources at a time
            size = part.stop - part.start
            lower, cell, unscaled = self.lower[:, :size], self.cell[:, :size], self.unscaled[:, :size]
            bilinear_weights(plan.position[:, part], lower, self.fractions[:, :, :size], unscaled)
            torch.mul(unscaled, alpha if part.start < plan.count else 1.0 - alpha, out=self.weight[:, part])
            cell.copy_(lower)
            torch.add(cell[0], cell[1], alpha=plan.shape[1], out=self.index[part])
        for indices in dropped:  # all four corners land in the padding row
            self.index.index_fill_(0, indices, self.trash)
        self.accum.copy_(self.still)
        for corner, view in enumerate(self.corner_views):
            # Corner by corner, in source order (the order of splat_torch_); the products stay in cache.
            for part in self.slices:
                size = part.stop - part.start
                contributions, weight = self.contributions[:, :size], self.complex_weight[:size]
                self.real_weight[:size].copy_(self.weight[corner, part])
                torch.mul(self.values[:, part], weight, out=contributions)
                view.index_add_(1, self.index[part], contributions)


class SplatAccumulator:
    """One :func:`...kernels.splat_` call a frame: the CuPy kernel on a GPU, plain torch elsewhere.

    The sums are ``[C + 1, (h + 1) * w]``: the window, then a row that only
    receives zero-weight corners (its first cell is ``zero``).
    """

    def __init__(self, plan: RenderPlan, carried: Tensor):
        height, width = plan.shape
        self.zero = height * width
        self.still = carried.new_zeros((carried.shape[0], (height + 1) * width))
        self.still[:, : height * width] = carried
        self.still[:, plan.sources] = 0.0
        self.values = carried[:, plan.sources].repeat(1, 2)
        self.accum = torch.empty_like(self.still)
        self.scale = torch.empty(2 * plan.count, device=carried.device)

    @property
    def sums(self) -> Tensor:
        return self.accum

    def channel(self, c: int) -> Tensor:
        return self.accum[c]

    def accumulate(self, plan: RenderPlan, alpha: float, dropped: list[Tensor]) -> None:
        self.scale[: plan.count] = alpha
        self.scale[plan.count :] = 1.0 - alpha
        for indices in dropped:
            self.scale[indices] = 0.0
        self.accum.copy_(self.still)
        splat_(self.accum, self.values, plan.position[0], plan.position[1], self.scale, plan.shape[1])


def make_accumulator(plan: RenderPlan, carried: Tensor) -> Accumulator:
    """The accumulator for the plan's device: paired on the CPU, the splat kernel elsewhere."""
    return PairedAccumulator(plan, carried) if plan.device.type == "cpu" else SplatAccumulator(plan, carried)


# --- 3. finishing a frame -------------------------------------------------------------------


def fill_holes_(accum: Accumulator, weight: int, shape: tuple[int, int]) -> Tensor:
    """Fill the window's pixels with (almost) no splatted weight from their neighbours, in place.

    Up to ``MAX_FILL_PASSES`` Jacobi passes: every pixel whose weight is still
    below ``HOLE_WEIGHT`` takes the mean of its 3x3 neighbourhood within the
    window (the arithmetic of ``avg_pool2d`` without padding), all at once from
    the previous pass's values. Only the holes are visited. Returns the flat
    window indices still empty at the end.
    """
    height, width = shape
    holes = torch.nonzero(accum.channel(weight)[: height * width] < HOLE_WEIGHT).squeeze(1)
    if holes.numel() == 0:
        return holes
    sums = accum.sums
    steps = torch.tensor((-1, 0, 1), device=holes.device)
    dy, dx = steps.repeat_interleave(3)[:, None], steps.repeat(3)[:, None]  # avg_pool2d's window order
    row = torch.div(holes, width, rounding_mode="floor") + dy
    col = holes % width + dx
    valid = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    index = torch.where(valid, holes + (dy * width + dx), accum.zero)  # [9, K]
    count = valid.sum(dim=0).to(sums.dtype)
    lead = sums.shape[:-1]
    for _ in range(MAX_FILL_PASSES):
        around = torch.index_select(sums, -1, index.reshape(-1)).view(*lead, 9, -1)
        total = around[..., 0, :] + around[..., 1, :]
        for k in range(2, 9):
            total += around[..., k, :]
        total /= count
        sums.index_copy_(-1, holes, total)
        still = total.reshape(-1, total.shape[-1])[weight] < HOLE_WEIGHT
        if not bool(still.any()):
            return holes[:0]
        if not bool(still.all()):
            holes, index, count = holes[still], index[:, still], count[still]
    return holes


class PixelFinisher:
    """Colours of the window from pixel sums: normalised, holes filled, the picture outside the region."""

    def __init__(self, plan: RenderPlan, planar: Tensor):
        self.plan, self.planar = plan, planar  # [C, h * w] the picture's window
        self.colour = torch.empty_like(planar)
        self.denominator = torch.empty_like(planar[0])
        self.outside = None if bool(plan.inside.all()) else ~plan.inside

    def __call__(self, accum: Accumulator) -> Tensor:
        """``[C, h * w]`` colours of the window (a buffer reused by the next call)."""
        channels, pixels = self.planar.shape
        empty = fill_holes_(accum, channels, self.plan.shape)
        torch.clamp_min(accum.channel(channels)[:pixels], HOLE_WEIGHT, out=self.denominator)
        for c in range(channels):
            torch.div(accum.channel(c)[:pixels], self.denominator, out=self.colour[c])
        if empty.numel():
            self.colour[:, empty] = self.planar[:, empty]
        if self.outside is not None:
            torch.where(self.outside, self.planar, self.colour, out=self.colour)
        return self.colour


# --- the frame loop -------------------------------------------------------------------------


def _write_frame(out: Tensor, picture: Tensor, plan: RenderPlan, window: Optional[Tensor]) -> None:
    """``out [H, W, C]`` = the picture, with the window's ``[C, h * w]`` colours (when given)."""
    if window is None:
        out.copy_(picture)
        return
    rows, cols = plan.rows, plan.cols
    out[: rows.start] = picture[: rows.start]
    out[rows.stop :] = picture[rows.stop :]
    out[rows, : cols.start] = picture[rows, : cols.start]
    out[rows, cols.stop :] = picture[rows, cols.stop :]
    out[rows, cols] = window.view(-1, *plan.shape).permute(1, 2, 0).to(out.device)


FrameFn = Callable[[float, list], Tensor]  # (alpha, dropped) -> [C, h * w] colours of the window


def splatted_frame(plan: RenderPlan, accumulator: Accumulator, finish: Callable[[Accumulator], Tensor]) -> FrameFn:
    """A splatting method's frame: its copies accumulated at the plan's positions, then finished."""

    def frame(alpha: float, dropped: list[Tensor]) -> Tensor:
        accumulator.accumulate(plan, alpha, dropped)
        return finish(accumulator)

    return frame


def frame_chunks(
    picture: Tensor,
    plan: Optional[RenderPlan],
    frame: Optional[FrameFn],
    chunk: int,
    progress: Optional[ProgressFn] = None,
    out: Optional[Tensor] = None,
) -> Iterator[Tensor]:
    """Yield the ``N`` frames as ``[k, H, W, C]`` CPU chunks of at most ``chunk``.

    Frame ``n > 0`` is the picture with the window's colours ``frame(alpha, dropped)``
    (:meth:`RenderPlan.positions` of ``n``). ``plan`` is ``None`` when nothing moves
    (every frame is the picture; see :func:`still_chunks`).
    With ``out`` (``[N, H, W, C]``) the chunks are views into it; otherwise
    each is freshly allocated. ``progress(n + 1, N)`` after frame ``n``.
    """
    total = plan.num_frames if plan is not None else out.shape[0]
    height, width, channels = picture.shape
    for first in range(0, total, chunk):
        last = min(first + chunk, total)
        batch = out[first:last] if out is not None else torch.empty((last - first, height, width, channels))
        for n in range(first, last):
            window = frame(*plan.positions(n)) if n > 0 and plan is not None else None
            _write_frame(batch[n - first], picture, plan, window)
            if progress is not None:
                progress(n + 1, total)
        yield batch


def still_chunks(picture: Tensor, num_frames: int, chunk: int, progress: Optional[ProgressFn] = None,
                 out: Optional[Tensor] = None) -> Iterator[Tensor]:
    """:func:`frame_chunks` of a loop where nothing moves: ``num_frames`` copies of the ``[H, W, C]`` picture."""
    if out is None:
        out = torch.empty((num_frames, *picture.shape))
    return frame_chunks(picture, None, None, chunk, progress, out)


# --- the one entry point --------------------------------------------------------------------


class RenderMethod:
    """How a method makes frames; :func:`render_chunks` does the rest (the picture check, the still
    loop, the device, the plan, the loop played again, the frame loop).

    A method says what each pixel carries and how a frame is finished in :meth:`frame`; it may
    widen the plan's window (:attr:`margin`, :attr:`multiple`), plan another motion
    (:meth:`plan`), render on its own device (:meth:`device`) or make a shorter loop that is
    played ``N / L`` times (:meth:`period`).
    """

    margin = 0  # px of picture around the region that the window keeps
    multiple = 1  # the window's top-left corner on a multiple of this

    def carried(self, channels: int) -> int:
        """Channels a pixel carries (the weight not counted) for a picture of ``channels``."""
        return channels

    def device(self, motion: Motion, device) -> torch.device:
        """Where to render: ``device``, by default the motion's."""
        return torch.device(device if device is not None else motion.flow.device)

    def period(self, motion: Motion) -> int:
        """``L``, the frames of the loop rendered (it divides ``N``; ``N`` itself unless shortened)."""
        return motion.num_frames

    def plan(self, motion: Motion, picture: Tensor, device, part_frames: Optional[int]) -> RenderPlan:
        """The :class:`RenderPlan` of ``motion`` for the ``[H, W, C]`` picture."""
        return RenderPlan(motion, device, margin=self.margin, multiple=self.multiple, part_frames=part_frames)

    def frame(self, plan: RenderPlan, picture: Tensor, motion: Motion) -> FrameFn:
        """The frame function: ``(alpha, dropped) -> [C, h * w]`` colours of the window."""
        raise NotImplementedError


class SplatRender(RenderMethod):
    """The pixel splat: each pixel carries ``[colour * w, w]``, ``w`` the importance's
    :func:`...kernels.splat.softmax_weights` (default 1), and a frame is finished by :class:`PixelFinisher`.

    Args:
        importance: optional ``[H, W]`` softmax-splatting metric Z (default 0:
            overlapping pixels are averaged).
        accumulator: an accumulator class (default: :func:`make_accumulator`'s choice).
    """

    def __init__(self, importance: Optional[Tensor] = None, accumulator: Optional[type] = None):
        self.importance, self.accumulator = importance, accumulator

    def frame(self, plan: RenderPlan, picture: Tensor, motion: Motion) -> FrameFn:
        window = plan.window(picture.to(plan.device))
        carried = torch.cat((window, window.new_ones((1, window.shape[1]))))
        if self.importance is not None:
            z = self.importance.to(plan.device).float()
            weight = softmax_weights(z[None])[0][plan.rows, plan.cols].reshape(1, -1)
            carried = torch.cat((window * weight, weight))
        make = self.accumulator if self.accumulator is not None else make_accumulator
        return splatted_frame(plan, make(plan, carried), PixelFinisher(plan, window))


PartFrames = Callable[[tuple, int], int]  # (picture shape, carried channels) -> part_frames


def render_chunks(
    image: Tensor,
    motion: Motion,
    method: RenderMethod,
    *,
    progress: Optional[ProgressFn] = None,
    chunk: int = 8,
    device=None,
    out: Optional[Tensor] = None,
    part_frames: Optional[int | PartFrames] = None,
) -> Iterator[Tensor]:
    """The ``N`` frames of ``method``'s render of the loop, as ``[k, H, W, C]`` CPU chunks of at most ``chunk``.

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) float picture.
        motion: displacements from :func:`...kernels.euler_integrate`.
        method: a :class:`RenderMethod` (:data:`.renders.RENDERS` by name).
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        chunk: frames yielded at once.
        device: where to render (default: the method's choice, the motion's device).
        out: ``[N, H, W, C]``: the chunks are views into it (otherwise each is freshly allocated).
        part_frames: frames whose trajectories are integrated at once when the
            motion does not store them all (:class:`RenderPlan`), or a function of the
            picture's shape and the channels the method carries that returns it (a
            memory check, :func:`.memory.render_part_frames`).
    """
    return _chunks(check_picture(image, motion), motion, method, progress=progress, chunk=chunk, device=device,
                   out=out, part_frames=part_frames)


def _chunks(picture: Tensor, motion: Motion, method: RenderMethod, *, progress, chunk, device, out,
            part_frames) -> Iterator[Tensor]:
    """:func:`render_chunks` of a checked picture."""
    picture = picture.float().cpu()
    if callable(part_frames):
        part_frames = part_frames(tuple(picture.shape), method.carried(picture.shape[-1]))
    if motion.sources.numel() == 0:
        return still_chunks(picture, motion.num_frames, chunk, progress, out)
    render = _Render(picture, method, method.device(motion, device), chunk, part_frames)
    period = method.period(motion)
    if period == motion.num_frames:
        return render.loop(motion, progress, out)
    return render.repeated(motion, period, progress, out)


@dataclass
class _Render:
    """What stays the same for every loop a render makes."""

    picture: Tensor  # [H, W, C] float32 CPU
    method: RenderMethod
    device: torch.device
    chunk: int
    part_frames: Optional[int]

    def loop(self, motion: Motion, progress: Optional[ProgressFn], out: Optional[Tensor]) -> Iterator[Tensor]:
        """:func:`frame_chunks` of the loop of ``motion`` (all its frames)."""
        plan = self.method.plan(motion, self.picture, self.device, self.part_frames)
        frame = self.method.frame(plan, self.picture, motion)
        return frame_chunks(self.picture, plan, frame, self.chunk, progress, out)

    def repeated(self, motion: Motion, period: int, progress: Optional[ProgressFn],
                 out: Optional[Tensor]) -> Iterator[Tensor]:
        """The ``N`` frames as ``N / period`` plays of the loop ``period`` frames long.

        Into ``out`` the loop is rendered once and copied; streamed, it is rendered
        again for each play, so that no more than a chunk is held.
        """
        total, chunk = motion.num_frames, self.chunk
        whole = motion.stored_frames == range(total + 1)
        short = euler_integrate(motion.flow, period, frames=None if whole else range(0))
        for play in range(total // period):
            first = play * period

            def played(done: int, _: int, first: int = first) -> None:
                if progress is not None:
                    progress(first + done, total)

            if out is not None and play > 0:
                for start in range(0, period, chunk):
                    stop = min(start + chunk, period)
                    out[first + start : first + stop] = out[start:stop]
                    played(stop, period)
                    yield out[first + start : first + stop]
                continue
            yield from self.loop(short, played, out[:period] if out is not None else None)


def render_frames(
    image: Tensor,
    motion: Motion,
    method: RenderMethod,
    *,
    progress: Optional[ProgressFn] = None,
    device=None,
    part_frames: Optional[int | PartFrames] = None,
) -> Tensor:
    """:func:`render_chunks` in one batch: ``[N, H, W, C]`` float32 CPU frames; frame 0 is the picture,
    and every pixel outside :func:`animated_region` is the picture's in every frame."""
    picture = check_picture(image, motion)
    out = torch.empty((motion.num_frames, *picture.shape))
    for _ in _chunks(picture, motion, method, progress=progress, chunk=motion.num_frames, device=device, out=out,
                     part_frames=part_frames):
        pass
    return out


def stream_pixel_frames(
    image: Tensor,
    flow: Tensor,
    num_frames: int,
    chunk: int = 4,
    parts: int = 2,
    device="cpu",
    progress: Optional[ProgressFn] = None,
    method: Optional[RenderMethod] = None,
) -> Iterator[Tensor]:
    """Integrate and render a loop in ``parts`` runs of consecutive frames, ``chunk`` frames at a time.

    Only one part's trajectories are held at once: ``1 / parts`` of the memory
    of a whole loop's. The forward integration continues from part to part;
    the backward one resumes from checkpoints or, with many small parts, starts
    again for each (:class:`...kernels.integrate.LoopIntegrator`). ``method`` is
    the render (default :class:`SplatRender`; see :data:`.renders.RENDERS`); the
    frames equal its whole-loop render's.
    """
    motion = euler_integrate(flow.to(device), num_frames, frames=range(0))
    part_frames = -(-num_frames // max(parts, 1))
    return render_chunks(image, motion, method if method is not None else SplatRender(), progress=progress,
                         chunk=chunk, device=device, part_frames=part_frames)


def render_pixel_frames(
    image: Tensor,
    motion: Motion,
    importance: Optional[Tensor] = None,
    progress: Optional[ProgressFn] = None,
    device=None,
    accumulator: Optional[type] = None,
    part_frames: Optional[int] = None,
) -> Tensor:
    """Render the ``N`` frames of the loop by symmetric softmax splatting of pixels
    (:func:`render_frames` of :class:`SplatRender`).

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) float picture.
        motion: displacements from :func:`...kernels.euler_integrate`.
        importance: optional ``[H, W]`` softmax-splatting metric Z (default 0:
            overlapping pixels are averaged).
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        device: where to splat (default: the motion's device).
        accumulator: an accumulator class (default: :func:`make_accumulator`'s choice).
        part_frames: frames whose trajectories are integrated at once when the
            motion does not store them all (see :func:`frame_chunks`).

    Returns:
        ``[N, H, W, C]`` float32 CPU frames; frame 0 is the picture.
    """
    return render_frames(image, motion, SplatRender(importance, accumulator), progress=progress, device=device,
                         part_frames=part_frames)
