"""From a clip to a loop (nodes/stages/clip_loop.py), measured on synthetic clips whose truth is known
and on a real camera clip (a tree in the wind, OpenCV's sample ``tree.avi``; workflows/assets/CREDITS.md).

The clips (nodes/stages/example_clip.py) are a smooth texture advected by a constant velocity inside
an ellipse, over a background with per-frame flicker, slow brightness drift, a slow pan (0.02 px/frame)
and sensor noise; they
are made by plain bilinear look-ups, not by the pack's renderer.
"""

from __future__ import annotations

import math
import os
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

from text2cinemagraph.kernels import euler_integrate
from text2cinemagraph.kernels.errors import InputError
from text2cinemagraph.kernels.morphology import bounding_box, erode
from text2cinemagraph.nodes.stages.clip_loop import (
    DEFAULT_THRESHOLD, TAPS, clip_flow, fill_small_holes, find_region, frame_distances, loop_clip, region_features,
    switch_weights,
)
from text2cinemagraph.nodes.stages.clips import FileClip, TensorClip
from text2cinemagraph.nodes.stages.example_clip import Footage, advected_clip, disc_region, periodic_texture
from text2cinemagraph.nodes.stages.resampled_frames import render_resampled_frames

from conftest import ASSETS

torch.set_num_threads(1)

SIZE, FRAMES = 96, 40


def synthetic(velocity, frames=FRAMES, size=SIZE, footage=Footage(), seed=0):
    """``(clip [N, H, W, 3], true region [H, W])``."""
    texture = periodic_texture(size, size, seed=seed + 1)
    background = periodic_texture(size, size, cells=4, seed=seed + 2)
    region = disc_region(size, size, 0.3)
    return advected_clip(background, texture, region, velocity, frames, footage, seed=seed + 3), region


def steps_inside(frames: torch.Tensor, region: torch.Tensor) -> list[float]:
    """Mean absolute change inside ``region`` from each frame to the next, the last to the first included."""
    n = frames.shape[0]
    return [float((frames[(k + 1) % n] - frames[k])[region].abs().mean()) for k in range(n)]


def seam_ratio(frames: torch.Tensor, region: torch.Tensor) -> float:
    steps = steps_inside(frames, region)
    return steps[-1] / statistics.median(steps[:-1])


def loop_frames(clip, **options):
    chunks, span, found = loop_clip(TensorClip(clip), **options)
    return torch.cat(list(chunks(chunk=5))), span, found


VELOCITIES = [(1.0, 0.5), (-0.7, 0.9), (0.0, -1.5), (2.0, 0.0)]


@pytest.mark.parametrize("velocity", VELOCITIES, ids=str)
def test_eulerian_flow_has_the_clips_direction_and_speed(velocity):
    clip, region = synthetic(velocity)
    flow, found = clip_flow(TensorClip(clip), reference=0)
    inner = erode(region, 8)
    measured = flow[:, inner].mean(dim=1)
    angle_error = math.degrees(abs(math.remainder(
        math.atan2(measured[1], measured[0]) - math.atan2(velocity[1], velocity[0]), 2 * math.pi)))
    speed, true_speed = float(measured.norm()), math.hypot(*velocity)
    assert angle_error <= 10.0, (measured, velocity)
    assert abs(speed - true_speed) <= 0.2 * true_speed, (measured, velocity)
    assert not flow[:, ~found.region].any()  # zero outside the region


def test_a_derived_mask_finds_the_moving_region_and_drops_specks():
    clip, region = synthetic((1.0, 0.5))
    specks = [(5, 5), (10, 80), (85, 12)]
    generator = torch.Generator().manual_seed(9)
    for y, x in specks:  # single hot pixels that change every frame: moving, but specks
        clip[:, y, x] = torch.rand((clip.shape[0], 3), generator=generator)
    found = find_region(TensorClip(clip), 0)
    iou = float((found.region & region).sum() / (found.region | region).sum())
    assert iou >= 0.9
    assert not any(found.region[y, x] for y, x in specks)
    assert found.score[specks[0]] > 2 * DEFAULT_THRESHOLD  # they did move: the opening removed them


