"""The resampling render: the guarantees of the loop, and frames that keep the picture's detail."""

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from motion_measure import angle_of, detail_curve, ghost_curve, in_sector, mean_motion, smooth_texture
from text2cinemagraph.kernels import euler_integrate
from text2cinemagraph.kernels.morphology import erode
from text2cinemagraph.nodes.stages.directions import DIRECTION_SECTORS
from text2cinemagraph.nodes.stages.frames import render_chunks, render_pixel_frames
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow
from text2cinemagraph.nodes.stages.resampled_frames import (
    MAX_TRAVEL_PX,
    ResampleRender,
    handover,
    handover_phases,
    loop_period,
    render_resampled_frames,
    reversed_motion,
)

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", "assets")


def centre_mask(size: int = 96, border: int = 16) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    mask[0, border:-border, border:-border] = 1.0
    return mask


def photograph(name: str, rows: slice = slice(None), cols: slice = slice(None)):
    """``([H, W, 3] picture, [1, H, W] water mask)`` of a bundled photograph, cropped."""
    picture = np.array(Image.open(os.path.join(ASSETS, name + ".jpg")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(ASSETS, name + "_mask.png")))
    picture = torch.from_numpy(picture[rows, cols].copy()).float() / 255
    return picture, torch.from_numpy(mask[rows, cols].copy()).float()[None] / 255


def test_the_reversed_motion_is_the_integration_of_the_negated_flow():
    flow, _ = procedural_flow(centre_mask(48, 8), "upwards", 0.7, "generic", 3)
    motion = euler_integrate(flow, 10)
    negated = euler_integrate(-flow, 10)
    reversed_ = reversed_motion(motion)
    assert torch.equal(reversed_.forward_stored, negated.forward_stored)
    assert torch.equal(reversed_.backward_stored, negated.backward_stored)
    part = euler_integrate(flow, 10, frames=range(3, 7))
    assert reversed_motion(part).stored_frames == range(4, 8)
    assert torch.equal(reversed_motion(part).forward_stored, negated.forward_stored[4:8])


def test_still_pixels_are_bit_identical_and_frame_zero_is_the_picture():
    picture = smooth_texture(96, 96, seed=3)
    mask = torch.zeros(1, 96, 96)
    mask[0, 40:90, 10:60] = 1.0
    flow, _ = procedural_flow(mask, "right to left, upwards", 1.0, "generic", 0)
    video = render_resampled_frames(picture, euler_integrate(flow, 24))
    assert torch.equal(video[0], picture)
    still = (flow == 0).all(dim=0)
    for frame in video:
        assert torch.equal(frame[still], picture[still])
    moving = erode(mask[0] > 0.5, 8)
    assert (video[12][moving] - picture[moving]).abs().mean() > 0.01


