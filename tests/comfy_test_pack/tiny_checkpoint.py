"""A tiny, randomly initialised SD1.5-layout MODEL, CLIP and VAE built in memory.

Facts used (read in ComfyUI 0.3.75, not copied):
- ``comfy/model_detection.py`` (the SD15 unet config of ``unet_config_from_diffusers_unet``):
  the block layout keys of an SD1.5 UNet (channel_mult [1, 2, 4, 4], two res blocks per
  level, attention on the first three levels and the middle, transformer_depth_output).
- ``comfy/supported_models.py`` ``SD15``: adds num_heads 8 / num_head_channels -1 and
  the SD1.5 latent format; ``supported_models_base.BASE.get_model`` builds the BaseModel.
- ``comfy/sd.py`` ``load_state_dict_guess_config``: ModelPatcher(model, load_device,
  offload_device); ``CLIP(target, model_options=...)``; ``VAE(sd, config={"params": ...})``
  builds an ``AutoencoderKL(ddconfig, embed_dim)``.
- ``comfy/sd1_clip.py`` ``SDClipModel``: ``model_options["clip_l_model_config"]`` overrides
  keys of the CLIP-L json config (hidden size, layers, ...).
- ComfyUI's ``comfy.ops.disable_weight_init`` layers leave weights uninitialised, so every
  parameter is filled here from a seeded generator.
"""

from __future__ import annotations

import math

import torch

CLIP_HIDDEN = 64  # the tiny CLIP's hidden size = the UNet's context_dim

# SD1.5's UNet with 32 instead of 320 base channels: output blocks 0..11, attention
# at input 1,2,4,5,7,8, middle, output 3..11, 8 heads (dim_head 4 at the first level).
TINY_UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "adm_in_channels": None,
    "context_dim": CLIP_HIDDEN,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}

TINY_CLIP_CONFIG = {
    "hidden_size": CLIP_HIDDEN,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "projection_dim": CLIP_HIDDEN,
}

# GroupNorm(32, ...) needs multiples of 32 channels; three downsamplings give SD's factor 8.
TINY_VAE_DDCONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}


# The real SD1.5 sizes (for timing and memory; random weights): 320 base channels, CLIP ViT-L
# (ComfyUI's default clip_l config), the KL VAE with 128 base channels and 2 blocks per level.
SD15_UNET_CONFIG = dict(TINY_UNET_CONFIG, model_channels=320, context_dim=768, num_heads=8, num_head_channels=-1)
SD15_VAE_DDCONFIG = dict(TINY_VAE_DDCONFIG, ch=128, num_res_blocks=2)


@torch.no_grad()
def fill_seeded(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter and float buffer with values drawn from ``seed``.

    Matrices and kernels get N(0, 1/fan_in) (activations keep their scale through
    the layers), 1-D weights (norms) 1 + N(0, 0.02^2), biases N(0, 0.02^2).
    Parameters are visited in name order so the same seed gives the same model.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    tensors = dict(module.named_parameters())
    tensors.update((n, b) for n, b in module.named_buffers() if b.is_floating_point())
    for name in sorted(tensors):
        tensor = tensors[name]
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
        if tensor.dim() >= 2:
            fan_in = tensor[0].numel()
            value = noise / math.sqrt(fan_in)
        elif name.endswith("weight") or name.endswith("scale"):
            value = 1.0 + 0.02 * noise
        else:
            value = 0.02 * noise
        tensor.copy_(value.to(tensor.dtype))


def build_tiny_model(seed: int):
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.SD15(TINY_UNET_CONFIG)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, "", device=torch.device("cpu"))
    fill_seeded(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def build_tiny_clip(seed: int):
    import comfy.sd
    import comfy.supported_models

    target = comfy.supported_models.SD15(TINY_UNET_CONFIG).clip_target()
    clip = comfy.sd.CLIP(
        target,
        model_options={"clip_l_model_config": dict(TINY_CLIP_CONFIG), "dtype": torch.float32},
    )
    fill_seeded(clip.cond_stage_model, seed + 1)
    return clip


def build_tiny_vae(seed: int):
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    params = {"ddconfig": dict(TINY_VAE_DDCONFIG), "embed_dim": 4}
    template = AutoencoderKL(**params)  # only to make a seeded state dict of the right layout
    fill_seeded(template, seed + 2)
    state_dict = {k: v.clone() for k, v in template.state_dict().items()}
    return comfy.sd.VAE(sd=state_dict, config={"params": params}, dtype=torch.float32)


def build_full_size_sd15(seed: int):
    """``(model, clip, vae)`` in SD1.5's real layout and sizes with seeded random weights, in the
    dtypes ComfyUI picks for the device (fp16 on most GPUs)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    from comfy.ldm.models.autoencoder import AutoencoderKL

    device = mm.get_torch_device()
    model_config = comfy.supported_models.SD15(SD15_UNET_CONFIG)
    model_config.set_inference_dtype(mm.unet_dtype(), mm.unet_manual_cast(mm.unet_dtype(), device))
    model = model_config.get_model({}, "", device=torch.device("cpu"))
    fill_seeded(model.diffusion_model, seed)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=mm.unet_offload_device())
    clip = comfy.sd.CLIP(model_config.clip_target())
    fill_seeded(clip.cond_stage_model, seed + 1)
    params = {"ddconfig": dict(SD15_VAE_DDCONFIG), "embed_dim": 4}
    template = AutoencoderKL(**params)
    fill_seeded(template, seed + 2)
    vae = comfy.sd.VAE(sd={k: v.clone() for k, v in template.state_dict().items()}, config={"params": params})
    return patcher, clip, vae


class T2CTestFullSizeCheckpoint:
    DESCRIPTION = "TESTS ONLY. SD1.5's full-size MODEL, CLIP and VAE with seeded random weights (timing, memory)."
    CATEGORY = "t2c_tests"
    FUNCTION = "build"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("SD1.5-size UNet.", "CLIP ViT-L text encoder.", "SD KL VAE.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1,
                                                      "tooltip": "Seed of the random weights."})}}

    def build(self, weights_seed):
        return build_full_size_sd15(weights_seed)


class T2CTestTinyCheckpoint:
    DESCRIPTION = (
        "TESTS ONLY. A tiny SD1.5-layout MODEL, CLIP and VAE with seeded random weights, built in memory: "
        "outputs noise-like pictures, but runs every core sampling node in a fraction of a second on a CPU."
    )
    CATEGORY = "t2c_tests"
    FUNCTION = "build"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")  # exactly CheckpointLoaderSimple's outputs
    OUTPUT_TOOLTIPS = ("Tiny SD1.5-layout UNet.", "Tiny CLIP-L-like text encoder.", "Tiny KL VAE (factor 8).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weights_seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Seed of the random weights."},
                )
            }
        }

    def build(self, weights_seed):
        return (build_tiny_model(weights_seed), build_tiny_clip(weights_seed), build_tiny_vae(weights_seed))
