"""The procedural flow: where it is zero, how it tapers, directions, several regions, bad input."""

import math

import pytest
import torch

from text2cinemagraph.kernels import InputError
from text2cinemagraph.kernels.morphology import edge_distance
from text2cinemagraph.nodes.stages.directions import angle_to_phrase, parse_direction_spec
from text2cinemagraph.nodes.stages.procedural_flow import flow_speed, flow_to_rgb, procedural_flow, taper_profile


def rectangle(size=80, top=20, bottom=70, left=10, right=60):
    mask = torch.zeros(1, size, size)
    mask[0, top:bottom, left:right] = 1.0
    return mask


def test_zero_outside_strongest_inside_tapering_at_the_edge():
    mask = rectangle()
    flow, _ = procedural_flow(mask, "left to right", 0.5, "generic", 0)
    speed = flow.norm(dim=0)
    assert torch.equal(speed[mask[0] < 0.5], torch.zeros(int((mask[0] < 0.5).sum())))
    centre, edge = speed[45, 35], speed[20, 35]
    assert centre > 0.3 and edge < 0.25 * centre
    row = speed[45, 10:60]
    assert bool((row[1:6] - row[:5] >= 0).all())  # rising from the left edge inwards


def test_edge_distance_is_the_euclidean_distance_to_the_nearest_outside_pixel():
    generator = torch.Generator().manual_seed(4)
    scattered = torch.rand(23, 31, generator=generator) < 0.8
    middle, at_edges = torch.zeros(23, 31, dtype=torch.bool), torch.zeros(23, 31, dtype=torch.bool)
    middle[5:15, 8:20] = scattered[5:15, 8:20]
    at_edges[:12, 10:] = scattered[:12, 10:]  # runs off the top and the right
    pixels = torch.cartesian_prod(torch.arange(23.0), torch.arange(31.0))
    for region in (scattered, middle, at_edges):
        brute = torch.cdist(pixels, (~region).nonzero().float()).min(dim=1).values.view(23, 31)
        assert torch.allclose(edge_distance(region), brute)
    assert torch.equal(edge_distance(torch.ones(4, 5, dtype=torch.bool)), torch.full((4, 5), math.inf))
    assert torch.equal(edge_distance(torch.zeros(4, 5, dtype=torch.bool)), torch.zeros(4, 5))


def test_taper_is_round_and_does_not_stop_at_the_picture_edge():
    radius = torch.cartesian_prod(torch.arange(121.0), torch.arange(121.0)).sub(60.0).norm(dim=1).view(121, 121)
    profile = taper_profile(radius <= 50, 16)
    across, diagonal = profile[60, 60 + 42], profile[60 + 30, 60 + 30]  # 42 and 42.4 px from the centre
    assert 0.3 < across < 0.7 and abs(across - diagonal) < 0.1  # counting 3x3 erosions gave 0.45 and 0.27
    bottom = torch.zeros(40, 40, dtype=torch.bool)
    bottom[20:] = True
    assert torch.equal(taper_profile(bottom, 4)[-1], torch.ones(40))  # the frame's edge is not the mask's


def test_flow_speed_is_the_norm_over_the_two_channels():
    flow = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(flow_speed(flow), flow.norm(dim=1))


def test_the_preview_colours_only_the_moving_pixels_as_torchvision_colours_the_whole_flow():
    from torchvision.utils import flow_to_image

    flow, _ = procedural_flow(rectangle(), "30", 0.5, "generic", 1)
    expected = flow_to_image(flow).permute(1, 2, 0).float() / 255.0
    assert torch.equal(flow_to_rgb(flow), expected)
    assert torch.equal(flow_to_rgb(torch.zeros(2, 4, 5)), torch.ones(4, 5, 3))


def test_flow_varies_smoothly_but_is_not_a_rigid_sheet():
    flow, _ = procedural_flow(rectangle(), "downwards", 0.5, "generic", 3)
    interior = flow[:, 35:55, 25:45]
    angles = torch.atan2(-interior[1], interior[0])
    assert float(angles.std()) > math.radians(1.0)
    assert float((flow[:, :, 1:] - flow[:, :, :-1]).abs().max()) < 0.3


