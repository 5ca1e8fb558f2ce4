"""Symmetric softmax splatting of the picture into a seamless loop (pixel method).

Frame ``n`` of ``N`` splats the picture forward by ``F_{0->n}`` with weight
``alpha = 1 - n/N`` and backward by ``F_{N->n}`` with weight ``1 - alpha``
(Holynski et al. 2021), each source weighted by ``exp(Z - max Z)`` (softmax
splatting), and divides by the summed weight. The picture is both the first
and the last frame, so frame ``N`` would equal frame 0 and the loop is seamless.

Only the moving pixels are splatted, onto the moving region plus a margin
that no moving pixel can cross; the still pixels inside that margin are
accumulated once, and every pixel outside it is the source pixel, bit for bit.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels import Motion, splat_symmetric_
from ...kernels.errors import InputError
from ...kernels.integrate import FLOAT_INDEX_LIMIT, empty_output
from ...kernels.warp import bilinear_weights
from .inputs import single_picture

ProgressFn = Callable[[int, int], None]

HOLE_WEIGHT = 1e-6  # summed splat weight below which a pixel counts as a hole
MAX_FILL_PASSES = 32


def dilate(region: Tensor, radius: int) -> Tensor:
    """``[H, W]`` bool dilated by a ``(2r+1)^2`` square."""
    if radius <= 0:
        return region
    grown = F.max_pool2d(region.float()[None, None], 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0] > 0


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
    # Only ceil(max |F|) matters: the cheap sqrt(max(fx^2 + fy^2)) decides it unless it lies
    # within rounding of an integer, where the exact norm decides.
    max_speed = float((motion.flow * motion.flow).sum(dim=0).max().sqrt())
    if abs(max_speed - round(max_speed)) < 1e-3:
        max_speed = float(motion.flow.norm(dim=0).max())
    return dilate(support.view(motion.height, motion.width), math.ceil(max_speed) + 2)


def _fill_listed_(accum: Tensor, holes: Tensor, height: int, width: int, zero: int, weight: int = -1) -> Tensor:
    """Jacobi passes of :func:`fill_holes_` restricted to the listed holes.

    ``accum`` is ``[..., L]`` (channels in the leading dimensions, flattened
    channel ``weight`` the summed weight) with an ``height x width`` image in
    its first columns (row-major) and 0 in column ``zero``; ``holes`` lists flat indices
    into that image. Each pass replaces every listed pixel whose weight is
    still below ``HOLE_WEIGHT`` by the mean of its 3x3 neighbourhood within
    the image, with the arithmetic of ``avg_pool2d`` (row-major sum, divided
    by the number of neighbours inside the image), so the result equals the
    dense fill wherever the listed holes are all the holes their neighbours
    depend on. Returns the indices still empty after ``MAX_FILL_PASSES``.
    """
    if holes.numel() == 0:
        return holes
    device = holes.device
    steps = torch.tensor((-1, 0, 1), device=device)
    dy, dx = steps.repeat_interleave(3)[:, None], steps.repeat(3)[:, None]  # avg_pool2d's window order
    row = torch.div(holes, width, rounding_mode="floor") + dy
    col = holes % width + dx
    valid = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    index = torch.where(valid, holes + (dy * width + dx), zero)  # [9, K]
    count = valid.sum(dim=0).to(accum.dtype)
    lead = accum.shape[:-1]
    for _ in range(MAX_FILL_PASSES):
        around = torch.index_select(accum, -1, index.reshape(-1)).view(*lead, 9, -1)
        total = around[..., 0, :] + around[..., 1, :]
        for k in range(2, 9):
            total += around[..., k, :]
        total /= count
        accum.index_copy_(-1, holes, total)
        still = total.reshape(-1, total.shape[-1])[weight] < HOLE_WEIGHT
        if not bool(still.any()):
            return holes[:0]
        if not bool(still.all()):
            holes, index, count = holes[still], index[:, still], count[still]
    return holes


def fill_holes_(accum: Tensor) -> Tensor:
    """Fill pixels with (almost) no splatted weight from their neighbours, in place.

    Up to ``MAX_FILL_PASSES`` times, every pixel whose weight is below
    ``HOLE_WEIGHT`` takes the mean of its 3x3 neighbourhood (pixels outside the
    image not counted), all holes at once from the previous pass's values.

    Args:
        accum: ``[C + 1, h, w]`` weighted sums with the summed weight last.
    Returns:
        ``[h, w]`` bool of the pixels still empty after ``MAX_FILL_PASSES``.
    """
    channels, height, width = accum.shape
    holes = accum[-1] < HOLE_WEIGHT
    if not holes.any():
        return holes
    if int(holes.sum()) * 4 > holes.numel():  # mostly holes: dense passes are cheaper
        for _ in range(MAX_FILL_PASSES):
            neighbours = F.avg_pool2d(accum[None], 3, stride=1, padding=1, count_include_pad=False)[0]
            accum[:, holes] = neighbours[:, holes]
            holes = accum[-1] < HOLE_WEIGHT
            if not holes.any():
                break
        return holes
    flat = torch.cat((accum.reshape(channels, -1), accum.new_zeros((channels, 1))), dim=1)
    listed = torch.nonzero(holes.reshape(-1)).squeeze(1)
    left = _fill_listed_(flat, listed, height, width, height * width)
    accum.copy_(flat[:, : height * width].view(channels, height, width))
    empty = torch.zeros(height * width, dtype=torch.bool, device=accum.device)
    empty[left] = True
    return empty.view(height, width)


def _bounding_box(region: Tensor) -> tuple[slice, slice]:
    ys, xs = torch.nonzero(region, as_tuple=True)
    return slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)


def check_picture(image: Tensor, motion: Motion) -> Tensor:
    """Validate an IMAGE against the motion; returns the ``[H, W, C]`` picture."""
    image = single_picture(image)
    if tuple(image.shape[:2]) != (motion.height, motion.width):
        raise InputError(
            "motion",
            f"was computed for {motion.width}x{motion.height} but the picture is {image.shape[1]}x{image.shape[0]}",
        )
    return image


def render_pixel_frames(
    image: Tensor, motion: Motion, importance: Optional[Tensor] = None, progress: Optional[ProgressFn] = None
) -> Tensor:
    """Render the ``N`` frames of the loop by symmetric softmax splatting of pixels.

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) float picture.
        motion: displacements from :func:`..kernels.euler_integrate`.
        importance: optional ``[H, W]`` softmax-splatting metric Z (default 0:
            overlapping pixels are averaged).
        progress: ``progress(done, N)`` after each frame; may raise to stop.

    Returns:
        ``[N, H, W, C]`` frames; frame 0 is the picture.
    """
    image = check_picture(image, motion).float()
    height, width, channels = image.shape
    frames_total = motion.num_frames
    frames = empty_output((frames_total, height, width, channels), image.dtype, image.device)
    if motion.sources.numel() == 0:
        frames.copy_(image.expand_as(frames))
        return frames
    if motion.flow.is_cuda:
        return render_by_splat(image, motion, importance, progress, out=frames)
    splatter = _Splatter(image, motion, importance)
    for n in range(frames_total):
        if n == 0:
            frames[0].copy_(image)  # alpha = 1 and no displacement: the picture itself
        else:
            splatter.render(n, frames[n])
        if progress is not None:
            progress(n + 1, frames_total)
    return frames


def softmax_carried(image: Tensor, importance: Optional[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """``(picture [C, H*W], carried [C + 1, H*W])``: what each pixel splats, ``[colour * w, w]``
    with softmax-splatting weights ``w = exp(Z - max Z)`` (``Z = 0`` without ``importance``)."""
    height, width, channels = image.shape
    planar = image.to(device).permute(2, 0, 1).reshape(channels, -1)
    z = torch.zeros(height * width, device=device) if importance is None else importance.to(device).reshape(-1)
    weight = torch.exp(z - z.max())
    return planar, torch.cat((planar * weight, weight[None]))


def render_by_splat(
    image: Tensor,
    motion: Motion,
    importance: Optional[Tensor] = None,
    progress: Optional[ProgressFn] = None,
    out: Optional[Tensor] = None,
) -> Tensor:
    """The same frames as :func:`render_pixel_frames`, one :func:`...kernels.splat_` call a frame.

    This is the path on a GPU, where ``splat_`` runs the CuPy kernel; the CPU path
    (:class:`_Splatter`) computes the same sums in a layout tuned for the CPU.
    Frames are returned on the picture's device.
    """
    image = check_picture(image, motion).float()
    height, width, channels = image.shape
    frames_total, device = motion.num_frames, motion.flow.device
    frames = out if out is not None else image.unsqueeze(0).repeat(frames_total, 1, 1, 1)
    frames.copy_(image.expand_as(frames))
    planar, carried = softmax_carried(image, importance, device)
    region = animated_region(motion)
    moving = torch.zeros(height * width, dtype=torch.bool, device=device)
    moving[motion.sources] = True
    still = region.reshape(-1) & ~moving
    still_accum = torch.zeros_like(carried)
    still_accum[:, still] = carried[:, still]
    sources = carried[:, motion.sources]
    values = torch.cat((sources, sources), dim=1)  # forward copies, then backward copies
    x0, y0 = motion.source_positions()
    region_index = torch.nonzero(region.reshape(-1)).squeeze(1)
    rows, cols = _bounding_box(region)
    if progress is not None:
        progress(1, frames_total)  # frame 0 is the picture
    for n in range(1, frames_total):
        accum = splat_symmetric_(still_accum.clone(), values, x0, y0, motion, n, width)
        empty = fill_holes_(accum.view(channels + 1, height, width)[:, rows, cols])
        colour = accum[:channels, region_index] / accum[channels, region_index].clamp_min(HOLE_WEIGHT)
        if empty.any():
            left = torch.zeros(height, width, dtype=torch.bool, device=device)
            left[rows, cols] = empty
            left = left.reshape(-1)[region_index]
            colour[:, left] = planar[:, region_index[left]]
        frames[n].view(-1, channels)[region_index.to(frames.device)] = colour.T.to(frames.device)
        if progress is not None:
            progress(n + 1, frames_total)
    return frames


class _Splatter:
    """Symmetric splatting of the moving pixels, frame by frame, in the region's bounding box.

    The accumulator holds ``rows x cols`` box pixels row-major, then a row and
    two cells that only ever receive zero-weight corners (a source exactly on
    the bottom or right edge of the picture, or one that left the frame),
    then one cell that stays 0 (for the hole filling): ``(rows + 1) * cols + 3``
    pixels. Its ``C + 1`` channels (colour times weight, then the weight) are
    packed in pairs into ``complex64`` numbers, so that one scattered addition
    adds two channels (a complex addition is two float additions, and a
    complex times a weight stored as a complex with imaginary part 0 is two
    float products, exactly). Sources are
    the moving pixels twice (forward, then backward copies) and their four
    corners are added corner by corner, in the order of
    :func:`...kernels.splat_torch_` on the whole picture, so every sum is the
    same bit for bit.
    """

    def __init__(self, image: Tensor, motion: Motion, importance: Optional[Tensor]):
        device = motion.flow.device
        height, width, channels = image.shape
        self.image, self.motion, self.channels = image, motion, channels
        self.count = count = motion.sources.numel()
        planar, carried = softmax_carried(image, importance, device)
        self.pairs = pairs = (channels + 2) // 2  # complex rows; an odd count gets a zero channel
        if 2 * pairs > channels + 1:
            carried = torch.cat((carried, torch.zeros_like(carried[-1:])))

        region = animated_region(motion)
        rows, cols = _bounding_box(region)
        self.rows, self.cols = rows, cols
        top, left = rows.start, cols.start
        self.box_h, self.box_w = box_h, box_w = rows.stop - top, cols.stop - left
        box_pixels = box_h * box_w
        size = (box_h + 1) * box_w + 3
        self.trash = box_pixels  # corners of a dropped source: the padding row
        self.zero = size - 1
        self.shift = top * box_w + left
        region_box = region[rows, cols].reshape(-1)
        self.region_box = None if bool(region_box.all()) else region_box
        self.planar_box = planar.view(channels, height, width)[:, rows, cols].reshape(channels, -1)

        moving = torch.zeros(height * width, dtype=torch.bool, device=device)
        moving[motion.sources] = True
        still = torch.nonzero(region.reshape(-1) & ~moving).squeeze(1)
        still_y = torch.div(still, width, rounding_mode="floor")
        still_box = torch.zeros((2 * pairs, size), device=device)
        still_box[:, (still_y - top) * box_w + (still - still_y * width - left)] = carried[:, still]
        self.still = self._pack(still_box)
        if self.region_box is not None:
            padding = torch.zeros(size - box_pixels, dtype=torch.bool, device=device)
            self.outside_region = torch.cat((~region_box, padding))

        sources = carried[:, motion.sources]
        self.values = self._pack(torch.cat((sources, sources), dim=1))  # [pairs, 2M] complex
        x0, y0 = motion.source_positions()
        self.origin = torch.stack((torch.cat((x0, x0)), torch.cat((y0, y0))))
        self.low = torch.tensor([[float(left)], [float(top)]], device=device)
        self.high = torch.tensor([[float(cols.stop - 1)], [float(rows.stop - 1)]], device=device)
        self.exits = [self._exits(motion.forward, x0, y0, 0, True), self._exits(motion.backward, x0, y0, count, False)]

        total = 2 * count
        self.position = torch.empty((2, total), device=device)
        self.lower = torch.empty((2, total), device=device)
        self.fractions = torch.empty((2, 2, total), device=device)
        self.weight = torch.empty((4, total), device=device)
        # Scaled weights as complex numbers with imaginary part 0: a complex product with them is
        # two float products, exactly, without promoting a real tensor every frame.
        self.complex_weight = torch.zeros((4, total), dtype=torch.complex64, device=device)
        self.flat = torch.empty(total, device=device)
        self.index = torch.empty(total, dtype=torch.long, device=device)
        self.contributions = torch.empty((pairs, total), dtype=torch.complex64, device=device)
        self.accum = torch.empty((pairs, size), dtype=torch.complex64, device=device)
        self.corner_views = [self.accum[:, offset:] for offset in (0, 1, box_w, box_w + 1)]
        self.denominator = torch.empty(box_pixels, device=device)
        self.colour = torch.empty((channels, box_pixels), device=device)
        self.float_index = height * width < FLOAT_INDEX_LIMIT

    def _pack(self, planes: Tensor) -> Tensor:
        """``[2P, L]`` float channels -> ``[P, L]`` complex64 (channel ``2p`` real, ``2p + 1`` imaginary)."""
        pairs, length = planes.shape[0] // 2, planes.shape[1]
        return torch.view_as_complex(planes.view(pairs, 2, length).transpose(1, 2).contiguous())

    def plane(self, channel: int) -> Tensor:
        """``[L]`` float view of one channel of the accumulator."""
        return torch.view_as_real(self.accum)[channel // 2, :, channel % 2]

    def _exits(self, passes: Tensor, x0: Tensor, y0: Tensor, first: int, forward: bool):
        """Sources that end outside the box in one pass, and from/until which frame.

        The integrator freezes a pixel where it leaves the frame, so a source
        outside the box at the end of its pass is outside from some frame on
        (forward) or up to some frame (backward, whose frame 0 is the end of
        the pass). Returns ``(indices into the 2M sources in the order they
        leave, their frames t sorted ascending, positions moved into the box)``.
        """
        frames_total = passes.shape[0] - 1
        end = frames_total if forward else 0
        x, y = x0 + passes[end, 0], y0 + passes[end, 1]
        leaving = torch.nonzero(self._away(x, y)).squeeze(1)
        if leaving.numel() == 0:
            return None
        # Bisect for the frame where each one crosses the box edge.
        inside_at = torch.full_like(leaving, 0 if forward else frames_total)
        outside_at = torch.full_like(leaving, end)
        while bool(((outside_at - inside_at).abs() > 1).any()):
            middle = torch.div(inside_at + outside_at, 2, rounding_mode="floor")
            away = self._away(x0[leaving] + passes[middle, 0, leaving], y0[leaving] + passes[middle, 1, leaving])
            outside_at = torch.where(away, middle, outside_at)
            inside_at = torch.where(away, inside_at, middle)
        order = torch.argsort(outside_at, descending=not forward, stable=True)
        leaving, outside_at = leaving[order], outside_at[order]
        parked = torch.stack((x[leaving], y[leaving]))
        parked = torch.maximum(torch.minimum(parked, self.high), self.low)
        # Sorted ascending for bisect: forward exits in order, backward ones reversed.
        frames = outside_at.tolist() if forward else outside_at.flip(0).tolist()
        return leaving + first, frames, parked

    def _away(self, x: Tensor, y: Tensor) -> Tensor:
        low, high = self.low[:, 0].tolist(), self.high[:, 0].tolist()
        return (x < low[0]) | (x > high[0]) | (y < low[1]) | (y > high[1])

    def _drop_outside_(self, n: int) -> list[Tensor]:
        """Find the sources outside the box (outside the frame: dropped by the splat).

        Returns them (lists of indices); their positions are moved into the box.
        """
        position = self.position
        dropped = []
        for exits, forward in zip(self.exits, (True, False)):
            if exits is None:
                continue
            leaving, frames, parked = exits
            # forward: outside from frame t on; backward: outside up to frame t.
            gone = bisect.bisect_right(frames, n) if forward else len(frames) - bisect.bisect_left(frames, n)
            if gone:
                position[:, leaving[:gone]] = parked[:, :gone]
                dropped.append(leaving[:gone])
        low, high = position.amin(dim=1), position.amax(dim=1)
        if bool((low < self.low[:, 0]).any()) or bool((high > self.high[:, 0]).any()):
            # Not a frozen exit (a motion not made by euler_integrate): test every source.
            away = torch.nonzero(((position < self.low) | (position > self.high)).any(dim=0)).squeeze(1)
            torch.maximum(torch.minimum(position, self.high), self.low, out=position)
            dropped.append(away)
        return dropped

    def render(self, n: int, out: Tensor) -> None:
        """Write frame ``n`` (``[H, W, C]``) into ``out``."""
        self.splat(n)
        self.write(out, self.fill_holes())

    def splat(self, n: int) -> None:
        """Accumulate the still pixels and both splatted copies of frame ``n`` into ``accum``."""
        motion, count = self.motion, self.count
        alpha = 1.0 - n / motion.num_frames
        position = self.position
        torch.add(self.origin[:, :count], motion.forward[n], out=position[:, :count])
        torch.add(self.origin[:, count:], motion.backward[n], out=position[:, count:])
        dropped = self._drop_outside_(n)

        weight, contributions = self.weight, self.contributions
        bilinear_weights(position, self.lower, self.fractions, weight)
        # Dropped sources need no zero scale: their corners all go to the padding row.
        scaled = torch.view_as_real(self.complex_weight)[..., 0]
        torch.mul(weight[:, :count], alpha, out=scaled[:, :count])
        torch.mul(weight[:, count:], 1.0 - alpha, out=scaled[:, count:])
        index = self.index
        if self.float_index:
            torch.add(self.lower[0], self.lower[1], alpha=self.box_w, out=self.flat)
            index.copy_(self.flat)
        else:
            cell = self.lower.long()
            torch.add(cell[0], cell[1], alpha=self.box_w, out=index)
        index.sub_(self.shift)
        for indices in dropped:
            index.index_fill_(0, indices, self.trash)
        self.accum.copy_(self.still)
        for corner, view in enumerate(self.corner_views):
            # One corner at a time: the products stay in cache for the scattered additions.
            torch.mul(self.values, self.complex_weight[corner], out=contributions)
            view.index_add_(1, index, contributions)

    def fill_holes(self) -> Optional[Tensor]:
        """Fill the region's holes in ``accum``; returns the box pixels left empty (or None)."""
        channels = self.channels
        box_h, box_w = self.box_h, self.box_w
        box_pixels = box_h * box_w
        holes = self.plane(channels)[:box_pixels] < HOLE_WEIGHT
        if self.region_box is not None:
            holes &= self.region_box
        listed = torch.nonzero(holes).squeeze(1)
        if listed.numel() == 0:
            return None
        planes = torch.view_as_real(self.accum).transpose(1, 2)  # [pairs, 2, L] float view
        if self.region_box is not None and self._touches_outside(listed):
            # Holes next to pixels outside the region: the dense fill of the whole box, on a copy.
            box = torch.stack([self.plane(c)[:box_pixels] for c in range(channels + 1)])
            left = fill_holes_(box.view(channels + 1, box_h, box_w)).reshape(-1) & self.region_box
            for channel in range(channels + 1):
                self.plane(channel)[:box_pixels] = box[channel]
            return torch.nonzero(left).squeeze(1)
        return _fill_listed_(planes, listed, box_h, box_w, self.zero, channels)

    def write(self, out: Tensor, empty: Optional[Tensor]) -> None:
        """Normalise ``accum`` into colours and write the frame: the box from them, the rest from the picture."""
        channels = self.channels
        box_h, box_w = self.box_h, self.box_w
        box_pixels = box_h * box_w
        torch.clamp_min(self.plane(channels)[:box_pixels], HOLE_WEIGHT, out=self.denominator)
        colour = self.colour
        for channel in range(channels):
            torch.div(self.plane(channel)[:box_pixels], self.denominator, out=colour[channel])
        if empty is not None and empty.numel():
            colour[:, empty] = self.planar_box[:, empty]
        if self.region_box is not None:
            torch.where(self.region_box, colour, self.planar_box, out=colour)
        rows, cols = self.rows, self.cols
        image = self.image
        out[: rows.start] = image[: rows.start]
        out[rows.stop :] = image[rows.stop :]
        if cols.start > 0:
            out[rows, : cols.start] = image[rows, : cols.start]
        if cols.stop < out.shape[1]:
            out[rows, cols.stop :] = image[rows, cols.stop :]
        out[rows, cols] = colour.view(channels, box_h, box_w).permute(1, 2, 0).to(out.device)

    def _touches_outside(self, listed: Tensor) -> bool:
        """Whether any of the listed box pixels has a neighbour outside the region."""
        box_h, box_w = self.box_h, self.box_w
        row, col = torch.div(listed, box_w, rounding_mode="floor"), listed % box_w
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                valid = (row + dy >= 0) & (row + dy < box_h) & (col + dx >= 0) & (col + dx < box_w)
                near = (listed + (dy * box_w + dx)).masked_fill_(~valid, self.zero)
                if bool(self.outside_region[near].any()):
                    return True
        return False
