"""Nodes of the motion half: flow, Euler integration, frame synthesis."""

from __future__ import annotations

from ..kernels import Motion, euler_integrate
from .networks import network_choices, network_on
from .stages.directions import DIRECTION_SECTORS, REGION_KINDS, apply_motion_hint
from .stages.frames import check_picture, render_frames
from .stages.inputs import single_picture
from .stages.memory import frames_to_keep, render_part_frames
from .stages.procedural_flow import MAX_SPEED, flow_to_rgb, procedural_flow
from .stages.renders import PIXEL_RENDERS, render_method
from ._comfy import CATEGORY, compute_device, progress_callback

_DIRECTION_HELP = (
    "'auto' (from the region kind), an angle in degrees (0 = rightwards, 90 = upwards), or one of: "
    + "; ".join(DIRECTION_SECTORS)
    + ". With several masks in the batch: one entry per mask separated by ';', "
    "optionally prefixed by a kind, e.g. 'river: left to right; waterfall: downwards'."
)


FLOW_METHODS = ("procedural", "learned", "learned_direction")
FRAME_METHODS = ("pixel", "learned")


class FlowPredictor:
    DESCRIPTION = (
        "Predicts how the masked region moves: a velocity field in pixels per frame. "
        "Method 'procedural' needs no model: smooth motion in the chosen direction, strongest inside "
        "the mask, tapering to zero at its edge, with seeded wobbles so water does not slide like a sheet. "
        "Several masks in the batch move in several directions. "
        "Method 'learned' runs the paper's G_flow on the natural twin, the mask and the artistic prompt's "
        "conditioning; 'learned_direction' runs the authors' direction-hint network with the direction below "
        "(both need the authors' network files in models/text2cinemagraph)."
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
                    list(FLOW_METHODS),
                    {
                        "tooltip": "procedural: direction-driven motion, no model weights needed. "
                        "learned: the paper's G_flow (flow_model = motion-pretrained, needs conditioning). "
                        "learned_direction: the authors' direction-hint network (flow_model = "
                        "motion-direction-pretrained) steered by 'direction'."
                    },
                ),
                "direction": (
                    "STRING",
                    {
                        "default": "auto",
                        "tooltip": "Direction of motion (procedural and learned_direction): " + _DIRECTION_HELP,
                    },
                ),
                "speed": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.05,
                        "max": MAX_SPEED,
                        "step": 0.05,
                        "tooltip": "procedural: mean speed inside the region in pixels per frame. learned methods: "
                        "multiplier after the clamp (the release uses 0.5, and 0.3 with a direction).",
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
                        "control_after_generate": True,
                        "tooltip": "Picks the angle inside a phrase's range and the wobbles; same seed, same flow.",
                    },
                ),
            },
            "optional": {
                "flow_model": (
                    network_choices(),
                    {
                        "tooltip": "Network file for the learned methods, from models/text2cinemagraph: "
                        "motion-pretrained/latest_net_G.pth (learned) or motion-direction-pretrained/"
                        "latest_net_G.pth (learned_direction), or their .safetensors conversions."
                    },
                ),
                "conditioning": (
                    "CONDITIONING",
                    {
                        "tooltip": "learned: the artistic prompt encoded by CLIPTextEncode with an SD1.x (SD1.5) "
                        "checkpoint's CLIP; G_flow reads its CLIP ViT-L/14 hidden states."
                    },
                ),
                "motion_hint": (
                    "T2C_MOTION_HINT",
                    {
                        "tooltip": "Direction and region kind read from the prompt (TwinPromptBuilder). They are "
                        "used where direction is 'auto' and region_kind is 'generic'; other values win."
                    },
                ),
                "learned_clamp": (
                    "FLOAT",
                    {
                        "advanced": True,
                        "default": 1.0,
                        "min": 0.0,
                        "max": MAX_SPEED,
                        "step": 0.05,
                        "tooltip": "learned methods: limit of each flow component in px/frame (at 512 px) before "
                        "the speed multiplier, as in the authors' renderer (1.0); 0 = no limit.",
                    },
                ),
                "hint_scale": (
                    ["training", "release"],
                    {
                        "advanced": True,
                        "default": "training",
                        "tooltip": "learned_direction: scale of the direction hint. training: the unit vector / 64, "
                        "as the network was trained (1 px/frame). release: the undivided unit vector, as the "
                        "authors' inference script fed it (reproduces their results).",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, flow_model=None):
        # The file list may change (or be empty) between saving and running a workflow; a missing
        # file is reported when a learned method actually needs it.
        return True

    def predict(
        self, image, mask, method, direction, speed, region_kind, seed, flow_model=None, conditioning=None,
        learned_clamp=1.0, motion_hint=None, hint_scale="training",
    ):
        from .stages.networks.predict import learned_direction_flow, learned_flow

        direction, region_kind = apply_motion_hint(motion_hint, direction, region_kind)

        height, width = single_picture(image).shape[:2]
        masks = mask.float().cpu()
        if method == "learned":
            with network_on(flow_model, "flow", "flow_model") as network:
                flow = learned_flow(network, image, masks, conditioning, speed, learned_clamp)
        elif method == "learned_direction":
            with network_on(flow_model, "hint", "flow_model") as network:
                flow, _ = learned_direction_flow(
                    network, image, masks, direction, region_kind, seed, speed, learned_clamp, hint_scale
                )
        else:
            flow, _ = procedural_flow(masks, direction, speed, region_kind, seed, size=(height, width))
        return (flow, flow_to_rgb(flow).unsqueeze(0))


class EulerIntegrate:
    DESCRIPTION = (
        "Integrates the flow over the loop: where every moving pixel is in each frame, going forward from "
        "the first frame and backward from the last (Holynski et al.). One pass, linear in the frame count. "
        "When these trajectories would take more than 1/16 of the memory of the frames themselves (a large "
        "moving region), it only checks the flow, and SymmetricSplatFrameGen integrates the loop in parts "
        "as it renders, so the workflow holds little more than its frames."
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
        stored = frames_to_keep(flow, frames, device)
        motion = euler_integrate(flow.to(device), frames, progress=progress_callback(2 * frames), frames=stored)
        return (motion.to("cpu"),)  # kept compactly in RAM between prompts, not on the GPU


class SymmetricSplatFrameGen:
    DESCRIPTION = (
        "Renders the loop: the picture carried forward from the first frame and backward from the last, "
        "blended so the last frame flows into the first. Pixels that do not move are copied unchanged, so "
        "everything else stays perfectly still. Method 'pixel' needs no model: by default each frame reads the "
        "picture once, sharply, along the motion (pixel_render 'resample'); 'splat' is the older softmax "
        "splatting, softer. Method 'learned' splats the features of the paper's G_frame network instead of "
        "pixels and decodes them (needs the authors' video-pretrained file)."
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
                    list(FRAME_METHODS),
                    {
                        "tooltip": "pixel: the picture's own pixels, no model weights needed (see pixel_render). "
                        "learned: the paper's G_frame splats learned features and decodes them (frame_model)."
                    },
                ),
            },
            "optional": {
                "frame_model": (
                    network_choices(),
                    {
                        "tooltip": "Network file for the learned method, from models/text2cinemagraph: "
                        "video-pretrained/latest_net_G.pth or its .safetensors conversion."
                    },
                ),
                "pixel_render": (
                    list(PIXEL_RENDERS),
                    {
                        "default": next(iter(PIXEL_RENDERS)),
                        "tooltip": "How the pixel method makes a frame. resample: reads the picture once per frame "
                        "with a bicubic kernel where each moving pixel came from, and mixes the two copies keeping "
                        "their contrast, handing over from one to the other patch by patch so a ripple is not shown "
                        "twice: as sharp as the picture in every frame (where the water cannot carry a copy through "
                        "the whole loop, a loop N/K frames long is played K times; the console says so). splat: the older softmax "
                        "splatting of pixels with hole filling (softer mid-loop). Not used by 'learned'.",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, frame_model=None):
        # As in FlowPredictor: a missing file is reported only when the learned method needs it.
        return True

    def render(self, image, motion: Motion, method, frame_model=None, pixel_render="resample"):
        image = check_picture(image, motion)  # before asking ComfyUI for a device
        device = compute_device()

        def part_frames(picture_shape: tuple, carried: int) -> int:
            return render_part_frames(picture_shape, motion, carried, device)

        progress = progress_callback(motion.num_frames)
        if method == "learned":
            with network_on(frame_model, "frame", "frame_model") as network:
                render = render_method("learned", "method", network=network)
                return (render_frames(image, motion, render, progress=progress, part_frames=part_frames),)
        return (render_frames(image, motion, render_method(pixel_render), progress=progress, device=device,
                              part_frames=part_frames),)
