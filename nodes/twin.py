"""AttentionInjectingSampler and DDIMInvert: the twin pass inside ComfyUI's sampler.

The model is changed only through ComfyUI's mechanisms, on a clone: attn1/attn2
replace patches that record and inject, and a guider (a ``CFGGuider`` subclass, as
ComfyUI's ``Guider_PerpNeg``) that owns the per-image guidance and the natural
image's negative-prompt schedule, with a diffusion-model wrapper that holds a
forward hook on output block 4's ResBlock for the duration of each UNet call.
The math lives in :mod:`.stages.twin_attention`; every ComfyUI name is reached
through :mod:`._comfy`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

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
from ._comfy import CATEGORY, comfy_attribute, diffusion_model_call, refuse_split_evaluation

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


@dataclass(frozen=True)
class TwinSettings:
    """How the twin pass samples.

    ``steps`` DDIM steps; one guidance scale per image; the fractions of the steps (from the
    start) with self-attention q/k and ResBlock residual injection; ``negative_schedule``: the
    natural image is pushed away from the artistic prompt, as the release does.
    """

    steps: int = 50
    artistic_cfg: float = 5.0
    natural_cfg: float = 7.5
    attention_injection: float = 0.5
    residual_injection: float = 0.8
    negative_schedule: bool = True


def patch_twin_attention(model, state: TwinAttention):
    """A clone of ``model`` whose attention layers record and inject through ``state``."""
    _refuse_split_models(model)
    patched = model.clone()
    diffusion_model = patched.get_model_object("diffusion_model")
    check_sd1_layout(diffusion_model)
    for block_name, index in _attention_blocks(diffusion_model):
        patched.set_model_attn1_replace(state.attn1, block_name, index)
        patched.set_model_attn2_replace(state.attn2, block_name, index)
    return patched


@functools.cache
def twin_guider_class():
    """ComfyUI's ``CFGGuider`` for the twin batch (built on first use: the pack imports without ComfyUI)."""
    CFGGuider = comfy_attribute("comfy.samplers", "CFGGuider")
    calc_cond_batch = comfy_attribute("comfy.samplers", "calc_cond_batch")
    diffusion_model_wrapper = comfy_attribute("comfy.patcher_extension", "WrappersMP").DIFFUSION_MODEL

    class TwinGuider(CFGGuider):
        """Guides the twins ``[artistic, natural]`` with one scale each; with ``artistic_prompt``
        (``[1, L, C]``), mixes the natural image's unconditional prediction with its prediction under
        the artistic prompt, weighted by the release's schedule. That prediction is one more row of
        the same UNet call, added by :meth:`unet_call`, which also holds the residual hook."""

        def __init__(self, model, state: TwinAttention, settings: TwinSettings, steps: int,
                     artistic_prompt: torch.Tensor | None):
            super().__init__(model)
            self.state, self.steps, self.artistic_prompt = state, steps, artistic_prompt
            self.scales = torch.tensor([settings.artistic_cfg, settings.natural_cfg])
            self.negative: tuple[float, torch.Tensor] | None = None  # (sigma, eps) of the latest extra row
            self.set_cfg(settings.natural_cfg)
            diffusion_model = model.get_model_object("diffusion_model")
            self.residual_layer = diffusion_model.output_blocks[4][0].out_layers[-1]
            model.add_wrapper_with_key(diffusion_model_wrapper, WRAPPER_KEY, self.unet_call)

        def unet_call(self, executor, *args, **kwargs):
            call = diffusion_model_call(executor, args, kwargs)
            extra = self.artistic_prompt is not None and add_negative_row(call, self.artistic_prompt)
            options = call.arguments["transformer_options"]
            self.state.begin_call(options, call.arguments["x"].shape[0])
            handle = self.residual_layer.register_forward_hook(self.state.residual_hook)
            try:
                out = executor(*call.args, **call.kwargs)
            finally:
                handle.remove()
            if not extra:
                return out
            self.negative = (float(options["sigmas"].reshape(-1)[0]), out[-1:])
            return out[:-1]

        def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
            conds = [self.conds.get("positive"), self.conds.get("negative")]
            out = calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
            for hook in model_options.get("sampler_pre_cfg_function", []):  # other packs' hooks, as ComfyUI runs them
                out = hook({"conds": conds, "conds_out": out, "cond_scale": self.cfg, "timestep": timestep,
                            "input": x, "sigma": timestep, "model": self.inner_model, "model_options": model_options})
            cond, uncond = out[0], out[1]
            if self.artistic_prompt is not None:
                refuse_split_evaluation(model_options)
                uncond = self.natural_negative(uncond, x, timestep, model_options)
            denoised = per_image_guidance(cond, uncond, self.scales)
            for hook in model_options.get("sampler_post_cfg_function", []):
                denoised = hook({"denoised": denoised, "cond": conds[0], "uncond": conds[1], "cond_scale": self.cfg,
                                 "model": self.inner_model, "uncond_denoised": uncond, "cond_denoised": cond,
                                 "sigma": timestep, "model_options": model_options, "input": x})
            return denoised

        def natural_negative(self, uncond, x, sigma, model_options):
            """``uncond`` with the natural row mixed with this step's extra row (the artistic prompt)."""
            if self.negative is None or self.negative[0] != float(sigma.reshape(-1)[0]):
                raise RuntimeError("Text2Cinemagraph: the negative-schedule prediction of this step is missing "
                                   "(the unconditional rows were not evaluated as the twin batch)")
            eps = self.negative[1]
            self.negative = None
            where = self.state.locate({**model_options.get("transformer_options", {}), "sigmas": sigma})
            weight = negative_weight(where["step"], self.steps)
            denoised = self.inner_model.model_sampling.calculate_denoised(
                sigma[NATURAL:NATURAL + 1], eps.float(), x[NATURAL:NATURAL + 1])
            uncond = uncond.clone()
            uncond[NATURAL] = weight * uncond[NATURAL] + (1.0 - weight) * denoised[0]
            return uncond

    return TwinGuider


