"""LoopVideoWriter: saves the loop into ComfyUI's output folder."""

from __future__ import annotations

import os

from .stages.video import FORMATS, write_loop
from ._comfy import CATEGORY, output_target, preview_entry, progress_callback, video_output


class LoopVideoWriter:
    DESCRIPTION = (
        "Saves the frames of a loop into ComfyUI's output folder as mp4 (h264), webm (vp9), gif (one shared "
        "palette), webp, apng or a png sequence, with an animated preview in the node. The file appears only "
        "once it is completely written. Passes the frames on (for VideoHelperSuite) and as a core VIDEO."
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
                    {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip": "Frames per second."},
                ),
                "format": (list(FORMATS), {"default": "mp4", "tooltip": "Container and codec of the file."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "text2cinemagraph/loop",
                        "tooltip": "File name prefix inside the output folder; may contain subfolders.",
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
            }
        }

    def write(self, frames, fps, format, filename_prefix, loop_count, repeat_cycles, quality):
        height, width = frames.shape[1:3]
        folder, stem, subfolder = output_target(filename_prefix, width, height)
        path = write_loop(
            frames,
            os.path.join(folder, stem),
            format=format,
            fps=fps,
            loop_count=loop_count,
            repeat_cycles=repeat_cycles,
            quality=quality,
            output_name="filename_prefix",
            progress=progress_callback(frames.shape[0]),
        )
        if os.path.isdir(path):
            previews = [preview_entry(os.path.join(path, f), folder, subfolder) for f in sorted(os.listdir(path))]
            animated = False
        else:
            previews = [preview_entry(path, folder, subfolder)]
            animated = True
        return {
            "ui": {"images": previews, "animated": [animated]},
            "result": (frames, video_output(frames, fps)),
        }
