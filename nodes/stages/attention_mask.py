"""The mask of the region to animate, from the artistic image's self-attention
(Text2Cinemagraph section 3.2): spectral clustering of the averaged self-attention
map, clusters split into connected components, components kept when they lie
mostly inside a reference mask (a segmentation of the natural twin, or else the
cross-attention map of the region's words), union, erosion.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels import morphology
from ...kernels.errors import InputError
from .inputs import require_finite

CLIP_START, CLIP_END = 49406, 49407  # CLIP's start- and end-of-text token ids
SPECTRAL_RESTARTS = 100  # k-means restarts of the spectral embedding, as the release (n_init 100)
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # skimage.measure.label's default in 2-D, as the release

log = logging.getLogger(__name__)


def spectral_clusters(self_attention: Tensor, grid: tuple[int, int], clusters: int, seed: int) -> np.ndarray:
    """``[h, w]`` cluster label of every grid cell.

    The affinity is the symmetrised averaged attention map ``(A + A^T) / 2``
    (scikit-learn's SpectralClustering with a precomputed affinity, as the
    paper's release does).
    """
    from sklearn.cluster import SpectralClustering

    affinity = self_attention.double().cpu().numpy()
    affinity = (affinity + affinity.T) / 2.0
    model = SpectralClustering(
        n_clusters=clusters, affinity="precomputed", n_init=SPECTRAL_RESTARTS, random_state=seed,
        assign_labels="kmeans",
    )
    return model.fit_predict(affinity).reshape(grid)


def split_components(labels: np.ndarray) -> np.ndarray:
    """``[h, w]`` id (from 1) of each 8-connected component of each cluster (diagonal
    neighbours join, as the release's ``skimage.measure.label``)."""
    from scipy import ndimage

    components = np.zeros(labels.shape, dtype=np.int64)
    next_id = 1
    for cluster in np.unique(labels):
        pieces, count = ndimage.label(labels == cluster, structure=EIGHT_CONNECTED)
        components[pieces > 0] = pieces[pieces > 0] + next_id - 1
        next_id += count
    return components


def select_components(components: np.ndarray, reference: np.ndarray, overlap: float) -> np.ndarray:
    """``[h, w]`` bool union of the components whose mean ``reference`` coverage is >= ``overlap``.

    ``reference`` is ``[h, w]`` in ``[0, 1]``: the fraction of each cell inside the reference mask.
    """
    ids = components.reshape(-1)
    sizes = np.bincount(ids)
    inside = np.bincount(ids, weights=reference.reshape(-1), minlength=sizes.shape[0])
    keep = np.zeros(sizes.shape[0], dtype=bool)
    present = sizes > 0
    keep[present] = inside[present] / sizes[present] >= overlap
    keep[0] = False
    return keep[components]


def token_positions(prompt_tokens: Sequence[int], word_tokens: Sequence[int]) -> list[int]:
    """Positions of every occurrence of ``word_tokens`` inside ``prompt_tokens``."""
    words = [t for t in word_tokens if t not in (CLIP_START, CLIP_END)]
    found: list[int] = []
    if not words:
        return found
    for start in range(len(prompt_tokens) - len(words) + 1):
        if list(prompt_tokens[start:start + len(words)]) == words:
            found.extend(range(start, start + len(words)))
    return found


def cross_attention_reference(cross_attention: Tensor, positions: Sequence[int], grid: tuple[int, int]) -> np.ndarray:
    """``[h, w]`` bool: where the region's words attend, above Otsu's threshold."""
    heat = cross_attention[:, list(positions)].sum(dim=1).reshape(grid).double()
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)
    return heat.numpy() >= otsu_threshold(heat.numpy())


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """The threshold maximising the between-class variance of ``values`` (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    mean0 = np.cumsum(hist * centres) / np.maximum(weight0, 1)
    total = (hist * centres).sum()
    mean1 = (total - np.cumsum(hist * centres)) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between[:-1]))] + (centres[1] - centres[0]) / 2)


def erode(mask: Tensor, iterations: int, kernel: int = 5) -> Tensor:
    """``[H, W]`` bool eroded ``iterations`` times by a ``kernel x kernel`` square (one erosion
    by a square ``iterations`` times as wide: squares compose)."""
    return morphology.erode(mask > 0.5 if mask.dtype != torch.bool else mask, iterations * (kernel // 2))


def upsample_mask(cells: np.ndarray, size: tuple[int, int]) -> Tensor:
    """``[H, W]`` bool: a grid mask resized smoothly (bilinear, then threshold 0.5)."""
    grid = torch.from_numpy(cells.astype(np.float32))[None, None]
    return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)[0, 0] >= 0.5


def coverage_on_grid(mask: Tensor, grid: tuple[int, int]) -> np.ndarray:
    """``[h, w]`` fraction of each grid cell covered by a ``[H, W]`` mask."""
    return F.interpolate((mask > 0.5).float()[None, None], size=grid, mode="area")[0, 0].numpy()


def cluster_preview(labels: np.ndarray, selected: np.ndarray, size: tuple[int, int], caption: str) -> Tensor:
    """``[H, W, 3]``: a colour per cluster, unselected components darkened, ``caption`` written
    on a dark band at the top (which reference selected the clusters)."""
    from PIL import Image, ImageDraw

    generator = np.random.default_rng(0)
    palette = generator.uniform(0.25, 1.0, size=(labels.max() + 1, 3)).astype(np.float32)
    colours = palette[labels] * np.where(selected, 1.0, 0.35)[..., None]
    grid = torch.from_numpy(colours).permute(2, 0, 1)[None]
    preview = F.interpolate(grid, size=size, mode="nearest")[0].permute(1, 2, 0)
    picture = Image.fromarray((preview.numpy() * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, size[1], 13), fill=(0, 0, 0))
    draw.text((3, 1), caption, fill=(255, 255, 255))
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)


def attention_cluster_mask(
    self_attention: Tensor,
    grid: tuple[int, int],
    size: tuple[int, int],
    segmentation: Optional[Tensor] = None,
    cross_attention: Optional[Tensor] = None,
    region_positions: Sequence[int] = (),
    clusters: int = 5,
    overlap: float = 0.7,
    erosion: int = 0,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """The region mask at picture size, and a preview of the clusters.

    Args:
        self_attention: ``[h*w, h*w]`` averaged self-attention of the artistic image.
        grid: ``(h, w)``.
        size: ``(H, W)`` of the picture.
        segmentation: optional ``[H, W]`` mask of the region in the natural twin.
        cross_attention: ``[h*w, tokens]``, used with ``region_positions`` when
            there is no segmentation.
        clusters, overlap, erosion, seed: see the node's tooltips.

    Returns:
        ``(mask [H, W] float 0/1, preview [H, W, 3])``.
    """
    if segmentation is not None:
        if segmentation.ndim == 3:
            if segmentation.shape[0] != 1:
                raise InputError(
                    "segmentation", f"is a batch of {segmentation.shape[0]} masks; connect one mask (of the region)"
                )
            segmentation = segmentation[0]
        require_finite(segmentation, "segmentation", "a mask")
        if not (segmentation > 0.5).any():
            raise InputError("segmentation", "is empty; the segmentation found no pixel of the region")
        reference = coverage_on_grid(segmentation, grid)
        source = "segmentation"
    elif cross_attention is not None and region_positions:
        reference = cross_attention_reference(cross_attention, region_positions, grid).astype(np.float64)
        source = "cross-attention fallback"
    else:
        raise InputError(
            "region",
            "needs either a segmentation mask or the region's words in the prompt (connect clip and prompt, "
            "and name a region that occurs in the prompt)",
        )
    labels = spectral_clusters(self_attention, grid, clusters, seed)
    components = split_components(labels)
    selected = select_components(components, reference, overlap)
    if not selected.any():
        raise InputError(
            "overlap",
            f"no attention cluster lies {overlap:.0%} inside the reference mask; lower overlap, raise clusters, "
            "or check the region name",
        )
    mask = erode(upsample_mask(selected, size), erosion)
    if not mask.any():
        raise InputError("erosion", f"{erosion} erosions remove the whole mask; use fewer")
    log.info("AttentionClusterMask: the clusters were selected by the %s (%d of %d components kept)",
             source, len(np.unique(components[selected])), int(components.max()))
    return mask.float(), cluster_preview(labels, selected, size, f"reference: {source}")
