"""Symmetric splatting of learned features into a seamless loop (``learned`` method).

G_frame encodes the picture once into 64 feature channels and an importance
Z. Frame ``n`` of ``N`` splats ``[features * exp(Z), exp(Z)]`` forward by
``F_{0->n}`` with weight ``alpha = 1 - n/N`` and backward by ``F_{N->n}``
with weight ``1 - alpha`` (the picture is both the first and the last frame,
as in the authors' renderer), normalises by the summed weight, and decodes
the features with G_frame's partial-convolution decoder (empty pixels are
holes it fills).

Only the moving pixels are splatted (the still ones are accumulated once), and
only a window around the animated region is decoded: the decoder's receptive
field is smaller than :data:`DECODER_MARGIN`, so the pixels that matter are
the same as with a whole-picture decode. Every pixel outside
:func:`.frames.animated_region` is the source pixel, bit for bit, and frame 0
is the picture itself. By default the decoder's reconstruction error of the
still picture is subtracted from every frame (``correct_reconstruction``), so
that the animated region joins the copied pixels without a seam and the last
frame flows into the exact picture.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...kernels import Motion, splat_symmetric_
from .frames import animated_region, check_picture
from .networks.frame_net import MIN_WEIGHT, importance_weights

ProgressFn = Callable[[int, int], None]

DECODER_MARGIN = 64  # px; one feature pixel changes G_frame's output up to 38 px away


def decode_window(region: Tensor, multiple: int, margin: int = DECODER_MARGIN) -> tuple[slice, slice]:
    """Rows and columns to decode: the region's bounding box grown by ``margin``,
    with its top-left corner on the decoder's grid (a multiple of ``multiple``)."""
    height, width = region.shape
    ys, xs = torch.nonzero(region, as_tuple=True)
    top = max(0, int(ys.min()) - margin) // multiple * multiple
    left = max(0, int(xs.min()) - margin) // multiple * multiple
    bottom = min(height, int(ys.max()) + 1 + margin)
    right = min(width, int(xs.max()) + 1 + margin)
    return slice(top, bottom), slice(left, right)


def _decode(network: nn.Module, accum: Tensor, shape: tuple[int, int], multiple: int) -> Tensor:
    """``[3, h, w]`` frame in [0, 1] from ``[C + 1, h * w]`` splatted sums (padded to the grid with holes)."""
    height, width = shape
    features = (accum[:-1] / accum[-1:].clamp_min(MIN_WEIGHT)).view(1, -1, height, width)
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        features = F.pad(features, (0, pad_w, 0, pad_h))
    decoded = network.decode(features)[0, :, :height, :width]
    return (decoded + 1.0) * 0.5


def _to_channels(rgb: Tensor, channels: int) -> Tensor:
    """``[3, h, w]`` -> ``[channels, h, w]`` (grey for one channel; alpha is handled by the caller)."""
    return rgb.mean(dim=0, keepdim=True) if channels == 1 else rgb


def render_learned_frames(
    image: Tensor,
    motion: Motion,
    network: nn.Module,
    progress: Optional[ProgressFn] = None,
    correct_reconstruction: bool = True,
    crop: bool = True,
) -> Tensor:
    """Render the ``N`` frames of the loop with G_frame.

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) picture in [0, 1]; C is 1, 3 or 4
            (an alpha channel is copied).
        motion: displacements from :func:`...kernels.euler_integrate`.
        network: a :class:`.networks.SPADEUnet4SoftmaxSplating` in evaluation mode.
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        correct_reconstruction: add ``picture - decode(still features)`` inside
            the animated region (see the module docstring).
        crop: decode only the window around the animated region.

    Returns:
        ``[N, H, W, C]`` float32 frames; frame 0 is the picture, pixels outside the
        animated region equal it in every frame.
    """
    picture = check_picture(image, motion).float().cpu()
    height, width, channels = picture.shape
    frames_total = motion.num_frames
    frames = picture.unsqueeze(0).repeat(frames_total, 1, 1, 1)
    if motion.sources.numel() == 0:
        return frames

    device = next(network.parameters()).device
    multiple = network.config.multiple
    region = animated_region(motion).cpu()
    rows, cols = decode_window(region, multiple) if crop else (slice(0, height), slice(0, width))
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    colour = picture[..., :3] if channels >= 3 else picture.expand(-1, -1, 3)

    with torch.inference_mode():
        carried = _encode(network, colour, rows, cols, device)  # [C + 1, window pixels]
        sources, x0, y0 = _window_sources(motion, rows, cols, shape[1], device)
        still = carried.clone()
        still[:, sources] = 0.0
        values = carried[:, sources].repeat(1, 2)  # forward then backward copies
        correction = 0.0
        if correct_reconstruction:
            reference = _to_channels(colour[rows, cols].permute(2, 0, 1), channels).to(device)
            correction = reference - _to_channels(_decode(network, carried, shape, multiple), channels)

        inside = region[rows, cols]
        target = frames[:, rows, cols]  # a view into the frames
        accum = torch.empty_like(still)
        for n in range(frames_total):
            if n > 0:
                accum.copy_(still)
                splat_symmetric_(accum, values, x0, y0, motion, n, shape[1])
                decoded = _to_channels(_decode(network, accum, shape, multiple), channels)
                result = (decoded + correction).clamp(0.0, 1.0).permute(1, 2, 0).cpu()
                target[n, :, :, : result.shape[-1]][inside] = result[inside]
            if progress is not None:
                progress(n + 1, frames_total)
    return frames


def _encode(network: nn.Module, colour: Tensor, rows: slice, cols: slice, device: torch.device) -> Tensor:
    """``[C + 1, window pixels]``: ``[features * exp(Z - max Z), exp(Z - max Z)]`` of the whole
    picture (``[H, W, 3]`` in [0, 1]), cut to the window."""
    rgb = colour.permute(2, 0, 1).unsqueeze(0).to(device) * 2.0 - 1.0
    features, z = network.encode(rgb)
    carried = importance_weights(features, z, torch.ones(1, device=device))[0][:, rows, cols]
    return carried.reshape(carried.shape[0], -1)


def _window_sources(motion: Motion, rows: slice, cols: slice, win_w: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """Flat window indices of the moving pixels and their window coordinates ``(index, x0, y0)``."""
    x, y = motion.source_positions()
    x = x.to(device) - cols.start
    y = y.to(device) - rows.start
    index = (y.long() * win_w + x.long()).to(device)
    return index, x, y
