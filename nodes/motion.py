"""Nodes of the motion half: flow, Euler integration, frame synthesis."""

from __future__ import annotations

from ..kernels import Motion, euler_integrate
from .stages.directions import DIRECTION_SECTORS, REGION_KINDS
from .stages.frames import check_picture, render_pixel_frames
from .stages.inputs import single_picture
from .stages.procedural_flow import MAX_SPEED, flow_to_rgb, procedural_flow
from ._comfy import CATEGORY, compute_device, progress_callback

_DIRECTION_HELP = (
    "'auto' (from the region kind), an angle in degrees (0 = rightwards, 90 = upwards), or one of: "
    + "; ".join(DIRECTION_SECTORS)
    + ". With several masks in the batch: one entry per mask separated by ';', "
    "optionally prefixed by a kind, e.g. 'river: left to right; waterfall: downwards'."
)


class FlowPredictor:
    DESCRIPTION = (
        "Predicts how the masked region moves: a velocity field in pixels per frame. "
        "Method 'procedural' needs no model: smooth motion in the chosen direction, strongest inside "
        "the mask, tapering to zero at its edge, with seeded wobbles so water does not slide like a sheet. "
        "Several masks in the batch move in several directions."
    )
    CATEGORY = CATEGORY
    FUNCTION = "predict"
    RETURN_TYPES = ("T2C_FLOW", "IMAGE")
    RETURN_NAMES = ("flow", "flow_preview")
    OUTPUT_TOOLTIPS = (
        "Velocity field [2, H, W] in pixels per frame, zero outside the mask.",
        "The flow on the standard colour wheel: hue = direction, saturation = speed, white = still.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture to animate (one image)."}),
                "mask": (
                    "MASK",
                    {"tooltip": "Where it moves (white = moves). A batch of masks animates several regions."},
                ),
                "method": (
                    ["procedural"],
                    {"tooltip": "procedural: direction-driven motion, no model weights needed."},
                ),
                "direction": ("STRING", {"default": "auto", "tooltip": "Direction of motion: " + _DIRECTION_HELP}),
                "speed": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.05,
                        "max": MAX_SPEED,
                        "step": 0.05,
                        "tooltip": "Mean speed inside the region in pixels per frame (the paper's release uses 0.5).",
                    },
                ),
                "region_kind": (
                    list(REGION_KINDS),
                    {
                        "default": "generic",
                        "tooltip": "What the region is; decides 'auto': waterfalls fall, rivers follow the mask's "
                        "long axis, clouds drift sideways, smoke and fire rise, the sea rolls towards the viewer.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "tooltip": "Picks the angle inside a phrase's range and the wobbles; same seed, same flow.",
                    },
                ),
            }
        }

    def predict(self, image, mask, method, direction, speed, region_kind, seed):
        height, width = single_picture(image).shape[:2]
        flow, _ = procedural_flow(mask.float().cpu(), direction, speed, region_kind, seed, size=(height, width))
        return (flow, flow_to_rgb(flow).unsqueeze(0))


class EulerIntegrate:
    DESCRIPTION = (
        "Integrates the flow over the loop: where every moving pixel is in each frame, going forward from "
        "the first frame and backward from the last (Holynski et al.). One pass, linear in the frame count."
    )
    CATEGORY = CATEGORY
    FUNCTION = "integrate"
    RETURN_TYPES = ("T2C_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("Forward and backward cumulative displacements of the moving pixels for every frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "flow": ("T2C_FLOW", {"tooltip": "Velocity field from FlowPredictor."}),
                "frames": (
                    "INT",
                    {
                        "default": 60,
                        "min": 1,
                        "max": 1000,
                        "tooltip": "Frames in one loop: 60 for small regions, 120 for large water bodies (30 fps).",
                    },
                ),
            }
        }

    def integrate(self, flow, frames):
        device = compute_device()
        motion = euler_integrate(flow.to(device), frames, progress=progress_callback(2 * frames))
        return (motion,)


class SymmetricSplatFrameGen:
    DESCRIPTION = (
        "Renders the loop: the picture splatted forward from the first frame and backward from the last, "
        "blended so the last frame flows into the first. Pixels away from the moving region are copied "
        "unchanged, so everything else stays perfectly still."
    )
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The frames of one loop (the frame after the last is the first).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture the motion was computed for."}),
                "motion": ("T2C_MOTION", {"tooltip": "Displacements from EulerIntegrate."}),
                "method": (
                    ["pixel"],
                    {"tooltip": "pixel: softmax splatting of pixels with hole filling, no model weights needed."},
                ),
            }
        }

    def render(self, image, motion: Motion, method):
        picture = check_picture(image, motion)
        frames = render_pixel_frames(picture, motion, progress=progress_callback(motion.num_frames))
        return (frames,)
