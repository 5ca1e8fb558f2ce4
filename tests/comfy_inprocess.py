"""ComfyUI imported as a library inside the test process (CPU only), with tiny models."""

from __future__ import annotations

import os
import sys

from conftest import REPO

COMFY_ROOT = os.environ.get("T2C_COMFYUI", os.path.join(REPO, ".venv", "comfyui"))


def import_comfy() -> None:
    """Make ``comfy`` importable and force the CPU before ``comfy.model_management`` loads."""
    if COMFY_ROOT not in sys.path:
        sys.path.insert(0, COMFY_ROOT)
    from comfy.cli_args import args

    args.cpu = True
    args.use_pytorch_cross_attention = True  # SDPA: far faster on a CPU than the sub-quadratic default
    import comfy.model_management  # noqa: F401


def tiny_checkpoint(seed: int = 0):
    """``(model, clip)``: the test pack's tiny SD1.5-layout ModelPatcher and CLIP."""
    import_comfy()
    from comfy_test_pack.tiny_checkpoint import build_tiny_clip, build_tiny_model

    return build_tiny_model(seed), build_tiny_clip(seed)


def encode(clip, text: str):
    tokens = clip.tokenize(text)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def split_cond_uncond(model):
    """A clone of ``model`` whose sampler evaluates cond and uncond in separate UNet calls, as
    ComfyUI does when memory is short (each call keeps its list's position)."""
    import comfy.samplers

    split = model.clone()

    def one_list_per_call(args):
        cond, uncond = args["conds"]
        x, sigma, model, options = args["input"], args["sigma"], args["model"], args["model_options"]
        cond_out = comfy.samplers.calc_cond_batch(model, [cond, None], x, sigma, options)[0]
        uncond_out = comfy.samplers.calc_cond_batch(model, [None, uncond], x, sigma, options)[1]
        return [cond_out, uncond_out]

    split.set_model_sampler_calc_cond_batch_function(one_list_per_call)
    return split


def twin_prompts(clip) -> dict:
    """The encoded prompts of the twin tests: an artistic prompt, its natural twin and the empty one."""
    return {
        "artistic": encode(clip, "a river between hills in the style of van gogh"),
        "natural": encode(clip, "river, hills, nature, bright, realistic, photography, 4k, 8k"),
        "empty": encode(clip, ""),
    }
