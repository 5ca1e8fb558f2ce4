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

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...kernels import Motion
from ...kernels.morphology import erode
from .frames import FrameFn, ProgressFn, RenderMethod, RenderPlan, make_accumulator, render_frames, splatted_frame
from .networks.frame_net import MIN_WEIGHT, importance_weights

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


class LearnedRender(RenderMethod):
    """G_frame's render: each pixel carries ``[features * w, w]`` (:func:`_encode`), a frame is
    finished by :class:`LearnedFinisher`, on the network's device, in a window grown by
    :data:`DECODER_MARGIN` (the whole picture without ``crop``) to the network's multiple.

    Args:
        network: a :class:`.networks.SPADEUnet4SoftmaxSplating` in evaluation mode.
        correct_reconstruction: add ``picture - decode(still features)`` along the
            region's edge (see the module docstring).
        crop: decode only the window around the animated region.
        band: width of that edge band in pixels.
        accumulator: an accumulator class of :mod:`.frames` (default: the device's).
    """

    def __init__(self, network: nn.Module, correct_reconstruction: bool = True, crop: bool = True,
                 band: int = CORRECTION_BAND, accumulator: Optional[type] = None):
        self.network, self.crop, self.accumulator = network, crop, accumulator
        self.band = band if correct_reconstruction else None
        self.multiple = network.config.multiple

    def carried(self, channels: int) -> int:
        return self.network.config.feature_channels + 1  # the features and Z

    def device(self, motion: Motion, device) -> torch.device:
        return next(self.network.parameters()).device

    def plan(self, motion: Motion, picture: Tensor, device, part_frames: Optional[int]) -> RenderPlan:
        margin = DECODER_MARGIN if self.crop else max(picture.shape[:2])
        return RenderPlan(motion, device, margin=margin, multiple=self.multiple, part_frames=part_frames)

    def frame(self, plan: RenderPlan, picture: Tensor, motion: Motion) -> FrameFn:
        colour = picture[..., :3] if picture.shape[-1] >= 3 else picture.expand(-1, -1, 3)
        with torch.inference_mode():
            carried = _encode(self.network, colour, plan)
            finish = LearnedFinisher(plan, self.network, carried, picture, self.band)
            make = self.accumulator if self.accumulator is not None else make_accumulator
            splatted = splatted_frame(plan, make(plan, carried), finish)

        def frame(alpha: float, dropped: list) -> Tensor:
            with torch.inference_mode():
                return splatted(alpha, dropped)

        return frame


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
    """Render the ``N`` frames of the loop with G_frame (:func:`.frames.render_frames` of
    :class:`LearnedRender`).

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) picture in [0, 1]; C is 1, 3 or 4
            (an alpha channel is copied).
        motion: displacements from :func:`...kernels.euler_integrate`.
        network, correct_reconstruction, crop, band, accumulator: see :class:`LearnedRender`.
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        part_frames: frames whose trajectories are integrated at once when the
            motion does not store them all (:class:`.frames.RenderPlan`).

    Returns:
        ``[N, H, W, C]`` float32 frames; frame 0 is the picture, pixels outside the
        animated region equal it in every frame.
    """
    method = LearnedRender(network, correct_reconstruction, crop, band, accumulator)
    return render_frames(image, motion, method, progress=progress, part_frames=part_frames)


def _encode(network: nn.Module, colour: Tensor, plan: RenderPlan) -> Tensor:
    """``[C + 1, window pixels]``: ``[features * w, w]`` of the whole picture (``[H, W, 3]`` in
    [0, 1]), ``w`` :func:`...kernels.splat.softmax_weights` of Z, cut to the plan's window."""
    rgb = colour.permute(2, 0, 1).unsqueeze(0).to(plan.device) * 2.0 - 1.0
    features, z = network.encode(rgb)
    carried = importance_weights(features, z, torch.ones(1, device=plan.device))[0][:, plan.rows, plan.cols]
    return carried.reshape(carried.shape[0], -1)
