"""T2CExampleImage: the bundled example pictures, so templates open with nothing to copy."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from .stages.example_clip import Footage, advected_clip, periodic_texture
from .stages.pictures import load_mask, load_picture
from ._comfy import CATEGORY, serve_files

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", "assets")

# Example -> (picture, mask of the water) in workflows/assets: drawn by draw_example.py, or
# photographs (credited in CREDITS.md) with masks traced by photo_masks.py.
EXAMPLES = {  # the first is the node's default
    "by_the_water": ("by_the_water.jpg", "by_the_water_mask.png"),
    "evening_glow": ("evening_glow.jpg", "evening_glow_mask.png"),
    "lake": ("lake.png", "lake_mask.png"),
    "lake_painting": ("t2c_painting.png", "lake_mask.png"),  # the same scene as an oil painting
}
PICTURE_ROUTE = "/t2c/example_picture"  # ?name=<example>: what MotionBrush's canvas shows before a run


def example_picture(name: str) -> str | None:
    """Path of the example's picture, or None for an unknown name."""
    return os.path.join(ASSETS, EXAMPLES[name][0]) if name in EXAMPLES else None


class T2CExampleImage:
    DESCRIPTION = (
        "One of the pack's example pictures with the mask of its water, straight from the pack's folder: "
        "templates work on first open, with nothing to copy into ComfyUI's input folder. "
        "Replace it with LoadImage to animate your own picture."
    )
    CATEGORY = CATEGORY + "/examples"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The picture [1, H, W, 3].", "Its water region [1, H, W] (1 = moves).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "example": (
                    list(EXAMPLES),
                    {
                        "tooltip": "by_the_water, evening_glow: photographs of a lake (KDE wallpapers, credited in "
                        "workflows/assets/CREDITS.md); lake: a mountain lake at dusk (drawn); lake_painting: the "
                        "same scene as an oil painting."
                    },
                ),
            }
        }

    def load(self, example):
        image, _ = load_picture(example_picture(example), "example")
        mask = load_mask(os.path.join(ASSETS, EXAMPLES[example][1]), "example")
        return (image.unsqueeze(0), mask.unsqueeze(0))


EXAMPLE_RIPPLE_PX = 12  # size of the ripples drawn on the water
EXAMPLE_RIPPLE_CONTRAST = 0.8  # their brightness: about +-0.1
EXAMPLE_CLIP_SPEED = 1.0  # px/frame left to right at 512 px wide or less (faster in wider clips)


class T2CExampleClip:
    DESCRIPTION = (
        "A short clip made from one of the example pictures, as footage comes from a camera or a video model: "
        "the water's texture drifts left to right while the whole frame flickers, slowly brightens, pans a little "
        "and carries sensor noise. Generated, so templates work on first open; replace it with your own clip (an IMAGE "
        "batch or a VIDEO)."
    )
    CATEGORY = CATEGORY + "/examples"
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")
    OUTPUT_TOOLTIPS = ("The clip [N, H, W, 3].", "Where its water moves [1, H, W] (the truth, for comparison).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "example": (list(EXAMPLES), {"tooltip": "The picture the clip is made from (see T2CExampleImage)."}),
                "frames": ("INT", {"default": 48, "min": 8, "max": 480, "tooltip": "Frames in the clip."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                                  "tooltip": "Width of the clip in pixels (the height keeps the picture's shape)."}),
            }
        }

    def make(self, example, frames, width):
        image, mask = T2CExampleImage().load(example)
        height = max(8, round(image.shape[1] * width / image.shape[2]))
        picture = F.interpolate(image.permute(0, 3, 1, 2), size=(height, width), mode="area")[0].permute(1, 2, 0)
        region = F.interpolate(mask[None], size=(height, width), mode="nearest")[0, 0] > 0.5
        speed = EXAMPLE_CLIP_SPEED * max(1.0, width / 512)
        ripples = periodic_texture(height, width, 1, cells=width / EXAMPLE_RIPPLE_PX, seed=0)
        ripples = 0.5 + EXAMPLE_RIPPLE_CONTRAST * (ripples - 0.5)  # they tile: shifted, they wrap without a seam
        clip = advected_clip(picture.contiguous(), ripples, region, (speed, 0.0), frames, Footage(),
                             over_background=True)
        return (clip, region.float()[None])


serve_files(PICTURE_ROUTE, example_picture)
