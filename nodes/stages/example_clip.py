"""Synthetic clips whose motion is known: a texture advected by a constant velocity inside a region,
over a background with the faults of real footage (per-frame flicker, slow drift, sensor noise).

Made without the pack's renderer (plain bilinear look-ups of the texture at ``x - v t``), they are
the ground truth of the loop tests and the clip of the ``loop_video`` template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Footage:
    """The faults added to every frame: ``gain_t = 1 + flicker * u_t`` (``u_t`` uniform in [-1, 1]),
    an offset rising linearly to ``drift`` over the clip, the background panning ``pan`` px/frame to the
    right (a camera that is not quite still), and Gaussian noise of std ``noise``."""

    flicker: float = 0.06
    drift: float = 0.04
    pan: float = 0.02
    noise: float = 0.004


def periodic_texture(height: int, width: int, channels: int = 3, cells: float = 8.0, seed: int = 0) -> Tensor:
    """``[H, W, C]`` smooth noise in about [0.2, 0.8] that tiles (a low-passed white noise on the torus)."""
    generator = torch.Generator().manual_seed(seed)
    white = torch.randn((channels, height, width), generator=generator)
    fy = torch.fft.fftfreq(height)[:, None] * height
    fx = torch.fft.fftfreq(width)[None, :] * width
    low = torch.exp(-(fx.square() + fy.square()) / (2.0 * cells**2))
    smooth = torch.fft.ifft2(torch.fft.fft2(white) * low).real
    smooth = smooth / smooth.std(dim=(1, 2), keepdim=True)
    return (0.5 + 0.12 * smooth).clamp(0.0, 1.0).permute(1, 2, 0).contiguous()


def _wrap(x: Tensor, size: int, reflect: bool) -> Tensor:
    if not reflect:
        return torch.remainder(x, size)
    period = 2 * (size - 1)
    return (size - 1) - (torch.remainder(x, period) - (size - 1)).abs()


def shifted(texture: Tensor, dx: float, dy: float, reflect: bool = False) -> Tensor:
    """``[H, W, C]``: ``texture`` read bilinearly at ``(x - dx, y - dy)``, wrapped (or reflected) at its edges."""
    height, width = texture.shape[:2]
    y = torch.arange(height, dtype=torch.float64)[:, None] - dy
    x = torch.arange(width, dtype=torch.float64)[None, :] - dx
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).float()[..., None], (y - y0).float()[..., None]
    xa, xb = _wrap(x0, width, reflect).long(), _wrap(x0 + 1, width, reflect).long()
    ya, yb = _wrap(y0, height, reflect).long(), _wrap(y0 + 1, height, reflect).long()
    xa, xb = xa.expand(height, width), xb.expand(height, width)
    ya, yb = ya.expand(height, width), yb.expand(height, width)
    top = texture[ya, xa] * (1 - fx) + texture[ya, xb] * fx
    bottom = texture[yb, xa] * (1 - fx) + texture[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def advected_clip(background: Tensor, texture: Tensor, region: Tensor, velocity: tuple[float, float], frames: int,
                  footage: Footage = Footage(), seed: int = 0, reflect: bool = False, over_background: bool = False
                  ) -> Tensor:
    """``[N, H, W, C]`` float32: ``texture [H, W, C]`` moving at ``velocity`` ``(vx, vy)`` px/frame inside
    ``region [H, W]`` bool, ``background [H, W, C]`` elsewhere, with ``footage``'s flicker, drift, pan and noise.
    With ``over_background`` the moving texture is added to the still background (its 0.5 adds nothing):
    ripples drifting over a picture's water."""
    generator = torch.Generator().manual_seed(seed)
    gains = 1.0 + footage.flicker * (2.0 * torch.rand(frames, generator=generator) - 1.0)
    out = torch.empty((frames, *background.shape))
    inside = region[..., None]
    for t in range(frames):
        still = shifted(background, footage.pan * t, 0.0, reflect=True) if footage.pan else background
        moving = shifted(texture, velocity[0] * t, velocity[1] * t, reflect)
        if over_background:
            moving = (background + moving - 0.5).clamp(0.0, 1.0)
        clean = torch.where(inside, moving, still)
        offset = footage.drift * t / max(frames - 1, 1)
        noise = torch.randn(background.shape, generator=generator) * footage.noise
        out[t] = (clean * gains[t] + offset + noise).clamp(0.0, 1.0)
    return out


def disc_region(height: int, width: int, fraction: float = 0.3) -> Tensor:
    """``[H, W]`` bool: an ellipse in the middle covering about ``fraction`` of the frame."""
    y = (torch.arange(height) + 0.5 - height / 2) / (height / 2)
    x = (torch.arange(width) + 0.5 - width / 2) / (width / 2)
    radius = math.sqrt(4.0 * fraction / math.pi)
    return (x[None, :].square() + y[:, None].square()) <= radius**2
