"""What both training scripts share: the GAN step, the schedule, checkpoints, logging.

The schedule is the release's (pix2pixHD's): Adam with lr 2e-4 and betas
(0.5, 0.999) for the generator and the discriminator, constant for
``epochs`` epochs, then decaying linearly to 0 over ``decay_epochs`` more.
Each step updates the generator, then the discriminator on the same batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from ..files import atomic_write
from ..networks.checkpoints import check_state_dict, read_state_dict, save_network
from .losses import MultiscaleDiscriminator, feature_matching_loss, lsgan_loss

log = logging.getLogger("text2cinemagraph.training")


@dataclass
class TrainSettings:
    """Options common to both scripts; the defaults are the release's."""

    data: str
    out: str
    crop: int = 512
    batch_size: int = 16
    accumulate: int = 1  # micro-batches per optimiser step (batch_size each)
    epochs: int = 100
    decay_epochs: int = 100
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_feat: float = 10.0
    ndf: int = 64
    layers_d: int = 3
    scales_d: int = 2
    workers: int = 4
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    amp: bool = False
    max_steps: Optional[int] = None  # stop early (smoke tests, trial runs)
    save_every: int = 1000  # optimiser steps
    log_every: int = 50
    seed: int = 0
    resume: bool = False
    extra: dict = field(default_factory=dict)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainSettings(data="", out="")
    parser.add_argument("--data", required=True, help="folder of clips in the Eulerian dataset's layout (see README)")
    parser.add_argument("--out", required=True, help="folder for the checkpoints (latest_net_G.safetensors) and log")
    parser.add_argument("--crop", type=int, default=defaults.crop, help="random square crop (default 512)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="samples per micro-batch (16)")
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step, for small GPUs (1)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs at the full rate (100)")
    parser.add_argument("--decay-epochs", type=int, default=defaults.decay_epochs, help="epochs of linear decay (100)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate (2e-4)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes (4)")
    parser.add_argument("--device", default=defaults.device, help="torch device (default: cuda when available)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast on the GPU")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--save-every", type=int, default=defaults.save_every, help="steps between checkpoints")
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between log lines")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")


def settings_from_arguments(args: argparse.Namespace, **extra) -> TrainSettings:
    return TrainSettings(
        data=args.data, out=args.out, crop=args.crop, batch_size=args.batch_size, accumulate=args.accumulate,
        epochs=args.epochs, decay_epochs=args.decay_epochs, lr=args.lr, workers=args.workers, device=args.device,
        amp=args.amp, max_steps=args.max_steps, save_every=args.save_every, log_every=args.log_every,
        seed=args.seed, resume=args.resume, extra=extra,
    )


def learning_rate(settings: TrainSettings, epoch: float) -> float:
    """Constant for ``epochs``, then linear to 0 over ``decay_epochs``."""
    if epoch < settings.epochs or settings.decay_epochs <= 0:
        return settings.lr
    return settings.lr * max(0.0, 1.0 - (epoch - settings.epochs) / settings.decay_epochs)