def test_mean_interior_speed_equals_requested_speed():
    for speed in (0.25, 0.5, 2.0):
        flow, _ = procedural_flow(rectangle(), "30", speed, "generic", 1)
        interior = flow.norm(dim=0)[35:55, 25:45]
        assert float(interior.mean()) == pytest.approx(speed, rel=0.15)


def test_several_masks_move_in_several_directions():
    masks = torch.zeros(2, 80, 80)
    masks[0, 50:78, 5:75] = 1.0  # river at the bottom
    masks[1, 5:45, 30:50] = 1.0  # waterfall above
    flow, angles = procedural_flow(masks, "river: left to right; waterfall: downwards", 0.5, "generic", 0)
    assert angle_to_phrase(angles[0]) == "left to right" and angle_to_phrase(angles[1]) == "downwards"
    river, fall = flow[:, 64, 40], flow[:, 25, 40]
    assert river[0] > 0.3 and abs(float(river[1])) < 0.2
    assert fall[1] > 0.3 and abs(float(fall[0])) < 0.2


@pytest.mark.parametrize(
    "kind, expected",
    [("waterfall", "downwards"), ("smoke", "upwards"), ("fire", "upwards"), ("ocean/sea", "downwards")],
)
def test_auto_direction_follows_the_region_kind(kind, expected):
    _, angles = procedural_flow(rectangle(), "auto", 0.5, kind, 5)
    assert angle_to_phrase(angles[0]) == expected


def test_auto_river_follows_the_long_axis():
    tall = torch.zeros(1, 80, 80)
    tall[0, 2:78, 35:45] = 1.0
    wide = torch.zeros(1, 80, 80)
    wide[0, 35:45, 2:78] = 1.0
    _, (tall_angle,) = procedural_flow(tall, "auto", 0.5, "river", 0)
    _, (wide_angle,) = procedural_flow(wide, "auto", 0.5, "river", 0)
    assert abs(tall_angle - 270.0) < 1.0
    assert min(abs(wide_angle - 0.0), abs(wide_angle - 180.0), abs(wide_angle - 360.0)) < 1.0


def test_angle_in_degrees_is_used_as_given():
    _, angles = procedural_flow(rectangle(), "123.5", 0.5, "generic", 0)
    assert angles == [123.5]


def test_direction_phrases_accept_the_prompt_wording():
    spec = parse_direction_spec("in Left to Right,  Upwards direction", 1)
    assert spec[0].direction == "left to right, upwards"


@pytest.mark.parametrize(
    "mask, direction, speed, input_name, words",
    [
        (torch.zeros(1, 40, 40), "auto", 0.5, "mask", "empty"),
        (torch.ones(1, 40, 40), "auto", 0.5, "mask", "whole picture"),
        (rectangle(40, 5, 30, 5, 30), "sideways", 0.5, "direction", "left to right"),
        (rectangle(40, 5, 30, 5, 30), "a; b", 0.5, "direction", "1 masks"),
        (rectangle(40, 5, 30, 5, 30), "auto", 0.0, "speed", "px/frame"),
        (rectangle(40, 5, 30, 5, 30), "auto", float("nan"), "speed", "px/frame"),
    ],
)
def test_bad_input_names_the_input(mask, direction, speed, input_name, words):
    with pytest.raises(InputError) as error:
        procedural_flow(mask, direction, speed, "generic", 0)
    assert error.value.input_name == input_name
    assert words in str(error.value)


def test_mask_of_another_size_than_the_picture_is_rejected():
    with pytest.raises(InputError) as error:
        procedural_flow(rectangle(40, 5, 30, 5, 30), "auto", 0.5, "generic", 0, size=(48, 40))
    assert error.value.input_name == "mask" and "40x40" in str(error.value) and "40x48" in str(error.value)
