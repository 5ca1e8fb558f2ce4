"""Draws the water masks of the bundled photographs (white = water), by hand-placed polygons.

Run ``python workflows/assets/photo_masks.py`` to regenerate ``<name>_mask.png``
beside each ``<name>.jpg``. The photographs and their licence: ``CREDITS.md``.
"""

from __future__ import annotations

import os

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))

# (x, y) corners in pixels of the 768x512 photographs, traced along the shore and the jetty or the boats.
WATER = {
    "by_the_water": [(0, 140), (768, 134), (768, 178), (560, 200), (300, 228), (0, 258)],
    "evening_glow": [(0, 201), (569, 199), (571, 227), (640, 228), (600, 240), (520, 242), (440, 246), (380, 250),
                     (330, 252), (230, 256), (215, 262), (160, 263), (105, 268), (0, 268)],
}

# (left, top, right, bottom) boxes inside the water that stand still: the mooring posts, which the
# water would otherwise carry along and show twice.
STILL = {
    "evening_glow": [(481, 203, 488, 226), (494, 203, 500, 226), (509, 203, 516, 226), (527, 203, 534, 226),
                     (545, 203, 552, 226), (562, 203, 573, 226)],
}


def main() -> None:
    for name, corners in WATER.items():
        size = Image.open(os.path.join(HERE, name + ".jpg")).size
        mask = Image.new("L", size, 0)
        draw = ImageDraw.Draw(mask)
        draw.polygon(corners, fill=255)
        for box in STILL.get(name, []):
            draw.rectangle(box, fill=0)
        mask.save(os.path.join(HERE, name + "_mask.png"))


if __name__ == "__main__":
    main()
