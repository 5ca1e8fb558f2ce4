"""The twin pass: one sampling run for the artistic image and its natural twin.

The UNet sees the two images as a batch ``[artistic, natural]`` per guidance
chunk (rows laid out chunk by chunk in ``cond_or_uncond`` order). During the
early steps the natural image's self-attention queries and keys, and the
residual of one ResBlock, are overwritten with the artistic image's (Plug-and-
Play, Tumanyan et al. 2023, as used by Text2Cinemagraph section 3.1), so the
twins share a layout. Meanwhile the artistic image's self-attention maps at the
second resolution level and its cross-attention maps are averaged for the mask.

Everything here is plain torch on tensors and ``transformer_options`` dicts;
the ComfyUI node registers these callables as model patches and guides with
:func:`per_image_guidance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

ARTISTIC, NATURAL = 0, 1
TWINS = 2
COND, UNCOND = 0, 1  # ComfyUI's cond_or_uncond values of a conditional / unconditional chunk
# transformer_options key marking a UNet call that carries, after its twin rows, one more row:
# the natural image's prediction with the artistic prompt (the negative schedule). Its value is
# the row whose features it receives (the artistic image's unconditional row), as in the release.
NEGATIVE_ROW = "t2c_negative_row"

AttentionFn = Callable[[Tensor, Tensor, Tensor, int], Tensor]


def injected_steps(fraction: float, steps: int) -> int:
    """How many of the first steps get injection: ``fraction`` 0.5 of 50 -> 26
    (the release injects while ``i <= steps // 2``), 0 -> none, 1 -> all."""
    if fraction <= 0:
        return 0
    return min(steps, int(fraction * steps) + 1)


def plain_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """``[B, N, heads * d]`` scaled dot-product attention (ComfyUI passes its own)."""
    b, n, inner = q.shape
    split = lambda t: t.view(b, -1, heads, inner // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(b, n, inner)


def attention_probabilities(q: Tensor, k: Tensor, heads: int) -> Tensor:
    """``[N_q, N_k]`` softmax(q k^T / sqrt(d)) averaged over heads, for one row ``q [N_q, heads*d]``."""
    d = q.shape[-1] // heads
    qh = q.view(-1, heads, d).transpose(0, 1).float()
    kh = k.view(-1, heads, d).transpose(0, 1).float()
    total = None
    for head in range(heads):  # one head at a time bounds the transient memory
        probs = torch.softmax(qh[head] @ kh[head].T * d**-0.5, dim=-1)
        total = probs if total is None else total.add_(probs)
    return total / heads


@dataclass(frozen=True)
class TwinSchedule:
    """When injection and recording happen, in steps of the sampling schedule."""

    attention_steps: int  # q/k injection during steps [0, attention_steps)
    residual_steps: int  # residual injection during steps [0, residual_steps)
    # record maps at sigmas <= this: the sigma half a timestep above the release's t = 541, so the
    # cut-off is decided by timestep with a tolerance, never by float equality of two sigmas
    record_sigma_max: float


@dataclass
class AttentionMaps:
    """``T2C_ATTENTION``: the artistic image's averaged attention maps.

    Attributes:
        grid: ``(h, w)`` of the recorded maps (the latent size halved: 32x32 at 512 px).
        self_attention: ``[h*w, h*w]`` mean self-attention; each row sums to 1.
        cross_attention: ``[2, h*w, tokens]`` mean cross-attention of each prompt token, for the
            artistic (0) and the natural (1) image's prompt.
        self_samples, cross_samples: how many maps went into each mean.
    """

    grid: tuple[int, int]
    self_attention: Tensor
    cross_attention: Optional[Tensor]
    self_samples: int
    cross_samples: int

    def size_mb(self) -> float:
        tensors = [self.self_attention] + ([self.cross_attention] if self.cross_attention is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20


class TwinAttention:
    """Patch callables for one twin sampling run, and the running means they record.

    Args:
        schedule: when to inject and record.
        latent_size: ``(H, W)`` of the latent; maps are recorded at ``(H/2, W/2)``.
        attention_fn: ``fn(q, k, v, heads)`` computing attention (ComfyUI's
            ``optimized_attention`` inside ComfyUI).
    """

    def __init__(self, schedule: TwinSchedule, latent_size: tuple[int, int], attention_fn: AttentionFn = plain_attention):
        self.schedule = schedule
        self.grid = (latent_size[0] // 2, latent_size[1] // 2)
        self.record_tokens = self.grid[0] * self.grid[1]
        self.attention_fn = attention_fn
        self.self_sum: Optional[Tensor] = None
        self.self_samples = 0
        self.cross_sum: Optional[Tensor] = None
        self.cross_samples = 0
        self.call: dict = {}

    # --- where are we ---------------------------------------------------------

    @staticmethod
    def locate(options: dict) -> dict:
        """Step index, sigma and chunk layout of the current UNet call."""
        sigmas = options["sigmas"]
        sigma = float(sigmas.reshape(-1)[0])
        schedule = options.get("sample_sigmas")
        step = int(torch.argmin((schedule.float().cpu() - sigma).abs())) if schedule is not None else 0
        return {"step": step, "sigma": sigma, "chunks": list(options.get("cond_or_uncond", [COND]))}

    def begin_call(self, options: dict, batch: int) -> None:
        """Remember the current call for the residual hook (which sees no options)."""
        self.call = {**self.locate(options), "layout": twin_layout(batch, options)}

    def _copy_artistic(self, rows: Tensor, layout: tuple[int, Optional[int]]) -> Tensor:
        """``rows`` with every natural row replaced by its artistic counterpart (and the
        negative row, when present, by the artistic unconditional row)."""
        twins, source = layout
        rows = rows.clone()
        rows[NATURAL:twins:TWINS] = rows[ARTISTIC:twins:TWINS]
        if source is not None:
            rows[twins] = rows[source]
        return rows

    # --- patches ----------------------------------------------------------------

    def attn1(self, q: Tensor, k: Tensor, v: Tensor, options: dict) -> Tensor:
        """Self-attention replacement: inject q/k into the natural rows, record the artistic map."""
        where = self.locate(options)
        heads = options["n_heads"]
        layout = twin_layout(q.shape[0], options)
        if layout is not None:
            block = options.get("block")
            if where["step"] < self.schedule.attention_steps and block is not None and block[0] == "output" and block[1] >= 4:
                q, k = self._copy_artistic(q, layout), self._copy_artistic(k, layout)
            if q.shape[1] == self.record_tokens and self.records(where["sigma"]):
                self._record_self(q[:layout[0]], k[:layout[0]], heads)
        return self.attention_fn(q, k, v, heads)

    def records(self, sigma: float) -> bool:
        """Whether maps are recorded at ``sigma``."""
        return sigma <= self.schedule.record_sigma_max

    def attn2(self, q: Tensor, k: Tensor, v: Tensor, options: dict) -> Tensor:
        """Cross-attention replacement: record the artistic image's conditional maps."""
        where = self.locate(options)
        heads = options["n_heads"]
        layout = twin_layout(q.shape[0], options)
        if layout is not None and self.records(where["sigma"]):
            shape = options.get("activations_shape")
            self._record_cross(q, k, heads, where["chunks"], tuple(shape[-2:]) if shape else None)
        return self.attention_fn(q, k, v, heads)

    def residual_hook(self, module: torch.nn.Module, inputs, output: Tensor) -> Optional[Tensor]:
        """Forward hook on output block 4's ResBlock residual branch: copy artistic into natural."""
        layout = self.call.get("layout")
        if layout is None or output.shape[0] != layout[0] + (layout[1] is not None):
            return None
        if self.call["step"] >= self.schedule.residual_steps:
            return None
        return self._copy_artistic(output, layout)

    # --- recording --------------------------------------------------------------

    def _record_self(self, q: Tensor, k: Tensor, heads: int) -> None:
        for row in range(ARTISTIC, q.shape[0], TWINS):  # every chunk: cond and uncond
            probs = attention_probabilities(q[row], k[row], heads).cpu()
            self.self_sum = probs if self.self_sum is None else self.self_sum.add_(probs)
            self.self_samples += 1

    def _record_cross(self, q: Tensor, k: Tensor, heads: int, chunks: list, hw: Optional[tuple]) -> None:
        tokens = q.shape[1]
        if hw is None or hw[0] * hw[1] != tokens:
            scale = math.sqrt(self.record_tokens * 4 / tokens)
            hw = (round(self.grid[0] * 2 / scale), round(self.grid[1] * 2 / scale))
        for chunk, kind in enumerate(chunks):
            if kind != COND:
                continue
            twins = []
            for row in (chunk * TWINS + ARTISTIC, chunk * TWINS + NATURAL):
                probs = attention_probabilities(q[row], k[row], heads)  # [tokens, context]
                maps = probs.T.reshape(1, -1, hw[0], hw[1])
                if hw != self.grid:
                    maps = F.interpolate(maps, size=self.grid, mode="bilinear", align_corners=False)
                twins.append(maps.reshape(-1, self.record_tokens).T.cpu())
            maps = torch.stack(twins)
            self.cross_sum = maps if self.cross_sum is None else self.cross_sum.add_(maps)
            self.cross_samples += 1

    def result(self) -> AttentionMaps:
        """The means recorded so far (raises if nothing was recorded)."""
        if self.self_sum is None:
            raise RuntimeError(
                "no self-attention map was recorded: no attention layer had "
                f"{self.record_tokens} tokens at a sigma <= {self.schedule.record_sigma_max:.3f}"
            )
        cross = self.cross_sum / self.cross_samples if self.cross_sum is not None else None
        return AttentionMaps(self.grid, self.self_sum / self.self_samples, cross, self.self_samples, self.cross_samples)


def twin_layout(batch: int, options: dict) -> Optional[tuple[int, Optional[int]]]:
    """``(twin rows, source of the negative row or None)`` of a UNet call of ``batch`` rows,
    or None when the call does not hold the two images (rows ``[a, n]`` per guidance chunk)."""
    twins = TWINS * len(options.get("cond_or_uncond", [COND]))
    source = options.get(NEGATIVE_ROW)
    if batch == twins + (source is not None):
        return twins, source
    return None


def per_image_guidance(cond: Tensor, uncond: Tensor, scales: Tensor) -> Tensor:
    """Classifier-free guidance with one scale per image of the twin batch.

    Args:
        cond: ``[B, C, H, W]`` conditional (denoised) predictions, the twins' rows ``[artistic, natural]``.
        uncond: ``[B, C, H, W]`` unconditional predictions, the same rows.
        scales: ``[TWINS]`` guidance scales, ``[artistic, natural]``.

    Returns:
        ``[B, C, H, W]``: ``uncond + (cond - uncond) * scale`` of each row.
    """
    scale = scales.to(cond.device, cond.dtype).view(-1, *([1] * (cond.ndim - 1)))
    if cond.shape[0] != scale.shape[0]:
        scale = scale.repeat_interleave(cond.shape[0] // scale.shape[0], dim=0)
    return uncond + (cond - uncond) * scale


def negative_weight(step: int, steps: int, start: float = 0.75) -> float:
    """Weight ``a`` of the unconditional prediction in ``a * e_uncond + (1 - a) * e_neg``:
    ``start`` at the first step falling linearly to 0 at the last (the release's schedule)."""
    if steps <= 1:
        return 0.0
    return start * (1.0 - step / (steps - 1))
