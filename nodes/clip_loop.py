"""Nodes that loop a clip: LoopClip (its own frames) and ClipFlow (its average motion, as a T2C_FLOW)."""

from __future__ import annotations

import torch

from ..kernels.errors import InputError
from .stages.clip_loop import DEFAULT_BLEND, DEFAULT_SPECKLE, DEFAULT_THRESHOLD, clip_flow, loop_clip
from .stages.clips import MIN_FRAMES, TensorClip
from .stages.memory import require_memory
from .stages.procedural_flow import flow_to_rgb
from ._comfy import CATEGORY, progress_callback, video_frames


def _clip_inputs() -> tuple[dict, dict]:
    """``(required, optional)`` inputs both nodes share."""
    required = {
        "reference": ("INT", {
            "default": 0, "min": -100000, "max": 100000,
            "tooltip": "Index of the reference frame (negative counts from the end): everything outside the "
            "region is this frame, bit for bit, in every output frame.",
        }),
        "threshold": ("FLOAT", {
            "default": DEFAULT_THRESHOLD, "min": 0.001, "max": 1.0, "step": 0.001,
            "tooltip": "Without a mask: a pixel may move where the clip changes by more than this per frame "
            "on average (0..1, after flicker is removed). Raise it if still parts are picked up; lower it if "
            "slow motion is missed.",
        }),
        "speckle": ("INT", {
            "default": DEFAULT_SPECKLE, "min": 0, "max": 64,
            "tooltip": "Without a mask: specks and pinholes smaller than about twice this many pixels are "
            "removed from the derived region.",
        }),
    }
    optional = {
        "images": ("IMAGE", {"tooltip": f"The clip as an IMAGE batch (at least {MIN_FRAMES} frames), e.g. "
                             "from AnimateDiff, Wan, LTX, SVD or a video loader. Give this or 'video'."}),
        "video": ("VIDEO", {"tooltip": "The clip as a core VIDEO (LoadVideo, CreateVideo). Give this or 'images'."}),
        "mask": ("MASK", {"tooltip": "What may move (white). Leave it out to derive it from the clip's own "
                          "motion; the region used is output, to refine in the mask editor."}),
    }
    return required, optional


def _clip(images, video) -> TensorClip:
    if (images is None) == (video is None):
        raise InputError("images", "connect the clip to exactly one of 'images' and 'video'")
    return TensorClip(images, "images") if images is not None else TensorClip(video_frames(video), "video")


class LoopClip:
    DESCRIPTION = (
        "Loops a clip with its own frames: picks the span whose end leads back into its start most like any "
        "other step (video textures, Schödl et al. 2000; each separate part of the region may start at its own "
        "frame) and, in its last frames, switches each pixel over to the frames that lead into the start, at the "
        "frame where the two agree best (so moving detail never shows twice, as in a crossfade). Outside the region "
        "every frame is the reference frame, bit for bit, so "
        "backgrounds no longer drift or flicker; inside it, flicker is removed too."
    )
    CATEGORY = CATEGORY + "/clips"
    FUNCTION = "loop"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("frames", "mask")
    OUTPUT_TOOLTIPS = ("The loop (the frame after the last is the first).", "The region that moves [1, H, W].")

    @classmethod
    def INPUT_TYPES(cls):
        required, optional = _clip_inputs()
        required["frames"] = ("INT", {
            "default": 0, "min": 0, "max": 10000,
            "tooltip": "Frames in the loop; 0 = the best loop of at least half the clip. At most the clip's "
            "length less the blend and 2.",
        })
        required["blend"] = ("INT", {
            "default": DEFAULT_BLEND, "min": 0, "max": 64,
            "tooltip": "Frames before the seam in which each pixel switches, at its best-matching frame, to the frames "
            "that lead into the start; 0 = a plain cut (visible unless the clip repeats).",
        })
        return {"required": required, "optional": optional}

    def loop(self, reference, threshold, speckle, frames, blend, images=None, video=None, mask=None):
        clip = _clip(images, video)
        chunks, span, found = loop_clip(clip, reference, mask, frames, blend, threshold, speckle,
                                        progress_callback(3 * clip.count))
        require_memory(span.period * clip.height * clip.width * clip.channels * 4, "cpu", "frames",
                       f"a loop of {span.period} frames at {clip.width}x{clip.height}")
        out = torch.empty((span.period, clip.height, clip.width, clip.channels))
        for _ in chunks(chunk=span.period, out=out):
            pass
        return (out, found.region.float()[None])


class ClipFlow:
    DESCRIPTION = (
        "The eulerian way to loop a clip: measures how its region moves (dense optical flow between its "
        "frames, averaged over the clip, as Holynski et al. built their training flows) and outputs that "
        "motion as a T2C_FLOW with the reference frame. EulerIntegrate and SymmetricSplatFrameGen then animate "
        "the reference frame: seamless by construction, any length, with the clip's own direction and speed; "
        "MotionBrush can add anchors. Needs no model weights (OpenCV's DIS flow)."
    )
    CATEGORY = CATEGORY + "/clips"
    FUNCTION = "measure"
    RETURN_TYPES = ("T2C_FLOW", "IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("flow", "image", "mask", "flow_preview")
    OUTPUT_TOOLTIPS = (
        "Velocity field [2, H, W] in pixels per frame, zero outside the region.",
        "The reference frame [1, H, W, C]: the picture to animate.",
        "The region that moves [1, H, W].",
        "The flow on the standard colour wheel: hue = direction, saturation = speed, white = still.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        required, optional = _clip_inputs()
        return {"required": required, "optional": optional}

    def measure(self, reference, threshold, speckle, images=None, video=None, mask=None):
        clip = _clip(images, video)
        flow, found = clip_flow(clip, reference, mask, threshold, speckle, progress_callback(2 * clip.count))
        return (flow, found.reference[None], found.region.float()[None], flow_to_rgb(flow)[None])
