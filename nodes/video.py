"""LoopVideoWriter: saves the loop into ComfyUI's output folder, with its workflow."""

from __future__ import annotations

import os

from ..kernels.errors import InputError
from .stages.video import FORMATS, GIF_MAX_FPS, check_settings, write_loop
from ._comfy import CATEGORY, metadata_disabled, output_target, preview_entry, progress_callback, video_output


class LoopVideoWriter:
    DESCRIPTION = (
        "Saves the frames of a loop into ComfyUI's output folder as mp4 (h264), webm (vp9), gif (one shared "
        "palette, at most 50 fps), webp, apng or a png sequence, with an animated preview in the node. The "
        "file appears only once it is completely written, and carries the prompt and workflow (drop it on the "
        "editor to get the graph back; not gif, and not with --disable-metadata). Passes the frames on (for "
        "VideoHelperSuite) and as a core VIDEO."
    )
    CATEGORY = CATEGORY
    FUNCTION = "write"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("frames", "video")
    OUTPUT_TOOLTIPS = ("The frames, unchanged.", "The loop as ComfyUI's VIDEO type (frames + frame rate).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The frames of one loop."}),
                "fps": (
                    "FLOAT",
                    {
                        "default": 30.0,
                        "min": 1.0,
                        "max": 120.0,
                        "step": 1.0,
                        "tooltip": f"Frames per second (gif: at most {GIF_MAX_FPS:g}; its delays are 1/100 s).",
                    },
                ),
                "format": (list(FORMATS), {"default": "mp4", "tooltip": "Container and codec of the file."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "text2cinemagraph/loop",
                        "tooltip": "File name prefix inside the output folder; may contain subfolders "
                        "(e.g. 'text2cinemagraph/loop').",
                    },
                ),
                "loop_count": (
                    "INT",
                    {
                        "advanced": True,
                        "default": 0,
                        "min": 0,
                        "max": 1000,
                        "tooltip": "How many times gif/webp/apng play; 0 = forever. mp4/webm have no loop flag: "
                        "players loop them when asked.",
                    },
                ),
                "repeat_cycles": (
                    "INT",
                    {
                        "advanced": True,
                        "default": 1,
                        "min": 1,
                        "max": 100,
                        "tooltip": "How many times the loop is written into the file (longer clips for sites "
                        "that do not loop videos).",
                    },
                ),
                "quality": (
                    "INT",
                    {"advanced": True, "default": 90, "min": 0, "max": 100, "tooltip": "0..100: encoder quality for mp4, webm, webp."},
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, format=None, fps=None):
        """Refuse a gif faster than it can play when the prompt is queued, before anything runs.

        ComfyUI skips its own checks of the inputs named here, so the choice list and the
        range are checked too; a linked (not yet known) input arrives as None and is checked
        when the node runs.
        """
        try:
            if format is not None and format not in FORMATS:
                check_settings(format, 1.0)
            if fps is not None and not (1.0 <= fps <= 120.0):
                raise InputError("fps", f"must be between 1 and 120, got {fps}")
            if format is not None and fps is not None:
                check_settings(format, fps)
        except InputError as error:
            return str(error)
        return True

    def write(
        self, frames, fps, format, filename_prefix, loop_count, repeat_cycles, quality, prompt=None, extra_pnginfo=None
    ):
        check_settings(format, fps, repeat_cycles, loop_count)
        height, width = frames.shape[1:3]
        folder, stem, subfolder = _target(filename_prefix, width, height)
        path = write_loop(
            frames,
            os.path.join(folder, stem),
            format=format,
            fps=fps,
            loop_count=loop_count,
            repeat_cycles=repeat_cycles,
            quality=quality,
            output_name="filename_prefix",
            progress=progress_callback(frames.shape[0] * repeat_cycles),
            metadata=workflow_metadata(prompt, extra_pnginfo),
        )
        if os.path.isdir(path):
            # /view keeps only the base name of `filename`: the sequence's folder goes in `subfolder`
            sequence = "/".join(part for part in (subfolder, os.path.basename(path)) if part)
            previews = [preview_entry(os.path.join(path, f), path, sequence) for f in sorted(os.listdir(path))]
            animated = False
        else:
            previews = [preview_entry(path, folder, subfolder)]
            animated = True
        return {
            "ui": {"images": previews, "animated": [animated]},
            "result": (frames, video_output(frames, fps)),
        }


def workflow_metadata(prompt, extra_pnginfo) -> dict:
    """What core savers embed: ``prompt`` and each key of ``extra_pnginfo`` (the workflow), unless disabled."""
    if metadata_disabled():
        return {}
    metadata = {} if prompt is None else {"prompt": prompt}
    metadata.update(extra_pnginfo or {})
    return metadata


def _target(filename_prefix: str, width: int, height: int) -> tuple[str, str, str]:
    """ComfyUI's numbered output target for the prefix, with its refusals as InputErrors."""
    name = os.path.basename(filename_prefix.replace("\\", "/").rstrip())
    if not name.strip() or name.startswith("."):
        raise InputError(
            "filename_prefix",
            f"{filename_prefix!r} has no file name (or a hidden one, starting with '.'); "
            "give a name such as 'text2cinemagraph/loop'",
        )
    try:
        return output_target(filename_prefix, width, height)
    except Exception as error:  # ComfyUI raises a bare Exception for prefixes leaving the output folder
        raise InputError(
            "filename_prefix", f"{filename_prefix!r} is refused by ComfyUI: {error} Use a path inside the output folder."
        ) from error
