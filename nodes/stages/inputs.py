"""Validation of the IMAGE and MASK values a stage receives."""

from __future__ import annotations

import torch
from torch import Tensor

from ...kernels.errors import InputError


def require_finite(values: Tensor, name: str, what: str) -> None:
    """Refuse NaN or infinite entries, which would spread through every later stage."""
    bad = int((~torch.isfinite(values)).sum()) if values.is_floating_point() else 0
    if bad:
        raise InputError(
            name,
            f"has {bad} NaN or infinite values out of {values.numel()}; {what} must hold finite numbers in 0..1 "
            "(check the node that made it, e.g. a VAE decode that overflowed in half precision)",
        )


def single_picture(image: Tensor, name: str = "image") -> Tensor:
    """``[H, W, C]`` from an IMAGE of one picture (``[1, H, W, C]`` or ``[H, W, C]``)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise InputError(name, f"expected one picture, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise InputError(name, f"expected an [H, W, C] picture, got shape {tuple(image.shape)}")
    require_finite(image, name, "a picture")
    return image


def check_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """Validate a MASK batch against the picture size; returns ``[R, H, W]`` bool (> 0.5)."""
    if masks.ndim == 2:
        masks = masks.unsqueeze(0)
    if masks.ndim != 3:
        raise InputError("mask", f"expected a [B, H, W] mask batch, got shape {tuple(masks.shape)}")
    require_finite(masks, "mask", "a mask")
    if tuple(masks.shape[1:]) != (height, width):
        raise InputError(
            "mask",
            f"is {masks.shape[2]}x{masks.shape[1]} but the picture is {width}x{height}; "
            "paint the mask on this picture (or resize it to the picture's size)",
        )
    regions = masks > 0.5
    for i, region in enumerate(regions):
        if not region.any():
            raise InputError(
                "mask",
                f"mask {i} of the batch is empty (no value above 0.5): nothing would move. Paint the region "
                "to animate in the mask editor; note that LoadImage gives an empty 64x64 mask when the "
                "picture has no alpha channel",
            )
    if regions.any(dim=0).all():
        raise InputError(
            "mask",
            "covers the whole picture: a cinemagraph needs a still part; paint only the water, sky or smoke",
        )
    return regions
