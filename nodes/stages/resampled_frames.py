"""The weight-free render that keeps the picture: backward (semi-Lagrangian) resampling.

Frame ``n`` of ``N`` reads the picture where each moving pixel's content
came from, instead of pushing the picture's pixels to where they go:

* the copy that left the first frame ``n`` frames ago sits at ``P_n(x)``,
  ``x`` traced ``n`` steps along ``-F``; the copy that reaches the last frame
  ``N - n`` frames from now sits at ``Q_n(x)``, ``x`` traced ``N - n`` steps
  along ``F``. These are the Euler traces of the motion of ``-F``
  (:func:`reversed_motion`), so :class:`.frames.RenderPlan` integrates and
  holds them as it does for splatting, part by part where memory is short;
* each copy reads the picture once with a bicubic kernel (never a resampled
  frame, so no blur accumulates over the loop), split into a low-pass
  (Gaussian, ``LOW_PASS_SIGMA``) and the detail above it;
* the copies are mixed with ``a(x)`` and ``1 - a(x)``, where ``a`` goes from
  1 at frame 0 to 0 at frame N. Holynski et al. (2021) use one
  ``alpha = 1 - n/N`` for the whole frame, so mid-loop every ripple shows
  twice at half strength; here each patch of water hands over within
  :data:`HANDOVER` of the loop, at a time of its own (:func:`handover`), so
  most pixels show one copy at any frame. Each share is times a visibility: a trace that ran into still or slow water
  (where the flow tapers off at the region's edge) would stretch that edge
  into the region, so it counts for as much as the speed at its end over the
  speed at ``x`` (the stretch of a steady flow's map), at most 1, and fades
  out within ``EDGE_PX`` of the picture's edge (where it would next read
  what lies beyond the picture, which nobody knows);
* the low-pass is mixed linearly and the detail divided by the mix's own
  standard deviation, ``sqrt(w1^2 + w2^2 + 2 w1 w2 rho)`` (Heitz and Neyret,
  HPG 2018: a histogram-preserving blend), ``rho`` the correlation of two
  copies ``d`` pixels apart, ``exp(-d^2 / 2 AGREE_PX^2)``: uncorrelated copies
  keep the picture's contrast and copies that show the same pixels (at the
  loop's ends, near still water) are mixed plainly, never over-sharpened;
* the moving pixels are extended a few pixels over the still ones before
  reading (:func:`extend_moving`), so no bank or rock is read into the water;
* a copy carried far is bent into arcs by the flow's turns, and one carried
  across a narrow band of water runs out of water: where the loop's travel is
  more than the water can carry (:func:`loop_period`), the render makes a
  loop ``L = N / K`` frames long and plays it ``K`` times.

Pixels with no flow are the picture's, bit for bit; frame 0 is the picture.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor

from ...kernels import Motion
from ...kernels.integrate import vector_speed
from .frames import SLICE, FrameFn, ProgressFn, RenderMethod, RenderPlan, render_frames

LOW_PASS_SIGMA = 4.0  # px: detail finer than this is what the mix restores
FINE_SIGMA = 1.0  # px: the finest band, below this blur, is what a sub-pixel read dulls most
AGREE_PX = 1.0  # px: copies this far apart share about 60% of their detail
CUBIC_MARGIN = 2  # px of picture around the window that a bicubic read reaches
MIN_VISIBLE = 1e-3  # where both copies are hidden, they are mixed by alpha alone
EDGE_PX = 8.0  # px: a copy whose trace ends this close to the picture's edge fades out (nothing is known beyond)
MAX_TRAVEL_PX = 40.0  # px: the farthest a copy is carried before the flow's turns bend it into arcs
WATER_SHARE = 0.5  # of the water a path crosses (upstream edge to downstream edge), what one copy may travel
MIN_PERIOD = 12  # frames: a shorter loop would flicker
OFFSET_STEPS = 5  # fractional offsets 0, 1/8, .., 1/2 per axis at which a bicubic read's loss of detail is measured
PATH_SAMPLES = 4096  # moving pixels whose paths measure the water's length along the flow
HANDOVER = 0.5  # of the loop: how long each pixel takes to hand over from the first copy to the last
PHASE_PX = 48.0  # px: size of the patches that hand over together
PHASE_SEED = 0  # the handover's pattern is fixed: the same picture and flow give the same frames

log = logging.getLogger("text2cinemagraph")


def reversed_motion(motion: Motion) -> Motion:
    """The :class:`Motion` of ``-flow``: its frame ``n`` is ``motion``'s frame ``N - n`` with the passes swapped.

    Integrating ``-F`` forward is the same arithmetic as ``motion``'s backward
    pass (negation is exact), so the stored frames are reused, not recomputed.
    """
    stored = motion.stored_frames
    first = motion.num_frames - (stored.stop - 1) if len(stored) else 0
    return Motion(-motion.flow, motion.sources, motion.backward_stored.flip(0), motion.forward_stored.flip(0),
                  motion.quantum, motion.num_frames, first)


def extend_moving(image: Tensor, moving: Tensor, steps: int = CUBIC_MARGIN + 1) -> Tensor:
    """``[1, C, h, w]`` ``image`` with the still pixels up to ``steps`` px from the moving ones
    replaced, ring by ring, by the mean of their moving (or already replaced) 3x3 neighbours
    (``moving``: ``[1, 1, h, w]``, 1 where the flow is not zero).

    A copy's trace ends within a pixel of the moving pixels and a bicubic read
    reaches two pixels further: reading this instead of the picture, no still
    content (a bank, a rock) is ever pulled into the water.
    """
    picture, image, known = image, image * moving, moving
    for _ in range(steps):
        total = F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
        count = F.avg_pool2d(known, 3, stride=1, padding=1, count_include_pad=False)
        ring = (count > 0) & (known == 0)
        image = torch.where(ring, total / count.clamp_min(1e-12), image)
        known = torch.where(ring, torch.ones_like(known), known)
    return torch.where(known > 0, image, picture)


def path_frames(motion: Motion, steps: int, samples: int = PATH_SAMPLES) -> Tensor:
    """``[S]`` for up to ``samples`` of the motion's sources (evenly spaced), the frames their path
    through the water lasts: Euler steps along ``-flow`` and along ``flow`` (at most ``steps`` each)
    until the flow under the path drops below half the source's speed (still water or the region's edge).
    """
    count = motion.sources.numel()
    picked = torch.linspace(0, count - 1, min(samples, count), device=motion.sources.device).long()
    start = torch.stack(motion.source_positions())[:, picked]  # [2, S] (x, y)
    scale = torch.tensor([[2.0 / max(motion.width - 1, 1)], [2.0 / max(motion.height - 1, 1)]],
                         device=motion.flow.device)
    field = motion.flow[None].float()

    def velocity(position: Tensor) -> Tensor:
        grid = (position * scale - 1.0).t()[None, None]  # [1, 1, S, 2]
        return F.grid_sample(field, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, :, 0]

    own_speed = vector_speed(velocity(start))
    frames = torch.zeros_like(own_speed)
    for sign in (-1.0, 1.0):
        position, inside = start.clone(), torch.ones_like(own_speed, dtype=torch.bool)
        for _ in range(steps):
            step = velocity(position)
            inside &= vector_speed(step) >= 0.5 * own_speed
            if not bool(inside.any()):
                break
            frames += inside.float()
            position += sign * step * inside
    return frames


def loop_period(motion: Motion) -> int:
    """The frames ``L`` of the loop the render makes and plays ``N / L`` times (``L`` divides ``N``).

    The longest that keeps each copy's travel within :data:`MAX_TRAVEL_PX` (at
    the 90th percentile of the speeds) and within :data:`WATER_SHARE` of the
    water its path crosses (the median path, :func:`path_frames`); never
    shorter than :data:`MIN_PERIOD` frames, and ``N`` itself when it fits.
    """
    total = motion.num_frames
    sources = motion.sources[:: max(1, motion.sources.numel() // (64 * PATH_SAMPLES))]  # torch.quantile's size limit
    speed = motion.speeds(sources, torch.float32)
    travel_limit = MAX_TRAVEL_PX / max(float(torch.quantile(speed, 0.9)), 1e-6)
    longest = math.ceil(total / WATER_SHARE)  # a path this long (either way) fits the whole loop
    water_limit = WATER_SHARE * float(path_frames(motion, longest).median())
    limit = min(travel_limit, water_limit)
    periods = [n for n in range(1, total + 1) if total % n == 0 and n >= min(total, MIN_PERIOD)]
    fitting = [n for n in periods if n <= limit]
    return max(fitting) if fitting else min(periods)


def handover_phases(height: int, width: int, sources: Tensor) -> Tensor:
    """``[M]`` in ``[0, 1]``, evenly spread: when, within the loop, each moving pixel (``sources``, flat
    indices into ``[height, width]``) hands over from the first copy to the last. Smooth noise of
    :data:`PHASE_PX` patches, ranked, so as many pixels hand over at any time as at any other."""
    generator = torch.Generator().manual_seed(PHASE_SEED)
    coarse = torch.rand(1, 1, math.ceil(height / PHASE_PX) + 3, math.ceil(width / PHASE_PX) + 3, generator=generator)
    size = (int(coarse.shape[2] * PHASE_PX), int(coarse.shape[3] * PHASE_PX))
    noise = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)[0, 0, :height, :width]
    values = noise.reshape(-1)[sources.cpu()]
    ranks = torch.empty_like(values)
    ranks[torch.argsort(values, stable=True)] = torch.arange(values.numel(), dtype=values.dtype)
    return (ranks / max(values.numel() - 1, 1)).to(sources.device)


def handover(alpha: float, phase: Tensor) -> Tensor:
    """``[M]`` the first copy's share at each pixel for the loop's ``alpha`` (1 at frame 0, 0 at frame N):
    each pixel hands over, smoothly, within :data:`HANDOVER` of the loop centred at its own ``phase``, so
    that at any frame most pixels show one copy, not two half-strength copies (a double exposure)."""
    centre = 1.0 - HANDOVER / 2 - (1.0 - HANDOVER) * phase  # in [H/2, 1 - H/2]: 1 at frame 0, 0 at frame N
    t = ((alpha - centre) / HANDOVER + 0.5).clamp_(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bicubic_loss(detail: Tensor, loss_bands: int, sources: Tensor, scale: Tensor, samples: int = 1 << 16) -> Tensor:
    """``[1, B, K, K]`` (``K`` = :data:`OFFSET_STEPS`) the standard deviation of each of the ``B``
    bands of ``detail`` (``[1, B * C, h, w]``, band-major) read bicubically at its moving pixels
    (``sources``, flat indices, up to ``samples`` of them) shifted by ``(i, j) / (2 (K - 1))`` px,
    over the same unshifted (1 at 0).

    No interpolation keeps the finest detail at a half-pixel shift, so a copy
    read there is duller than one read at a whole pixel; over a slow loop that
    is a flicker of sharpness every few frames. The table measures the loss on
    this picture, so that :func:`detail_gain` can restore the copies' contrast.
    """
    width = detail.shape[-1]
    channels = detail.shape[1] // loss_bands
    picked = sources[:: max(1, sources.numel() // samples)]
    x = (picked % width).float()
    y = torch.div(picked, width, rounding_mode="floor").float()
    offsets = torch.linspace(0.0, 0.5, OFFSET_STEPS, device=detail.device)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    points = torch.stack((x + ox.reshape(-1, 1), y + oy.reshape(-1, 1)), dim=-1)  # [K * K, S, 2]
    read = F.grid_sample(detail, (points * scale).sub_(1.0)[None], mode="bicubic", padding_mode="border",
                         align_corners=True)[0]  # [C, K * K, S]
    spread = read.view(-1, channels, *read.shape[1:]).std(dim=(1, 3))  # [B, K * K]
    loss = (spread / spread[:, :1].clamp_min(1e-12)).clamp_(0.25, 1.0)
    return loss.view(1, -1, OFFSET_STEPS, OFFSET_STEPS)


def detail_gain(loss: Tensor, position: Tensor) -> Tensor:
    """``[B, P, S]`` the factor that restores the contrast of each band of detail read at
    ``position`` (``[P, 2, S]`` px): one over :func:`bicubic_loss` at its fractional part (folded:
    a shift by ``f`` loses as much as one by ``1 - f``)."""
    fraction = position - position.floor()
    folded = torch.minimum(fraction, 1.0 - fraction)  # [P, 2, S] in [0, 1/2]
    grid = (folded * 4.0 - 1.0).transpose(1, 2)[None]  # [0, 1/2] -> [-1, 1]; [1, P, S, 2]
    table = F.grid_sample(loss, grid.flatten(1, 2)[:, None], mode="bilinear", align_corners=True)
    return table.view(loss.shape[1], position.shape[0], position.shape[2]).reciprocal_()


class Resampler:
    """Reads the two copies of frame ``n`` at the plan's positions and mixes them.

    Args:
        plan: the :class:`.frames.RenderPlan` of :func:`reversed_motion`.
        planar: ``[C, h * w]`` the picture's window.
        flow: ``[2, H, W]`` the motion's flow (either sign).
    """

    def __init__(self, plan: RenderPlan, planar: Tensor, flow: Tensor):
        height, width = plan.shape
        channels = planar.shape[0]
        moving = torch.zeros(height * width, dtype=planar.dtype, device=planar.device)
        moving[plan.sources] = 1.0
        image = extend_moving(planar.view(1, channels, height, width), moving.view(1, 1, height, width))
        radius = math.ceil(3 * LOW_PASS_SIGMA)
        low = gaussian_blur2d(image, 2 * radius + 1, (LOW_PASS_SIGMA, LOW_PASS_SIGMA), border_type="reflect")
        speed = vector_speed(flow[:, plan.rows, plan.cols].to(planar.device)).view(1, 1, height, width)
        radius = math.ceil(3 * FINE_SIGMA)
        sharp = gaussian_blur2d(image, 2 * radius + 1, (FINE_SIGMA, FINE_SIGMA), border_type="reflect")
        self.detail = torch.cat((image - sharp, sharp - low), dim=1)  # [1, 2C, h, w] fine, mid: read bicubically
        self.smooth = torch.cat((low, speed), dim=1)  # [1, C + 1, h, w] smooth: read bilinearly
        # Window pixels -> grid_sample's [-1, 1] (align_corners=True).
        self.scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=planar.device)
        self.plan, self.planar, self.channels = plan, planar, channels
        self.source_speed = speed.view(-1)[plan.sources]  # [M]
        self.phase = handover_phases(height, width, plan.sources)  # [M]
        self.loss = bicubic_loss(self.detail, 2, plan.sources, self.scale)  # [1, 2, K, K]
        # Window coordinates -> distance to the picture's edges: left/top = p + start, right/bottom = end - p.
        start = torch.tensor([[float(plan.cols.start)], [float(plan.rows.start)]], device=planar.device)
        end = torch.tensor([[flow.shape[2] - 1.0], [flow.shape[1] - 1.0]], device=planar.device) - start
        self.edge = (start, end)
        self.colour = planar.clone()
        self.source_colour = planar[:, plan.sources]
        # The water's own range, channel by channel: a restored blend of two copies can overshoot it.
        self.low, self.high = self.source_colour.amin(dim=1, keepdim=True), self.source_colour.amax(dim=1, keepdim=True)
        self.kept = planar.new_empty(2 * plan.count)  # 0 for a copy outside the picture in this frame
        self.slices = [slice(first, min(first + SLICE, plan.count)) for first in range(0, plan.count, SLICE)]

    def _read(self, position: Tensor) -> tuple[Tensor, Tensor]:
        """``([2C, 2, S] detail (fine, mid), [C + 1, 2, S] low-pass and speed)`` under copies at ``position``
        (``[2 copies, 2 (x, y), S]`` window pixels)."""
        grid = (position.transpose(1, 2) * self.scale).sub_(1.0).unsqueeze(0)  # [1, 2, S, 2]
        sample = dict(padding_mode="border", align_corners=True)
        detail = F.grid_sample(self.detail, grid, mode="bicubic", **sample)[0]
        return detail, F.grid_sample(self.smooth, grid, mode="bilinear", **sample)[0]

    def weights(self, position: Tensor, speed: Tensor, part: slice, alpha: float) -> Tensor:
        """``[2, S]`` the copies' shares, summing to 1 (0 and 0 where both left the picture), of the
        sources ``part``, from their positions (as :meth:`_read`) and the flow's speed under them."""
        visible = (speed.clamp_min(0.0) / self.source_speed[part]).clamp_(MIN_VISIBLE, 1.0)
        low, high = self.edge
        edge = torch.minimum(position + low, high - position).amin(dim=1)
        visible *= (edge / EDGE_PX).clamp_(MIN_VISIBLE, 1.0)
        first = handover(alpha, self.phase[part])
        visible[0] *= first
        visible[1] *= 1.0 - first
        visible *= self.kept.view(2, -1)[:, part]
        return visible / visible.sum(dim=0).clamp_min(1e-12)

    def __call__(self, alpha: float, dropped: list[Tensor]) -> Tensor:
        """``[C, h * w]`` colours of the window for a frame (a buffer reused by the next call).

        Sources are mixed ``SLICE`` at a time, so that the frame's temporaries stay small.
        """
        self.kept.fill_(1.0)
        for indices in dropped:
            self.kept[indices] = 0.0
        channels, count, plan = self.channels, self.plan.count, self.plan
        for part in self.slices:
            position = torch.stack((plan.position[:, part], plan.position[:, count + part.start : count + part.stop]))
            detail, smooth = self._read(position)
            w1, w2 = self.weights(position, smooth[channels], part, alpha)
            agree = torch.exp((position[0] - position[1]).square_().sum(dim=0) / (-2.0 * AGREE_PX**2))
            spread = torch.sqrt(w1 * w1 + w2 * w2 + 2.0 * w1 * w2 * agree).clamp_min(1e-12)
            low = smooth[:channels]
            mixed = torch.mul(low[:, 0], w1).addcmul_(low[:, 1], w2)
            gain = detail_gain(self.loss, position) / spread  # [2 bands, 2 copies, S]
            for band in range(2):
                layer = detail[band * channels : (band + 1) * channels]
                mixed.addcmul_(layer[:, 0], w1 * gain[band, 0]).addcmul_(layer[:, 1], w2 * gain[band, 1])
            mixed.clamp_(self.low, self.high)
            if dropped:
                mixed = torch.where((w1 + w2) == 0, self.source_colour[:, part], mixed)  # both left the picture
            self.colour[:, plan.sources[part]] = mixed
        return self.colour