@pytest.mark.parametrize("method", ["loop", "eulerian"])
def test_outside_the_region_every_frame_is_the_reference_frame_bit_for_bit(method):
    clip, region = synthetic((1.0, 0.5))
    reference = 7
    if method == "loop":
        frames, _, found = loop_frames(clip, reference=reference)
    else:
        flow, found = clip_flow(TensorClip(clip), reference=reference)
        frames = render_resampled_frames(found.reference, euler_integrate(flow, 24))
    still = ~found.region
    assert torch.equal(found.reference, clip[reference])
    assert (frames[:, still] == clip[reference][still]).all()
    assert not torch.equal(frames[3][found.region], clip[reference][found.region])  # inside, it moves


@pytest.mark.parametrize("velocity", [(1.0, 0.5), (0.0, -1.5)], ids=str)
def test_loop_method_seam_is_like_any_other_step(velocity):
    clip, region = synthetic(velocity)
    frames, span, found = loop_frames(clip)
    assert seam_ratio(frames, found.region) <= 1.5
    assert frames.shape[0] == span.period >= FRAMES // 2


def test_without_the_crossfade_the_seam_shows():
    """The seam check can fail: with no crossfade the jump in an advected (never repeating) texture is big."""
    clip, _ = synthetic((1.0, 0.5))
    frames, _, found = loop_frames(clip, blend=0)
    assert seam_ratio(frames, found.region) > 1.5


def test_eulerian_loop_seam_is_like_any_other_step():
    clip, _ = synthetic((1.0, 0.5))
    flow, found = clip_flow(TensorClip(clip))
    frames = render_resampled_frames(found.reference, euler_integrate(flow, 24))
    assert seam_ratio(frames, found.region) <= 1.5


def test_loop_brightness_follows_the_reference_frame_not_the_flicker():
    clip, region = synthetic((1.0, 0.5), footage=Footage(flicker=0.1, drift=0.08, noise=0.0))
    clean, _ = synthetic((1.0, 0.5), footage=Footage(flicker=0.0, drift=0.0, noise=0.0))
    frames, span, found = loop_frames(clip, reference=3, blend=4)
    inner = erode(region, 4)
    shown = range(span.start, span.start + span.period - 4)  # before the crossfade: frame s + k as it is
    deflickered_error = frames[: len(shown), inner].mean(dim=(1, 2)) - clean[shown][:, inner].mean(dim=(1, 2))
    flicker = clip[:, inner].mean(dim=(1, 2)) - clean[:, inner].mean(dim=(1, 2))
    assert float(flicker.max() - flicker.min()) > 0.05  # the clip's region swings with the flicker and drift
    assert float(deflickered_error.max() - deflickered_error.min()) < 0.005  # the loop's follows one gain


