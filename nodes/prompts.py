"""TwinPromptBuilder: the prompts of the twin images, the region and the direction."""

from __future__ import annotations

from .stages.directions import MotionHint
from .stages.twin_prompt import NATURAL_SUFFIX, build_twin_prompts
from ._comfy import CATEGORY


class TwinPromptBuilder:
    DESCRIPTION = (
        "From one artistic prompt: the prompt for the artistic image (any 'in ... direction' phrase removed), "
        "the natural twin's prompt (the prompt's scene nouns + '" + NATURAL_SUFFIX + "'), the region(s) to "
        "animate and the direction phrase found, ready to wire into CLIPTextEncode, AttentionClusterMask, "
        "ODISESegment and FlowPredictor."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("STRING", "STRING", "STRING", "STRING", "T2C_MOTION_HINT")
    RETURN_NAMES = ("artistic_prompt", "natural_prompt", "region", "direction", "motion_hint")
    OUTPUT_TOOLTIPS = (
        "The prompt for the artistic image.",
        "The prompt for the natural-looking twin.",
        "The animatable noun(s) of the prompt, comma-separated, as written in it.",
        "The direction phrase found ('auto' when none), for FlowPredictor.",
        "The direction phrase and the first region's kind, for FlowPredictor's motion_hint input.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompt": (
                    "STRING",
                    {"multiline": True,
                     "default": "a river flowing between hills in the style of a Van Gogh painting, in left to right direction",
                     "tooltip": "The artistic prompt; 'in <phrase> direction' (e.g. 'in downwards direction') "
                     "sets the direction of motion."},
                ),
            },
            "optional": {
                "natural_override": (
                    "STRING",
                    {"default": "", "tooltip": "Use this natural prompt instead of the derived one (empty = derive)."},
                ),
                "region_override": (
                    "STRING",
                    {"default": "", "tooltip": "Use these region names instead of the derived ones (empty = derive)."},
                ),
            },
        }

    def build(self, prompt, natural_override="", region_override=""):
        twin = build_twin_prompts(prompt, natural_override, region_override)
        hint = MotionHint(twin.direction, twin.region_kind)
        return (twin.artistic, twin.natural, ", ".join(twin.regions), twin.direction, hint)
