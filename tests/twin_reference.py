"""An independent reference of the release's twin pass and DDIM inversion, for parity tests.

Written from the release's algorithm as restated in ``shared/reference/text2cinemagraph-facts.md``
("Twin pass in detail") and the release's LDM DDIM sampler (``img2img/cldm/models/diffusion/
ddim.py``: ``p_sample_ddim``, ``reverse_ddim``), not from the pack's code: it shares nothing with
``nodes/twin.py`` or ComfyUI's sampler and patch mechanisms but the UNet module's weights.

- DDIM with eta 0 in alpha / timestep space (LDM): ``x_T`` is the unit noise, the model is called
  on ``x_t`` with the integer timestep, ``x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps``.
- One UNet call per step with the rows ``[artistic "", artistic prompt, natural "", natural
  prompt, natural with the artistic prompt]`` (the last only with the negative schedule).
- Injection by plain torch forward hooks on the module: ``attn1.to_q`` / ``attn1.to_k`` outputs in
  output blocks 4..11 and ``output_blocks[4][0].out_layers`` (the ResBlock's residual branch).
- Recording by forward hooks on ``attn1.to_q`` / ``to_k`` of input blocks 4, 5 and output blocks
  6, 7, 8 (the second resolution level): softmax(q k^T / sqrt(d)) averaged over heads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch

ART_U, ART_C, NAT_U, NAT_C, NAT_NEG = range(5)
# which row's features each natural row receives: the release injects the artistic image's
# unconditional features into both the natural "" and the natural negative prediction
INJECT_FROM = {NAT_U: ART_U, NAT_C: ART_C, NAT_NEG: ART_U}
RECORDED = (("input", 4), ("input", 5), ("output", 6), ("output", 7), ("output", 8))


def alphas_cumprod(timesteps: int = 1000, start: float = 0.00085, end: float = 0.012) -> torch.Tensor:
    """SD1.x's "scaled linear" beta schedule (LDM ``make_beta_schedule("linear")``), float64."""
    betas = torch.linspace(start**0.5, end**0.5, timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(steps: int, total: int = 1000) -> list[int]:
    """The release's uniform DDIM timesteps, ascending: 1, 21, ..., 981 for 50 steps."""
    return [t + 1 for t in range(0, total, total // steps)][:steps]


def _attn1(unet, kind: str, index: int):
    blocks = unet.input_blocks if kind == "input" else unet.output_blocks
    return [m.attn1 for m in blocks[index].modules() if hasattr(m, "attn1")]


@dataclass
class Release:
    """The release's twin-pass settings (step indices i = 0 from the noisiest)."""

    qk_until: Optional[int] = 25  # q/k injection while i <= this (None: never)
    residual_until: Optional[int] = 40  # residual injection while i <= this
    negative_schedule: bool = True  # a = 0.75 (1 - i / (steps - 1))
    artistic_cfg: float = 5.0
    natural_cfg: float = 7.5
    record_timestep: int = 541
    final_alpha: float = 1.0  # ComfyUI ends at sigma 0; the release at alphas_cumprod[0]


@contextlib.contextmanager
def twin_hooks(unet, step: dict, settings: Release, record: dict):
    """Forward hooks for one twin pass; ``step`` holds the current ``i`` and ``t``."""

    def inject(out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        for target, source in INJECT_FROM.items():
            if target < out.shape[0]:
                out[target] = out[source]
        return out

    def qk_hook(module, inputs, out):
        if settings.qk_until is not None and step["i"] <= settings.qk_until:
            return inject(out)
        return None

    def residual_hook(module, inputs, out):
        if settings.residual_until is not None and step["i"] <= settings.residual_until:
            return inject(out)
        return None

    def keep_q(module, inputs, out):
        record["q"] = out

    def record_map(module, inputs, out, attention=None):
        if step["t"] > settings.record_timestep:
            return
        heads = attention.heads
        for row in (ART_U, ART_C):
            q = record["q"][row].double()
            k = out[row].double()
            d = q.shape[-1] // heads
            qh, kh = q.view(-1, heads, d).transpose(0, 1), k.view(-1, heads, d).transpose(0, 1)
            maps = torch.softmax(qh @ kh.transpose(1, 2) / d**0.5, dim=-1).mean(dim=0)
            record["sum"] = maps if record.get("sum") is None else record["sum"] + maps
            record["count"] = record.get("count", 0) + 1

    handles = []
    try:
        # recording hooks first, so they see the artistic rows' own q and k (never modified)
        for kind, index in RECORDED:
            for attention in _attn1(unet, kind, index):
                handles.append(attention.to_q.register_forward_hook(keep_q))
                handles.append(attention.to_k.register_forward_hook(
                    lambda m, i, o, a=attention: record_map(m, i, o, a)))
        for index in range(4, 12):
            for attention in _attn1(unet, "output", index):
                handles.append(attention.to_q.register_forward_hook(qk_hook))
                handles.append(attention.to_k.register_forward_hook(qk_hook))
        handles.append(unet.output_blocks[4][0].out_layers.register_forward_hook(residual_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def reference_twin_pass(unet, noise: torch.Tensor, empty: torch.Tensor, artistic: torch.Tensor,
                        natural: torch.Tensor, steps: int = 50, settings: Release = Release()):
    """``(artistic latent, natural latent, mean self-attention map)`` of the release's twin pass.

    ``noise`` is ``[1, 4, h, w]`` (x_T, shared by both images); prompts are ``[1, 77, C]``.
    """
    alphas = alphas_cumprod()
    timesteps = ddim_timesteps(steps)[::-1]
    rows = 5 if settings.negative_schedule else 4
    context = torch.cat([empty, artistic, empty, natural, artistic][:rows])
    x_art, x_nat = noise.double(), noise.double()
    step, record = {}, {}
    with twin_hooks(unet, step, settings, record):
        for i, t in enumerate(timesteps):
            step.update(i=i, t=t)
            a_t = float(alphas[t])
            a_prev = float(alphas[timesteps[i + 1]]) if i + 1 < steps else settings.final_alpha
            x_in = torch.cat([x_art, x_art, x_nat, x_nat, x_nat][:rows]).float()
            eps = unet(x_in, timesteps=torch.full((rows,), float(t)), context=context).double()
            e_art = eps[ART_U] + settings.artistic_cfg * (eps[ART_C] - eps[ART_U])
            e_uncond = eps[NAT_U]
            if settings.negative_schedule:
                a = 0.75 * (1.0 - i / (steps - 1))
                e_uncond = a * eps[NAT_U] + (1.0 - a) * eps[NAT_NEG]
            e_nat = e_uncond + settings.natural_cfg * (eps[NAT_C] - e_uncond)
            x_art, x_nat = (ddim_step(x, e[None], a_t, a_prev) for x, e in ((x_art, e_art), (x_nat, e_nat)))
    mean = record["sum"] / record["count"] if record.get("count") else None
    return x_art.float(), x_nat.float(), mean


def ddim_step(x: torch.Tensor, eps: torch.Tensor, a_t: float, a_next: float) -> torch.Tensor:
    """One deterministic DDIM move from alpha ``a_t`` to ``a_next`` (either direction)."""
    x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t**0.5
    return a_next**0.5 * x0 + (1.0 - a_next) ** 0.5 * eps


@torch.no_grad()
def reference_inversion(unet, latent: torch.Tensor, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """The release's ``reverse_ddim`` inversion (guidance 1, eps at the current timestep, the
    clean latent taken as x at t = 0) over the sampler's timesteps 0, 1, 21, ..., up to the
    noisiest DDIM timestep. Returns x in LDM scale (``sqrt(a) x0 + sqrt(1 - a) eps``)."""
    alphas = alphas_cumprod()
    path = [0] + ddim_timesteps(steps)
    x = latent.double()
    for i, t in enumerate(path[:-1]):
        a_t = float(alphas[t])
        eps = unet(x.float(), timesteps=torch.full((1,), float(t)), context=prompt).double()
        x = ddim_step(x, eps, a_t, float(alphas[path[i + 1]]))
    return x.float()
