"""Rendered loops: seamless, still where nothing moves, moving where and as asked."""

import math

import pytest
import torch
import torch.nn.functional as F

from motion_measure import angle_of, in_sector, mean_motion, smooth_texture
from text2cinemagraph.kernels import InputError, euler_integrate
from text2cinemagraph.nodes.stages import frames as frames_module
from text2cinemagraph.nodes.stages.directions import DIRECTION_SECTORS
from text2cinemagraph.kernels import splat_torch_
from text2cinemagraph.nodes.stages.frames import (
    PairedAccumulator,
    SplatAccumulator,
    SplatRender,
    animated_region,
    render_chunks,
    render_pixel_frames,
    stream_pixel_frames,
)
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow


def grow(region: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(region.float()[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0


def shrink(region: torch.Tensor, radius: int) -> torch.Tensor:
    return ~grow(~region, radius)


def centre_mask(size: int = 96, border: int = 16) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    mask[0, border:-border, border:-border] = 1.0
    return mask


def render(picture, mask, direction="left to right", speed=0.5, frames=30, seed=0, kind="generic"):
    flow, angles = procedural_flow(mask, direction, speed, kind, seed)
    return render_pixel_frames(picture, euler_integrate(flow, frames)), flow, angles


def test_constant_flow_moves_texture_by_exactly_one_pixel_per_frame():
    frames, height, width = 16, 32, 48
    # A texture periodic over the loop length, so forward and backward copies agree exactly.
    texture = smooth_texture(height, frames, seed=1).repeat(1, width // frames, 1)
    flow = torch.zeros(2, height, width)
    flow[0, 8:24, :] = 1.0
    video = render_pixel_frames(texture, euler_integrate(flow, frames))
    for n in range(frames):
        expected = torch.roll(texture, shifts=n, dims=1)
        assert torch.allclose(video[n, 8:24], expected[8:24], atol=1e-5), n
        assert torch.equal(video[n, :8], texture[:8]) and torch.equal(video[n, 24:], texture[24:])


def test_loop_closes_like_any_other_step():
    picture = smooth_texture(96, 96, seed=2)
    video, _, _ = render(picture, centre_mask(), "downwards", speed=0.7, frames=30)
    steps = torch.stack([(video[n + 1] - video[n]).abs().mean() for n in range(len(video) - 1)])
    loop_step = (video[0] - video[-1]).abs().mean()
    assert torch.equal(video[0], picture)
    # Frame 0 is the sharp picture and every other frame a blend of two splatted copies, so the
    # steps next to it (0 -> 1 and N-1 -> 0) are a little larger than the median, and alike.
    assert loop_step <= 1.05 * steps[0]
    assert loop_step <= 1.5 * steps.median()
    # A one-way (forward only) render would jump back by the whole travel distance.
    assert (video[len(video) // 2] - video[0]).abs().mean() > 3 * loop_step


def test_pixels_away_from_the_mask_are_bit_identical_in_every_frame():
    picture = smooth_texture(96, 96, seed=3)
    mask = torch.zeros(1, 96, 96)
    mask[0, 40:90, 10:60] = 1.0
    speed = 1.0
    video, flow, _ = render(picture, mask, "right to left, upwards", speed=speed, frames=24)
    margin = math.ceil(float(flow.norm(dim=0).max())) + 2
    still = ~grow(mask[0] > 0.5, margin)
    assert still.sum() > 0.5 * still.numel()
    for frame in video:
        assert torch.equal(frame[still], picture[still])
    moving = shrink(mask[0] > 0.5, 8)
    assert (video[12][moving] - picture[moving]).abs().mean() > 0.01


@pytest.mark.parametrize("phrase", list(DIRECTION_SECTORS))
def test_each_phrase_moves_inside_its_sector(phrase):
    picture = smooth_texture(96, 96, seed=4)
    mask = centre_mask()
    low, high = DIRECTION_SECTORS[phrase]
    for seed in (0, 7):
        video, _, angles = render(picture, mask, phrase, speed=0.6, frames=24, seed=seed)
        assert in_sector(angles[0], low, high)
        dx, dy = mean_motion(video, shrink(mask[0] > 0.5, 10), range(3, 9))
        measured = angle_of(dx, dy)
        assert in_sector(measured, low, high), (phrase, seed, angles[0], measured)


@pytest.mark.parametrize("speed", [0.3, 0.5, 1.0])
def test_measured_speed_matches_requested_speed(speed):
    picture = smooth_texture(96, 96, seed=5)
    mask = centre_mask()
    video, _, _ = render(picture, mask, "45", speed=speed, frames=24, seed=1)
    dx, dy = mean_motion(video, shrink(mask[0] > 0.5, 12), range(2, 10))
    assert math.hypot(dx, dy) == pytest.approx(speed, rel=0.15)


def test_same_seed_same_frames_other_seed_other_angle():
    picture = smooth_texture(64, 64, seed=6)
    mask = centre_mask(64, 12)
    first, _, angle_a = render(picture, mask, "upwards", frames=6, seed=11)
    again, _, angle_b = render(picture, mask, "upwards", frames=6, seed=11)
    _, _, angle_c = render(picture, mask, "upwards", frames=6, seed=12)
    assert torch.equal(first, again) and angle_a == angle_b
    assert angle_c != angle_a


def test_picture_of_another_size_is_rejected():
    flow, _ = procedural_flow(centre_mask(64, 12), "upwards", 0.5, "generic", 0)
    with pytest.raises(InputError) as error:
        render_pixel_frames(torch.rand(32, 32, 3), euler_integrate(flow, 4))
    assert error.value.input_name == "motion"


def whole_picture_render(picture, motion, importance=None):
    """An independent oracle: both copies of every pixel splatted over the whole picture with
    splat_torch_, dense hole filling with avg_pool2d, the picture outside the animated region."""
    height, width, channels = picture.shape
    planar = picture.permute(2, 0, 1).reshape(channels, -1)
    z = torch.zeros(height * width) if importance is None else importance.reshape(-1)
    weight = torch.exp(z - z.max())
    carried = torch.cat((planar * weight, weight[None]))
    region = animated_region(motion).reshape(-1)
    x0, y0 = motion.source_positions()
    frames = [picture]
    for n in range(1, motion.num_frames):
        alpha = 1.0 - n / motion.num_frames
        accum = carried.clone()
        accum[:, motion.sources] = 0.0
        values = carried[:, motion.sources]
        for displacement, scale in ((motion.forward[n], alpha), (motion.backward[n], 1.0 - alpha)):
            splat_torch_(accum, values, x0 + displacement[0], y0 + displacement[1],
                         torch.full_like(x0, scale), width)
        accum = accum.view(channels + 1, height, width)
        for _ in range(32):
            holes = accum[-1] < 1e-6
            if not holes.any():
                break
            around = F.avg_pool2d(accum[None], 3, stride=1, padding=1, count_include_pad=False)[0]
            accum[:, holes] = around[:, holes]
        colour = (accum[:-1] / accum[-1:].clamp_min(1e-6)).reshape(channels, -1)
        colour = torch.where(region, colour, planar)
        frames.append(colour.T.reshape(height, width, channels))
    return torch.stack(frames)


@pytest.mark.parametrize("slice_sources", [None, 1000])
def test_every_accumulator_renders_the_same_frames(slice_sources, monkeypatch):
    # PairedAccumulator is the CPU's; SplatAccumulator (splat_) is the GPU's, run here through
    # splat_torch_, which the CUDA kernel is tested against in test_splat.py and tests/gpu_check.py.
    if slice_sources is not None:  # the CPU accumulator in many slices adds in the same order
        monkeypatch.setattr(frames_module, "SLICE", slice_sources)
    picture = smooth_texture(96, 96, seed=7)
    mask = torch.zeros(1, 96, 96)
    mask[0, 30:96, 0:70] = 1.0  # runs off the bottom and left edges
    flow, _ = procedural_flow(mask, "downwards, right to left", 1.5, "generic", 2)
    motion = euler_integrate(flow, 20)
    importance = torch.rand(96, 96, generator=torch.Generator().manual_seed(0))
    for z in (None, importance):
        paired = render_pixel_frames(picture, motion, importance=z, accumulator=PairedAccumulator)
        plain = render_pixel_frames(picture, motion, importance=z, accumulator=SplatAccumulator)
        oracle = whole_picture_render(picture, motion, importance=z)
        assert torch.equal(paired[0], picture) and torch.equal(plain[0], picture)
        assert torch.equal(paired, plain)
        assert torch.allclose(paired, oracle, atol=1e-5)


def test_frames_come_in_chunks_equal_to_the_whole_batch():
    picture = smooth_texture(64, 64, seed=8)
    flow, _ = procedural_flow(centre_mask(64, 12), "upwards", 0.8, "generic", 0)
    motion = euler_integrate(flow, 10)
    calls = []
    chunks = list(render_chunks(picture, motion, SplatRender(), progress=lambda d, t: calls.append((d, t)), chunk=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert torch.equal(torch.cat(chunks), render_pixel_frames(picture, motion))
    assert calls == [(n, 10) for n in range(1, 11)]


def test_a_loop_streamed_in_parts_equals_the_whole_render():
    picture = smooth_texture(64, 64, seed=9)
    mask = torch.zeros(1, 64, 64)
    mask[0, 20:64, 0:50] = 1.0  # pixels leave the frame
    flow, _ = procedural_flow(mask, "downwards, right to left", 1.2, "generic", 3)
    whole = render_pixel_frames(picture, euler_integrate(flow, 15))
    for parts in (2, 3):
        streamed = torch.cat(list(stream_pixel_frames(picture, flow, 15, chunk=4, parts=parts)))
        assert torch.equal(streamed, whole), parts
    motion = euler_integrate(flow, 15, frames=range(7, 13))
    assert motion.forward_stored.shape[0] == 6 and motion.forward_stored.dtype == torch.int16
    full = euler_integrate(flow, 15)
    assert torch.equal(motion.forward_stored, full.forward_stored[7:13])
    assert torch.equal(motion.backward_stored, full.backward_stored[7:13])


@pytest.mark.parametrize("stored", [range(0), range(7, 13), range(1, 4), range(0, 16)])
@pytest.mark.parametrize("part_frames", [1, 4, None])
def test_a_motion_that_stores_some_frames_renders_the_whole_loop(stored, part_frames):
    """The render integrates the frames the motion lacks, in parts, and gets the whole motion's frames."""
    picture = smooth_texture(64, 64, seed=9)
    mask = torch.zeros(1, 64, 64)
    mask[0, 20:64, 0:50] = 1.0  # pixels leave the frame
    flow, _ = procedural_flow(mask, "downwards, right to left", 1.2, "generic", 3)
    whole = render_pixel_frames(picture, euler_integrate(flow, 15))
    partial = euler_integrate(flow, 15, frames=stored)
    assert partial.forward_stored.shape[0] == len(stored)
    assert torch.equal(render_pixel_frames(picture, partial, part_frames=part_frames), whole)


def test_a_plan_of_a_partial_motion_refuses_frames_out_of_order():
    flow, _ = procedural_flow(centre_mask(32, 8), "upwards", 0.8, "generic", 0)
    plan = frames_module.RenderPlan(euler_integrate(flow, 10, frames=range(0)), "cpu", part_frames=3)
    plan.positions(5)
    with pytest.raises(ValueError, match="out of order"):
        plan.positions(2)
