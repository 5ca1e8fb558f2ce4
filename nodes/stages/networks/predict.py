"""Flow fields from the learned networks, in pixels per frame.

G_flow and the hint network see the natural picture in [-1, 1] and the mask
at 512 pixels on the shorter side (the release resizes to 512x512) and
predict flow / 64 through tanh. As in the release's renderer the flow is
then multiplied by 64, clamped to ``[-clamp, clamp]`` px/frame per component
and multiplied by the speed, all at the network's resolution; it is then
resized to the picture (components scaled with the size) and multiplied by
the mask, so it is exactly zero outside it.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....kernels.errors import InputError
from ..directions import parse_direction_spec, resolve_angle
from ..inputs import check_masks, single_picture
from .flow_net import FLOW_NORM

NETWORK_SHORT_SIDE = 512  # the networks were trained on 512x512 crops
RELEASE_CLAMP = 1.0  # px/frame per component (test_video.py of the release)


def network_size(height: int, width: int, multiple: int, short_side: int = NETWORK_SHORT_SIDE) -> tuple[int, int]:
    """``(h, w)`` with the shorter side ``short_side``, the aspect kept, both multiples of ``multiple``."""
    scale = short_side / min(height, width)
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )


def network_inputs(picture: Tensor, region: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``(rgb [1, 3, h, w] in [-1, 1], mask [1, 1, h, w] of 0/1)`` from ``picture [H, W, C]`` in [0, 1]."""
    rgb = picture[..., :3].permute(2, 0, 1).unsqueeze(0).float()
    if rgb.shape[1] == 1:
        rgb = rgb.expand(-1, 3, -1, -1)
    if tuple(rgb.shape[-2:]) != size:
        rgb = F.interpolate(rgb, size=size, mode="bicubic", align_corners=False, antialias=True)
    rgb = (rgb.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous()
    mask = F.interpolate(region.float()[None, None], size=size, mode="nearest")
    return rgb, mask


def conditioning_context(conditioning, context_dim: int) -> Tensor:
    """``[1, T, context_dim]`` text context from a ComfyUI CONDITIONING (or a plain tensor).

    SD1.x's CLIPTextEncode gives ``[[cond [1, 77, 768], {...}], ...]``: the last
    hidden state of CLIP ViT-L/14, which G_flow was trained on. The first
    entry and its first batch element are used.
    """
    if conditioning is None:
        raise InputError(
            "conditioning",
            "method 'learned' needs the artistic prompt encoded by CLIPTextEncode with an SD1.x checkpoint's CLIP",
        )
    cond = conditioning
    if isinstance(cond, (list, tuple)):
        if not cond or not isinstance(cond[0], (list, tuple)) or not isinstance(cond[0][0], Tensor):
            raise InputError("conditioning", "expected a CONDITIONING from CLIPTextEncode")
        cond = cond[0][0]
    if not isinstance(cond, Tensor) or cond.ndim != 3:
        raise InputError("conditioning", f"expected a [B, tokens, {context_dim}] text encoding")
    if cond.shape[-1] != context_dim:
        raise InputError(
            "conditioning",
            f"has {cond.shape[-1]}-dimensional tokens but G_flow was trained on SD1.x CLIP ViT-L/14 "
            f"({context_dim}); encode the prompt with an SD1.x (SD1.5) checkpoint's CLIP",
        )
    return cond[:1].float()


HINT_SCALES = ("training", "release")


def direction_hint(regions: Tensor, angles: list[float], size: tuple[int, int], scale: str = "training") -> Tensor:
    """``[1, 2, h, w]`` dense hint: each region's unit direction, zero elsewhere.

    The hint network was trained on ground-truth flow samples divided by 64.
    ``scale`` "training" (default) divides the unit vector by 64 as in training
    (a hint of 1 px/frame); "release" feeds the undivided unit vector, as the
    release's inference script did (a hint of 64 px/frame to the network).
    """
    if scale not in HINT_SCALES:
        raise InputError("hint_scale", f"must be one of {', '.join(HINT_SCALES)}, got {scale!r}")
    divisor = FLOW_NORM if scale == "training" else 1.0
    hint = torch.zeros((1, 2, *size))
    for region, angle in zip(regions, angles):
        inside = F.interpolate(region.float()[None, None], size=size, mode="nearest")[0, 0] > 0.5
        radians = math.radians(angle)
        hint[0, 0][inside] = math.cos(radians) / divisor
        hint[0, 1][inside] = -math.sin(radians) / divisor
    return hint


def network_output_to_flow(
    output: Tensor, region: Tensor, speed: float, clamp: Optional[float], size: tuple[int, int]
) -> Tensor:
    """``[2, H, W]`` px/frame from the network's ``[1, 2, h, w]`` flow / 64.

    Args:
        clamp: per-component limit in px/frame at the network's resolution (the
            release's 1.0); ``None`` or 0 keeps the raw prediction.
        speed: multiplier after the clamp (the release's 0.5, 0.3 with a direction).
        size: ``(H, W)`` of the picture.
    """
    flow = output.float() * FLOW_NORM
    if clamp:
        flow = flow.clamp(-clamp, clamp)
    flow = flow * speed
    height, width = size
    net_h, net_w = flow.shape[-2:]
    if (net_h, net_w) != (height, width):
        flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
        flow = flow * torch.tensor([width / net_w, height / net_h], device=flow.device).view(1, 2, 1, 1)
    return (flow[0].cpu() * region.to(torch.float32)).contiguous()


def check_speed_options(speed: float, clamp: Optional[float]) -> None:
    if not (math.isfinite(speed) and speed > 0):
        raise InputError("speed", f"must be a positive multiplier, got {speed}")
    if clamp is not None and not (math.isfinite(clamp) and clamp >= 0):
        raise InputError("learned_clamp", f"must be >= 0 px/frame (0 = no clamp), got {clamp}")


def _device_of(network: nn.Module) -> torch.device:
    return next(network.parameters()).device


def learned_flow(
    network: nn.Module,
    image: Tensor,
    masks: Tensor,
    conditioning,
    speed: float = 0.5,
    clamp: Optional[float] = RELEASE_CLAMP,
) -> Tensor:
    """Flow from G_flow: natural twin + mask + the artistic prompt's CLIP encoding.

    Args:
        network: a :class:`.flow_net.SPADEXAttnUnet4MotionSD` in evaluation mode.
        image: ``[1, H, W, C]`` or ``[H, W, C]`` picture in [0, 1] (the natural twin).
        masks: ``[R, H, W]`` regions; their union is the moving region.
        conditioning: CONDITIONING of the artistic prompt (``[1, T, 768]``).

    Returns:
        ``[2, H, W]`` float32 px/frame, zero outside the mask.
    """
    check_speed_options(speed, clamp)
    picture = single_picture(image)
    height, width = picture.shape[:2]
    region = check_masks(masks.float().cpu(), height, width).any(dim=0)
    size = network_size(height, width, network.config.multiple)
    rgb, mask = network_inputs(picture.cpu(), region, size)
    context = conditioning_context(conditioning, network.config.context_dim)
    device = _device_of(network)
    with torch.inference_mode():
        output = network(torch.cat((rgb, mask), 1).to(device), context.to(device))
    return network_output_to_flow(output, region, speed, clamp, (height, width))


def learned_direction_flow(
    network: nn.Module,
    image: Tensor,
    masks: Tensor,
    direction: str,
    region_kind: str,
    seed: int,
    speed: float = 0.3,
    clamp: Optional[float] = RELEASE_CLAMP,
    hint_scale: str = "training",
) -> tuple[Tensor, list[float]]:
    """Flow from the hint network: picture + mask + a dense direction hint per region
    (``hint_scale``: see :func:`direction_hint`).

    The direction is given as for the procedural method (a phrase, an angle,
    ``auto``, or one per mask); the angle inside a phrase's range is drawn
    from ``seed``.

    Returns:
        ``(flow [2, H, W] float32 px/frame zero outside the masks, angles in degrees per region)``.
    """
    check_speed_options(speed, clamp)
    picture = single_picture(image)
    height, width = picture.shape[:2]
    regions = check_masks(masks.float().cpu(), height, width)
    specs = parse_direction_spec(direction, regions.shape[0])
    generator = torch.Generator().manual_seed(int(seed))
    angles = [resolve_angle(s.direction, s.kind or region_kind, r, generator) for r, s in zip(regions, specs)]
    region = regions.any(dim=0)
    size = network_size(height, width, network.config.multiple)
    rgb, mask = network_inputs(picture.cpu(), region, size)
    hint = direction_hint(regions, angles, size, hint_scale)
    device = _device_of(network)
    with torch.inference_mode():
        output = network(torch.cat((rgb, mask, hint), 1).to(device))
    return network_output_to_flow(output, region, speed, clamp, (height, width)), angles
