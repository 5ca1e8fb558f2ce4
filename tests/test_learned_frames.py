"""Learned frames (G_frame): the loop and still-region guarantees, cropping, and the training path."""

import pytest
import torch
from test_networks import models_dir  # noqa: F401  (fixture)

from text2cinemagraph.kernels import euler_integrate
from text2cinemagraph.kernels.morphology import erode
from text2cinemagraph.nodes.stages.frames import (
    PairedAccumulator,
    RenderPlan,
    SplatAccumulator,
    animated_region,
)
from text2cinemagraph.nodes.stages.learned_frames import (
    CORRECTION_BAND,
    DECODER_MARGIN,
    correction_weight,
    render_learned_frames,
)
from text2cinemagraph.nodes.stages.networks import FrameNetConfig, build_network

TINY = FrameNetConfig(ngf=8, feature_channels=8)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    net = build_network("frame", TINY)
    net.train()
    with torch.no_grad():  # settle spectral norms and statistics as training would
        for _ in range(4):
            features, _ = net.encode(torch.rand(2, 3, 48, 48) * 2 - 1)
            net.decode(features)
    return net.eval().requires_grad_(False)


def scene(size=160, frames=6, speed=1.5, channels=3):
    generator = torch.Generator().manual_seed(2)
    picture = torch.rand(size, size, channels, generator=generator)
    flow = torch.zeros(2, size, size)
    flow[0, 70:100, 60:110] = speed
    flow[1, 70:100, 60:110] = -0.5 * speed
    return picture, euler_integrate(flow, frames)


def test_frame_zero_is_the_picture_and_still_pixels_are_bit_exact(network):
    picture, motion = scene()
    calls = []
    frames = render_learned_frames(picture, motion, network, progress=lambda done, total: calls.append((done, total)))
    assert frames.shape == (6, 160, 160, 3) and frames.dtype == torch.float32
    assert torch.equal(frames[0], picture)
    still = ~animated_region(motion)
    assert still.sum() > 0.7 * still.numel()
    for frame in frames:
        assert torch.equal(frame[still], picture[still])
    moving = torch.zeros(160, 160, dtype=torch.bool)
    moving[75:95, 65:105] = True
    assert all((frames[n][moving] - picture[moving]).abs().mean() > 1e-3 for n in range(1, 6))
    assert calls == [(n, 6) for n in range(1, 7)]
    assert frames.min() >= 0.0 and frames.max() <= 1.0


def test_without_correction_the_guarantees_still_hold(network):
    picture, motion = scene()
    frames = render_learned_frames(picture, motion, network, correct_reconstruction=False)
    still = ~animated_region(motion)
    assert torch.equal(frames[0], picture)
    assert all(torch.equal(frame[still], picture[still]) for frame in frames)


def test_the_decoded_window_is_a_real_crop_that_changes_nothing(network):
    picture, motion = scene(size=256)
    plan = RenderPlan(motion, "cpu", margin=DECODER_MARGIN, multiple=TINY.multiple)
    rows, cols = plan.rows, plan.cols
    assert rows.start % 4 == 0 and cols.start % 4 == 0
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.6 * 256 * 256
    for correct in (True, False):
        cropped = render_learned_frames(picture, motion, network, correct_reconstruction=correct)
        whole = render_learned_frames(picture, motion, network, correct_reconstruction=correct, crop=False)
        assert torch.allclose(cropped, whole, atol=2e-5)
    assert DECODER_MARGIN >= 48


def test_both_accumulators_give_the_same_learned_frames(network):
    picture, motion = scene(size=128, frames=4)
    paired = render_learned_frames(picture, motion, network, accumulator=PairedAccumulator)
    plain = render_learned_frames(picture, motion, network, accumulator=SplatAccumulator)
    assert torch.equal(paired, plain)


