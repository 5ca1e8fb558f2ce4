"""Bilinear sampling in pixel coordinates.

Pixel coordinates (not ``grid_sample``'s normalised ones) keep a pixel that
sits exactly on an integer position with zero flow exactly still: its three
other corner weights are exactly 0, so nothing leaks in from the neighbours.

:func:`corner_weights` handles any position (corners outside the image get
weight 0); the splatting uses it. The Euler integration uses the same
arithmetic through a faster route for points known to be inside the image: a
:func:`neighbour_table` holds, for every pixel, the values of its four
bilinear corners, so that one column gather per step replaces four corner
gathers, and :func:`bilinear_weights` builds the four weights with two
element-wise passes.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def corner_weights(x: Tensor, y: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Flat indices and bilinear weights of the four pixels around each point.

    Args:
        x, y: ``[M]`` float positions in pixels (x to the right, y down).
        width, height: image size.

    Returns:
        ``(index [4, M] int64, weight [4, M])``, corners ordered top-left,
        top-right, bottom-left, bottom-right. Corners outside the image get
        weight 0 and a clamped (valid) index.
    """
    x0f = torch.floor(x)
    y0f = torch.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = x0f.long()
    y0 = y0f.long()
    x1 = x0 + 1
    y1 = y0 + 1
    in_x0 = (x0 >= 0) & (x0 < width)
    in_x1 = (x1 >= 0) & (x1 < width)
    in_y0 = (y0 >= 0) & (y0 < height)
    in_y1 = (y1 >= 0) & (y1 < height)
    x0c = x0.clamp(0, width - 1)
    x1c = x1.clamp(0, width - 1)
    y0c = (y0.clamp(0, height - 1)) * width
    y1c = (y1.clamp(0, height - 1)) * width
    index = torch.stack((y0c + x0c, y0c + x1c, y1c + x0c, y1c + x1c))
    gx, gy = 1.0 - fx, 1.0 - fy
    weight = torch.stack(
        (
            gx * gy * (in_x0 & in_y0),
            fx * gy * (in_x1 & in_y0),
            gx * fy * (in_x0 & in_y1),
            fx * fy * (in_x1 & in_y1),
        )
    )
    return index, weight


def neighbour_table(field: Tensor, window: Optional[tuple[int, int, int, int]] = None) -> Tensor:
    """The four bilinear corners of every pixel, one column per pixel.

    Args:
        field: ``[C, H, W]``.
        window: ``(top, left, rows, cols)``: tabulate only these pixels
            (default: all); their corners still come from the whole field.

    Returns:
        ``[C * 4, rows * cols + 1]``: column ``(y - top) * cols + (x - left)``
        holds, for each channel ``c`` in rows ``4c .. 4c + 3``, the values at
        ``(x, y)``, ``(x + 1, y)``, ``(x, y + 1)`` and ``(x + 1, y + 1)``
        (corner order of :func:`corner_weights`), a corner beyond the last
        column or row of the field repeating the edge value (it only ever gets
        weight 0 for points inside the image). The extra last column is all
        zeros: a lookup that must return nothing points there.
    """
    channels, height, width = field.shape
    top, left, rows, cols = (0, 0, height, width) if window is None else window
    ys = torch.arange(top, top + rows + 1, device=field.device).clamp_(max=height - 1)
    xs = torch.arange(left, left + cols + 1, device=field.device).clamp_(max=width - 1)
    around = field[:, ys][:, :, xs]  # [C, rows + 1, cols + 1]
    table = field.new_zeros((channels, 4, rows * cols + 1))
    corners = table[:, :, : rows * cols].view(channels, 4, rows, cols)
    corners[:, 0] = around[:, :-1, :-1]
    corners[:, 1] = around[:, :-1, 1:]
    corners[:, 2] = around[:, 1:, :-1]
    corners[:, 3] = around[:, 1:, 1:]
    return table.view(channels * 4, rows * cols + 1)


def bilinear_weights(position: Tensor, lower: Tensor, fractions: Tensor, weight: Tensor) -> None:
    """Floors and bilinear weights of points, written into preallocated buffers.

    The arithmetic is that of :func:`corner_weights` for points inside the
    image (``f = p - floor(p)``, ``g = 1 - f``, corner weight = product of one
    term per axis), so results are bit-identical to it.

    Args:
        position: ``[2, M]`` x and y in pixels.
        lower: ``[2, M]`` receives ``floor(position)``.
        fractions: ``[2, 2, M]`` receives ``(1 - f, f)`` per axis.
        weight: ``[4, M]`` receives the corner weights, corners ordered as in
            :func:`corner_weights`.
    """
    torch.floor(position, out=lower)
    torch.sub(position, lower, out=fractions[:, 1])
    one = torch.ones((), dtype=position.dtype, device=position.device)
    torch.sub(one, fractions[:, 1], out=fractions[:, 0])
    # weight[2 * i + j] = (y term i) * (x term j); i, j = 0 for (1 - f), 1 for f.
    torch.mul(fractions[1].unsqueeze(1), fractions[0].unsqueeze(0), out=weight.view(2, 2, -1))