def batches(dataset, settings: TrainSettings) -> Iterator[tuple[float, dict]]:
    """``(epoch as a float, batch)`` forever, reshuffled every epoch."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        drop_last=len(dataset) >= settings.batch_size,
        num_workers=settings.workers,
        persistent_workers=settings.workers > 0,
    )
    epoch = 0
    while True:
        for i, batch in enumerate(loader):
            yield epoch + i / max(1, len(loader)), batch
        epoch += 1


class GanTrainer:
    """A generator and pix2pixHD's discriminator with their optimisers and the release's step."""

    def __init__(self, generator: nn.Module, kind: str, condition_channels: int, output_channels: int,
                 settings: TrainSettings, frozen: tuple[str, ...] = ()):
        self.settings = settings
        self.kind = kind
        self.device = torch.device(settings.device)
        self.generator = generator.to(self.device).train()
        self.discriminator = MultiscaleDiscriminator(
            condition_channels + output_channels, settings.ndf, settings.layers_d, settings.scales_d
        ).to(self.device)
        from .losses import release_init

        release_init(self.discriminator)
        for name, parameter in self.generator.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
        betas = (settings.beta1, 0.999)
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.optimizer_g = torch.optim.Adam(trainable, lr=settings.lr, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=settings.lr, betas=betas)
        self.step = 0

    def _autocast(self):
        enabled = self.settings.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self, micro_batches: list[tuple[Tensor, Callable, Tensor, Callable]]) -> dict[str, float]:
        """One optimiser step over ``(condition, generate, target, supervised_loss)`` micro-batches.

        ``generate()`` runs the generator; ``supervised_loss(fake, target)``
        returns a dict of weighted supervised terms (EPE, L1, VGG).
        """
        self.optimizer_g.zero_grad(set_to_none=True)
        self.optimizer_d.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        parts = len(micro_batches)
        for condition, generate, target, supervised in micro_batches:
            with self._autocast():
                fake = generate()
                pred_fake_d = self.discriminator(torch.cat((condition, fake.detach()), 1))
                pred_real = self.discriminator(torch.cat((condition, target), 1))
                pred_fake = self.discriminator(torch.cat((condition, fake), 1))
                losses = {
                    "G_GAN": lsgan_loss(pred_fake, True),
                    "G_GAN_Feat": feature_matching_loss(pred_fake, pred_real, self.settings.lambda_feat),
                    **supervised(fake.float(), target.float()),
                }
                loss_g = sum(losses.values())
                d_real, d_fake = lsgan_loss(pred_real, True), lsgan_loss(pred_fake_d, False)
                loss_d = 0.5 * (d_real + d_fake)
            # Each loss reaches only its own network's gradients; both steps use this forward, like the
            # release's (generator update, then discriminator update).
            (loss_g / parts).backward(inputs=[p for p in self.generator.parameters() if p.requires_grad])
            (loss_d / parts).backward(inputs=list(self.discriminator.parameters()))
            losses.update(D_real=d_real, D_fake=d_fake)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / parts
        self.optimizer_g.step()
        self.optimizer_d.step()
        self.step += 1
        return totals

    def set_learning_rate(self, lr: float) -> None:
        for optimizer in (self.optimizer_g, self.optimizer_d):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def save(self) -> None:
        """``latest_net_G.safetensors`` (loadable by the nodes), the discriminator and optimiser state."""
        out = self.settings.out
        os.makedirs(out, exist_ok=True)
        save_network(self.generator, self.kind, os.path.join(out, "latest_net_G.safetensors"))
        state = {
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "step": self.step,
        }
        with atomic_write(os.path.join(out, "training_state.pt")) as partial:
            torch.save(state, partial)

    def resume(self) -> None:
        out = self.settings.out
        path = os.path.join(out, "latest_net_G.safetensors")
        weights, _ = read_state_dict(path, "--resume")
        check_state_dict(self.generator, weights, "--resume", path)
        self.generator.load_state_dict(weights)
        state = torch.load(os.path.join(out, "training_state.pt"), map_location=self.device, weights_only=True)
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.step = int(state["step"])


def run_training(
    trainer: GanTrainer, dataset, make_step: Callable[[dict], tuple], settings: TrainSettings
) -> list[dict]:
    """The loop: schedule, steps, logging to ``out/log.jsonl``, checkpoints. Returns the logged losses."""
    torch.manual_seed(settings.seed)
    if settings.resume:
        trainer.resume()
    steps_per_epoch = max(1, math.ceil(len(dataset) / (settings.batch_size * settings.accumulate)))
    total = (settings.epochs + settings.decay_epochs) * steps_per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    os.makedirs(settings.out, exist_ok=True)
    history: list[dict] = []
    stream = batches(dataset, settings)
    started = time.time()
    with open(os.path.join(settings.out, "log.jsonl"), "a", encoding="utf-8") as log_file:
        while trainer.step < total:
            epoch = trainer.step / steps_per_epoch
            trainer.set_learning_rate(learning_rate(settings, epoch))
            micro = [make_step(next(stream)[1]) for _ in range(settings.accumulate)]
            losses = trainer.train_step(micro)
            record = {"step": trainer.step, "epoch": round(epoch, 3), **{k: round(v, 6) for k, v in losses.items()}}
            history.append(record)
            if trainer.step % settings.log_every == 0 or trainer.step == total:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("step %d/%d %.0fs %s", trainer.step, total, time.time() - started, record)
            if trainer.step % settings.save_every == 0 or trainer.step == total:
                trainer.save()
    return history
