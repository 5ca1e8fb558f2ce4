"""Per-class probability maps from model outputs, the mask they give, and its preview."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ....kernels.errors import InputError

_PALETTE = torch.tensor(
    [[0.0, 0.55, 1.0], [1.0, 0.4, 0.1], [0.25, 0.9, 0.3], [1.0, 0.85, 0.0], [0.8, 0.3, 1.0], [0.0, 0.9, 0.85]]
)


def clipseg_class_probabilities(logits: Tensor, prompt_class: Sequence[int], num_classes: int) -> Tensor:
    """``[P, h, w]`` CLIPSeg logits of P prompts -> ``[K, h, w]`` class probabilities.

    A class's probability is the maximum sigmoid probability over its prompts (synonyms).
    """
    probabilities = logits.float().sigmoid()
    owner = torch.as_tensor(list(prompt_class))
    out = probabilities.new_zeros((num_classes, *probabilities.shape[-2:]))
    for k in range(num_classes):
        rows = probabilities[owner == k]
        if len(rows):
            out[k] = rows.amax(0)
    return out


def semantic_label_probabilities(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-pixel distribution over the model's labels, ``[L, h, w]`` (sums to 1 where any query fires).

    ``class_logits`` ``[Q, L + 1]`` (the last column is "no object"), ``mask_logits``
    ``[Q, h, w]``. The scores are Mask2Former's semantic inference (as in the
    Mask2Former paper and transformers' ``post_process_semantic_segmentation``):
    ``sum_q softmax(class)_q,l * sigmoid(mask)_q``, then normalised over labels.
    """
    class_probabilities = class_logits.float().softmax(-1)[:, :-1]
    scores = torch.einsum("ql,qhw->lhw", class_probabilities, mask_logits.float().sigmoid())
    return normalise_scores(scores)


def normalise_scores(scores: Tensor) -> Tensor:
    """``[L, h, w]`` non-negative label scores -> a per-pixel distribution over labels."""
    scores = scores.float().clamp_min(0)
    return scores / scores.sum(0, keepdim=True).clamp_min(1e-6)


def gather_classes(label_probabilities: Tensor, label_ids: Sequence[Sequence[int]]) -> Tensor:
    """``[L, h, w]`` -> ``[K, h, w]``: each class's probability is the sum over its labels."""
    out = label_probabilities.new_zeros((len(label_ids), *label_probabilities.shape[-2:]))
    for k, ids in enumerate(label_ids):
        if ids:
            out[k] = label_probabilities[list(ids)].sum(0)
    return out.clamp(0, 1)


def resize_maps(maps: Tensor, size: tuple[int, int], valid: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """``[K, h, w]`` -> ``[K, H, W]`` bilinear; ``valid`` = the fractions of rows and columns that are
    picture (not padding) in the model input, cropped before resizing."""
    rows = max(1, round(maps.shape[-2] * valid[0]))
    cols = max(1, round(maps.shape[-1] * valid[1]))
    cropped = maps[:, :rows, :cols]
    if tuple(cropped.shape[-2:]) == tuple(size):
        return cropped.clone()
    return F.interpolate(cropped[None].float(), size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)


def valid_fraction(pixel_mask: Tensor | None) -> tuple[float, float]:
    if pixel_mask is None:
        return 1.0, 1.0
    mask = pixel_mask.reshape(pixel_mask.shape[-2:]).bool()
    return float(mask.any(1).sum()) / mask.shape[0], float(mask.any(0).sum()) / mask.shape[1]


def threshold_mask(probabilities: Tensor, union: Tensor, threshold: float, classes: Sequence[Sequence[str]]) -> Tensor:
    """``[H, W]`` bool: pixels whose probability of belonging to one of the classes reaches ``threshold``.

    Raises when no pixel does: an empty mask would animate nothing.
    """
    mask = union >= threshold
    if not bool(mask.any()):
        best = [f"{', '.join(words)}: {float(p.max()):.3f}" for words, p in zip(classes, probabilities)]
        top = float(union.max())
        hint = f"lower threshold below {top:.3f}" if top > 0 else "check the picture"
        raise InputError(
            "threshold",
            f"no pixel reaches {threshold:.3f} for the vocabulary; the highest probabilities are "
            f"{'; '.join(best)}. Either {hint}, or change vocabulary to what the picture shows "
            "(the picture may contain none of these classes)",
        )
    return mask


def overlay_preview(picture: Tensor, mask: Tensor, probabilities: Tensor, opacity: float = 0.5) -> Tensor:
    """``[H, W, 3]``: the picture with the mask tinted, one colour per vocabulary class."""
    winner = probabilities.argmax(0) % len(_PALETTE)
    colours = _PALETTE.to(picture)[winner]
    alpha = opacity * mask.to(picture)[..., None]
    return picture * (1 - alpha) + colours * alpha