def brute_force_span(clip, found, blend: int, periods) -> tuple[float, int, int]:
    """``(cost, start, period)`` of the cheapest span, every span tried and every cost summed afresh."""
    from text2cinemagraph.nodes.stages.clip_loop import deflicker, flicker_fits

    box = bounding_box(found.region)
    side = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
    factor = max(1, -(-side // 64))
    features = [region_features(deflicker(f[box], gain, offset), found.region[box], factor).double()
                for _, f, gain, offset in flicker_fits(TensorClip(clip), found.reference, ~found.region)]
    n, best = len(features), (math.inf, -1, -1)
    for period in periods:
        for start in range(n):
            taps = [(start + k, start + period + k) for k in TAPS]
            if start < blend or any(a < 0 or b >= n for a, b in taps):
                continue
            cost = sum(float((features[a] - features[b]).square().mean()) for a, b in taps) / len(taps)
            if cost < best[0]:
                best = (cost, start, period)
    return best


@pytest.mark.parametrize("frames", [0, 24])
def test_the_chosen_span_costs_what_a_brute_force_search_finds(frames):
    clip, _ = synthetic((0.8, -0.6), frames=36)
    found = find_region(TensorClip(clip), 0)
    _, span, _ = loop_clip(TensorClip(clip), frames=frames, blend=4)
    periods = [frames] if frames else range(18, 36)
    cost, start, period = brute_force_span(clip, found, 4, periods)
    assert span.cost == pytest.approx(cost, rel=1e-4, abs=1e-7)
    assert (span.start, span.period) == (start, period)


def two_part_clip(frames: int = 48, size: int = 96):
    """``(clip, region)``: two discs, each with one half of the clip that repeats every 16 frames (a tiling
    texture at 6 px/frame) and one of fresh noise in every frame: the left disc repeats in the first half,
    the right one in the second, so no single span loops both."""
    x = torch.arange(size)[None, :].float() - size / 2
    y = torch.arange(size)[:, None].float() - size / 2
    left, right = (x + size / 4).square() + y.square() < 16**2, (x - size / 4).square() + y.square() < 16**2
    calm = Footage(flicker=0.03, drift=0.0, noise=0.002)
    texture, background = periodic_texture(size, size, seed=4), periodic_texture(size, size, cells=4, seed=5)
    repeating = advected_clip(background, texture, left | right, (6.0, 0.0), frames, calm, seed=6)
    generator = torch.Generator().manual_seed(7)
    noise = 0.5 + 0.15 * torch.randn((frames, size, size, 3), generator=generator)
    half = torch.arange(frames)[:, None, None] < frames // 2
    noisy = (left[None] & ~half) | (right[None] & half)
    return torch.where(noisy[..., None], noise.clamp(0, 1), repeating), left | right


def test_each_part_of_the_region_gets_its_own_start_where_one_span_cannot_loop_both():
    clip, region = two_part_clip()
    frames, span, found = loop_frames(clip, frames=16, blend=2)
    _, whole, _ = loop_frames(clip, frames=16, blend=2, spread=0)
    assert len(span.starts) == 2 and len(whole.starts) == 1
    assert max(span.starts) - min(span.starts) <= 24
    assert span.cost < 0.1 * whole.cost  # measurably better: each part's seam is a natural step
    assert seam_ratio(frames, region) <= 1.5
    assert (frames[:, ~found.region] == clip[0][~found.region]).all()


def test_per_part_starts_cost_what_a_brute_force_search_finds():
    from text2cinemagraph.nodes.stages.clip_loop import MAX_SPREAD, deflicker, flicker_fits, region_parts

    clip, _ = two_part_clip(frames=40)
    found = find_region(TensorClip(clip), 0)
    _, span, _ = loop_clip(TensorClip(clip), frames=14, blend=2)
    parts = region_parts(found.region)
    features = [[] for _ in parts]
    for _, f, gain, offset in flicker_fits(TensorClip(clip), found.reference, ~found.region):
        for part, kept in zip(parts, features):
            box = bounding_box(part)
            kept.append(region_features(deflicker(f[box], gain, offset), part[box], 1).double())
    n, period, weights = len(features[0]), 14, [kept[0].numel() for kept in features]

    def cost(kept, start):
        taps = [(start + k, start + period + k) for k in TAPS]
        if start < 2 or any(a < 0 or b >= n for a, b in taps):
            return math.inf
        return sum(float((kept[a] - kept[b]).square().mean()) for a, b in taps) / len(taps)

    best = math.inf
    for first in range(n):  # every window of starts; in each, every part its cheapest start
        total = sum(w * min(cost(kept, s) for s in range(first, first + MAX_SPREAD + 1))
                    for kept, w in zip(features, weights)) / sum(weights)
        best = min(best, total)
    assert span.cost == pytest.approx(best, rel=1e-4)
    assert sum(w * cost(kept, s) for kept, w, s in zip(features, weights, span.starts)) / sum(weights) \
        == pytest.approx(span.cost, rel=1e-4)


def test_a_clip_that_repeats_loops_at_its_period():
    """A tiling texture moving 3 px/frame across a 96 px tile repeats every 32 frames: the span finds it."""
    clip, region = synthetic((3.0, 0.0), frames=48, footage=Footage(flicker=0.05, drift=0.02, noise=0.002))
    frames, span, found = loop_frames(clip, blend=2)
    assert span.period == 32
    assert seam_ratio(frames, found.region) <= 1.1


def test_frame_distances_are_mean_squared_differences():
    features = torch.rand(6, 50, generator=torch.Generator().manual_seed(1))
    expected = ((features[:, None] - features[None]) ** 2).mean(-1)
    assert torch.allclose(frame_distances(features), expected, atol=1e-6)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("count", [1, 2])
def test_a_clip_of_one_or_two_frames_is_refused(count):
    with pytest.raises(InputError, match=r"^images: has \d frame"):
        TensorClip(torch.rand(count, 16, 16, 3))


def test_non_finite_frames_are_refused():
    clip, _ = synthetic((1.0, 0.5), frames=10, size=32)
    clip[4, 3, 3, 0] = float("nan")
    with pytest.raises(InputError, match="^images: has 1 NaN"):
        TensorClip(clip)


def test_a_mask_of_another_size_is_refused():
    clip, _ = synthetic((1.0, 0.5), frames=10, size=32)
    with pytest.raises(InputError, match=r"^mask: is 40x32 but the clip is 32x32"):
        find_region(TensorClip(clip), 0, torch.ones(1, 32, 40))


def test_a_clip_where_nothing_moves_is_refused():
    clip, _ = synthetic((0.0, 0.0), frames=10, size=32)
    with pytest.raises(InputError, match="^images: nothing moves"):
        loop_clip(TensorClip(clip))
    with pytest.raises(InputError, match="^images: nothing moves inside the mask"):
        clip_flow(TensorClip(clip), mask=disc_region(32, 32).float())


def test_a_loop_longer_than_the_clip_is_refused():
    clip, _ = synthetic((1.0, 0.5), frames=12, size=32)
    with pytest.raises(InputError, match="^frames: is 40, but this clip of 12 frames holds loops of"):
        loop_clip(TensorClip(clip), frames=40, blend=2)


def test_a_crossfade_too_long_for_the_clip_is_refused():
    clip, _ = synthetic((1.0, 0.5), frames=8, size=32)
    with pytest.raises(InputError, match="^blend: is 6, too long"):
        loop_clip(TensorClip(clip), blend=6)
    _, span, _ = loop_clip(TensorClip(clip), blend=2)
    assert span.period >= 4


def test_a_region_thinner_than_a_feature_block_still_chooses_by_its_pixels():
    crop, region = torch.rand(130, 130, 3), torch.zeros(130, 130, dtype=torch.bool)
    region[:, 64] = True  # one pixel wide, with blocks of 3 x 3
    assert region_features(crop, region, 3).numel() == 3 * 44


def test_a_reference_outside_the_clip_is_refused():
    clip, _ = synthetic((1.0, 0.5), frames=10, size=32)
    with pytest.raises(InputError, match=r"^reference: is 10 but the clip has frames 0..9"):
        loop_clip(TensorClip(clip), reference=10)


def test_frames_of_different_sizes_are_refused(tmp_path):
    for i in range(9):
        size = (32, 32) if i != 5 else (32, 30)
        Image.fromarray(np.full((*size, 3), 20 * i, np.uint8)).save(tmp_path / f"f{i:02d}.png")
    with pytest.raises(InputError, match="^CLIP: frame 5 is 30x32 but the first is 32x32"):
        FileClip(str(tmp_path))


def test_a_clip_file_is_read_again_for_each_pass(tmp_path):
    """A video file streams: each pass decodes it anew, and the loop equals the in-memory one's span."""
    from text2cinemagraph.nodes.stages.video import write_loop

    clip, _ = synthetic((1.0, 0.5), frames=24, size=64)
    path = write_loop(clip, str(tmp_path / "clip.png"), format="apng")
    from_file = FileClip(path)
    assert (from_file.count, from_file.height, from_file.width) == (24, 64, 64)
    quantised = torch.stack([frame for _, frame in from_file.frames(range(from_file.count))])
    assert torch.equal(quantised, (clip * 255).round() / 255)
    _, span_file, _ = loop_clip(from_file, blend=3)
    _, span_memory, _ = loop_clip(TensorClip(quantised), blend=3)
    assert span_file == span_memory


# ---------------------------------------------------------------- the seam's switch


def test_each_pixel_switches_once_at_the_frame_where_the_passes_agree_best():
    """Left half: the passes agree at window frame 3; right half: at frame 1. Every pixel's weight rises
    from 0 to 1 without going back, and far from the halves' border it jumps at its own frame."""
    blend, height, width = 5, 24, 40
    leaving = [torch.zeros(height, width, 3) for _ in range(blend)]
    arriving = [torch.ones(height, width, 3) for _ in range(blend)]
    arriving[3][:, : width // 2] = 0.0
    arriving[1][:, width // 2:] = 0.0
    weights = switch_weights(leaving, arriving, radius=2)
    assert weights.shape == (blend, height, width)
    assert (weights[1:] >= weights[:-1]).all() and bool((weights[-1] == 1).all())
    assert torch.equal(weights[:, 12, 5], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]))
    assert torch.equal(weights[:, 12, 35], torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0]))
    border = weights[2, 12, 17:23]  # feathered across the border: a few pixels between 0 and 1
    assert border[0] == 0 and border[-1] == 1 and ((border > 0) & (border < 1)).any()


