"""G_flow: the text-conditioned flow network ``SPADEXAttnUnet4MotionSD``.

A U-Net over the natural twin (RGB in [-1, 1]) and the mask that predicts
the Eulerian flow divided by 64 (tanh output), with Stable Diffusion
cross-attention to the artistic prompt's CLIP ViT-L/14 hidden states in its
four 32- and 16-pixel encoder stages, its 8-pixel middle and its first four
decoder stages (at a 512x512 input). Layout and key names as in the authors'
release (``models/networks.py``, class ``SPADEXAttnUnet4MotionSD``); the
cross-attention blocks are initialised from SD1.x for training (see
:data:`SD_BLOCKS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import SPADE, CrossAttentionBlock

FLOW_NORM = 64.0  # the network predicts flow / 64 (the release's motion_norm)

# Stable Diffusion UNet blocks the release copies into G_flow's cross-attention
# blocks before training (``modify_sd2pix2pixHD_keys`` in its networks.py).
SD_BLOCKS = {
    "input_blocks.4.1": "attn_input_block_1",
    "input_blocks.5.1": "attn_input_block_2",
    "input_blocks.7.1": "attn_input_block_3",
    "input_blocks.8.1": "attn_input_block_4",
    "middle_block.1": "attn_middle_block",
    "output_blocks.4.1": "attn_output_block_4",
    "output_blocks.5.1": "attn_output_block_3",
    "output_blocks.6.1": "attn_output_block_2",
    "output_blocks.7.1": "attn_output_block_1",
}


@dataclass(frozen=True)
class FlowNetConfig:
    """Sizes of G_flow; the defaults are the released network (~320M parameters)."""

    channels_in: int = 4  # RGB + mask
    channels_out: int = 2
    num_filters: int = 320
    heads: int = 8
    context_dim: int = 768  # CLIP ViT-L/14 (SD1.x)
    spade_hidden: int = 128
    norm_groups: int = 32
    tanh: bool = True

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (six 2x2 poolings)."""
        return 64


