"""AttentionInjectingSampler and DDIMInvert: the twin pass inside ComfyUI's sampler.

The model is changed only through ComfyUI's mechanisms, on a clone: attn1/attn2
replace patches, a per-image CFG function, a pre-CFG function for the natural
image's negative-prompt schedule, and a diffusion-model wrapper that holds a
forward hook on output block 4's ResBlock for the duration of each UNet call.
The math lives in :mod:`.stages.twin_attention`.
"""

from __future__ import annotations

import math

import torch

from ..kernels.errors import InputError
from .stages.twin_attention import (
    ARTISTIC,
    NATURAL,
    NEGATIVE_ROW,
    TWINS,
    UNCOND,
    TwinAttention,
    TwinSchedule,
    injected_steps,
    negative_weight,
    per_image_guidance,
)
from ._comfy import CATEGORY

WRAPPER_KEY = "text2cinemagraph_twin"
RECORD_TIMESTEP = 541  # the release averages maps over timesteps t <= 541 (the less noisy 28 of 50)
INVERTED_KEY = "t2c_inverted"  # marks a LATENT that is already noise (from DDIMInvert)


def _single_entry(conditioning, name: str):
    if not conditioning:
        raise InputError(name, "is empty; connect a CLIPTextEncode output")
    if len(conditioning) != 1:
        raise InputError(
            name, f"has {len(conditioning)} entries (combined conditionings); connect one CLIPTextEncode output"
        )
    cond, extras = conditioning[0]
    if cond.shape[0] != 1:
        raise InputError(name, f"has a batch of {cond.shape[0]} prompts; connect one prompt")
    return cond, extras


