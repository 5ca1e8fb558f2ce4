"""The bad-input matrix: every node, the CLI loaders, the network files and the partial-file rules.

Each case checks that the result is right, or that the error names the input
and says what would be valid. The queue client's cases are in test_queue_security.py.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from text2cinemagraph.__main__ import main
from text2cinemagraph.kernels import InputError, euler_integrate
from text2cinemagraph.nodes.stages import files
from text2cinemagraph.nodes.stages.pictures import load_mask, load_picture
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow


def rectangle_mask(size=80, top=20, bottom=70, left=10, right=60) -> torch.Tensor:
    mask = torch.zeros(size, size)
    mask[top:bottom, left:right] = 1.0
    return mask


def interior_speed(flow: torch.Tensor, mask: torch.Tensor, margin: int = 8) -> float:
    inner = mask.clone().bool()
    for _ in range(margin):
        inner = -torch.nn.functional.max_pool2d(-inner.float()[None, None], 3, 1, 1)[0, 0] > 0.5
    return float(flow.norm(dim=0)[inner].mean())


# --- CLI picture loading (as ComfyUI's LoadImage) ---------------------------------------------


def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    levels = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    rgb, mask = load_picture(str(path))
    assert mask is None and rgb.shape == (32, 32, 3)
    expected = torch.from_numpy(levels.astype(np.float32) / 65535.0)
    assert torch.allclose(rgb[..., 0], expected, atol=1e-6) and torch.equal(rgb[..., 0], rgb[..., 2])
    assert torch.allclose(load_mask(str(path)), expected, atol=1e-6)  # a 16-bit mask too


def save_with_orientation(array: np.ndarray, path, orientation: int) -> None:
    picture = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif)


def test_the_mask_follows_its_exif_orientation_as_the_picture_does(tmp_path):
    stored = np.zeros((20, 40), np.uint8)
    stored[:5, :10] = 255  # top-left of the stored pixels
    save_with_orientation(np.stack([stored] * 3, -1), tmp_path / "picture.jpg", 6)
    save_with_orientation(stored, tmp_path / "mask.png", 6)
    rgb, _ = load_picture(str(tmp_path / "picture.jpg"))
    mask = load_mask(str(tmp_path / "mask.png"))
    shown = np.rot90(stored, k=-1)  # orientation 6: turn 90 degrees clockwise to show
    assert tuple(rgb.shape[:2]) == tuple(mask.shape) == shown.shape
    assert torch.equal(mask > 0.5, torch.from_numpy(shown.copy() > 127))
    assert float(rgb[..., 0][mask > 0.5].mean()) > 0.9  # the same place is bright in the picture


def test_palette_transparency_is_the_mask(tmp_path):
    indices = np.zeros((16, 16), np.uint8)
    indices[4:12, 4:12] = 1  # palette entry 1 is transparent
    picture = Image.fromarray(indices, mode="P")
    picture.putpalette([0, 0, 255, 0, 128, 0] + [0] * 762)
    picture.save(tmp_path / "palette.png", transparency=1)
    rgb, mask = load_picture(str(tmp_path / "palette.png"))
    assert mask is not None
    assert torch.equal(mask, torch.from_numpy(indices.astype(np.float32)))  # 1 - alpha
    assert torch.allclose(rgb[0, 0], torch.tensor([0.0, 0.0, 1.0]))


@pytest.mark.parametrize("argument", ["picture", "--mask"])
def test_a_decompression_bomb_is_refused_naming_the_input(tmp_path, monkeypatch, capsys, argument):
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    Image.new("L", (4, 4)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 * 64 > 2 * 1000: Pillow's bomb error
    paths = {"picture": tmp_path / "small.png", "--mask": tmp_path / "small.png", argument: tmp_path / "big.png"}
    code = main(["animate", str(paths["picture"]), "--mask", str(paths["--mask"]), "--out", str(tmp_path / "o.gif")])
    err = capsys.readouterr().err
    assert code == 2
    name = "PICTURE" if argument == "picture" else "--mask"
    assert f"error: {name}: " in err and "too large to open safely" in err and "scale it down" in err


@pytest.mark.parametrize("loader, name", [(load_picture, "PICTURE"), (load_mask, "--mask")])
def test_a_file_that_is_no_picture_is_refused_naming_the_input(tmp_path, loader, name):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(InputError) as error:
        loader(str(path), name)
    assert error.value.input_name == name and "PNG, JPEG" in str(error.value)


# --- FlowPredictor: masks and pictures ------------------------------------------------------------


def test_two_identical_masks_move_at_the_requested_speed():
    mask = rectangle_mask()
    single, _ = procedural_flow(mask[None], "left to right", 0.5, "generic", 0)
    double, _ = procedural_flow(torch.stack([mask, mask]), "left to right", 0.5, "generic", 0)
    assert math.isclose(interior_speed(single, mask), 0.5, rel_tol=0.05)
    assert math.isclose(interior_speed(double, mask), 0.5, rel_tol=0.05)  # not 0.8-1.0
    assert float(double.norm(dim=0).max()) <= 1.05 * float(single.norm(dim=0).max()) + 1e-6


def test_overlapping_masks_keep_their_own_speed_outside_the_overlap():
    left, right = rectangle_mask(left=5, right=45), rectangle_mask(left=35, right=75)
    flow, _ = procedural_flow(torch.stack([left, right]), "left to right; left to right", 1.0, "generic", 3)
    union = ((left + right) > 0).float()
    assert math.isclose(interior_speed(flow, union), 1.0, rel_tol=0.1)
    assert float(flow.norm(dim=0).max()) < 2.0  # overlaps never add up to double speed
    assert float(flow[:, union == 0].abs().max()) == 0.0


def nan_picture(size=32) -> torch.Tensor:
    image = torch.rand(1, size, size, 3)
    image[0, 3, 4, 1] = float("nan")
    return image


@pytest.mark.parametrize("method", ["procedural", "learned", "learned_direction"])
def test_flow_predictor_refuses_non_finite_pixels_first(method):
    from text2cinemagraph.nodes.motion import FlowPredictor

    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    with pytest.raises(InputError) as error:
        FlowPredictor().predict(nan_picture(), mask, method, "auto", 0.5, "generic", 0)  # before any network
    assert error.value.input_name == "image" and "1 NaN or infinite values" in str(error.value)


def test_flow_predictor_refuses_a_non_finite_mask():
    mask = rectangle_mask(32, 8, 24, 8, 24)[None]
    mask[0, 0, 0] = float("inf")
    with pytest.raises(InputError) as error:
        procedural_flow(mask, "auto", 0.5, "generic", 0)
    assert error.value.input_name == "mask" and "finite numbers in 0..1" in str(error.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_splat_frame_gen_refuses_non_finite_pixels(value):
    from text2cinemagraph.nodes.motion import SymmetricSplatFrameGen

    flow = torch.zeros(2, 32, 32)
    flow[0, 8:24, 8:24] = 0.5
    image = torch.rand(1, 32, 32, 3)
    image[0, 10, 10, 0] = value
    with pytest.raises(InputError) as error:
        SymmetricSplatFrameGen().render(image, euler_integrate(flow, 4), "pixel")
    assert error.value.input_name == "image" and "finite" in str(error.value)


def test_euler_integrate_refuses_a_non_finite_flow():
    flow = torch.zeros(2, 16, 16)
    flow[1, 4, 4] = float("nan")
    with pytest.raises(InputError) as error:
        euler_integrate(flow, 8)
    assert error.value.input_name == "flow" and "finite everywhere" in str(error.value)


# --- the other nodes ---------------------------------------------------------------------------


def test_twin_prompt_builder_refuses_an_empty_prompt():
    from text2cinemagraph.nodes.prompts import TwinPromptBuilder

    with pytest.raises(InputError) as error:
        TwinPromptBuilder().build("   ")
    assert error.value.input_name == "prompt" and "describe a scene" in str(error.value)


@pytest.mark.parametrize("artistic, natural, name", [
    ([], [[torch.zeros(1, 77, 8), {}]], "artistic_positive"),
    ([[torch.zeros(2, 77, 8), {}]], [[torch.zeros(1, 77, 8), {}]], "artistic_positive"),
    ([[torch.zeros(1, 77, 8), {}]], [[torch.zeros(1, 77, 16), {}]], "natural_positive"),
])
def test_attention_injecting_sampler_refuses_unusable_conditioning(artistic, natural, name):
    from text2cinemagraph.nodes.twin import stack_twin_conditioning

    with pytest.raises(InputError) as error:
        stack_twin_conditioning(artistic, natural)
    assert error.value.input_name == name


def cluster_inputs():
    from text2cinemagraph.nodes.stages.twin_attention import AttentionMaps

    grid = (8, 8)
    maps = AttentionMaps(grid, torch.full((64, 64), 1 / 64), torch.zeros(2, 64, 77), 1, 1)
    return maps, torch.rand(1, 64, 64, 3)


@pytest.mark.parametrize("segmentation, words", [
    (torch.ones(2, 64, 64), "batch of 2 masks; connect one mask"),
    (torch.full((1, 64, 64), float("nan")), "finite numbers"),
    (torch.zeros(1, 64, 64), "is empty"),
])
def test_attention_cluster_mask_refuses_unusable_segmentations(segmentation, words):
    from text2cinemagraph.nodes.cluster_mask import AttentionClusterMask

    maps, image = cluster_inputs()
    with pytest.raises(InputError) as error:
        AttentionClusterMask().mask(maps, image, "water", 5, 0.5, 0, 0, segmentation=segmentation)
    assert error.value.input_name == "segmentation" and words in str(error.value)


def test_odise_segment_refuses_a_batch_of_pictures():
    from text2cinemagraph.nodes.stages.segmentation import segment_picture

    with pytest.raises(InputError) as error:
        segment_picture(torch.rand(2, 16, 16, 3), "water", "auto", "/nowhere")
    assert error.value.input_name == "image" and "one picture" in str(error.value)


@pytest.mark.parametrize("frames, settings, name", [
    (torch.full((2, 8, 8, 3), float("nan")), {}, "frames"),
    (torch.rand(0, 8, 8, 3), {}, "frames"),
    (torch.rand(2, 8, 8, 3), {"format": "avi"}, "format"),
    (torch.rand(2, 8, 8, 3), {"loop_count": -1}, "loop_count"),
])
def test_loop_video_writer_refuses_bad_settings_writing_nothing(tmp_path, frames, settings, name):
    from text2cinemagraph.nodes.stages.video import write_loop

    with pytest.raises(InputError) as error:
        write_loop(frames, str(tmp_path / "loop"), **settings)
    assert error.value.input_name == name
    assert list(tmp_path.iterdir()) == []


# --- network files --------------------------------------------------------------------------------


def tiny_hint():
    from text2cinemagraph.nodes.stages.networks import build_network
    from text2cinemagraph.nodes.stages.networks.hint_net import HintNetConfig

    torch.manual_seed(0)
    return build_network("hint", HintNetConfig(num_filters=4, spade_hidden=8))


def test_damaged_metadata_in_a_pack_safetensors_file_is_named(tmp_path):
    from safetensors.torch import save_file

    from text2cinemagraph.nodes.stages.networks import load_network, save_network

    path = tmp_path / "hint.safetensors"
    save_network(tiny_hint(), "hint", str(path))
    state = load_network(str(path), ["hint"], name="flow_model", for_training=True)[1].state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata={"t2c_kind": "hint", "t2c_config": '{"num_filters": 4,'})
    with pytest.raises(InputError) as error:
        load_network(str(path), ["hint"], name="flow_model")
    message = str(error.value)
    assert error.value.input_name == "flow_model" and "hint.safetensors has damaged metadata" in message
    assert "convert-checkpoint" in message and not isinstance(error.value.__cause__, ValueError)


def test_a_checkpoint_with_missing_tensors_is_refused_naming_file_and_keys(tmp_path):
    from text2cinemagraph.nodes.stages.networks import load_network

    state = tiny_hint().state_dict()
    dropped = [key for key in sorted(state) if key.startswith("conv4.")][:2]  # not what identifies the kind
    for key in dropped:
        del state[key]
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as error:
        load_network(str(path), ["hint"], name="flow_model")
    message = str(error.value)
    assert error.value.input_name == "flow_model" and "latest_net_G.pth does not fit" in message
    assert "2 missing keys" in message and all(key in message for key in dropped)


@pytest.mark.parametrize("failure, words", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
    (ImportError("needs timm", name="timm"), "a library it needs is missing"),
    (OSError("Unable to load weights: header too large"), "incomplete or corrupted"),
])
def test_segmentation_loader_failures_are_reported_by_cause(failure, words):
    from text2cinemagraph.nodes.stages import segmentation

    def loader():
        raise failure

    with pytest.raises(InputError) as error:
        segmentation.backends._load("weights", "clipseg", "/models/clipseg", loader)
    message = str(error.value)
    assert error.value.input_name == "model" and words in message and "/models/clipseg" in message
    assert ("corrupted" in message) == (words == "incomplete or corrupted")


# --- nothing half-written ------------------------------------------------------------------------


def test_a_failed_conversion_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, capsys):
    import safetensors.torch

    source, target = tmp_path / "latest_net_G.pth", tmp_path / "hint.safetensors"
    torch.save(tiny_hint().state_dict(), source)
    target.write_bytes(b"the previous conversion")

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    assert main(["convert-checkpoint", str(source), str(target)]) == 2
    assert "error: OUT: cannot write" in capsys.readouterr().err
    assert target.read_bytes() == b"the previous conversion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hint.safetensors", "latest_net_G.pth"]


def test_stale_partial_files_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    dead = tmp_path / ".latest_net_G.safetensors.999999999.partial"  # no such process
    alive = tmp_path / f".other.bin.{os.getpid()}.partial"  # this process: maybe another thread's write
    unrelated = tmp_path / "notes.partial"
    for path in (dead, alive, unrelated):
        path.write_bytes(b"x")
    with files.atomic_write(str(tmp_path / "result.bin")) as partial:
        assert os.path.basename(partial).startswith(".result.bin.") and partial.endswith(".partial")
        with open(partial, "wb") as handle:
            handle.write(b"whole")
    assert (tmp_path / "result.bin").read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, unrelated.name, "result.bin"])


def test_training_writes_latest_net_g_by_rename(tmp_path, monkeypatch):
    from text2cinemagraph.nodes.stages.networks import checkpoints

    path = tmp_path / "latest_net_G.safetensors"
    checkpoints.save_network(tiny_hint(), "hint", str(path))
    before = path.read_bytes()
    seen = []
    original = files.os.replace

    def replace(src, dst):
        seen.append((os.path.basename(src), os.path.basename(dst), path.read_bytes() == before))
        original(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    checkpoints.save_network(tiny_hint(), "hint", str(path))
    (src, dst, untouched), = seen
    assert src.startswith(".latest_net_G.safetensors.") and dst == "latest_net_G.safetensors" and untouched
