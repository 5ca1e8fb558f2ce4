"""AttentionClusterMask's math: clustering recovers planted structure; overlap rule; erosion."""

import numpy as np
import pytest
import torch

from text2cinemagraph.kernels.errors import InputError
from text2cinemagraph.nodes.stages.attention_mask import (
    attention_cluster_mask,
    erode,
    select_components,
    spectral_clusters,
    split_components,
    token_positions,
)

GRID = (16, 16)


def planted_attention(regions: np.ndarray, noise: float = 0.02, seed: int = 0) -> torch.Tensor:
    """A row-stochastic attention map in which each cell attends to its own region."""
    labels = regions.reshape(-1)
    same = (labels[:, None] == labels[None, :]).astype(np.float64)
    rng = np.random.default_rng(seed)
    affinity = same + noise * rng.random(same.shape)
    return torch.from_numpy(affinity / affinity.sum(axis=1, keepdims=True)).float()


def three_regions() -> np.ndarray:
    regions = np.zeros(GRID, dtype=int)
    regions[:6] = 1  # sky
    regions[10:, :] = 2  # water
    return regions


def test_spectral_clustering_recovers_planted_blocks():
    regions = three_regions()
    labels = spectral_clusters(planted_attention(regions), GRID, clusters=3, seed=0)
    for region in range(3):
        assert len(np.unique(labels[regions == region])) == 1
    assert len(np.unique(labels)) == 3


def test_clusters_split_into_connected_components():
    labels = np.zeros((6, 6), dtype=int)
    labels[:, :2] = 1
    labels[:, 4:] = 1  # cluster 1 in two separate strips
    components = split_components(labels)
    assert len(np.unique(components[labels == 1])) == 2
    assert len(np.unique(components)) == 3


def test_diagonal_neighbours_are_one_component():
    """8-connectivity, as the release's skimage.measure.label: a diagonal chain is one piece."""
    labels = np.eye(5, dtype=int)
    components = split_components(labels)
    assert len(np.unique(components[labels == 1])) == 1


def test_overlap_rule_keeps_components_mostly_inside():
    components = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]])
    reference = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert select_components(components, reference, 0.7).tolist() == [
        [True, True, False, False], [True, True, False, False], [False, False, False, False]]
    assert select_components(components, reference, 0.5)[0, 2]  # component 2 is exactly half inside


def test_erosion_shrinks_by_two_pixels_per_pass():
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[10:30, 10:30] = True
    assert int(erode(mask, 1).sum()) == 16 * 16
    assert int(erode(mask, 2).sum()) == 12 * 12
    assert torch.equal(erode(mask, 0), mask)


def test_mask_from_segmentation_selects_the_water_clusters():
    regions = three_regions()
    segmentation = torch.zeros(128, 128)
    segmentation[84:, :] = 1.0  # a segmentation that spills a little over the planted water (rows >= 80)
    mask, preview = attention_cluster_mask(planted_attention(regions), GRID, (128, 128), segmentation=segmentation,
                                           clusters=3, overlap=0.7, erosion=0)
    assert preview.shape == (128, 128, 3)
    expected = torch.zeros(128, 128)
    expected[80:, :] = 1.0
    assert float((mask - expected).abs().mean()) < 0.01  # the attention clusters fix the boundary


def test_mask_from_cross_attention_without_segmentation(caplog):
    regions = three_regions()
    cross = torch.full((GRID[0] * GRID[1], 77), 0.01)
    cross[:, 5] = torch.from_numpy((regions.reshape(-1) == 2).astype(np.float32)) * 0.5 + 0.01
    with caplog.at_level("INFO"):
        mask, preview = attention_cluster_mask(planted_attention(regions), GRID, (64, 64), cross_attention=cross,
                                               region_positions=[5], clusters=3, erosion=0)
    assert float(mask[40:].mean()) > 0.99 and float(mask[:38].mean()) < 0.01
    assert "cross-attention fallback" in caplog.text

    segmentation = torch.zeros(64, 64)
    segmentation[40:, :] = 1.0
    caplog.clear()
    with caplog.at_level("INFO"):
        same_mask, segmented_preview = attention_cluster_mask(planted_attention(regions), GRID, (64, 64),
                                                              segmentation=segmentation, clusters=3)
    assert torch.equal(same_mask, mask) and "by the segmentation" in caplog.text
    # the preview's caption band names the reference: same clusters, different text
    assert torch.equal(preview[14:], segmented_preview[14:])
    assert not torch.equal(preview[:14], segmented_preview[:14])
    assert float(preview[:14].max()) > 0.9 and float(preview[:14].min()) == 0.0  # light text on black


def test_no_selected_cluster_is_a_clear_error():
    regions = three_regions()
    segmentation = torch.zeros(64, 64)
    segmentation[:, :8] = 1.0  # a thin strip no cluster lies inside
    with pytest.raises(InputError) as error:
        attention_cluster_mask(planted_attention(regions), GRID, (64, 64), segmentation=segmentation, clusters=3)
    assert error.value.input_name == "overlap"


def test_token_positions_find_multi_token_words():
    assert token_positions([49406, 10, 11, 12, 10, 11, 49407], [49406, 10, 11, 49407]) == [1, 2, 4, 5]
    assert token_positions([49406, 10, 49407], [49406, 99, 49407]) == []
