"""AttentionClusterMask: the region to animate, from the twin pass's attention maps."""

from __future__ import annotations

from ..kernels.errors import InputError
from .stages.attention_mask import attention_cluster_mask, token_positions
from .stages.twin_attention import AttentionMaps
from ._comfy import CATEGORY


def region_token_positions(clip, prompt: str, region: str) -> list[int]:
    """Positions of the region's words (comma-separated names) among the prompt's CLIP tokens."""

    def ids(text: str) -> list[int]:
        tokens = clip.tokenize(text)
        first = next(iter(tokens.values()))[0]  # the first 77-token chunk of the first encoder
        return [int(t[0]) for t in first]

    prompt_ids = ids(prompt)
    positions: list[int] = []
    for name in (n.strip() for n in region.split(",")):
        if name:
            positions += token_positions(prompt_ids, ids(name))
    return sorted(set(positions))


class AttentionClusterMask:
    DESCRIPTION = (
        "The mask of the region to animate, drawn from the artistic image's own self-attention: spectral "
        "clustering, connected components, and the components lying mostly inside the reference — a "
        "segmentation of the natural twin (ODISESegment) or, with none, the cross-attention of the region's "
        "words in the prompt — so text-to-cinemagraph works with nothing but an SD1.5 checkpoint."
    )
    CATEGORY = CATEGORY
    FUNCTION = "mask"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("mask", "clusters")
    OUTPUT_TOOLTIPS = (
        "The region to animate (white).",
        "The clusters; unselected ones darkened; the top line names the reference that selected them "
        "(segmentation or cross-attention fallback).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "attention": ("T2C_ATTENTION", {"tooltip": "From AttentionInjectingSampler."}),
                "image": ("IMAGE", {"tooltip": "The artistic image (for the mask's size)."}),
                "region": (
                    "STRING",
                    {"default": "water", "tooltip": "Name(s) of the region, comma-separated (TwinPromptBuilder's region)."},
                ),
                "clusters": ("INT", {"advanced": True, "default": 5, "min": 2, "max": 30, "tooltip": "Spectral clusters (release: 5)."}),
                "overlap": (
                    "FLOAT",
                    {"advanced": True, "default": 0.7, "min": 0.05, "max": 1.0, "step": 0.05,
                     "tooltip": "Keep a component when this fraction of it lies inside the reference (0.9 for "
                     "thin waterfalls)."},
                ),
                "erosion": (
                    "INT",
                    {"advanced": True, "default": 0, "min": 0, "max": 10,
                     "tooltip": "Erosions of the mask by a 5x5 square (the release: 0; 2 for direction control)."},
                ),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": True, "tooltip": "Seed of the clustering."}),
                "words_of": (
                    ["artistic", "natural"],
                    {"tooltip": "Whose cross-attention finds the region's words without a segmentation: the "
                     "artistic image (text-to-cinemagraph) or the natural twin (paintings, whose artistic "
                     "prompt is empty). prompt must be that image's prompt."},
                ),
            },
            "optional": {
                "segmentation": ("MASK", {"tooltip": "Segmentation of the natural twin (e.g. ODISESegment)."}),
                "clip": ("CLIP", {"tooltip": "With prompt: finds the region's words when there is no segmentation."}),
                "prompt": (
                    "STRING",
                    {"forceInput": True, "tooltip": "The artistic prompt (TwinPromptBuilder's artistic_prompt)."},
                ),
            },
        }

    def mask(self, attention: AttentionMaps, image, region, clusters, overlap, erosion, seed, words_of="artistic",
             segmentation=None, clip=None, prompt=None):
        positions = []
        if segmentation is None:
            if clip is None or not prompt:
                raise InputError("segmentation", "connect a segmentation mask, or clip and prompt")
            positions = region_token_positions(clip, prompt, region)
            if not positions:
                raise InputError("region", f"none of {region!r} occurs in the prompt {prompt!r}")
        words = attention.cross_attention[("artistic", "natural").index(words_of)]
        mask, preview = attention_cluster_mask(
            attention.self_attention, attention.grid, tuple(image.shape[1:3]), segmentation=segmentation,
            cross_attention=words, region_positions=positions, clusters=clusters,
            overlap=overlap, erosion=erosion, seed=seed,
        )
        return (mask.unsqueeze(0), preview.unsqueeze(0))
