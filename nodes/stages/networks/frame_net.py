"""G_frame: the feature-splatting frame network ``SPADEUnet4SoftmaxSplating``.

An encoder of residual blocks at full resolution turns the picture into 64
feature channels plus an importance channel Z; the features are splatted
forward and backward along the integrated flow with softmax weights
``exp(Z)`` (Holynski et al. 2021), and a decoder of partial-convolution
residual blocks (holes = all-zero features) turns them back into a frame.
Layout and key names as in the authors' release (``models/networks.py``:
``ResNet_Block``, ``ResNet_Block_Pconv2``, ``ResNetEncoder_with_Z``,
``ResNetDecoderPconv2``; ``models/configs.py``: ``resnet_256W8UpDown64``;
trained with ``--norm_G sync:spectral_instance`` and the default
``--pconv pconv_pbn_woresbias``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....kernels.splat import softmax_weights, splat_torch_
from .layers import NoiseBatchNorm, PartialConv2d, PartialNoiseBatchNorm, spectral

DOWN, UP = "down", "up"
MIN_WEIGHT = 1e-8  # the release clamps the summed splat weight here


@dataclass(frozen=True)
class FrameNetConfig:
    """Sizes of G_frame; the defaults are the released network (~4M parameters)."""

    ngf: int = 64
    feature_channels: int = 64
    channels_in: int = 3
    channels_out: int = 3
    spectral_norm: bool = True

    @property
    def encoder_channels(self) -> tuple[int, ...]:
        g = self.ngf
        return (self.channels_in, g // 2, g // 2, g // 2, g, g, g, g, self.feature_channels)

    @property
    def decoder_channels(self) -> tuple[int, ...]:
        g = self.ngf
        return (self.feature_channels, g, 2 * g, 4 * g, 4 * g, 2 * g, 2 * g, 2 * g, self.channels_out)

    @property
    def decoder_resampling(self) -> tuple[Optional[str], ...]:
        return (None, DOWN, DOWN, None, UP, UP, None, None)

    @property
    def multiple(self) -> int:
        """The decoder's sides must be a multiple of this (two 2x downsamplings)."""
        return 4