class ResampleRender(RenderMethod):
    """The resampling render: the plan of :func:`reversed_motion` (the window grown by
    :data:`CUBIC_MARGIN`), each pixel carries the picture read at its traces, a frame is
    finished by :class:`Resampler`, and the loop is :func:`loop_period` frames long."""

    margin = CUBIC_MARGIN

    def period(self, motion: Motion) -> int:
        period = loop_period(motion)
        if period < motion.num_frames:
            log.info("the water carries a copy %d frames at most: the loop of %d frames plays one of %d frames %d times",
                     period, motion.num_frames, period, motion.num_frames // period)
        return period

    def plan(self, motion: Motion, picture: Tensor, device, part_frames: Optional[int]) -> RenderPlan:
        return super().plan(reversed_motion(motion), picture, device, part_frames)

    def frame(self, plan: RenderPlan, picture: Tensor, motion: Motion) -> FrameFn:
        return Resampler(plan, plan.window(picture.to(plan.device)), motion.flow)


def render_resampled_frames(
    image: Tensor,
    motion: Motion,
    progress: Optional[ProgressFn] = None,
    device=None,
    part_frames: Optional[int] = None,
) -> Tensor:
    """Render the ``N`` frames of the loop by backward resampling of the picture (see the module;
    :func:`.frames.render_frames` of :class:`ResampleRender`).

    Args:
        image: ``[H, W, C]`` (or ``[1, H, W, C]``) float picture.
        motion: displacements from :func:`...kernels.euler_integrate`.
        progress: ``progress(done, N)`` after each frame; may raise to stop.
        device: where to render (default: the motion's device).
        part_frames: frames whose traces are integrated at once when the
            motion does not store them all.

    Returns:
        ``[N, H, W, C]`` float32 CPU frames; frame 0 is the picture.
    """
    return render_frames(image, motion, ResampleRender(), progress=progress, device=device, part_frames=part_frames)