def test_loop_closes_like_any_other_step():
    picture = smooth_texture(96, 96, seed=2)
    flow, _ = procedural_flow(centre_mask(), "downwards", 0.7, "generic", 0)
    video = render_resampled_frames(picture, euler_integrate(flow, 30))
    steps = torch.stack([(video[n + 1] - video[n]).abs().mean() for n in range(len(video) - 1)])
    loop_step = (video[0] - video[-1]).abs().mean()
    assert loop_step <= 1.5 * steps.median()
    assert (video[len(video) // 2] - video[0]).abs().mean() > 3 * loop_step


@pytest.mark.parametrize("phrase", ["left to right", "upwards", "right to left, downwards"])
def test_moves_in_the_asked_direction(phrase):
    picture = smooth_texture(96, 96, seed=4)
    mask = centre_mask()
    low, high = DIRECTION_SECTORS[phrase]
    for seed in (0, 7):
        flow, angles = procedural_flow(mask, phrase, 0.6, "generic", seed)
        video = render_resampled_frames(picture, euler_integrate(flow, 24))
        measured = angle_of(*mean_motion(video, erode(mask[0] > 0.5, 10), range(3, 9)))
        assert in_sector(measured, low, high), (phrase, seed, angles, measured)


@pytest.mark.parametrize("speed", [0.3, 0.5, 1.0])
def test_measured_speed_matches_requested_speed(speed):
    picture = smooth_texture(96, 96, seed=5)
    mask = centre_mask()
    flow, _ = procedural_flow(mask, "45", speed, "generic", 1)
    video = render_resampled_frames(picture, euler_integrate(flow, 24))
    dx, dy = mean_motion(video, erode(mask[0] > 0.5, 12), range(2, 10))
    assert math.hypot(dx, dy) == pytest.approx(speed, rel=0.15)


def test_parts_and_chunks_give_the_same_frames():
    picture = smooth_texture(64, 64, seed=6)
    flow, _ = procedural_flow(centre_mask(64, 12), "left to right", 0.8, "generic", 1)
    whole = render_resampled_frames(picture, euler_integrate(flow, 12))
    unstored = euler_integrate(flow, 12, frames=range(0))
    assert torch.equal(render_resampled_frames(picture, unstored, part_frames=5), whole)
    chunks = list(render_chunks(picture, unstored, ResampleRender(), chunk=5, part_frames=4))
    assert [len(chunk) for chunk in chunks] == [5, 5, 2]
    assert torch.equal(torch.cat(chunks), whole)


def test_nothing_moving_gives_the_picture_in_every_frame():
    picture = smooth_texture(32, 32, seed=1)
    video = render_resampled_frames(picture, euler_integrate(torch.zeros(2, 32, 32), 5))
    assert video.shape == (5, 32, 32, 3) and bool((video == picture).all())


def test_no_picture_content_is_dragged_in_across_the_region_edge():
    # Grey water below a bright still bank: flowing down, away from the bank, the water must not
    # pull the bank's colour in behind it.
    picture = torch.full((96, 96, 3), 0.3) + 0.1 * smooth_texture(96, 96, seed=7)
    picture[:30] = 1.0
    mask = torch.zeros(1, 96, 96)
    mask[0, 30:, :] = 1.0
    flow, _ = procedural_flow(mask, "downwards", 1.0, "generic", 0)
    video = render_resampled_frames(picture, euler_integrate(flow, 40))
    water = mask[0] > 0.5
    assert float(video[:, water].max()) <= float(picture[water].max()) + 0.02


def test_a_loop_longer_than_the_water_carries_plays_a_shorter_one_again():
    # A band 40 px high flowing across itself at 1 px/frame for 48 frames: no copy can cross it.
    picture = smooth_texture(96, 96, seed=8)
    mask = torch.zeros(1, 96, 96)
    mask[0, 28:68, :] = 1.0
    flow, _ = procedural_flow(mask, "downwards", 1.0, "generic", 2)
    motion = euler_integrate(flow, 48)
    period = loop_period(motion)
    assert 12 <= period < 48 and 48 % period == 0
    video = render_resampled_frames(picture, motion)
    assert torch.equal(video[period:], video[:-period])
    assert torch.equal(video[: period], render_resampled_frames(picture, euler_integrate(flow, period)))
    streamed = torch.cat(list(render_chunks(picture, euler_integrate(flow, 48, frames=range(0)), ResampleRender(),
                                            chunk=7, part_frames=5)))
    assert torch.equal(streamed, video)
    # Along the band the water carries the whole loop, so it is not shortened.
    along, _ = procedural_flow(mask, "left to right", 1.0, "generic", 2)
    assert loop_period(euler_integrate(along, 24, frames=range(0))) == 24
    # Nor is a loop whose copies travel less than MAX_TRAVEL_PX along wide water.
    wide = torch.zeros(1, 96, 320)
    wide[0, 8:88, :] = 1.0
    slow, _ = procedural_flow(wide, "left to right", 0.25, "generic", 2)
    assert loop_period(euler_integrate(slow, int(MAX_TRAVEL_PX / 0.25) // 2, frames=range(0))) == int(MAX_TRAVEL_PX / 0.25) // 2


@pytest.mark.parametrize("name, direction, speed, frames", [
    ("by_the_water", "downwards", 0.25, 120), ("by_the_water", "left to right", 1.0, 120),
    ("evening_glow", "downwards", 1.0, 120), ("evening_glow", "left to right", 0.25, 120),
])
def test_frames_of_a_photograph_keep_their_detail_slow_and_fast(name, direction, speed, frames):
    # The slowest loop (most sub-pixel reads) and the longest travel (120 px: a shorter loop played
    # again), along and across each water; tests/benchmark_render_quality.py measures every speed
    # and length in both directions (BENCHMARKS.md).
    picture, mask = photograph(name)
    flow, _ = procedural_flow(mask, direction, speed, "generic", 0)
    video = render_resampled_frames(picture, euler_integrate(flow, frames))
    rows = torch.nonzero(mask[0].any(dim=1)).squeeze(1)
    rows = slice(int(rows[0]) - 8, int(rows[-1]) + 9)  # the water's rows: what the measure reads
    region = erode(mask[0] > 0.5, 7)[rows]
    detail = detail_curve(torch.cat((video[:, rows], picture[None, rows])), picture[rows], region)
    assert float(detail.min()) >= 0.90 and float(detail.max() - detail.min()) <= 0.10, detail


@pytest.mark.parametrize("name, rows", [("by_the_water", slice(120, 280)), ("evening_glow", slice(185, 285))])
def test_frames_of_a_photograph_keep_its_detail(name, rows):
    picture, mask = photograph(name, rows, slice(200, 520))
    flow, _ = procedural_flow(mask, "left to right", 0.5, "generic", 0)
    region = erode(mask[0] > 0.5, 7)
    motion = euler_integrate(flow, 60)
    detail = detail_curve(torch.cat((render_resampled_frames(picture, motion), picture[None])), picture, region)
    assert float(detail.min()) >= 0.90 and float(detail.max() - detail.min()) <= 0.10, detail
    splatted = detail_curve(render_pixel_frames(picture, motion), picture, region)
    assert float(splatted.min()) < 0.80  # what the splatting loses, measured the same way


@pytest.mark.parametrize("name, direction", [("by_the_water", "left to right"), ("evening_glow", "left to right"),
                                             ("evening_glow", "downwards")])
def test_a_photographs_detail_is_not_shown_twice(name, direction):
    """Mid-loop, two copies carried L frames apart are both visible. Mixed evenly everywhere at once
    (one alpha per frame), each ripple showed twice: the correlation at the copies' distance reached
    0.33-0.41 (mean 0.20-0.23 over the loop). Handed over patch by patch: 0.17-0.25 (mean 0.08-0.11)."""
    picture, mask = photograph(name)
    flow, _ = procedural_flow(mask, direction, 0.5, "generic", 0)
    motion = euler_integrate(flow, 60)
    period = loop_period(motion)
    region = erode(mask[0] > 0.5, 7)
    frames = render_resampled_frames(picture, motion)[: period : max(1, period // 12)]
    ghost = ghost_curve(frames, flow, period, region)
    own = float(ghost_curve(picture[None], flow, period, region)[0])
    assert float(ghost.max()) <= 0.3 and float(ghost.mean()) <= own + 0.12, (ghost, own)


def test_each_pixel_hands_over_once_and_few_at_a_time():
    sources = torch.arange(0, 96 * 128, 3)
    phase = handover_phases(96, 128, sources)
    assert torch.equal(phase, handover_phases(96, 128, sources))  # fixed pattern
    assert float(phase.min()) == 0.0 and float(phase.max()) == 1.0
    assert torch.histc(phase, bins=4, min=0, max=1).tolist() == pytest.approx([sources.numel() / 4] * 4, abs=2)
    alphas = torch.linspace(1.0, 0.0, 61)
    shares = torch.stack([handover(float(a), phase) for a in alphas])  # [frames, M]
    assert bool((shares[0] == 1).all()) and bool((shares[-1] == 0).all())  # frame 0 and frame N: one copy each
    assert bool((shares[1:] <= shares[:-1]).all())  # the first copy only ever fades
    mixed = ((shares > 0.2) & (shares < 0.8)).float().mean(dim=1)
    assert float(mixed.max()) <= 0.5  # one alpha for the whole frame: every pixel, mid-loop
