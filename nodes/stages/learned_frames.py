"""The learned finisher of the render (``learned`` method): G_frame's features, splatted and decoded.

G_frame encodes the picture once into 64 feature channels and an importance
Z. The render of :mod:`.frames` splats ``[features * exp(Z), exp(Z)]`` with
the same plan and accumulators as pixels (the window grown by
:data:`DECODER_MARGIN`, more than the decoder's receptive field, so the
pixels kept are the same as with a whole-picture decode), and this finisher
normalises the sums and decodes them with G_frame's partial-convolution
decoder (empty pixels are holes it fills).

Every pixel outside :func:`.frames.animated_region` is the source pixel, bit
for bit, and frame 0 is the picture itself. The decoder does not reproduce
the picture exactly, so by default its reconstruction error of the still
picture (``picture - decode(still)``) is added in a band along the region's
edge, fading from all of it at the edge to none :data:`CORRECTION_BAND`
pixels inside: the region joins the copied pixels without a seam, while the
moving interior is the network's own output (the authors' renderer shows the
network's full decode everywhere).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...kernels import Motion
from ...kernels.morphology import erode
from .frames import RenderPlan, check_picture, frame_chunks, make_accumulator, splatted_frame
from .networks.frame_net import MIN_WEIGHT, importance_weights

ProgressFn = Callable[[int, int], None]

DECODER_MARGIN = 64  # px; one feature pixel changes G_frame's output up to 38 px away
CORRECTION_BAND = 12  # px; the reconstruction correction fades to 0 this far inside the region


def correction_weight(region: Tensor, band: int) -> Tensor:
    """``[H, W]`` in [0, 1]: 1 on the region's edge pixels (next to a still pixel), falling by
    ``1 / band`` per pixel inwards (chessboard distance) to 0; 0 outside the region. The picture's
    border is not an edge: nothing is copied beyond it."""
    depth = sum(erode(region, radius).float() for radius in range(band + 1))  # 1 on the edge .. band + 1
    return ((band + 1 - depth) / band).clamp(0.0, 1.0) * region


class LearnedFinisher:
    """Colours of the window from feature sums: normalised, decoded by G_frame, edge-corrected."""

    def __init__(self, plan: RenderPlan, network: nn.Module, carried: Tensor, picture: Tensor, band: Optional[int]):
        self.plan, self.network, self.channels = plan, network, picture.shape[-1]
        self.multiple = network.config.multiple
        self.reference = plan.window(picture.to(plan.device))  # [C, h * w]
        self.correction = None
        if band is not None:
            still = self._decode(carried)
            weight = correction_weight(plan.region, band)[plan.rows, plan.cols].reshape(1, -1)
            self.correction = (self.reference[:3] - still) * weight

    def _decode(self, sums: Tensor) -> Tensor:
        """``[C + 1, >= h * w]`` feature sums -> ``[3 or 1, h * w]`` colours in [0, 1]."""
        height, width = self.plan.shape
        sums = sums[:, : height * width]
        features = (sums[:-1] / sums[-1:].clamp_min(MIN_WEIGHT)).view(1, -1, height, width)
        pad_h, pad_w = (-height) % self.multiple, (-width) % self.multiple
        if pad_h or pad_w:
            features = F.pad(features, (0, pad_w, 0, pad_h))
        decoded = (self.network.decode(features)[0, :, :height, :width] + 1.0) * 0.5
        rgb = decoded.reshape(3, -1)
        return rgb.mean(dim=0, keepdim=True) if self.channels == 1 else rgb

    def __call__(self, accum) -> Tensor:
        """``[C, h * w]`` colours of the window (an alpha channel is the picture's)."""
        sums = torch.stack([accum.channel(c) for c in range(self.network.config.feature_channels + 1)])
        decoded = self._decode(sums)
        if self.correction is not None:
            decoded = decoded + self.correction
        colour = self.reference.clone()
        colour[: decoded.shape[0]] = decoded.clamp(0.0, 1.0)
        return torch.where(self.plan.inside, colour, self.reference)


def render_learned_frames(
    image: Tensor,
    motion: Motion,
    network: nn.Module,
    progress: Optional[ProgressFn] = None,
    correct_reconstruction: bool = True,
    crop: bool = True,
    band: int = CORRECTION_BAND,
    accumulator: Optional[type] = None,
    part_frames: Optional[int] = None,
) -> Tensor:
    """Render the ``N`` frames of the loop with G_frame.

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) picture in [0, 1]; C is 1, 3 or 4
            (an alpha channel is copied).
        motion: displacements from :func:`...kernels.euler_integrate`.
        network: a :class:`.networks.SPADEUnet4SoftmaxSplating` in evaluation mode.
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        correct_reconstruction: add ``picture - decode(still features)`` along the
            region's edge (see the module docstring).
        crop: decode only the window around the animated region.
        band: width of that edge band in pixels.
        accumulator: an accumulator class of :mod:`.frames` (default: the device's).
        part_frames: frames whose trajectories are integrated at once when the
            motion does not store them all (:class:`.frames.RenderPlan`).

    Returns:
        ``[N, H, W, C]`` float32 frames; frame 0 is the picture, pixels outside the
        animated region equal it in every frame.
    """
    picture = check_picture(image, motion).float().cpu()
    out = torch.empty((motion.num_frames, *picture.shape))
    if motion.sources.numel() == 0:
        out.copy_(picture.expand_as(out))
        return out
    device = next(network.parameters()).device
    height, width = picture.shape[:2]
    margin = DECODER_MARGIN if crop else max(height, width)
    plan = RenderPlan(motion, device, margin=margin, multiple=network.config.multiple, part_frames=part_frames)
    colour = picture[..., :3] if picture.shape[-1] >= 3 else picture.expand(-1, -1, 3)
    with torch.inference_mode():
        carried = _encode(network, colour, plan)
        finish = LearnedFinisher(plan, network, carried, picture, band if correct_reconstruction else None)
        accum = accumulator(plan, carried) if accumulator is not None else make_accumulator(plan, carried)
        for _ in frame_chunks(picture, plan, splatted_frame(plan, accum, finish), motion.num_frames, progress, out):
            pass
    return out


def _encode(network: nn.Module, colour: Tensor, plan: RenderPlan) -> Tensor:
    """``[C + 1, window pixels]``: ``[features * exp(Z - max Z), exp(Z - max Z)]`` of the whole
    picture (``[H, W, 3]`` in [0, 1]), cut to the plan's window."""
    rgb = colour.permute(2, 0, 1).unsqueeze(0).to(plan.device) * 2.0 - 1.0
    features, z = network.encode(rgb)
    carried = importance_weights(features, z, torch.ones(1, device=plan.device))[0][:, plan.rows, plan.cols]
    return carried.reshape(carried.shape[0], -1)