def release_start(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Noise that ComfyUI's ``sigma * noise`` start turns into the release's: the LDM sampler
    starts from unit-variance ``x_T`` at t = 981, which is ``sqrt(1 + sigma^2) * x_T`` in
    ComfyUI's sigma space (0.24 % larger than ``sigma * x_T``)."""
    return noise * (math.sqrt(1.0 + sigma**2) / sigma)


def _check_latent(latent: dict) -> torch.Tensor:
    """The ``[1, C, H, W]`` samples of ``latent``, or an InputError naming it."""
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
    return samples


def sample_twins(model, artistic_positive, natural_positive, negative, latent, seed,
                 settings: TwinSettings = TwinSettings()):
    """Sample the artistic image and its natural twin in one run; returns (latent_a, latent_n, maps)."""
    samples = _check_latent(latent)
    model_sampling = model.get_model_object("model_sampling")
    sigmas = comfy_attribute("comfy.samplers", "calculate_sigmas")(model_sampling, "ddim_uniform", settings.steps).cpu()
    steps = len(sigmas) - 1  # ddim_uniform rounds: 6 requested steps give 7
    schedule = TwinSchedule(
        attention_steps=injected_steps(settings.attention_injection, steps),
        residual_steps=injected_steps(settings.residual_injection, steps),
        record_sigma_max=float(model_sampling.sigma(torch.tensor(RECORD_TIMESTEP + 0.5))),
    )
    attention = comfy_attribute("comfy.ldm.modules.attention", "optimized_attention")
    state = TwinAttention(schedule, (samples.shape[2], samples.shape[3]), attention)
    positive = stack_twin_conditioning(artistic_positive, natural_positive)
    artistic_prompt = positive[0][0][ARTISTIC:ARTISTIC + 1] if settings.negative_schedule else None
    patched = patch_twin_attention(model, state)
    guider = twin_guider_class()(patched, state, settings, steps, artistic_prompt)
    guider.set_conds(positive, negative)

    twins = comfy_attribute("comfy.sample", "fix_empty_latent_channels")(patched, samples.repeat(2, 1, 1, 1))
    if latent.get(INVERTED_KEY):
        noise = torch.zeros_like(twins)
    else:
        noise = comfy_attribute("comfy.sample", "prepare_noise")(twins, seed, noise_inds=[0, 0])
        noise = release_start(noise, float(sigmas[0]))
    callback = comfy_attribute("latent_preview", "prepare_callback")(patched, steps)
    euler = comfy_attribute("comfy.samplers", "sampler_object")("euler")
    out = guider.sample(noise, twins, euler, sigmas, callback=callback, disable_pbar=True, seed=seed)
    out = out.to(comfy_attribute("comfy.model_management", "intermediate_device")())
    return {"samples": out[0:1]}, {"samples": out[1:2]}, state.result()


def invert_latent(model, conditioning, latent, steps):
    """DDIM inversion (Euler over the ascending sigma schedule, guidance 1, no noise)."""
    samples = latent["samples"]
    model_sampling = model.get_model_object("model_sampling")
    sigmas = comfy_attribute("comfy.samplers", "calculate_sigmas")(model_sampling, "ddim_uniform", steps).cpu().flip(0)
    # The release's reverse_ddim treats the clean latent as x at timestep 0 (alpha_cumprod[0]),
    # which in ComfyUI's sigma space is the latent times sqrt(1 + sigma(0)^2) at sigma(0)
    # (also keeps Euler from dividing by a zero sigma).
    start = float(model_sampling.sigma(torch.tensor(0.0)))
    sigmas[0] = start
    samples = comfy_attribute("comfy.sample", "fix_empty_latent_channels")(model, samples) * math.sqrt(1.0 + start**2)
    out = comfy_attribute("comfy.sample", "sample_custom")(
        model, torch.zeros_like(samples), 1.0, comfy_attribute("comfy.samplers", "sampler_object")("euler"), sigmas,
        conditioning, conditioning, samples, disable_pbar=True,
        callback=comfy_attribute("latent_preview", "prepare_callback")(model, steps),
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
        settings = TwinSettings(steps, artistic_cfg, natural_cfg, attention_injection, residual_injection,
                                negative_schedule)
        return sample_twins(model, artistic_positive, natural_positive, negative, latent, seed, settings)


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
