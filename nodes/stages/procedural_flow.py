"""A velocity field from masks and directions, with no model weights.

Each masked region moves in its own direction: full speed inside, tapering
to zero at the mask's edge (but not where the region runs off the picture),
with seeded low-frequency wobbles of angle and speed so that water does not
slide like a rigid sheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels.errors import InputError
from ...kernels.integrate import vector_speed
from ...kernels.morphology import edge_distance
from .directions import REGION_KINDS, parse_direction_spec, resolve_angle
from .inputs import check_masks

MAX_SPEED = 8.0  # px/frame; beyond this, splatting smears rather than moves


@dataclass(frozen=True)
class FlowSettings:
    """Shape of the procedural flow, relative to the picture size."""

    taper_fraction: float = 0.04  # width of the edge ramp, fraction of the shorter side
    variation: float = 0.25  # 0 = rigid sheet; 1 = strong wobbles
    noise_cells: int = 4  # wobbles across the shorter side
    max_angle_wobble_deg: float = 30.0


def smooth_noise(generator: torch.Generator, channels: int, height: int, width: int, cells: int) -> Tensor:
    """``[channels, H, W]`` smooth random field in ``[-1, 1]`` (bicubic over a coarse grid)."""
    short = min(height, width)
    grid_h = max(2, round(cells * height / short) + 1)
    grid_w = max(2, round(cells * width / short) + 1)
    coarse = torch.rand((1, channels, grid_h, grid_w), generator=generator) * 2.0 - 1.0
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0].clamp(-1.0, 1.0)


def taper_profile(region: Tensor, taper_px: int) -> Tensor:
    """``[H, W]`` in ``[0, 1]``: 1 deep inside ``region``, ramping to 0 at its edge.

    Depth is the Euclidean distance to the nearest pixel outside (outside the
    picture counts as inside, so a region does not slow down where it leaves
    the frame). The ramp is never wider than half the region's thickness, so
    thin waterfalls still move.
    """
    depth = edge_distance(region > 0.5 if region.dtype != torch.bool else region).to(region.device)
    ramp = max(1.0, min(float(taper_px), float(depth.max()) / 2.0))
    t = ((depth - 0.5) / ramp).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def flow_speed(flow: Tensor) -> Tensor:
    """``[..., H, W]`` speed of a ``[..., 2, H, W]`` flow (:func:`...kernels.integrate.vector_speed`)."""
    return vector_speed(flow.movedim(-3, 0))


def region_flow(
    region: Tensor, angle_deg: float, speed: float, generator: torch.Generator, settings: FlowSettings
) -> tuple[Tensor, Tensor]:
    """``([2, H, W] flow, [H, W] taper profile)`` of one region, mean speed ``speed`` px/frame over its interior."""
    height, width = region.shape
    taper_px = max(3, round(settings.taper_fraction * min(height, width)))
    profile = taper_profile(region, taper_px)
    wobble = smooth_noise(generator, 2, height, width, settings.noise_cells) * settings.variation
    angle = math.radians(angle_deg) + wobble[0] * math.radians(settings.max_angle_wobble_deg)
    magnitude = profile * (1.0 + wobble[1])
    flow = torch.stack((torch.cos(angle), -torch.sin(angle))) * magnitude
    interior = profile >= 0.999
    if not interior.any():
        interior = profile >= profile.max() * 0.5
    mean_speed = flow_speed(flow)[interior].mean()
    return flow * (speed / mean_speed), profile


def blend_regions(flows: Tensor, profiles: Tensor) -> Tensor:
    """``[2, H, W]``: the regions' flows ``[R, 2, H, W]`` merged without adding speeds where they overlap.

    Where several regions cover a pixel their flows are averaged (weighted by
    how deep inside each region the pixel is) and the average takes the mean of
    their speeds, so two identical masks move exactly as one. Outside overlaps
    each region keeps its own flow and taper.
    """
    if flows.shape[0] == 1:
        return flows[0]  # nothing overlaps (and the formula below would return it unchanged)
    depth = profiles.sum(0).clamp(min=1.0)
    blended = flows.sum(0) / depth
    wanted_speed = flow_speed(flows).sum(0) / depth
    speed = flow_speed(blended)
    overlap = (profiles > 0).sum(0) > 1
    rescale = torch.where(overlap & (speed > 1e-6), wanted_speed / speed.clamp(min=1e-6), torch.ones_like(speed))
    return blended * rescale


def procedural_flow(
    masks: Tensor,
    direction: str,
    speed: float,
    region_kind: str,
    seed: int,
    size: tuple[int, int] | None = None,
    settings: FlowSettings = FlowSettings(),
) -> tuple[Tensor, list[float]]:
    """Velocity field for one picture from a batch of region masks.

    Args:
        masks: ``[R, H, W]`` (or ``[H, W]``) values in ``[0, 1]``; > 0.5 moves.
        direction: ``auto``, one of the 12 phrases, an angle in degrees, or one
            ``[kind:] direction`` per mask separated by ``;``.
        speed: mean speed inside each region in px/frame, ``(0, MAX_SPEED]``.
        region_kind: default kind for ``auto`` (see :data:`REGION_KINDS`).
        seed: the same seed gives the same angles and wobbles.
        size: ``(H, W)`` of the picture the masks must match (default: the masks').

    Returns:
        ``(flow [2, H, W] float32 px/frame, zero outside the masks; angles in degrees per region)``.
    """
    if not (0.0 < speed <= MAX_SPEED) or not math.isfinite(speed):
        raise InputError("speed", f"must be in (0, {MAX_SPEED}] px/frame, got {speed}")
    if region_kind not in REGION_KINDS:
        raise InputError("region_kind", f"unknown kind {region_kind!r}; valid kinds: {', '.join(REGION_KINDS)}")
    height, width = size if size is not None else masks.shape[-2:]
    regions = check_masks(masks, height, width)
    specs = parse_direction_spec(direction, regions.shape[0])
    generator = torch.Generator().manual_seed(int(seed))
    flows, profiles, angles = [], [], []
    for region, spec in zip(regions.cpu(), specs):
        angle = resolve_angle(spec.direction, spec.kind or region_kind, region, generator)
        flow, profile = region_flow(region, angle, speed, generator, settings)
        flows.append(flow)
        profiles.append(profile)
        angles.append(angle)
    return blend_regions(torch.stack(flows), torch.stack(profiles)).float(), angles


def flow_to_rgb(flow: Tensor) -> Tensor:
    """``[H, W, 3]`` float preview of a ``[2, H, W]`` flow on the Middlebury colour wheel
    (Baker et al. 2011; hue = direction, saturation = speed, white = still).

    Only the moving pixels are coloured (torchvision's colours scale by the
    fastest one, and a still pixel is white), so a small region costs little.
    """
    from torchvision.utils import flow_to_image

    flow = flow.float().cpu()
    moving = (flow != 0).any(dim=0)
    rgb = torch.ones(*flow.shape[1:], 3)
    if moving.any():
        rgb[moving] = flow_to_image(flow[:, moving][:, None]).float()[:, 0].T / 255.0
    return rgb
