"""MotionBrush: motion drawn on the picture (arrows, anchors, painted region) -> flow."""

from __future__ import annotations

import json
import os

from .motion import FLOW_METHODS
from .networks import network_choices, network_on
from ..kernels.errors import InputError
from .stages.drawn_motion import (
    SCHEMA_VERSION, WIDGET, draw_arrows, drawn_direction_flow, drawn_flow, parse_drawing, pinned_flow,
)
from .stages.files import atomic_write
from .stages.inputs import require_finite, single_picture
from .stages.procedural_flow import MAX_SPEED, flow_to_rgb
from ._comfy import CATEGORY

BRUSH_METHODS = tuple(m for m in FLOW_METHODS if m != "learned")  # 'learned' reads a prompt, not arrows
EMPTY_DRAWING = json.dumps({"version": SCHEMA_VERSION, "width": 512, "height": 512, "arrows": [], "anchors": []})
PICTURE_KEY = "t2c_picture"  # the ui entry the drawing widget shows the picture from


class MotionBrush:
    DESCRIPTION = (
        "Motion you draw on the picture: drag arrows along the water (direction and length set the local "
        "direction and speed), shift-click (or the anchor mode) to pin points that must not move, and "
        "optionally paint the moving region. Arrows act only on the connected part of the region they lie in, "
        "so rivers can flow different ways in one picture. The node shows the picture connected from Load Image "
        "or the example node (or, after a run, any picture). "
        "The drawing is JSON in the 'drawing' widget (schema in the README), so API users can send the same. "
        "Connect a flow (e.g. ClipFlow's motion of a clip) to pin it with anchors instead of drawing arrows."
    )
    CATEGORY = CATEGORY
    FUNCTION = "predict"
    RETURN_TYPES = ("T2C_FLOW", "IMAGE", "MASK")
    RETURN_NAMES = ("flow", "flow_preview", "mask")
    OUTPUT_TOOLTIPS = (
        "Velocity field [2, H, W] in pixels per frame, zero outside the region and at the anchors.",
        "The flow on the colour wheel (hue = direction, white = still) with the arrows and anchors drawn over it.",
        "The region that moves: the mask plus the painted strokes, minus the anchors.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture to animate (one image); shown on the node to draw on."}),
                WIDGET: (
                    "STRING",
                    {
                        "default": EMPTY_DRAWING,
                        "multiline": True,
                        "tooltip": "The drawing as JSON: {version: 1, width, height, arrows: [{x0, y0, x1, y1}], "
                        "anchors: [{x, y, radius}], regions: [{points: [[x, y], ...], radius, erase}]} in pixels "
                        "of width x height (the picture it was drawn on). Edited by the canvas on the node.",
                    },
                ),
                "method": (
                    list(BRUSH_METHODS),
                    {
                        "tooltip": "procedural: the arrows interpolated smoothly over the region, no model weights. "
                        "learned_direction: the arrows as the sparse hint of the authors' direction network "
                        "(flow_model = motion-direction-pretrained)."
                    },
                ),
                "speed": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.05,
                        "max": MAX_SPEED,
                        "step": 0.05,
                        "tooltip": "procedural: px/frame of the longest arrow (shorter arrows move slower in "
                        "proportion). learned_direction: multiplier after the clamp, as in FlowPredictor.",
                    },
                ),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Where it moves (white = moves); painted strokes add to it."}),
                "flow": ("T2C_FLOW", {"tooltip": "A flow to pin instead of drawing one (e.g. ClipFlow's motion of "
                                      "a clip): the anchors hold it still; draw no arrows. method and speed "
                                      "are then not used."}),
                "flow_model": (
                    network_choices(),
                    {"tooltip": "learned_direction: motion-direction-pretrained/latest_net_G.pth from "
                     "models/text2cinemagraph (or its .safetensors conversion)."},
                ),
                "learned_clamp": (
                    "FLOAT",
                    {
                        "advanced": True,
                        "default": 1.0,
                        "min": 0.0,
                        "max": MAX_SPEED,
                        "step": 0.05,
                        "tooltip": "learned_direction: limit of each flow component in px/frame (at 512 px) "
                        "before the speed multiplier (1.0 as in the authors' renderer); 0 = no limit.",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, flow_model=None):
        return True  # as in FlowPredictor: a missing file is reported when learned_direction needs it

    def predict(self, image, drawing, method, speed, mask=None, flow_model=None, learned_clamp=1.0, flow=None):
        picture = single_picture(image)
        height, width = picture.shape[:2]
        region = None
        if mask is not None:
            region = _single_mask(mask, height, width)
        scaled = parse_drawing(drawing, need_arrows=flow is None).scaled_to(height, width)
        if flow is not None:
            flow, moving = pinned_flow(scaled, _single_flow(flow, height, width), region)
        elif method == "learned_direction":
            with network_on(flow_model, "hint", "flow_model") as network:
                flow, moving = drawn_direction_flow(network, picture, scaled, region, speed, learned_clamp)
        else:
            flow, moving = drawn_flow(scaled, region, speed)
        preview = draw_arrows(flow_to_rgb(flow), scaled)
        return {
            "ui": {PICTURE_KEY: [save_temp_picture(picture)]},
            "result": (flow, preview.unsqueeze(0), moving.float().unsqueeze(0)),
        }


def _single_flow(flow, height: int, width: int):
    if tuple(flow.shape) != (2, height, width):
        raise InputError("flow", f"is {tuple(flow.shape)}, but the picture needs a [2, {height}, {width}] flow")
    require_finite(flow, "flow", "a flow")
    return flow.float().cpu()


def _single_mask(mask, height: int, width: int):
    from .stages.inputs import check_masks

    return check_masks(mask.float().cpu(), height, width).any(dim=0)


def save_temp_picture(picture) -> dict:
    """The picture as a PNG in ComfyUI's temp folder; the ``/view`` entry the widget loads it from."""
    from PIL import Image

    from .stages.video import frame_to_uint8
    from ._comfy import output_target

    height, width = picture.shape[:2]
    folder, stem, subfolder = output_target("t2c_motion_brush", width, height, kind="temp")
    name = f"{stem}.png"
    with atomic_write(os.path.join(folder, name)) as temporary:
        Image.fromarray(frame_to_uint8(picture, 0)).save(temporary, format="PNG", compress_level=1)
    return {"filename": name, "subfolder": subfolder, "type": "temp"}