def test_the_reconstruction_correction_stays_at_the_region_edge(network):
    # A textured region moving across the picture: with the correction, frames differ from the
    # network's own decode only in a band along the region's edge; deep inside they are equal.
    picture, motion = scene(size=160, frames=6, speed=2.0)
    corrected = render_learned_frames(picture, motion, network)
    network_only = render_learned_frames(picture, motion, network, correct_reconstruction=False)
    region = animated_region(motion)
    interior = erode(region, CORRECTION_BAND)
    edge = region & ~erode(region, 1)
    assert interior.sum() > 100
    for n in range(1, 6):
        assert torch.equal(corrected[n][interior], network_only[n][interior])
        assert (corrected[n][edge] - network_only[n][edge]).abs().mean() > 1e-3
    weight = correction_weight(region, CORRECTION_BAND)
    assert torch.all(weight[edge] == 1.0) and torch.all(weight[interior] == 0.0) and torch.all(weight[~region] == 0)


def dense(motion, n, backward=False):
    field = torch.zeros(2, motion.height * motion.width)
    field[:, motion.sources] = (motion.backward if backward else motion.forward)[n]
    return field.view(1, 2, motion.height, motion.width)


def test_rendering_agrees_with_the_training_forward(network):
    picture, motion = scene(size=96, frames=5)
    frames = render_learned_frames(picture, motion, network, correct_reconstruction=False, crop=False)
    region = animated_region(motion)
    image = picture.permute(2, 0, 1).unsqueeze(0) * 2 - 1
    for n in (1, 3, 4):
        alpha = torch.tensor([1.0 - n / 5])
        with torch.no_grad():
            out = network(image, image, dense(motion, n), dense(motion, n, backward=True), alpha)
        expected = ((out[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0)
        assert torch.allclose(frames[n][region], expected[region], atol=1e-4)


def test_no_motion_gives_the_picture_in_every_frame(network):
    picture = torch.rand(32, 32, 3)
    frames = render_learned_frames(picture, euler_integrate(torch.zeros(2, 32, 32), 4), network)
    assert all(torch.equal(frame, picture) for frame in frames)


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_alpha_pictures_keep_their_channels(network, channels):
    picture, motion = scene(size=96, frames=3, channels=channels)
    frames = render_learned_frames(picture, motion, network)
    assert frames.shape == (3, 96, 96, channels)
    if channels == 4:
        assert torch.equal(frames[..., 3], picture[..., 3].expand(3, -1, -1))
    still = ~animated_region(motion)
    assert torch.equal(frames[2][still], picture[still])


def test_splat_frames_node_learned_method(models_dir, network):  # noqa: F811
    from text2cinemagraph.nodes.motion import SymmetricSplatFrameGen
    from text2cinemagraph.nodes.stages.networks import save_network

    spec = SymmetricSplatFrameGen.INPUT_TYPES()
    assert spec["required"]["method"][0] == ["pixel", "learned"]
    assert spec["optional"]["frame_model"][1]["tooltip"]
    picture, motion = scene(size=64, frames=3)
    node = SymmetricSplatFrameGen()
    with pytest.raises(Exception, match="frame_model: .*video-pretrained/latest_net_G.pth"):
        node.render(picture[None], motion, "learned", frame_model="g_frame.safetensors")
    (models_dir / "video-pretrained").mkdir(parents=True)
    save_network(network, "frame", str(models_dir / "video-pretrained" / "g_frame.safetensors"))
    (frames,) = node.render(picture[None], motion, "learned", frame_model="video-pretrained/g_frame.safetensors")
    assert frames.shape == (3, 64, 64, 3) and torch.equal(frames[0], picture)
    (pixels,) = node.render(picture[None], motion, "pixel")
    assert pixels.shape == frames.shape


def test_a_motion_integrated_in_parts_by_the_render_gives_the_same_frames(network):
    picture, motion = scene(frames=9)
    partial = euler_integrate(motion.flow, 9, frames=range(0))
    assert torch.equal(render_learned_frames(picture, partial, network, part_frames=2),
                       render_learned_frames(picture, motion, network))
