"""Motion drawn as arrows and anchors: parsing, the dense field, rendered loops, bad drawings."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from motion_measure import angle_of, mean_motion, smooth_texture
from text2cinemagraph.kernels import InputError, euler_integrate
from text2cinemagraph.nodes.stages.drawn_motion import (
    MAX_ENTRIES,
    Anchor,
    anchor_disks,
    arrow_samples,
    blurred_average,
    draw_arrows,
    drawn_flow,
    parse_drawing,
)
from text2cinemagraph.nodes.stages.frames import render_pixel_frames

SIZE = 128
TOP_ARROW = {"x0": 20, "y0": 40, "x1": 100, "y1": 20}  # rightwards, a little upwards (14 degrees)
BOTTOM_ARROW = {"x0": 100, "y0": 90, "x1": 20, "y1": 110}  # leftwards, a little downwards (194 degrees)
ANCHOR = {"x": 60, "y": 30, "radius": 6}


def two_bands() -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[8:56, 6:122] = True
    mask[72:120, 6:122] = True
    return mask


def drawing_json(arrows=(TOP_ARROW, BOTTOM_ARROW), anchors=(ANCHOR,), size=(SIZE, SIZE), **extra) -> str:
    data = {"version": 1, "width": size[0], "height": size[1], "arrows": list(arrows), "anchors": list(anchors)}
    data.update(extra)
    return json.dumps(data)


def shrink(region: torch.Tensor, radius: int) -> torch.Tensor:
    return ~(F.max_pool2d((~region).float()[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0)


def arrow_angle(arrow: dict) -> float:
    return angle_of(arrow["x1"] - arrow["x0"], arrow["y1"] - arrow["y0"])


def angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_two_regions_move_along_their_own_arrows_and_anchors_stay_bit_identical():
    picture = smooth_texture(SIZE, SIZE, seed=11)
    drawing = parse_drawing(drawing_json())
    flow, moving = drawn_flow(drawing, two_bands(), speed=1.0)
    video = render_pixel_frames(picture, euler_integrate(flow, 30))
    held = anchor_disks(drawing.anchors, SIZE, SIZE)
    far_from_anchor = ~anchor_disks(drawing.anchors, SIZE, SIZE, extra=20)
    bands = two_bands()
    for rows, arrow in ((slice(0, 64), TOP_ARROW), (slice(64, SIZE), BOTTOM_ARROW)):
        region = shrink(bands, 10) & far_from_anchor
        region[:rows.start] = False
        region[rows.stop :] = False
        dx, dy = mean_motion(video, region, range(3, 10))
        assert angle_gap(angle_of(dx, dy), arrow_angle(arrow)) <= 10.0, (arrow, dx, dy)
        assert math.hypot(dx, dy) > 0.3
    assert held.sum() > 80
    for frame in video:
        assert torch.equal(frame[held], picture[held])
    assert not moving[held].any() and moving.sum() > 0.5 * two_bands().sum()


def test_field_is_zero_outside_the_mask_and_follows_the_arrow_inside():
    flow, _ = drawn_flow(parse_drawing(drawing_json(anchors=())), two_bands(), speed=2.0)
    assert torch.equal(flow[:, ~two_bands()], torch.zeros(2, int((~two_bands()).sum())))
    top, bottom = flow[:, 32, 64], flow[:, 96, 64]
    assert angle_gap(angle_of(*top.tolist()), arrow_angle(TOP_ARROW)) < 2.0
    assert angle_gap(angle_of(*bottom.tolist()), arrow_angle(BOTTOM_ARROW)) < 2.0
    assert float(flow.norm(dim=0).max()) <= 2.0 + 1e-5  # a convex combination never overshoots
    edge, centre = flow.norm(dim=0)[8, 64], flow.norm(dim=0)[32, 64]
    assert edge < 0.3 * centre  # tapering at the mask's edge


def test_speed_follows_arrow_length():
    short = dict(TOP_ARROW, x1=60, y1=30)  # half as long, same direction
    flow, _ = drawn_flow(parse_drawing(drawing_json(arrows=(short, BOTTOM_ARROW), anchors=())), two_bands(), 1.0)
    assert float(flow.norm(dim=0)[32, 60]) == pytest.approx(0.5, rel=0.1)
    assert float(flow.norm(dim=0)[96, 60]) == pytest.approx(1.0, rel=0.1)


def test_a_drawing_on_a_smaller_preview_is_scaled_to_the_picture():
    half = {k: v / 2 for k, v in TOP_ARROW.items()}
    drawing = parse_drawing(drawing_json(arrows=(half,), anchors=(), size=(SIZE // 2, SIZE // 2)))
    scaled = drawing.scaled_to(SIZE, SIZE)
    assert scaled.arrows[0].x1 == pytest.approx(TOP_ARROW["x1"]) and scaled.width == SIZE


def test_painted_region_strokes_replace_a_mask():
    stroke = {"points": [[10, 30], [118, 30]], "radius": 14}
    drawing = parse_drawing(drawing_json(arrows=(TOP_ARROW,), anchors=(), regions=[stroke]))
    flow, moving = drawn_flow(drawing, None, 1.0)
    assert moving[30, 64] and not moving[60, 64] and not moving[5, 64]
    assert flow[0, 30, 64] > 0.5


def test_an_arrow_acts_only_on_its_own_part_of_the_region():
    flow, _ = drawn_flow(parse_drawing(drawing_json(arrows=(TOP_ARROW,), anchors=())), two_bands(), 1.0)
    assert flow[:, 64:].abs().max() == 0 and flow[0, 32, 64] > 0.5


def exact_average(points: torch.Tensor, values: torch.Tensor, sigma: float, height: int, width: int):
    """``[2, H, W]`` Nadaraya-Watson average at every pixel centre, sample by sample (the oracle)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    targets = torch.stack((xs.flatten(), ys.flatten()), 1).double()
    logits = -torch.cdist(targets, points).square() / (2.0 * sigma * sigma)
    return (torch.softmax(logits, dim=1) @ values).T.reshape(2, height, width)


