"""Train G_flow (text-conditioned) or the direction-hint flow network.

    python -m text2cinemagraph train-flow --data DIR --out runs/gflow \\
        --captions captions.txt --text-encoder SD15_DIFFUSERS_DIR --sd-checkpoint sd15.safetensors

    python -m text2cinemagraph train-flow --network hint --data DIR --out runs/hint

As in the release: input = natural picture in [-1, 1] + mask (+ dense hint / 64
for the hint network), target = flow / 64, losses = LSGAN + feature matching
+ 10 x end-point error, batch 16, crop 512, 100 + 100 epochs at lr 2e-4. G_flow
reads the CLIP ViT-L/14 last hidden state of each clip's caption; its
cross-attention blocks start from an SD1.x UNet's (``--sd-checkpoint``) and
their query/key projections stay frozen.
"""

from __future__ import annotations

import argparse
import logging
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ....kernels.errors import InputError
from ..networks import FLOW_NORM, FlowNetConfig, HintNetConfig, build_network
from ..networks.checkpoints import FLOW, HINT, read_state_dict
from ..networks.flow_net import sd_cross_attention_weights
from .common import GanTrainer, TrainSettings, add_common_arguments, run_training, settings_from_arguments
from .data import FlowClips, read_captions
from .losses import end_point_error, release_init

EPE_WEIGHT = 10.0
TextEncoder = Callable[[list[str]], Tensor]  # captions -> [B, T, context_dim]


def clip_text_encoder(path: str, device: Union[str, torch.device]) -> TextEncoder:
    """CLIP ViT-L/14 from a local diffusers-style folder (``tokenizer/``, ``text_encoder/``) or a CLIP folder."""
    import os

    from transformers import CLIPTextModel, CLIPTokenizer

    def sub(name: str) -> dict:
        return {"subfolder": name} if os.path.isdir(os.path.join(path, name)) else {}

    tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True, model_max_length=77, **sub("tokenizer"))
    model = CLIPTextModel.from_pretrained(path, local_files_only=True, **sub("text_encoder")).to(device).eval()
    cache: dict[str, Tensor] = {}

    def encode(captions: list[str]) -> Tensor:
        todo = sorted({c for c in captions if c not in cache})
        if todo:
            ids = tokenizer(todo, max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                hidden = model(ids.to(device))[0].float().cpu()
            cache.update(zip(todo, hidden))
        return torch.stack([cache[c] for c in captions])

    return encode


def zero_text_encoder(context_dim: int, tokens: int = 77) -> TextEncoder:
    """A stand-in without captions: the network learns to ignore the text."""
    return lambda captions: torch.zeros(len(captions), tokens, context_dim)


def initialise_from_sd(network: torch.nn.Module, path: str) -> int:
    """Copy an SD1.x UNet's cross-attention blocks into G_flow; returns the number of tensors copied."""
    state, _ = read_state_dict(path, "--sd-checkpoint")
    weights = sd_cross_attention_weights(state)
    if not weights:
        raise InputError("--sd-checkpoint", "holds no SD1.x UNet (model.diffusion_model.input_blocks.4.1...) weights")
    own = network.state_dict()
    bad = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise InputError("--sd-checkpoint", f"does not fit G_flow's cross-attention blocks: {', '.join(bad[:4])}")
    network.load_state_dict(weights, strict=False)
    return len(weights)


def train_flow(
    settings: TrainSettings,
    network: str = FLOW,
    config: Optional[Union[FlowNetConfig, HintNetConfig]] = None,
    text_encoder: Optional[TextEncoder] = None,
    captions: Optional[dict[str, str]] = None,
    sd_checkpoint: Optional[str] = None,
) -> list[dict]:
    """Train and return the logged losses; checkpoints go to ``settings.out``."""
    torch.manual_seed(settings.seed)
    generator = build_network(network, config)
    release_init(generator)
    frozen: tuple[str, ...] = ()
    if network == FLOW:
        if sd_checkpoint:
            initialise_from_sd(generator, sd_checkpoint)
        frozen = tuple(generator.frozen_parameter_names())
        if text_encoder is None:
            text_encoder = zero_text_encoder(generator.config.context_dim)
    dataset = FlowClips(settings.data, settings.crop, hints=network == HINT, captions=captions)
    channels_in = generator.config.channels_in
    trainer = GanTrainer(generator, network, channels_in, 2, settings, frozen=frozen)
    device = trainer.device

    def make_step(batch: dict) -> tuple:
        parts = [batch["image"], batch["mask"]] + ([batch["hint"] / FLOW_NORM] if network == HINT else [])
        condition = torch.cat(parts, 1).to(device)
        target = (batch["flow"] / FLOW_NORM).to(device)
        if network == FLOW:
            context = text_encoder(list(batch["caption"])).to(device)
            generate = lambda: generator(condition, context)  # noqa: E731
        else:
            generate = lambda: generator(condition)  # noqa: E731
        return condition, generate, target, lambda fake, real: {"G_EPE": EPE_WEIGHT * end_point_error(fake, real)}

    return run_training(trainer, dataset, make_step, settings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train-flow`` command's arguments (``python -m text2cinemagraph train-flow``)."""
    parser.add_argument("--network", choices=[FLOW, HINT], default=FLOW, help="flow: G_flow; hint: direction network")
    add_common_arguments(parser)
    parser.add_argument("--captions", help="'<name>: caption' lines (G_flow's text; the release used BLIP-2 captions)")
    parser.add_argument("--text-encoder", help="local SD1.x diffusers folder (or CLIP ViT-L/14 folder) for captions")
    parser.add_argument("--sd-checkpoint", help="SD1.x .safetensors whose cross-attention blocks start G_flow's")


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` (from :func:`add_arguments`) say; bad input raises :class:`InputError`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_arguments(args)
    encoder = None
    if args.network == FLOW and args.text_encoder:
        encoder = clip_text_encoder(args.text_encoder, settings.device)
    elif args.network == FLOW:
        logging.warning("no --text-encoder: G_flow is trained with an empty text context")
    captions = read_captions(args.captions) if args.captions else None
    train_flow(settings, args.network, text_encoder=encoder, captions=captions, sd_checkpoint=args.sd_checkpoint)
    return 0
