"""ODISESegment: the mask of the moving region, found by open-vocabulary segmentation."""

from __future__ import annotations

from .stages.segmentation import (
    BACKENDS,
    DEFAULT_THRESHOLD,
    DEFAULT_VOCABULARY,
    MODELS_SUBFOLDER,
    NO_MODEL,
    forget_segmenter,
    list_model_dirs,
    parse_vocabulary,
    require_odise,
    resolve_model,
    segment_picture,
)
from ._comfy import CATEGORY, managed_model, model_folder_paths

MODELS_FOLDER_NAME = "t2c_segmentation"  # the key in ComfyUI's folder_paths / extra_model_paths.yaml


def segmentation_roots() -> list[str]:
    """The folders ComfyUI searches for segmentation models (registered on first use)."""
    return model_folder_paths(MODELS_FOLDER_NAME, MODELS_SUBFOLDER)


class ODISESegment:
    DESCRIPTION = (
        "Finds what should move: segments the natural twin (or any picture) with an open-vocabulary "
        "vocabulary such as 'water, waterfall, river, ocean, lake, sea' and outputs the mask of every pixel "
        "of those classes, plus a tinted preview. Backends: CLIPSeg (any words), Mask2Former / OneFormer "
        "(ADE20K or COCO labels, matched through synonyms and plurals) and ODISE (the paper's model, when "
        "installed). Weights are never downloaded: put model folders into ComfyUI/models/"
        f"{MODELS_SUBFOLDER}/ (see the README)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "segment"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("mask", "overlay")
    OUTPUT_TOOLTIPS = (
        "[1, H, W] at the picture's size: 1 where a vocabulary class was found (the union of the classes).",
        "The picture with the mask tinted, one colour per vocabulary class.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        try:
            roots = segmentation_roots()
        except ImportError:  # outside ComfyUI (tools that only read the node's inputs)
            roots = []
        models = list(list_model_dirs(roots)) or [NO_MODEL]
        where = " or ".join(roots) or f"ComfyUI/models/{MODELS_SUBFOLDER}"
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture to segment (one image): the natural twin, or any photo."}),
                "vocabulary": (
                    "STRING",
                    {
                        "default": DEFAULT_VOCABULARY,
                        "tooltip": "What moves. ',' separates synonyms of one class, ';' separates classes "
                        "(as in ODISE), e.g. 'water, river; sky, clouds'. The mask is the union of all classes.",
                    },
                ),
                "backend": (
                    list(BACKENDS),
                    {
                        "default": "auto",
                        "tooltip": "auto: follow the model folder's config.json. clipseg: CLIPSeg, takes any words. "
                        "mask2former / oneformer: ADE20K or COCO labels matched to the vocabulary through "
                        "synonyms and plurals (unknown words are reported). odise: the paper's ODISE, only if "
                        "the odise package and its checkpoint are installed.",
                    },
                ),
                "model": (
                    models,
                    {
                        "tooltip": f"A model folder (Hugging Face layout: config.json, model.safetensors, "
                        f"preprocessor_config.json ...) inside {where}. Examples: CIDAS/clipseg-rd64-refined, "
                        "facebook/mask2former-swin-large-ade-semantic, shi-labs/oneformer_ade20k_swin_large, "
                        "or a folder holding odise_label_coco_50e-b67d2efc.pth. Refresh (R) after adding one.",
                    },
                ),
                "threshold": (
                    "FLOAT",
                    {
                        "advanced": True,
                        "default": DEFAULT_THRESHOLD,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Minimum probability for a pixel to be masked. Lower it when the mask misses "
                        "water, raise it when it spills onto the shore.",
                    },
                ),
            }
        }

    def segment(self, image, vocabulary, backend, model, threshold):
        parse_vocabulary(vocabulary)  # a bad vocabulary or a missing package is reported before any model
        if backend == "odise":
            require_odise()
        roots = segmentation_roots()
        folder = resolve_model(model, roots, backend)
        result = segment_picture(
            image, vocabulary, backend, folder, threshold, model_roots=roots,
            host=lambda network: managed_model(network, on_unload=forget_segmenter),
        )
        return (result.mask.unsqueeze(0), result.overlay.unsqueeze(0))
