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
* the copies are mixed with ``alpha = 1 - n/N`` and ``1 - alpha`` (Holynski
  et al. 2021), times a visibility: a trace that ran into still or slow water
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
  reading (:func:`extend_moving`), so no bank or rock is read into the water.

Pixels with no flow are the picture's, bit for bit; frame 0 is the picture.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor

from ...kernels import Motion
from ...kernels.errors import InputError
from .frames import SLICE, ProgressFn, RenderPlan, check_picture, frame_chunks, pixel_frame_chunks, still_chunks

LOW_PASS_SIGMA = 4.0  # px: detail finer than this is what the mix restores
AGREE_PX = 1.0  # px: copies this far apart share about 60% of their detail
CUBIC_MARGIN = 2  # px of picture around the window that a bicubic read reaches
MIN_VISIBLE = 1e-3  # where both copies are hidden, they are mixed by alpha alone
EDGE_PX = 8.0  # px: a copy whose trace ends this close to the picture's edge fades out (nothing is known beyond)


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
        speed = torch.hypot(*flow[:, plan.rows, plan.cols].to(planar.device)).view(1, 1, height, width)
        self.detail = image - low  # [1, C, h, w] read bicubically
        self.smooth = torch.cat((low, speed), dim=1)  # [1, C + 1, h, w] smooth: read bilinearly
        # Window pixels -> grid_sample's [-1, 1] (align_corners=True).
        self.scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=planar.device)
        self.plan, self.planar, self.channels = plan, planar, channels
        self.source_speed = speed.view(-1)[plan.sources]  # [M]
        # Window coordinates -> distance to the picture's edges: left/top = p + start, right/bottom = end - p.
        start = torch.tensor([[float(plan.cols.start)], [float(plan.rows.start)]], device=planar.device)
        end = torch.tensor([[flow.shape[2] - 1.0], [flow.shape[1] - 1.0]], device=planar.device) - start
        self.edge = (start, end)
        self.colour = planar.clone()
        self.source_colour = planar[:, plan.sources]
        self.low, self.high = float(planar.min()), float(planar.max())
        self.kept = planar.new_empty(2 * plan.count)  # 0 for a copy outside the picture in this frame
        self.slices = [slice(first, min(first + SLICE, plan.count)) for first in range(0, plan.count, SLICE)]

    def _read(self, position: Tensor) -> tuple[Tensor, Tensor]:
        """``([C, 2, S] detail, [C + 1, 2, S] low-pass and speed)`` under copies at ``position``
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
        visible[0] *= alpha
        visible[1] *= 1.0 - alpha
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
            mixed.addcmul_(detail[:, 0], w1 / spread).addcmul_(detail[:, 1], w2 / spread)
            mixed.clamp_(self.low, self.high)
            if dropped:
                mixed = torch.where((w1 + w2) == 0, self.source_colour[:, part], mixed)  # both left the picture
            self.colour[:, plan.sources[part]] = mixed
        return self.colour


def resampled_frame_chunks(
    image: Tensor,
    motion: Motion,
    progress: Optional[ProgressFn] = None,
    chunk: int = 8,
    device=None,
    out: Optional[Tensor] = None,
    part_frames: Optional[int] = None,
) -> Iterator[Tensor]:
    """The resampling method's frames, ``chunk`` at a time (see :func:`render_resampled_frames`)."""
    picture = check_picture(image, motion).float().cpu()
    if motion.sources.numel() == 0:
        return still_chunks(picture, motion.num_frames, chunk, progress, out)
    device = device if device is not None else motion.flow.device
    plan = RenderPlan(reversed_motion(motion), device, margin=CUBIC_MARGIN, part_frames=part_frames)
    resampler = Resampler(plan, plan.window(picture.to(plan.device)), motion.flow)
    return frame_chunks(picture, plan, resampler, chunk, progress, out)


def render_resampled_frames(
    image: Tensor,
    motion: Motion,
    progress: Optional[ProgressFn] = None,
    device=None,
    part_frames: Optional[int] = None,
) -> Tensor:
    """Render the ``N`` frames of the loop by backward resampling of the picture (see the module).

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
    return render_frames(image, motion, "resample", progress, device, part_frames)


# The weight-free renders by name, the default first: their chunk generators take the same keywords.
PIXEL_RENDERS = {"resample": resampled_frame_chunks, "splat": pixel_frame_chunks}


def pixel_render(name: str, input_name: str = "pixel_render"):
    """The chunk generator of the weight-free render ``name`` (:data:`PIXEL_RENDERS`)."""
    if name not in PIXEL_RENDERS:
        raise InputError(input_name, f"unknown render {name!r}; valid: {', '.join(PIXEL_RENDERS)}")
    return PIXEL_RENDERS[name]


def render_frames(
    image: Tensor,
    motion: Motion,
    render: str = "resample",
    progress: Optional[ProgressFn] = None,
    device=None,
    part_frames: Optional[int] = None,
) -> Tensor:
    """``[N, H, W, C]`` float32 CPU frames of the weight-free render ``render`` (``resample``: this
    module; ``splat``: :func:`.frames.render_pixel_frames`) in one batch."""
    chunks = pixel_render(render)
    picture = check_picture(image, motion)
    out = torch.empty((motion.num_frames, *picture.shape))
    for _ in chunks(picture, motion, progress=progress, chunk=motion.num_frames, device=device, out=out,
                    part_frames=part_frames):
        pass
    return out