class SPADEXAttnUnet4MotionSD(nn.Module):
    """G_flow. ``forward(x [B, 4, H, W], context [B, T, 768]) -> [B, 2, H, W]`` (flow / 64)."""

    def __init__(self, config: FlowNetConfig = FlowNetConfig()):
        super().__init__()
        self.config = config
        f, c_in = config.num_filters, config.channels_in
        self.conv1 = nn.Conv2d(c_in, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3 = nn.Conv2d(f, 2 * f, 3, padding=1)
        self.conv4 = nn.Conv2d(2 * f, 2 * f, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * f, 2 * f, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * f, 4 * f, 3, padding=1)
        self.conv7 = nn.Conv2d(4 * f, 4 * f, 3, padding=1)
        self.conv8 = nn.Conv2d(4 * f, 4 * f, 3, padding=1)
        self.dconv1 = nn.Conv2d(4 * f, 4 * f, 3, padding=1)
        self.dconv2 = nn.Conv2d(8 * f, 4 * f, 3, padding=1)
        self.dconv3 = nn.Conv2d(8 * f, 2 * f, 3, padding=1)
        self.dconv4 = nn.Conv2d(4 * f, 2 * f, 3, padding=1)
        self.dconv5 = nn.Conv2d(4 * f, 2 * f, 3, padding=1)
        self.dconv6 = nn.Conv2d(4 * f, f, 3, padding=1)
        self.dconv7 = nn.Conv2d(2 * f, f, 3, padding=1)
        self.dconv8 = nn.Conv2d(2 * f, config.channels_out, 3, padding=1)

        def spade(channels: int) -> SPADE:
            return SPADE(channels, c_in, config.spade_hidden, groups=(3, c_in - 3))

        # Names as in the release; their numbers do not follow the widths.
        self.spade_layer = spade(f)  # after dconv7
        self.spade_layer2_0 = spade(f)  # after conv2
        self.spade_layer2_1 = spade(f)  # after dconv6
        self.spade_layer4_0 = spade(2 * f)  # after conv3
        self.spade_layer4_1 = spade(2 * f)  # after dconv5
        self.spade_layer8_0 = spade(2 * f)  # after conv4, conv5, conv6, conv7
        self.spade_layer8_1 = spade(2 * f)
        self.spade_layer8_2 = spade(4 * f)
        self.spade_layer8_3 = spade(4 * f)
        self.spade_layer8_4 = spade(4 * f)  # after dconv1 .. dconv4
        self.spade_layer8_5 = spade(4 * f)
        self.spade_layer8_6 = spade(2 * f)
        self.spade_layer8_7 = spade(2 * f)

        def xattn(channels: int) -> CrossAttentionBlock:
            heads = config.heads
            return CrossAttentionBlock(channels, heads, channels // heads, config.context_dim, config.norm_groups)

        self.attn_input_block_1 = xattn(2 * f)
        self.attn_input_block_2 = xattn(2 * f)
        self.attn_input_block_3 = xattn(4 * f)
        self.attn_input_block_4 = xattn(4 * f)
        self.attn_middle_block = xattn(4 * f)
        self.attn_output_block_4 = xattn(4 * f)
        self.attn_output_block_3 = xattn(4 * f)
        self.attn_output_block_2 = xattn(2 * f)
        self.attn_output_block_1 = xattn(2 * f)

        self.pool = nn.AvgPool2d(2, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.leaky_relu = nn.LeakyReLU(0.2)
        self.relu = nn.ReLU()

    def encode(self, x: Tensor, context: Tensor) -> list[Tensor]:
        """Encoder features ``[e1 .. e8]`` at 1/2, 1/4, 1/8, 1/16, 1/16, 1/32, 1/32, 1/64 of the input."""
        act = self.leaky_relu
        e1 = self.pool(self.conv1(x))
        e2 = self.spade_layer2_0(self.pool(self.conv2(act(e1))), x)
        e3 = self.spade_layer4_0(self.pool(self.conv3(act(e2))), x)
        e4 = self.attn_input_block_1(self.spade_layer8_0(self.pool(self.conv4(act(e3))), x), context)
        e5 = self.attn_input_block_2(self.spade_layer8_1(self.conv5(act(e4)), x), context)
        e6 = self.attn_input_block_3(self.spade_layer8_2(self.pool(self.conv6(act(e5))), x), context)
        e7 = self.attn_input_block_4(self.spade_layer8_3(self.conv7(act(e6)), x), context)
        e8 = self.attn_middle_block(self.pool(self.conv8(act(e7))), context)
        return [e1, e2, e3, e4, e5, e6, e7, e8]

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x [B, 4, H, W]`` (RGB in [-1, 1], mask in {0, 1}; H, W multiples of 64),
        ``context [B, T, context_dim]`` -> flow / 64 ``[B, 2, H, W]`` (in [-1, 1] with tanh)."""
        e1, e2, e3, e4, e5, e6, e7, e8 = self.encode(x, context)
        relu, up = self.relu, self.up
        d = self.attn_output_block_4(self.spade_layer8_4(self.dconv1(up(relu(e8))), x), context)
        d = self.attn_output_block_3(self.spade_layer8_5(self.dconv2(relu(torch.cat((d, e7), 1))), x), context)
        d = self.attn_output_block_2(self.spade_layer8_6(self.dconv3(up(relu(torch.cat((d, e6), 1)))), x), context)
        d = self.attn_output_block_1(self.spade_layer8_7(self.dconv4(relu(torch.cat((d, e5), 1))), x), context)
        d = self.spade_layer4_1(self.dconv5(up(relu(torch.cat((d, e4), 1)))), x)
        d = self.spade_layer2_1(self.dconv6(up(relu(torch.cat((d, e3), 1)))), x)
        d = self.spade_layer(self.dconv7(up(relu(torch.cat((d, e2), 1)))), x)
        out = self.dconv8(up(relu(torch.cat((d, e1), 1))))
        return torch.tanh(out) if self.config.tanh else out

    def frozen_parameter_names(self) -> list[str]:
        """The cross-attention query and key projections, frozen in training as in the release."""
        return [name for name, _ in self.named_parameters() if ".attn2.to_q." in name or ".attn2.to_k." in name]


def sd_cross_attention_weights(sd_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """G_flow cross-attention weights from an SD1.x UNet state dict (for training).

    Accepts original-layout keys with or without the ``model.diffusion_model.``
    prefix; self-attention (``attn1``, ``norm1``) entries are left out.
    """
    out = {}
    for key, value in sd_state.items():
        short = key.removeprefix("model.diffusion_model.")
        for sd_block, ours in SD_BLOCKS.items():
            if short.startswith(sd_block + ".") and ".attn1." not in short and ".norm1." not in short:
                out[ours + short[len(sd_block) :]] = value
    return out
