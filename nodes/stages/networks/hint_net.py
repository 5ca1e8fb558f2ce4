"""The direction-hint flow network ``SPADEUnet4MaskMotion`` (from SLR-SFS).

A plain U-Net of eight 4x4 stride-2 spectral-norm convolutions and a mirrored
decoder, SPADE-conditioned on the whole input: natural-image RGB in [-1, 1],
the mask, and a dense 2-channel direction hint (flow / 64). No text. Predicts
flow / 64 through tanh. Layout and key names as in the authors' release
(``models/networks.py``, class ``SPADEUnet4MaskMotion``, trained with
``--norm sync:spectral_instance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import SPADE, spectral, upsample2x

MASK_CHANNEL = 3  # the release upsamples this decoder channel with nearest neighbours


@dataclass(frozen=True)
class HintNetConfig:
    """Sizes of the hint network; the defaults are the released one (~16M parameters)."""

    channels_in: int = 6  # RGB + mask + hint (dx, dy)
    channels_out: int = 2
    num_filters: int = 32
    spade_hidden: int = 128
    spectral_norm: bool = True
    tanh: bool = True

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (eight stride-2 convolutions)."""
        return 256


class SPADEUnet4MaskMotion(nn.Module):
    """``forward(x [B, 6, H, W]) -> [B, 2, H, W]`` (flow / 64)."""

    def __init__(self, config: HintNetConfig = HintNetConfig()):
        super().__init__()
        self.config = config
        f, c_in, sn = config.num_filters, config.channels_in, config.spectral_norm

        def down(a: int, b: int) -> nn.Module:
            return spectral(nn.Conv2d(a, b, 4, stride=2, padding=1), sn)

        def conv(a: int, b: int) -> nn.Module:
            return spectral(nn.Conv2d(a, b, 3, padding=1), sn)

        self.conv1 = down(c_in, f)
        self.conv2 = down(f, 2 * f)
        self.conv3 = down(2 * f, 4 * f)
        self.conv4 = down(4 * f, 8 * f)
        self.conv5 = down(8 * f, 8 * f)
        self.conv6 = down(8 * f, 8 * f)
        self.conv7 = down(8 * f, 8 * f)
        self.conv8 = down(8 * f, 8 * f)
        self.dconv1 = conv(8 * f, 8 * f)
        self.dconv2 = conv(16 * f, 8 * f)
        self.dconv3 = conv(16 * f, 8 * f)
        self.dconv4 = conv(16 * f, 8 * f)
        self.dconv5 = conv(16 * f, 4 * f)
        self.dconv6 = conv(8 * f, 2 * f)
        self.dconv7 = conv(4 * f, f)
        self.dconv8 = conv(2 * f, config.channels_out)

        groups = (3, 1, c_in - 4)

        def spade(channels: int) -> SPADE:
            return SPADE(channels, c_in, config.spade_hidden, groups=groups)

        self.spade_layer = spade(f)  # after dconv7
        self.spade_layer2_0 = spade(2 * f)  # after conv2
        self.spade_layer2_1 = spade(2 * f)  # after dconv6
        self.spade_layer4_0 = spade(4 * f)  # after conv3
        self.spade_layer4_1 = spade(4 * f)  # after dconv5
        for i in range(8):  # after conv4 .. conv7, then dconv1 .. dconv4
            setattr(self, f"spade_layer8_{i}", spade(8 * f))
        self.leaky_relu = nn.LeakyReLU(0.2)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, 6, H, W]`` (H, W multiples of 256) -> ``[B, 2, H, W]``."""
        act = self.leaky_relu
        e1 = self.conv1(x)
        e2 = self.spade_layer2_0(self.conv2(act(e1)), x)
        e3 = self.spade_layer4_0(self.conv3(act(e2)), x)
        e4 = self.spade_layer8_0(self.conv4(act(e3)), x)
        e5 = self.spade_layer8_1(self.conv5(act(e4)), x)
        e6 = self.spade_layer8_2(self.conv6(act(e5)), x)
        e7 = self.spade_layer8_3(self.conv7(act(e6)), x)
        d = self.relu(self.conv8(act(e7)))
        stages = (
            (self.dconv1, self.spade_layer8_4, e7),
            (self.dconv2, self.spade_layer8_5, e6),
            (self.dconv3, self.spade_layer8_6, e5),
            (self.dconv4, self.spade_layer8_7, e4),
            (self.dconv5, self.spade_layer4_1, e3),
            (self.dconv6, self.spade_layer2_1, e2),
            (self.dconv7, self.spade_layer, e1),
        )
        d = upsample2x(d, MASK_CHANNEL)
        for dconv, spade, skip in stages:
            d = upsample2x(spade(dconv(d), x), MASK_CHANNEL)
            d = self.relu(torch.cat((d, upsample2x(skip, MASK_CHANNEL)), 1))
        out = self.dconv8(d)
        return torch.tanh(out) if self.config.tanh else out
