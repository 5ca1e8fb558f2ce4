"""Measuring motion in rendered frames (test helpers, no ComfyUI)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def smooth_texture(height: int, width: int, seed: int = 0, cell: int = 4) -> Tensor:
    """``[H, W, 3]`` random texture with detail of about ``cell`` pixels, values in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, height // cell, width // cell), generator=generator)
    fine = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    return fine.clamp(0, 1).permute(1, 2, 0).contiguous()


def global_shift(before: Tensor, after: Tensor, region: Tensor) -> tuple[float, float]:
    """Least-squares (Lucas-Kanade) translation ``(dx, dy)`` from ``before`` to ``after``
    over ``region`` (``[H, W]`` bool), for frames ``[H, W, C]``; sub-pixel, small shifts."""
    a = before.mean(dim=-1).double()
    b = after.mean(dim=-1).double()
    mid = (a + b) / 2
    gx = torch.zeros_like(mid)
    gy = torch.zeros_like(mid)
    gx[:, 1:-1] = (mid[:, 2:] - mid[:, :-2]) / 2
    gy[1:-1, :] = (mid[2:, :] - mid[:-2, :]) / 2
    gt = b - a
    sel = region.clone()
    sel[[0, -1], :] = False
    sel[:, [0, -1]] = False
    ix, iy, it = gx[sel], gy[sel], gt[sel]
    system = torch.tensor([[(ix * ix).sum(), (ix * iy).sum()], [(ix * iy).sum(), (iy * iy).sum()]])
    rhs = -torch.tensor([(ix * it).sum(), (iy * it).sum()])
    dx, dy = torch.linalg.solve(system, rhs).tolist()
    return dx, dy


def mean_motion(frames: Tensor, region: Tensor, steps: range) -> tuple[float, float]:
    """Average per-frame shift over several consecutive frame pairs."""
    shifts = [global_shift(frames[n], frames[n + 1], region) for n in steps]
    return sum(s[0] for s in shifts) / len(shifts), sum(s[1] for s in shifts) / len(shifts)


def angle_of(dx: float, dy: float) -> float:
    """Degrees, 0 = rightwards, 90 = upwards (image y points down)."""
    return math.degrees(math.atan2(-dy, dx)) % 360.0


def in_sector(angle: float, low: float, high: float) -> bool:
    return (angle - low) % 360.0 <= (high - low) % 360.0


def high_pass(grey: Tensor, sigma: float = 1.5) -> Tensor:
    """``[..., H, W]`` minus its Gaussian blur (``sigma`` px, kernel of 3 sigma, edges replicated)."""
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-taps * taps / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(grey.dtype)
    flat = grey.reshape(-1, 1, *grey.shape[-2:])
    padded = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return (flat - blurred).view(grey.shape)


def detail_curve(video: Tensor, picture: Tensor, region: Tensor) -> Tensor:
    """``[N]`` detail(t): the standard deviation of each frame's high-pass (:func:`high_pass` of the
    mean of its channels) over ``region`` (``[H, W]`` bool), over the same for ``picture`` (1 = as
    much fine texture as the picture). ``video`` ``[N, H, W, C]``."""
    frames = high_pass(video.double().mean(dim=-1))[:, region]
    return frames.std(dim=1) / high_pass(picture.double().mean(dim=-1))[region].std()


def ghost_curve(video: Tensor, flow: Tensor, lag: float, region: Tensor) -> Tensor:
    """``[N]`` double exposure: the correlation of each frame's :func:`high_pass` at ``x`` with itself
    at ``x + lag * flow(x)`` (``flow`` ``[2, H, W]`` px/frame), over the pixels of ``region`` whose
    partner is in it too. A render that mixes two copies of the picture carried ``lag`` frames apart
    along the flow shows each detail twice there (about 0.5 for an even mix); one copy, about the
    picture's own correlation at that distance."""
    height, width = region.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack(((xs + lag * flow[0]) * (2.0 / (width - 1)) - 1.0,
                        (ys + lag * flow[1]) * (2.0 / (height - 1)) - 1.0), dim=-1)[None]
    partner = F.grid_sample(region[None, None].double(), grid, align_corners=True)[0, 0] > 0.999
    pairs = region & partner
    detail = high_pass(video.double().mean(dim=-1))[:, None]  # [N, 1, H, W]
    moved = F.grid_sample(detail, grid.expand(len(detail), -1, -1, -1), align_corners=True)[:, 0]
    a, b = detail[:, 0][:, pairs], moved[:, pairs]
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
