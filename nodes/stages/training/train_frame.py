"""Train G_frame, the feature-splatting frame network.

    python -m text2cinemagraph train-frame --data DIR --out runs/gframe \\
        [--vgg-weights vgg19-dcbb9e9d.pth]

As in the release (its stage 1, on ground-truth flow): a start frame from the
first third of a clip, an end frame from the last third and a target frame
between them; the start frame's features are splatted forward along the
Euler-integrated flow and the end frame's backward, blended with weight
``1 - n/N`` and decoded. Losses: LSGAN + feature matching + 10 x L1 + 10 x
VGG19 perceptual (only with ``--vgg-weights``: torchvision's ``vgg19``
ImageNet state dict as a local file, which cannot be downloaded here).
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional

import torch
from torch import Tensor

from ....kernels import euler_integrate
from ..networks import FrameNetConfig, build_network
from ..networks.checkpoints import FRAME
from .common import GanTrainer, TrainSettings, add_common_arguments, run_training, settings_from_arguments
from .data import FrameClips
from .losses import perceptual_loss, release_init

L1_WEIGHT = 10.0


def dense_displacements(flow: Tensor, steps: int, total: int) -> tuple[Tensor, Tensor]:
    """``(F_{0->steps}, F_{total->steps})`` as ``[2, H, W]`` fields of one ``[2, H, W]`` flow."""
    motion = euler_integrate(flow, total)
    height, width = flow.shape[-2:]
    forward = flow.new_zeros((2, height * width))
    backward = flow.new_zeros((2, height * width))
    forward[:, motion.sources] = motion.forward[steps]
    backward[:, motion.sources] = motion.backward[steps]
    return forward.view(2, height, width), backward.view(2, height, width)


def train_frame(
    settings: TrainSettings, config: Optional[FrameNetConfig] = None, vgg_weights: Optional[str] = None
) -> list[dict]:
    """Train and return the logged losses; checkpoints go to ``settings.out``."""
    torch.manual_seed(settings.seed)
    generator = build_network(FRAME, config)
    release_init(generator)
    dataset = FrameClips(settings.data, settings.crop)
    trainer = GanTrainer(generator, FRAME, 8, 3, settings)
    device = trainer.device
    vgg = perceptual_loss(vgg_weights)
    if vgg is not None:
        vgg = vgg.to(device)
    else:
        logging.getLogger("text2cinemagraph.training").warning("no --vgg-weights: training without the VGG loss")

    def supervised(fake: Tensor, real: Tensor) -> dict:
        terms = {"G_L1": L1_WEIGHT * torch.nn.functional.l1_loss(fake, real)}
        if vgg is not None:
            terms["G_VGG"] = settings.lambda_feat * vgg(fake, real)
        return terms

    def make_step(batch: dict) -> tuple:
        start, end, target = (batch[k].to(device) for k in ("start", "end", "middle"))
        flow = batch["flow"].to(device)
        fields = [dense_displacements(f, int(s[0]), int(s[1])) for f, s in zip(flow, batch["steps"])]
        forward = torch.stack([f for f, _ in fields])
        backward = torch.stack([b for _, b in fields])
        alpha = (1.0 - batch["steps"][:, 0].float() / batch["steps"][:, 1].float()).to(device)
        condition = torch.cat((start, end, flow), 1)
        return condition, lambda: generator(start, end, forward, backward, alpha), target, supervised

    return run_training(trainer, dataset, make_step, settings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train-frame`` command's arguments (``python -m text2cinemagraph train-frame``)."""
    add_common_arguments(parser)
    parser.add_argument("--vgg-weights", help="torchvision vgg19 ImageNet weights (.pth/.safetensors) for the VGG loss")


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` (from :func:`add_arguments`) say; bad input raises ``InputError``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_frame(settings_from_arguments(args), vgg_weights=args.vgg_weights)
    return 0