@pytest.mark.parametrize("height, width", [(96, 128), (20, 400), (300, 200)])
def test_the_ratio_of_blurred_grids_is_the_gaussian_average_of_the_samples(height, width):
    generator = torch.Generator().manual_seed(5)
    arrows = []
    for _ in range(6):  # in the left 30 %, every way
        x0, y0 = (torch.rand(2, generator=generator) * torch.tensor([0.3 * width, height])).tolist()
        turn, length = float(torch.rand(1, generator=generator)) * 2 * math.pi, 0.3 * min(height, width)
        x1, y1 = min(max(x0 + length * math.cos(turn), 0), width), min(max(y0 - length * math.sin(turn), 0), height)
        arrows.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1})
    drawing = parse_drawing(drawing_json(arrows=arrows, anchors=(), size=(width, height)))
    sigma = 0.08 * min(height, width)
    points, values = arrow_samples(drawing.arrows, max(1.0, sigma / 4), 1.0)
    got = blurred_average(points, values, sigma, (slice(0, height), slice(0, width)))
    error = (got - exact_average(points, values, sigma, height, width)).norm(dim=0)
    # The 20x400 strip's right end lies 150 sigma from every sample: exp underflows there unless scaled.
    assert torch.isfinite(got).all() and got.norm(dim=0).max() <= 1.0 + 1e-9
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    pixels = torch.stack((xs.flatten(), ys.flatten()), 1).double()
    close = (torch.cdist(pixels, points).min(dim=1).values < 2 * sigma).view(height, width)
    assert error[close].max() < 0.02  # px/frame for arrows of 1 px/frame: within 2 sigma of a sample
    assert error.mean() < 0.005 and error.max() < 0.1  # farther, where the nearest arrows take over


