"""The release's training losses (pix2pixHD, Wang et al. 2018).

A multi-scale PatchGAN discriminator (2 scales, 3 layers, 64 filters,
instance norm) trained with the least-squares GAN loss; for the generator
the GAN loss, the discriminator feature-matching loss (weight 10), and
either the end-point error x10 (flow networks) or L1 x10 plus an optional
VGG19 perceptual loss x10 (G_frame). The VGG weights cannot be downloaded
here: pass torchvision's ``vgg19`` state dict as a local file.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # up to relu1_1 .. relu5_1


def release_init(module: nn.Module) -> None:
    """The release's initialisation: convolution weights from N(0, 0.02).

    Its spectral-norm convolutions keep PyTorch's default (the release's
    initialiser writes to the normalised weight, which the next forward
    recomputes), and so do ours.
    """
    for child in module.modules():
        plain = isinstance(child, nn.Conv2d) and not hasattr(child, "weight_orig")
        if plain and isinstance(child.weight, nn.Parameter):
            nn.init.normal_(child.weight, 0.0, 0.02)


class PatchDiscriminator(nn.Module):
    """One scale: 4x4 convolutions, stride 2 then 1, instance norm, LeakyReLU(0.2); returns every layer's output."""

    def __init__(self, channels_in: int, ndf: int = 64, layers: int = 3):
        super().__init__()
        pad = math.ceil(3 / 2)
        blocks = [nn.Sequential(nn.Conv2d(channels_in, ndf, 4, 2, pad), nn.LeakyReLU(0.2, True))]
        width = ndf
        for n in range(1, layers + 1):
            previous, width = width, min(width * 2, 512)
            stride = 2 if n < layers else 1
            conv = nn.Conv2d(previous, width, 4, stride, pad)
            blocks.append(nn.Sequential(conv, nn.InstanceNorm2d(width), nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, 1, pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs on the input and its 2x, 4x ... downsampled copies."""

    def __init__(self, channels_in: int, ndf: int = 64, layers: int = 3, scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(channels_in, ndf, layers) for _ in range(scales))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(scale(x))
        return results


def lsgan_loss(predictions: list[list[Tensor]], real: bool) -> Tensor:
    """Least-squares GAN loss of the last layer of every scale, summed over scales."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(p[-1], torch.full_like(p[-1], target)) for p in predictions)


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]], weight: float = 10.0) -> Tensor:
    """L1 between the discriminator's intermediate features of fake and real, pix2pixHD's weighting."""
    layers = len(fake[0]) - 1
    scale = weight * (4.0 / layers) / len(fake)
    total = fake[0][0].new_zeros(())
    for f_scale, r_scale in zip(fake, real):
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + F.l1_loss(f, r.detach()) * scale
    return total


def end_point_error(predicted: Tensor, target: Tensor) -> Tensor:
    """Mean Euclidean distance between two ``[B, 2, H, W]`` flows."""
    return (predicted - target).norm(dim=1).mean()


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss on VGG19 features (images in [-1, 1], as the release feeds them)."""

    def __init__(self, weights_path: str):
        super().__init__()
        from torchvision.models import vgg19

        from ..networks.checkpoints import read_state_dict

        features = vgg19(weights=None).features
        state, _ = read_state_dict(weights_path, "--vgg-weights")
        state = {k.removeprefix("features."): v for k, v in state.items()}
        features.load_state_dict(state, strict=False)
        missing = [k for k in features.state_dict() if k not in state and int(k.split(".")[0]) < VGG_SLICES[-1][1]]
        if missing:
            from ....kernels.errors import InputError

            missing_text = ", ".join(missing[:4])
            raise InputError("--vgg-weights", f"is not a torchvision vgg19 state dict (missing {missing_text})")
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in VGG_SLICES)
        self.requires_grad_(False)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        total = fake.new_zeros(())
        x, y = fake, real
        for weight, block in zip(VGG_WEIGHTS, self.slices):
            x, y = block(x), block(y)
            total = total + weight * F.l1_loss(x, y.detach())
        return total


def perceptual_loss(weights_path: Optional[str]) -> Optional[VGGLoss]:
    return VGGLoss(weights_path) if weights_path else None
