"""Building blocks of the three released networks (Mahapatra et al. 2023).

Module and parameter names follow the authors' release
(``text2cinemagraph/text2cinemagraph``, ``models/networks.py``,
``models/normalization.py``, ``models/partialconv2d.py`` and
``models/attention.py``) so that its ``latest_net_G.pth`` state dicts load
strictly; the code is ours.

Spectral normalisation uses ``torch.nn.utils.spectral_norm``, whose state-dict
entries (``weight_orig``, ``weight_u``, ``weight_v``) are the release's.
:func:`fold_spectral_norm` replaces it by the plain weight it computes in
evaluation mode, for inference.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NOISE_SIZE = 20  # the release's BigGAN-style noise layers take a 20-d noise vector


def spectral(module: nn.Module, enabled: bool = True) -> nn.Module:
    """``module`` with spectral normalisation of its weight (release key layout)."""
    return nn.utils.spectral_norm(module) if enabled else module


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every spectral normalisation by its evaluation-mode weight, in place.

    ``weight = weight_orig / (u . weight_orig v)`` with the stored ``u, v``
    (no power iteration): the exact weight the network used at inference.
    """
    from torch.nn.utils.spectral_norm import SpectralNorm

    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, SpectralNorm):
                nn.utils.remove_spectral_norm(module, hook.name)
    return model


def resize_like_segmap(segmap: Tensor, size: tuple[int, int], groups: tuple[int, ...]) -> Tensor:
    """Resize a SPADE conditioning map group by group, as the release does.

    ``groups`` are channel counts; a group of one channel (the mask) is resized
    with nearest neighbours, every other group bilinearly (RGB, flow hints).
    """
    parts, start = [], 0
    for count in groups:
        part = segmap[:, start : start + count]
        if count == 1:
            parts.append(F.interpolate(part, size=size, mode="nearest"))
        else:
            parts.append(F.interpolate(part, size=size, mode="bilinear", align_corners=False))
        start += count
    return torch.cat(parts, dim=1)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019).

    ``x -> InstanceNorm(x) * (1 + gamma(m)) + beta(m)`` where ``m`` is the
    conditioning map resized to ``x``. Keys: ``mlp_shared.0``, ``mlp_gamma``,
    ``mlp_beta``.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int = 128, groups: tuple[int, ...] = (3, 1)):
        super().__init__()
        self.groups = groups
        self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        """``x [B, C, h, w]``, ``segmap [B, L, H, W]`` -> ``[B, C, h, w]``."""
        condition = resize_like_segmap(segmap, tuple(x.shape[-2:]), self.groups)
        shared = self.mlp_shared(condition)
        return self.param_free_norm(x) * (1.0 + self.mlp_gamma(shared)) + self.mlp_beta(shared)


class CrossAttentionBlock(nn.Module):
    """Stable Diffusion's SpatialTransformer without its self-attention.

    GroupNorm, 1x1 ``proj_in``, one transformer block of cross-attention to the
    text (``attn2``) and a GEGLU feed-forward (``ff``), 1x1 ``proj_out``, plus
    the input. The attention and feed-forward are diffusers' own modules, whose
    parameter names are Stable Diffusion's (``to_q``, ``to_k``, ``to_v``,
    ``to_out.0``, ``net.0.proj``, ``net.2``), so SD1.x weights and the
    release's G_flow weights load as they are.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, context_dim: int, norm_groups: int = 32):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([_CrossOnlyTransformerBlock(inner, heads, head_dim, context_dim)])
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x [B, C, h, w]``, ``context [B, T, context_dim]`` -> ``[B, C, h, w]``."""
        batch, _, height, width = x.shape
        hidden = self.proj_in(self.norm(x))
        tokens = hidden.flatten(2).transpose(1, 2)  # [B, h*w, inner]
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        hidden = tokens.transpose(1, 2).reshape(batch, -1, height, width)
        return self.proj_out(hidden) + x


class _CrossOnlyTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        from diffusers.models.attention import FeedForward
        from diffusers.models.attention_processor import Attention

        self.attn2 = Attention(
            query_dim=dim, cross_attention_dim=context_dim, heads=heads, dim_head=head_dim, bias=False, out_bias=True
        )
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, context: Tensor) -> Tensor:
        tokens = self.attn2(self.norm2(tokens), encoder_hidden_states=context) + tokens
        return self.ff(self.norm3(tokens)) + tokens


def _batch_norm(x: Tensor, mean: Tensor, var: Tensor, gain: Tensor, bias: Tensor, eps: float) -> Tensor:
    """The release's fused batch norm: ``x * s - (mean * s - bias)`` with ``s = gain / sqrt(var + eps)``."""
    scale = torch.rsqrt(var + eps) * gain
    return torch.addcmul(bias - mean * scale, x, scale)


