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

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels import Motion, splat_
from ...kernels.errors import InputError
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
    max_speed = float(motion.flow.norm(dim=0).max())
    return dilate(support.view(motion.height, motion.width), math.ceil(max_speed) + 2)


def fill_holes_(accum: Tensor) -> Tensor:
    """Fill pixels with (almost) no splatted weight from their neighbours, in place.

    Args:
        accum: ``[C + 1, h, w]`` weighted sums with the summed weight last.
    Returns:
        ``[h, w]`` bool of the pixels still empty after ``MAX_FILL_PASSES``.
    """
    for _ in range(MAX_FILL_PASSES):
        holes = accum[-1] < HOLE_WEIGHT
        if not holes.any():
            return holes
        neighbours = F.avg_pool2d(accum[None], 3, stride=1, padding=1, count_include_pad=False)[0]
        accum[:, holes] = neighbours[:, holes]
    return accum[-1] < HOLE_WEIGHT


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
    frames = image.unsqueeze(0).repeat(frames_total, 1, 1, 1)
    if motion.sources.numel() == 0:
        return frames

    device = motion.flow.device
    planar = image.to(device).permute(2, 0, 1).reshape(channels, -1)
    z = torch.zeros(height * width, device=device) if importance is None else importance.to(device).reshape(-1)
    weight = torch.exp(z - z.max())
    carried = torch.cat((planar * weight, weight[None]))  # [C + 1, H * W]

    region = animated_region(motion)
    moving = torch.zeros(height * width, dtype=torch.bool, device=device)
    moving[motion.sources] = True
    still_in_region = region.reshape(-1) & ~moving
    still_accum = torch.zeros_like(carried)
    still_accum[:, still_in_region] = carried[:, still_in_region]

    sources = carried[:, motion.sources]
    values = torch.cat((sources, sources), dim=1)  # forward then backward copies
    x0, y0 = motion.source_positions()
    count = x0.shape[0]
    region_index = torch.nonzero(region.reshape(-1)).squeeze(1)
    rows, cols = _bounding_box(region)
    accum = torch.empty_like(still_accum)
    x = torch.empty(2 * count, device=device)
    y = torch.empty(2 * count, device=device)
    scale = torch.empty(2 * count, device=device)
    flat_frames = frames.view(frames_total, height * width, channels)
    for n in range(frames_total):
        alpha = 1.0 - n / frames_total
        torch.add(x0, motion.forward[n, 0], out=x[:count])
        torch.add(x0, motion.backward[n, 0], out=x[count:])
        torch.add(y0, motion.forward[n, 1], out=y[:count])
        torch.add(y0, motion.backward[n, 1], out=y[count:])
        scale[:count] = alpha
        scale[count:] = 1.0 - alpha
        accum.copy_(still_accum)
        splat_(accum, values, x, y, scale, width)
        box = accum.view(channels + 1, height, width)[:, rows, cols]
        empty = fill_holes_(box)
        colour = accum[:channels, region_index] / accum[channels, region_index].clamp_min(HOLE_WEIGHT)
        if empty.any():
            left = torch.zeros(height, width, dtype=torch.bool, device=device)
            left[rows, cols] = empty
            left = left.reshape(-1)[region_index]
            colour[:, left] = planar[:, region_index[left]]
        flat_frames[n, region_index.cpu()] = colour.T.to(frames.dtype).cpu()
        if progress is not None:
            progress(n + 1, frames_total)
    return frames
