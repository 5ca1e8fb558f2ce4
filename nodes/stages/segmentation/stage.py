"""The entry point: :func:`segment_picture`, a picture and a vocabulary in, a mask out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ....kernels.errors import InputError
from ..inputs import single_picture
from .backends import BACKENDS, ModelHost, device_host, load_segmenter, require_odise
from .folders import inspect_model_dir, missing_model_error
from .labels import DEFAULT_VOCABULARY, parse_vocabulary
from .scores import overlay_preview, threshold_mask

DEFAULT_THRESHOLD = 0.4


@dataclass(frozen=True)
class Segmentation:
    mask: Tensor  # [H, W] float 0/1: the union of the matched classes
    overlay: Tensor  # [H, W, 3] the picture with the mask tinted
    probabilities: Tensor  # [K, H, W] per vocabulary class
    probability: Tensor  # [H, W] of belonging to any of the classes (mask = probability >= threshold)
    classes: tuple[tuple[str, ...], ...]
    backend: str
    unknown_words: tuple[str, ...] = ()


def _rgb(image: Tensor) -> Tensor:
    picture = single_picture(image).float().cpu()
    if picture.shape[-1] == 1:
        return picture.expand(-1, -1, 3)
    return picture[..., :3]


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise InputError("threshold", f"is {threshold}; it is a probability between 0 and 1 (0.4 is a good start)")
    return threshold


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError("backend", f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def segment_picture(
    image: Tensor,
    vocabulary_text: str | Sequence[Sequence[str]] = DEFAULT_VOCABULARY,
    backend: str = "auto",
    model_dir: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    device: torch.device | str | None = None,
    model_roots: Sequence[str] = (),
    host: ModelHost | None = None,
) -> Segmentation:
    """Segment the vocabulary's classes in a picture.

    Args:
        image: ``[1, H, W, C]`` or ``[H, W, C]`` float 0..1 (any size; C = 1, 3 or 4).
        vocabulary_text: ``"water, river; sky"`` or ready classes ``[["water", "river"], ["sky"]]``.
        backend: one of :data:`BACKENDS`; ``auto`` follows the folder's config.json.
        model_dir: the model folder (a Hugging Face folder, or one holding an ODISE checkpoint).
        threshold: minimum probability of a masked pixel.
        device: where to run (the model is cached on the CPU).
        host: instead of ``device``, how to run the model (ComfyUI's model management in the node).
        model_roots: where models are looked for, named in the message when ``model_dir`` is None.

    Returns:
        :class:`Segmentation` with ``mask`` ``[H, W]`` at the picture's size.
    """
    picture = _rgb(image)
    if isinstance(vocabulary_text, str):
        classes = parse_vocabulary(vocabulary_text)
    else:
        classes = parse_vocabulary("; ".join(", ".join(words) for words in vocabulary_text))
    threshold = _check_threshold(threshold)
    backend = _check_backend(backend)
    if backend == "odise":
        require_odise()
    if model_dir is None:
        raise missing_model_error(backend, model_roots)
    concrete = inspect_model_dir(model_dir, backend)
    if concrete == "odise":
        require_odise()
    segmenter = load_segmenter(model_dir, concrete)
    probabilities, union, unknown = segmenter.probabilities(picture, classes, host or device_host(device))
    mask = threshold_mask(probabilities, union, threshold, classes)
    return Segmentation(
        mask=mask.float(),
        overlay=overlay_preview(picture, mask, probabilities),
        probabilities=probabilities,
        probability=union,
        classes=tuple(tuple(words) for words in classes),
        backend=concrete,
        unknown_words=tuple(unknown),
    )