def stack_twin_conditioning(artistic, natural):
    """One CONDITIONING entry whose batch is ``[artistic, natural]`` (one prompt per image).

    Two entries would be averaged by ComfyUI; a batch of two keeps them apart.
    Prompts of different token lengths are repeated to a common length, as
    ComfyUI does when it concatenates cross-attention conditions.
    """
    cond_a, extras_a = _single_entry(artistic, "artistic_positive")
    cond_n, extras_n = _single_entry(natural, "natural_positive")
    if cond_a.shape[2] != cond_n.shape[2]:
        raise InputError("natural_positive", "comes from another text encoder than artistic_positive")
    length = math.lcm(cond_a.shape[1], cond_n.shape[1])
    cond = torch.cat([cond_a.repeat(1, length // cond_a.shape[1], 1), cond_n.repeat(1, length // cond_n.shape[1], 1)])
    extras = dict(extras_a)
    if extras_a.get("pooled_output") is not None and extras_n.get("pooled_output") is not None:
        extras["pooled_output"] = torch.cat([extras_a["pooled_output"], extras_n["pooled_output"]])
    return [[cond, extras]]


def _attention_blocks(diffusion_model) -> list[tuple[str, int]]:
    """Every UNet block holding a transformer, found from the model's structure."""
    found = []
    for name, blocks in (("input", diffusion_model.input_blocks), ("output", diffusion_model.output_blocks)):
        for index, block in enumerate(blocks):
            if any(type(layer).__name__ == "SpatialTransformer" for layer in block):
                found.append((name, index))
    if any(type(layer).__name__ == "SpatialTransformer" for layer in diffusion_model.middle_block):
        found.append(("middle", 0))
    return found


SD1_BLOCKS = 12  # input and output blocks of an SD1.x / SD2.x UNet (SDXL has 9, SD3/Flux are transformers)
INJECTED_BLOCKS = range(4, 12)  # output blocks whose self-attention q/k the natural image borrows
RECORDED_BLOCKS = (("input", 4), ("input", 5), ("output", 6), ("output", 7), ("output", 8))
# The averaged self-attention map grows as (H*W/256)^2 floats: 64 MiB at 1024 px, 1 GiB at 2048 px.
# Recording at a coarser layer would change which layers the release averages (and the mask), so
# the twin pass refuses sizes past this budget instead (SD1.x makes 512-768 px pictures).
MAX_RECORD_BYTES = 256 * 2**20


def check_sd1_layout(diffusion_model) -> None:
    """Raise an InputError naming ``model`` unless the UNet has SD1.x/SD2.x's block layout:
    the block indices of the release (output 4..11, output 4's ResBlock) mean nothing elsewhere."""
    blocks = {"input": getattr(diffusion_model, "input_blocks", ()), "output": getattr(diffusion_model, "output_blocks", ())}
    found = set(_attention_blocks(diffusion_model)) if all(blocks.values()) else set()
    needed = {("output", i) for i in INJECTED_BLOCKS} | set(RECORDED_BLOCKS)
    layout_ok = (len(blocks["input"]) == SD1_BLOCKS and len(blocks["output"]) == SD1_BLOCKS
                 and needed <= found and hasattr(blocks["output"][4][0], "out_layers"))
    if not layout_ok:
        raise InputError(
            "model",
            f"has {len(blocks['input'])} input and {len(blocks['output'])} output blocks; the twin pass needs an "
            "SD1.x or SD2.x UNet (12 and 12, like SD1.5), whose block numbers the paper's injection uses. SDXL, "
            "SD3 and Flux models are not supported",
        )


def check_record_size(latent_hw: tuple[int, int]) -> None:
    """Refuse latents whose recorded self-attention map would pass ``MAX_RECORD_BYTES``."""
    tokens = (latent_hw[0] // 2) * (latent_hw[1] // 2)
    if tokens * tokens * 4 > MAX_RECORD_BYTES:
        raise InputError(
            "latent",
            f"is {latent_hw[1] * 8}x{latent_hw[0] * 8} px: its self-attention map ({tokens} tokens, "
            f"{tokens * tokens * 4 / 2**30:.2f} GiB) passes the twin pass's {MAX_RECORD_BYTES // 2**20} MiB limit; "
            "use at most about 2 megapixels (e.g. 1024x1024 or 1280x1280) and upscale the result",
        )


def _append_row(value, row: int, batch: int):
    """``value`` with a copy of ``row`` appended to every tensor of ``batch`` rows (nested in
    dicts and lists too: ControlNet residuals, ``y``); anything else unchanged."""
    if torch.is_tensor(value):
        return torch.cat([value, value[row:row + 1]]) if value.ndim and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {key: _append_row(item, row, batch) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_append_row(item, row, batch) for item in value)
    return value


def _append_context(context: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """``[B, L, C]`` context plus one row of ``prompt [1, L', C]``; token counts are repeated
    to a common length, as ComfyUI does when it batches prompts of different lengths."""
    length = math.lcm(context.shape[1], prompt.shape[1])
    prompt = prompt.to(context.device, context.dtype)
    return torch.cat([context.repeat(1, length // context.shape[1], 1), prompt.repeat(1, length // prompt.shape[1], 1)])


def add_negative_row(call, artistic_prompt: torch.Tensor) -> bool:
    """Append the natural image's scheduled-negative row to a UNet call holding the
    unconditional chunk: the natural latent with the artistic prompt, receiving the artistic
    image's unconditional features (marked by ``NEGATIVE_ROW`` in ``transformer_options``).
    ``call`` is the bound UNet call; returns whether a row was added."""
    options = call.arguments["transformer_options"]
    chunks = list(options.get("cond_or_uncond", []))
    batch = call.arguments["x"].shape[0]
    if UNCOND not in chunks or batch != TWINS * len(chunks):
        return False
    chunk = chunks.index(UNCOND)
    for name, value in list(call.arguments.items()):
        if name == "context":
            call.arguments[name] = _append_context(value, artistic_prompt)
        elif name != "transformer_options":
            call.arguments[name] = _append_row(value, chunk * TWINS + NATURAL, batch)
    call.arguments["transformer_options"] = {**options, NEGATIVE_ROW: chunk * TWINS + ARTISTIC}
    return True


def _refuse_split_models(model) -> None:
    get_models = getattr(model, "get_additional_models_with_key", None)
    if get_models is not None and get_models("multigpu"):
        raise InputError("model", "carries multi-GPU clones; the twin pass runs on one device, use the plain model")


def patch_twin_model(model, state: TwinAttention, steps: int, scales: tuple[float, float],
                     artistic_prompt: torch.Tensor | None):
    """A clone of ``model`` carrying the twin pass's patches.

    With ``artistic_prompt`` (``[1, L, C]``) the natural image's unconditional prediction follows
    the release's negative schedule, from a fifth row of the same UNet call.
    """
    import comfy.patcher_extension

    from ._comfy import diffusion_model_call, refuse_split_evaluation

    _refuse_split_models(model)
    patched = model.clone()
    diffusion_model = patched.get_model_object("diffusion_model")
    check_sd1_layout(diffusion_model)
    residual_layer = diffusion_model.output_blocks[4][0].out_layers[-1]
    for block_name, index in _attention_blocks(diffusion_model):
        patched.set_model_attn1_replace(state.attn1, block_name, index)
        patched.set_model_attn2_replace(state.attn2, block_name, index)
    patched.set_model_sampler_cfg_function(per_image_guidance(torch.tensor(scales)), disable_cfg1_optimization=True)
    negative = {}  # the scheduled-negative prediction of the current step, from the UNet wrapper

    def twin_unet_call(executor, *args, **kwargs):
        call = diffusion_model_call(executor, args, kwargs)
        extra = artistic_prompt is not None and add_negative_row(call, artistic_prompt)
        options = call.arguments["transformer_options"]
        state.begin_call(options, call.arguments["x"].shape[0])
        handle = residual_layer.register_forward_hook(state.residual_hook)
        try:
            out = executor(*call.args, **call.kwargs)
        finally:
            handle.remove()
        if not extra:
            return out
        negative["eps"], negative["sigma"] = out[-1:], float(options["sigmas"].reshape(-1)[0])
        return out[:-1]

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, twin_unet_call)

    if artistic_prompt is not None:

        def natural_negative(args):
            refuse_split_evaluation(args["model_options"])
            cond_out, uncond_out = args["conds_out"][0], args["conds_out"][1]
            if uncond_out is None or args["conds"][0] is None:
                return args["conds_out"]
            x, sigma = args["input"], args["sigma"]
            if negative.get("sigma") != float(sigma.reshape(-1)[0]):
                raise RuntimeError("Text2Cinemagraph: the negative-schedule prediction of this step is missing "
                                   "(the unconditional rows were not evaluated as the twin batch)")
            where = state.locate({**args["model_options"].get("transformer_options", {}), "sigmas": sigma})
            weight = negative_weight(where["step"], steps)
            denoised = args["model"].model_sampling.calculate_denoised(
                sigma[NATURAL:NATURAL + 1], negative.pop("eps").float(), x[NATURAL:NATURAL + 1])
            uncond_out = uncond_out.clone()
            uncond_out[NATURAL] = weight * uncond_out[NATURAL] + (1.0 - weight) * denoised[0]
            return [cond_out, uncond_out] + list(args["conds_out"][2:])

        patched.set_model_sampler_pre_cfg_function(natural_negative, disable_cfg1_optimization=True)
    return patched


def release_start(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Noise that ComfyUI's ``sigma * noise`` start turns into the release's: the LDM sampler
    starts from unit-variance ``x_T`` at t = 981, which is ``sqrt(1 + sigma^2) * x_T`` in
    ComfyUI's sigma space (0.24 % larger than ``sigma * x_T``)."""
    return noise * (math.sqrt(1.0 + sigma**2) / sigma)


def sample_twins(model, artistic_positive, natural_positive, negative, latent, seed, steps, artistic_cfg,
                 natural_cfg, attention_injection, residual_injection, negative_schedule):
    """Sample the artistic image and its natural twin in one run; returns (latent_a, latent_n, maps)."""
    import comfy.sample
    import comfy.samplers
    import latent_preview
    from comfy.ldm.modules.attention import optimized_attention

    samples = latent["samples"]
    if samples.ndim != 4 or samples.shape[0] != 1:
        raise InputError("latent", f"expected one latent [1, C, H, W], got shape {tuple(samples.shape)}")
    if samples.shape[2] % 8 or samples.shape[3] % 8:
        raise InputError(
            "latent",
            f"is {samples.shape[3] * 8}x{samples.shape[2] * 8} px; the twin pass needs sizes divisible by 64 "
            "(e.g. 512x512, 576x768)",
        )
    check_record_size(tuple(samples.shape[2:]))
    model_sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, "ddim_uniform", steps).cpu()
    steps = len(sigmas) - 1  # ddim_uniform rounds: 6 requested steps give 7
    schedule = TwinSchedule(
        attention_steps=injected_steps(attention_injection, steps),
        residual_steps=injected_steps(residual_injection, steps),
        record_sigma_max=float(model_sampling.sigma(torch.tensor(RECORD_TIMESTEP + 0.5))),
    )
    state = TwinAttention(schedule, (samples.shape[2], samples.shape[3]), optimized_attention)
    positive = stack_twin_conditioning(artistic_positive, natural_positive)
    artistic_prompt = positive[0][0][ARTISTIC:ARTISTIC + 1] if negative_schedule else None
    patched = patch_twin_model(model, state, steps, (artistic_cfg, natural_cfg), artistic_prompt)

    twins = samples.repeat(2, 1, 1, 1)
    twins = comfy.sample.fix_empty_latent_channels(patched, twins)
    if latent.get(INVERTED_KEY):
        noise = torch.zeros_like(twins)
    else:
        noise = release_start(comfy.sample.prepare_noise(twins, seed, noise_inds=[0, 0]), float(sigmas[0]))
    callback = latent_preview.prepare_callback(patched, steps)
    out = comfy.sample.sample_custom(
        patched, noise, natural_cfg, comfy.samplers.sampler_object("euler"), sigmas, positive, negative,
        twins, callback=callback, disable_pbar=True, seed=seed,
    )
    return {"samples": out[0:1]}, {"samples": out[1:2]}, state.result()


def invert_latent(model, conditioning, latent, steps):
    """DDIM inversion (Euler over the ascending sigma schedule, guidance 1, no noise)."""
    import comfy.sample
    import comfy.samplers
    import latent_preview

    samples = latent["samples"]
    model_sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, "ddim_uniform", steps).cpu().flip(0)
    # The release's reverse_ddim treats the clean latent as x at timestep 0 (alpha_cumprod[0]),
    # which in ComfyUI's sigma space is the latent times sqrt(1 + sigma(0)^2) at sigma(0)
    # (also keeps Euler from dividing by a zero sigma).
    start = float(model_sampling.sigma(torch.tensor(0.0)))
    sigmas[0] = start
    samples = comfy.sample.fix_empty_latent_channels(model, samples) * math.sqrt(1.0 + start**2)
    out = comfy.sample.sample_custom(
        model, torch.zeros_like(samples), 1.0, comfy.samplers.sampler_object("euler"), sigmas, conditioning,
        conditioning, samples, callback=latent_preview.prepare_callback(model, steps), disable_pbar=True,
    )
    return {"samples": out, INVERTED_KEY: True}


class AttentionInjectingSampler:
    DESCRIPTION = (
        "Samples the artistic image and its natural-looking twin in ONE run (a batch of two from the same "
        "noise): the natural image borrows the artistic image's self-attention queries/keys and a ResBlock "
        "residual during the early steps, so both share one layout. Records the artistic image's attention "
        "maps for AttentionClusterMask. Works with any SD1.5-family model, LoRAs included."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "LATENT", "T2C_ATTENTION")
    RETURN_NAMES = ("artistic_latent", "natural_latent", "attention")
    OUTPUT_TOOLTIPS = (
        "The artistic image (decode with VAEDecode).",
        "Its natural twin with the same layout (for segmentation and flow).",
        "Averaged self- and cross-attention maps of the artistic image.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        fraction = {"min": 0.0, "max": 1.0, "step": 0.05}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.5-family model (LoRAs applied are kept)."}),
                "artistic_positive": ("CONDITIONING", {"tooltip": "The user's (artistic) prompt, encoded."}),
                "natural_positive": ("CONDITIONING", {"tooltip": "The natural twin prompt, encoded."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt for both images (often empty)."}),
                "latent": (
                    "LATENT",
                    {"tooltip": "EmptyLatentImage (sizes divisible by 64), or DDIMInvert's latent of a painting."},
                ),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                  "tooltip": "Noise seed."}),
                "steps": ("INT", {"default": 50, "min": 2, "max": 1000, "tooltip": "DDIM steps (the paper: 50)."}),
                "artistic_cfg": (
                    "FLOAT",
                    {"default": 5.0, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance of the artistic image."},
                ),
                "natural_cfg": (
                    "FLOAT",
                    {"default": 7.5, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance of the natural twin."},
                ),
                "attention_injection": (
                    "FLOAT",
                    {"advanced": True, "default": 0.5, **fraction,
                     "tooltip": "Fraction of the steps (from the start) with self-attention q/k injection."},
                ),
                "residual_injection": (
                    "FLOAT",
                    {"advanced": True, "default": 0.8, **fraction,
                     "tooltip": "Fraction of the steps (from the start) with ResBlock residual injection."},
                ),
                "negative_schedule": (
                    "BOOLEAN",
                    {"advanced": True, "default": True,
                     "tooltip": "Push the natural twin away from the artistic prompt (weight 0.75 -> 0 over the "
                     "steps), as the paper's release does."},
                ),
            }
        }

    def sample(self, model, artistic_positive, natural_positive, negative, latent, seed, steps, artistic_cfg,
               natural_cfg, attention_injection, residual_injection, negative_schedule):
        return sample_twins(model, artistic_positive, natural_positive, negative, latent, seed, steps,
                            artistic_cfg, natural_cfg, attention_injection, residual_injection, negative_schedule)


class DDIMInvert:
    DESCRIPTION = (
        "DDIM inversion of a picture's latent (empty prompt, guidance 1): the start noise whose sampling "
        "reproduces the picture. Feed it to AttentionInjectingSampler to get a painting's natural twin."
    )
    CATEGORY = CATEGORY
    FUNCTION = "invert"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("inverted_latent",)
    OUTPUT_TOOLTIPS = ("The noise latent; samplers of this pack start from it without adding noise.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The same model the twin pass will use."}),
                "conditioning": ("CONDITIONING", {"tooltip": "An empty prompt, encoded (CLIPTextEncode with '')."}),
                "latent": ("LATENT", {"tooltip": "The picture's latent (VAEEncode)."}),
                "steps": (
                    "INT",
                    {"default": 50, "min": 2, "max": 999,
                     "tooltip": "Inversion steps; more is more faithful (the release uses 999)."},
                ),
            }
        }

    def invert(self, model, conditioning, latent, steps):
        return (invert_latent(model, conditioning, latent, steps),)