def test_a_derived_region_fills_the_still_spots_it_encloses_but_not_large_ones_or_the_edges():
    region = torch.zeros(60, 60, dtype=torch.bool)
    region[5:55, 5:55] = True
    region[10:13, 10:13] = False  # 9 px: small, enclosed
    region[20:40, 20:40] = False  # 400 px: over 1 % of the frame
    region[50:60, 30:33] = False  # small, but open to the frame's edge
    filled = fill_small_holes(region, 0.01)
    assert filled[10:13, 10:13].all()
    assert not filled[20:40, 20:40].any() and not filled[56:60, 30:33].any()
    assert int((filled & ~region).sum()) == 9


# ---------------------------------------------------------------- a real camera clip


TREE = os.path.join(ASSETS, "tree_in_wind.mp4")


@pytest.fixture(scope="module")
def tree():
    """``(FileClip, frames [52, 240, 320, 3])``: leaves swaying in the wind, filmed through a window."""
    clip = FileClip(TREE)
    return clip, torch.stack([frame for _, frame in clip.frames(range(clip.count))])


def detail(frames: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``[N]``: RMS of each frame's luma minus its 5x5 mean, inside ``region`` (what a double exposure halves)."""
    grey = frames.mean(-1)[:, None]
    high = grey - torch.nn.functional.avg_pool2d(grey, 5, 1, 2, count_include_pad=False)
    return high[:, 0][:, region].square().mean(1).sqrt()


def test_a_real_clips_region_is_the_tree_not_the_window_frame_or_the_sky(tree):
    clip, frames = tree
    found = find_region(clip, 0)
    assert (clip.count, clip.height, clip.width) == (52, 240, 320)
    assert 0.4 <= float(found.region.float().mean()) <= 0.85
    assert float(found.region[:, :20].float().mean()) < 0.02  # the window's frame, left
    assert float(found.region[20:80, 50:200].float().mean()) > 0.9  # the crown


def test_a_real_clip_loops_without_a_seam_or_a_double_exposure_and_keeps_the_rest_still(tree):
    clip, frames = tree
    chunks, span, found = loop_clip(clip)
    loop = torch.cat(list(chunks(chunk=8)))
    assert (loop[:, ~found.region] == frames[0][~found.region]).all()
    assert seam_ratio(loop, found.region) <= 1.5
    kept = detail(loop, found.region) / detail(frames, found.region).median()
    assert float(kept.min()) >= 0.95  # a crossfade of the same span: 0.90 (leaves shown twice)


def test_a_real_clips_span_costs_what_a_brute_force_search_finds(tree):
    clip, frames = tree
    found = find_region(clip, 0)
    _, span, _ = loop_clip(clip, spread=0)
    cost, start, period = brute_force_span(frames, found, 6, range(26, 52))
    assert span.cost == pytest.approx(cost, rel=1e-4, abs=1e-7)
    assert (span.start, span.period) == (start, period)


def test_a_real_clips_eulerian_loop_is_seamless_and_still_outside_its_region(tree):
    clip, frames = tree
    flow, found = clip_flow(clip)
    loop = render_resampled_frames(found.reference, euler_integrate(flow, 24))
    assert (loop[:, ~found.region] == frames[0][~found.region]).all()
    assert seam_ratio(loop, found.region) <= 1.5


@pytest.mark.parametrize("pan", [(1, 0), (0, -1)], ids=str)
def test_eulerian_flow_of_real_footage_panned_by_a_known_velocity(tree, pan):
    """The camera clip seen through a window that moves by ``pan`` px per frame (a crop, so exactly):
    its content moves by ``-pan`` on top of the leaves' own swaying (which averages out to 0.03 px/frame)."""
    _, frames = tree
    count, margin = 40, 40
    crops = torch.stack([frames[t, margin + pan[1] * t: margin + pan[1] * t + 160,
                                margin + pan[0] * t - 20: margin + pan[0] * t + 200] for t in range(count)])
    mask = torch.zeros(crops.shape[1:3])
    mask[30:130, 40:180] = 1.0
    flow, found = clip_flow(TensorClip(crops), mask=mask)
    measured, truth = flow[:, erode(found.region, 8)].mean(dim=1), (-pan[0], -pan[1])
    angle_error = math.degrees(abs(math.remainder(
        math.atan2(measured[1], measured[0]) - math.atan2(truth[1], truth[0]), 2 * math.pi)))
    assert angle_error <= 10.0 and abs(float(measured.norm()) - 1.0) <= 0.2, measured