class _StoredStats(nn.Module):
    """Buffers of BigGAN's batch norm (``stored_mean``, ``stored_var``, ``accumulation_counter``)."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))
        self.register_buffer("accumulation_counter", torch.zeros(1))

    def normalise(
        self, x: Tensor, gain: Tensor, bias: Tensor, mean: Optional[Tensor] = None, var: Optional[Tensor] = None
    ) -> Tensor:
        """Batch statistics (given) while training, stored statistics in evaluation."""
        if self.training and mean is not None and var is not None:
            with torch.no_grad():
                self.stored_mean.mul_(1.0 - self.momentum).add_(mean.detach().flatten() * self.momentum)
                self.stored_var.mul_(1.0 - self.momentum).add_(var.detach().flatten() * self.momentum)
            return _batch_norm(x, mean, var, gain, bias, self.eps)
        mean, var = self.stored_mean.view(1, -1, 1, 1), self.stored_var.view(1, -1, 1, 1)
        return _batch_norm(x, mean, var, gain, bias, self.eps)


class _NoiseAffine(nn.Module):
    """Gain and bias as linear maps of a noise vector, which the release sets to zero."""

    def __init__(self, channels: int, spectral_norm: bool):
        super().__init__()
        self.gain = spectral(nn.Linear(NOISE_SIZE, channels, bias=False), spectral_norm)
        self.bias = spectral(nn.Linear(NOISE_SIZE, channels, bias=False), spectral_norm)

    def affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(gain, bias)`` of shape ``[B, C, 1, 1]``: exactly 1 and 0 for the zero noise."""
        noise = x.new_zeros((x.shape[0], NOISE_SIZE))
        return (1.0 + self.gain(noise))[:, :, None, None], self.bias(noise)[:, :, None, None]


class NoiseBatchNorm(_NoiseAffine):
    """The release's ``LinearNoiseLayer``: batch norm whose gain and bias are
    linear maps of a noise vector (BigGAN).

    The release runs it with ``bn_noise_misc=True``, i.e. a zero noise vector,
    so the gain is exactly 1 and the bias exactly 0; the linear maps are kept
    for the checkpoint's keys (``gain``, ``bias``) and evaluated as the release
    does (which only moves their spectral-norm vectors while training).
    """

    def __init__(self, channels: int, spectral_norm: bool = True):
        super().__init__(channels, spectral_norm)
        self.bn = _StoredStats(channels)

    def forward(self, x: Tensor) -> Tensor:
        gain, bias = self.affine(x)
        if not self.training:
            return self.bn.normalise(x, gain, bias)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = (x * x).mean(dim=(0, 2, 3), keepdim=True) - mean * mean
        return self.bn.normalise(x, gain, bias, mean, var)


class PartialNoiseBatchNorm(_NoiseAffine):
    """The release's ``PartialLinearNoiseLayer``: :class:`NoiseBatchNorm` whose
    training statistics count only the pixels inside the mask (keys ``gain``,
    ``bias``, ``pbn.*``)."""

    def __init__(self, channels: int, spectral_norm: bool = True):
        super().__init__(channels, spectral_norm)
        self.pbn = _StoredStats(channels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x [B, C, H, W]``, ``mask [B, C or 1, H, W]`` of 0/1."""
        gain, bias = self.affine(x)
        if not self.training:
            return self.pbn.normalise(x, gain, bias)
        count = mask.expand_as(x).sum(dim=(0, 2, 3), keepdim=True) + self.pbn.eps
        mean = x.sum(dim=(0, 2, 3), keepdim=True) / count
        var = (x * x).sum(dim=(0, 2, 3), keepdim=True) / count - mean * mean
        return self.pbn.normalise(x, gain, bias, mean, var)


class PartialConv2d(nn.Conv2d):
    """Partial convolution (Liu et al. 2018) with a per-channel mask.

    ``out = (W (x * m) - b) * window / sum(m) + b`` where the window holds any
    valid input, 0 elsewhere; returns ``(out, new mask)``. The mask update is
    a sum of the input mask over channels and the kernel window (the release
    convolves with an all-ones ``[out, in, k, k]`` kernel; summing the channels
    first gives the same integers at a fraction of the cost), and the new mask
    is one channel broadcast over all outputs.
    """

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, C, H, W]``, ``mask [B, C or 1, H, W]`` -> ``(out [B, O, h, w], mask [B, 1, h, w])``."""
        with torch.no_grad():
            channels_in_mask = mask.shape[1]
            summed = mask.sum(dim=1, keepdim=True) if channels_in_mask > 1 else mask * self.in_channels
            ones = torch.ones((1, 1, *self.kernel_size), dtype=x.dtype, device=x.device)
            coverage = F.conv2d(summed, ones, stride=self.stride, padding=self.padding, dilation=self.dilation)
            window = float(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
            new_mask = coverage.clamp(0.0, 1.0)
            ratio = window / (coverage + 1e-8) * new_mask
        raw = super().forward(x * mask)  # in place below: the convolution's backward does not need it
        if self.bias is None:
            return raw.mul_(ratio), new_mask
        bias = self.bias.view(1, -1, 1, 1)
        return raw.sub_(bias).mul_(ratio).add_(bias).mul_(new_mask), new_mask


def upsample2x(x: Tensor, nearest_channel: int | None = None) -> Tensor:
    """Bilinear x2 upsampling; ``nearest_channel`` (if any) uses nearest neighbours.

    The direction-hint network of the release upsamples its feature channel 3
    with nearest neighbours and every other channel bilinearly (it treats the
    features like its RGB + mask + hint input); kept for its weights' sake.
    """
    up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    if nearest_channel is not None and x.shape[1] > nearest_channel:
        index = slice(nearest_channel, nearest_channel + 1)
        up[:, index] = F.interpolate(x[:, index], scale_factor=2.0, mode="nearest")
    return up
