"""Forward (splatting) warping with bilinear footprints.

Each source pixel ``m`` at position ``(x[m], y[m])`` adds
``values[:, m] * scale[m] * w_k`` to the four pixels around it, ``w_k`` being
its bilinear weights. Sources outside the frame (``x`` not in ``[0, W-1]`` or
``y`` not in ``[0, H-1]``, which is where the integration freezes a pixel that
left) add nothing. Softmax splatting (Niklaus & Liu 2020) is this operation
with ``values = [colour * exp(Z), exp(Z)]``, normalised afterwards.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .warp import corner_weights


def splat_torch_(accum: Tensor, values: Tensor, x: Tensor, y: Tensor, scale: Tensor, width: int) -> Tensor:
    """Accumulate bilinear splats into ``accum`` in place (plain torch).

    Args:
        accum: ``[C, H * W]`` float32 accumulator (row-major pixels).
        values: ``[C, M]`` what each source carries.
        x, y: ``[M]`` source positions in pixels.
        scale: ``[M]`` per-source weight.
        width: ``W``.

    Returns:
        ``accum``.
    """
    channels, pixels = accum.shape
    height = pixels // width
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    index, weight = corner_weights(x, y, width, height)
    weight = weight * (scale * inside)
    contributions = values.unsqueeze(1) * weight.unsqueeze(0)
    accum.index_add_(1, index.reshape(-1), contributions.reshape(channels, -1))
    return accum


def splat_(accum: Tensor, values: Tensor, x: Tensor, y: Tensor, scale: Tensor, width: int) -> Tensor:
    """:func:`splat_torch_`, or the same function as a CUDA kernel on a GPU.

    The CuPy kernel is used when ``accum`` is a CUDA tensor, CuPy is installed
    and ``T2C_DISABLE_CUPY`` is not set; both give the same sums up to the
    order of floating-point additions.
    """
    if accum.is_cuda and not os.environ.get("T2C_DISABLE_CUPY"):
        from . import splat_cuda

        if splat_cuda.available():
            return splat_cuda.splat_cuda_(accum, values, x, y, scale, width)
    return splat_torch_(accum, values, x, y, scale, width)


def softmax_weights(z: Tensor) -> Tensor:
    """``exp(Z - max Z)`` of each picture of a ``[B, ...]`` batch of importances: the softmax
    splatting weight (Niklaus & Liu 2020), at most 1 so that it never overflows."""
    return torch.exp(z - z.flatten(1).amax(dim=1).view(-1, *(1,) * (z.dim() - 1)))