def test_thousands_of_arrows_keep_speeds_directions_and_still_parts():
    generator = torch.Generator().manual_seed(6)
    count = MAX_ENTRIES  # the most a drawing may hold
    x0, y0 = torch.rand(count, generator=generator) * 100 + 8, torch.rand(count, generator=generator) * 40 + 12
    length = torch.rand(count, generator=generator) * 12 + 2
    angle = (torch.rand(count, generator=generator) - 0.5) * math.radians(40)  # -20 .. 20 degrees
    arrows = [
        {"x0": a, "y0": b, "x1": a + n * math.cos(t), "y1": b - n * math.sin(t)}
        for a, b, n, t in zip(x0.tolist(), y0.tolist(), length.tolist(), angle.tolist())
    ]
    flow, _ = drawn_flow(parse_drawing(drawing_json(arrows=arrows, anchors=())), two_bands(), speed=2.0)
    speed = flow.norm(dim=0)
    assert speed.max() <= 2.0 * (1 + 1e-6)  # no speed above the longest arrow's
    assert flow[:, 64:].abs().max() == 0  # the bottom band has no arrow: still
    moving = speed > 1e-3
    assert moving[8:56, 6:122].float().mean() > 0.9
    angles = torch.rad2deg(torch.atan2(-flow[1], flow[0]))[moving]
    assert angles.abs().max() <= 20.0 + 1e-3  # no direction that no arrow has


def test_preview_draws_every_arrow_however_many():
    generator = torch.Generator().manual_seed(7)
    starts = torch.rand(500, 2, generator=generator) * 100 + 10
    arrows = [{"x0": x, "y0": y, "x1": x + 8, "y1": y} for x, y in starts.tolist()]
    drawing = parse_drawing(drawing_json(arrows=arrows, anchors=()))
    preview = draw_arrows(torch.ones(SIZE, SIZE, 3), drawing)
    ink = (preview == 0).all(dim=-1)
    middles = starts + torch.tensor([4.0, 0.0])
    assert ink[middles[:, 1].long(), middles[:, 0].long()].all()
    points, _ = arrow_samples(drawing.arrows, 1.0, 1.0)
    near = anchor_disks(tuple(Anchor(x, y, 8.0) for x, y in points.tolist()), SIZE, SIZE)
    assert not ink[~near].any()  # nothing drawn farther than a head's length from a shaft


def test_drawings_too_large_or_too_deep_name_the_widget():
    for text in ("[" * 100_000 + "]" * 100_000, '{"arrows": ' * 100_000 + "1" + "}" * 100_000):
        with pytest.raises(InputError, match="^drawing: is nested too deeply"):
            parse_drawing(text)
    too_many = drawing_json(arrows=[TOP_ARROW] * (MAX_ENTRIES + 1))
    with pytest.raises(InputError, match=f"^drawing: has {MAX_ENTRIES + 1} arrows; at most {MAX_ENTRIES}"):
        parse_drawing(too_many)
    stroke = {"points": [[10, 30]] * (MAX_ENTRIES // 2 + 1), "radius": 4}
    with pytest.raises(InputError, match="^drawing: has .* region points"):
        parse_drawing(drawing_json(regions=[stroke, stroke]))


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (drawing_json(arrows=({"x0": 10, "y0": 10, "x1": 200, "y1": 10},)), "arrow 1's end at (200, 10) lies outside"),
        (drawing_json(arrows=(TOP_ARROW, {"x0": 30, "y0": 30, "x1": 30, "y1": 30})), "arrow 2 has zero length"),
        (drawing_json(arrows=()), "has 1 anchor(s) but no arrow"),
        (drawing_json(arrows=({"x0": "a", "y0": 1, "x1": 2, "y1": 3},)), "arrow 1: x0 must be a finite number"),
        (drawing_json(anchors=({"x": 5, "y": 5, "radius": 0},)), "anchor 1: radius must be > 0"),
        (json.dumps({"version": 2, "width": 8, "height": 8, "arrows": []}), "this pack reads version 1"),
    ],
)
def test_bad_drawings_name_the_widget(text, says):
    with pytest.raises(InputError) as caught:
        parse_drawing(text)
    assert caught.value.input_name == "drawing" and says in str(caught.value)


