"""T2CExampleImage: the bundled example pictures, so templates open with nothing to copy."""

from __future__ import annotations

import os

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


serve_files(PICTURE_ROUTE, example_picture)