class EncoderBlock(nn.Module):
    """Residual block at full resolution (keys ``ch_a.{0,2,3,5}``, ``ch_b.0``)."""

    def __init__(self, channels_in: int, channels_out: int, spectral_norm: bool):
        super().__init__()

        def conv(a: int, b: int, k: int) -> nn.Module:
            return spectral(nn.Conv2d(a, b, k, padding=k // 2), spectral_norm)

        self.ch_a = nn.Sequential(
            NoiseBatchNorm(channels_in, spectral_norm),
            nn.ReLU(inplace=True),
            conv(channels_in, channels_out, 3),
            NoiseBatchNorm(channels_out, spectral_norm),
            nn.ReLU(inplace=True),
            conv(channels_out, channels_out, 3),
            nn.Identity(),
        )
        if channels_in != channels_out:
            self.ch_b = nn.Sequential(conv(channels_in, channels_out, 1), nn.Identity())
        else:
            self.ch_b = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.ch_a(x) + self.ch_b(x)


class DecoderBlock(nn.Module):
    """Partial-convolution residual block, optionally halving or doubling the size."""

    def __init__(self, channels_in: int, channels_out: int, resample: Optional[str], spectral_norm: bool):
        super().__init__()
        self.bn_noise1 = PartialNoiseBatchNorm(channels_in, spectral_norm)
        self.bn_noise2 = PartialNoiseBatchNorm(channels_out, spectral_norm)
        self.conv_aa = spectral(PartialConv2d(channels_in, channels_out, 3, padding=1), spectral_norm)
        self.conv_ab = spectral(PartialConv2d(channels_out, channels_out, 3, padding=1), spectral_norm)
        self.conv_b = spectral(nn.Conv2d(channels_in, channels_out, 1, bias=False), spectral_norm)
        self.resample = resample
        self.project_skip = resample is not None or channels_in != channels_out

    def _resize(self, x: Tensor, is_mask: bool) -> Tensor:
        if self.resample == DOWN:
            return F.max_pool2d(x, 3, 2, 1) if is_mask else F.avg_pool2d(x, 3, 2, 1)
        if self.resample == UP:
            if is_mask:
                return F.interpolate(x, scale_factor=2.0, mode="nearest")
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, C, H, W]``, ``mask [B, C or 1, H, W]`` -> ``(y [B, O, h, w], mask [B, 1, h, w])``."""
        a = torch.relu_(self.bn_noise1(x, mask))
        a, m = self.conv_aa(a, mask)
        a = torch.relu_(self.bn_noise2(a, m))
        a, m = self.conv_ab(a, m)
        skip = self._resize(self.conv_b(x), False) if self.project_skip else x
        return self._resize(a, False) + skip, self._resize(m, True)


class FrameEncoder(nn.Module):
    """``gblocks``: the last block has one extra output channel, the importance Z."""

    def __init__(self, config: FrameNetConfig):
        super().__init__()
        widths = list(config.encoder_channels)
        widths[-1] += 1
        self.gblocks = nn.Sequential(
            *(EncoderBlock(a, b, config.spectral_norm) for a, b in zip(widths[:-1], widths[1:]))
        )

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        out = self.gblocks(image)
        return out[:, :-1], out[:, -1:]


class FrameDecoder(nn.Module):
    """``eblocks``: partial-convolution blocks; a pixel whose features are all 0 is a hole."""

    def __init__(self, config: FrameNetConfig):
        super().__init__()
        widths = config.decoder_channels
        self.eblocks = nn.Sequential(
            *(
                DecoderBlock(a, b, resample, config.spectral_norm)
                for a, b, resample in zip(widths[:-1], widths[1:], config.decoder_resampling)
            )
        )

    def forward(self, features: Tensor) -> Tensor:
        x, mask = features, (features != 0).to(features.dtype)
        for block in self.eblocks:
            x, mask = block(x, mask)
        return x


class SPADEUnet4SoftmaxSplating(nn.Module):
    """G_frame: :meth:`encode` a picture once, splat (:func:`softmax_splat`), :meth:`decode`."""

    def __init__(self, config: FrameNetConfig = FrameNetConfig()):
        super().__init__()
        self.config = config
        self.encoder = FrameEncoder(config)
        self.projector = FrameDecoder(config)

    def encode(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``image [B, 3, H, W]`` in [-1, 1] -> ``(features [B, 64, H, W], Z [B, 1, H, W])``."""
        return self.encoder(image)

    def decode(self, features: Tensor) -> Tensor:
        """Splatted ``features [B, 64, H, W]`` (H, W multiples of 4) -> frame ``[B, 3, H, W]`` in [-1, 1]."""
        return torch.tanh(self.projector(features))

    def forward(
        self, start: Tensor, end: Tensor, forward_flow: Tensor, backward_flow: Tensor, alpha: Tensor
    ) -> Tensor:
        """One frame between two pictures, as in training.

        Args:
            start, end: ``[B, 3, H, W]`` the first and last frame, in [-1, 1].
            forward_flow: ``[B, 2, H, W]`` displacement ``F_{0->n}`` of each start pixel.
            backward_flow: ``[B, 2, H, W]`` displacement ``F_{N->n}`` of each end pixel.
            alpha: ``[B]`` weight of the forward copy (``1 - n / N``).

        Returns:
            ``[B, 3, H, W]`` frame ``n`` in [-1, 1].
        """
        start_features, start_z = self.encode(start)
        end_features, end_z = self.encode(end)
        accum = softmax_splat(start_features, start_z, forward_flow, alpha)
        accum = accum + softmax_splat(end_features, end_z, backward_flow, 1.0 - alpha)
        return self.decode(normalise_splat(accum))


def importance_weights(features: Tensor, z: Tensor, scale: Tensor) -> Tensor:
    """``[B, C + 1, H, W]``: ``[features * w, w]`` with ``w = exp(Z - max Z) * scale`` per picture."""
    weight = softmax_weights(z) * scale.view(-1, 1, 1, 1)
    return torch.cat((features * weight, weight), dim=1)


def softmax_splat(features: Tensor, z: Tensor, displacement: Tensor, scale: Tensor) -> Tensor:
    """Splat every pixel's ``[features * w, w]`` to ``pixel + displacement`` (bilinear footprint).

    Differentiable in ``features`` and ``z`` (plain torch, :func:`..kernels.splat_torch_`).

    Args:
        features: ``[B, C, H, W]``; z: ``[B, 1, H, W]`` importance.
        displacement: ``[B, 2, H, W]`` in pixels; positions outside the frame drop the pixel.
        scale: ``[B]`` weight of this copy (alpha or 1 - alpha).

    Returns:
        ``[B, C + 1, H, W]`` weighted sums with the summed weight last.
    """
    batch, channels, height, width = features.shape
    values = importance_weights(features, z, scale).flatten(2)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=features.dtype, device=features.device),
        torch.arange(width, dtype=features.dtype, device=features.device),
        indexing="ij",
    )
    ones = torch.ones(height * width, dtype=features.dtype, device=features.device)
    out = []
    for b in range(batch):
        accum = features.new_zeros((channels + 1, height * width))
        x = xs.reshape(-1) + displacement[b, 0].reshape(-1)
        y = ys.reshape(-1) + displacement[b, 1].reshape(-1)
        out.append(splat_torch_(accum, values[b], x, y, ones, width))
    return torch.stack(out).view(batch, channels + 1, height, width)


def normalise_splat(accum: Tensor) -> Tensor:
    """``[B, C + 1, H, W]`` sums -> ``[B, C, H, W]`` features (0 where nothing landed: a hole)."""
    return accum[:, :-1] / accum[:, -1:].clamp_min(MIN_WEIGHT)