def test_drawings_that_cannot_move_anything_say_why():
    with pytest.raises(InputError, match="drawing: no arrow touches the moving region"):
        outside = {"x0": 10, "y0": 64, "x1": 120, "y1": 66}  # in the gap between the bands
        drawn_flow(parse_drawing(drawing_json(arrows=(outside,), anchors=())), two_bands(), 1.0)
    with pytest.raises(InputError, match="mask: nothing marks the moving region"):
        drawn_flow(parse_drawing(drawing_json()), None, 1.0)
    with pytest.raises(InputError, match="another aspect ratio"):
        parse_drawing(drawing_json(size=(SIZE, SIZE + 20))).scaled_to(SIZE, SIZE)


class HintRecorder(torch.nn.Module):
    """Stands in for the direction network: records its input, predicts the hint's direction everywhere."""

    def __init__(self):
        super().__init__()
        from text2cinemagraph.nodes.stages.networks.hint_net import HintNetConfig

        self.config = HintNetConfig()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        return torch.full_like(x[:, 4:6], 0.5 / 64)  # 0.5 px/frame right and down


def test_learned_direction_gets_the_arrows_as_a_sparse_hint_of_the_trained_scale():
    from text2cinemagraph.nodes.stages.drawn_motion import drawn_direction_flow
    from text2cinemagraph.nodes.stages.networks.flow_net import FLOW_NORM

    picture = smooth_texture(SIZE, SIZE, seed=12)
    short = dict(TOP_ARROW, x1=60, y1=30)  # half the bottom arrow's length
    drawing = parse_drawing(drawing_json(arrows=(short, BOTTOM_ARROW)))
    network = HintRecorder()
    flow, moving = drawn_direction_flow(network, picture, drawing, two_bands(), 1.0, 1.0)
    hint = network.seen[0][0, 4:6] * FLOW_NORM  # network scale 512 x 512: 4x the drawing
    marked = hint.norm(dim=0) > 0
    assert 0 < marked.sum() < 0.01 * marked.numel()  # sparse: the arrows' shafts only
    bottom = hint[:, 4 * 100, 4 * 60 : 4 * 60 + 4]  # on the longest arrow (y = 100 at x = 60)
    assert bottom.norm(dim=0).max() == pytest.approx(1.0, abs=1e-5)  # 1 px/frame, the training scale
    top = hint[:, marked].norm(dim=0)
    assert top.min() == pytest.approx(0.5, abs=1e-5)  # the short arrow: half as strong
    held = anchor_disks(drawing.anchors, SIZE, SIZE, extra=2)
    assert flow[:, held].abs().max() == 0 and flow[:, ~two_bands()].abs().max() == 0
    assert flow[0, 96, 64] == pytest.approx(0.5 * SIZE / 512)  # px/frame at 512, scaled to the picture


def test_motion_brush_node_returns_flow_preview_with_arrows_mask_and_the_picture_for_the_widget(tmp_path):
    from comfy_inprocess import import_comfy

    import_comfy()
    import folder_paths

    from text2cinemagraph.nodes.motion_brush import MotionBrush

    previous = folder_paths.get_temp_directory()
    folder_paths.set_temp_directory(str(tmp_path))
    try:
        picture = smooth_texture(SIZE, SIZE, seed=13).unsqueeze(0)
        half = {k: v / 2 for k, v in TOP_ARROW.items()}  # drawn on a 64x64 preview
        drawing = drawing_json(arrows=(half,), anchors=(), size=(64, 64))
        out = MotionBrush().predict(picture, drawing, "procedural", 1.0, mask=two_bands().float()[None])
    finally:
        folder_paths.set_temp_directory(previous)
    flow, preview, mask = out["result"]
    assert flow.shape == (2, SIZE, SIZE) and preview.shape == (1, SIZE, SIZE, 3) and mask.shape == (1, SIZE, SIZE)
    assert preview[0, 40, 20].max() == 0  # the arrow's start, drawn in black
    assert flow[0, 32, 64] > 0.5 and flow[:, 64:].abs().max() == 0
    entry = out["ui"]["t2c_picture"][0]
    assert entry["type"] == "temp" and (tmp_path / entry["subfolder"] / entry["filename"]).is_file()
    with pytest.raises(InputError, match="^drawing: is not valid JSON"):
        MotionBrush().predict(picture, "{", "procedural", 1.0, mask=two_bands().float()[None])
