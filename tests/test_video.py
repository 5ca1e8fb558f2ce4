"""LoopVideoWriter's encoding: every format decodes with the right frames, and writes are atomic."""

import os

import av
import numpy as np
import pytest
import torch
from PIL import Image

from motion_measure import smooth_texture
from text2cinemagraph.kernels import InputError
from text2cinemagraph.nodes.stages.video import write_loop

FRAMES = 12


@pytest.fixture(scope="module")
def loop():
    base = smooth_texture(48, 64, seed=0, cell=12)
    return torch.stack([torch.roll(base, n * 2, dims=1) for n in range(FRAMES)])


def decoded_frames(path):
    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("fmt, codec", [("mp4", "h264"), ("webm", "vp9")])
def test_video_containers_decode_with_every_frame(tmp_path, loop, fmt, codec):
    path = write_loop(loop, str(tmp_path / "clip"), format=fmt, fps=24, repeat_cycles=2)
    assert path.endswith("." + fmt)
    with av.open(path) as container:
        assert container.streams.video[0].codec_context.name == codec
        assert float(container.streams.video[0].average_rate) == pytest.approx(24)
    frames = decoded_frames(path)
    assert len(frames) == 2 * FRAMES
    expected = (loop[3].numpy() * 255).round()
    assert np.abs(frames[3].astype(float) - expected).mean() < 6
    assert np.abs(frames[FRAMES + 3].astype(float) - frames[3].astype(float)).mean() < 2


def test_gif_shares_one_palette_and_loops_forever(tmp_path, loop):
    path = write_loop(loop, str(tmp_path / "clip.gif"), format="gif", fps=25, loop_count=0)
    with Image.open(path) as gif:
        assert gif.n_frames == FRAMES and gif.info["loop"] == 0 and gif.info["duration"] == 40
        for i in range(gif.n_frames):
            gif.seek(i)
            rgb = np.asarray(gif.convert("RGB"), dtype=float)
            assert np.abs(rgb - loop[i].numpy() * 255).mean() < 8
    has_global, local_tables, images = gif_colour_tables(open(path, "rb").read())
    assert has_global and images == FRAMES and local_tables == 0


def gif_colour_tables(data: bytes) -> tuple[bool, int, int]:
    """(global colour table present, frames with a local colour table, frames) of a GIF file."""

    def skip_sub_blocks(at: int) -> int:
        while data[at]:
            at += data[at] + 1
        return at + 1

    packed = data[10]
    at = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    local, images = 0, 0
    while data[at] != 0x3B:
        if data[at] == 0x21:  # extension: label, then sub-blocks
            at = skip_sub_blocks(at + 2)
        else:  # 0x2C image descriptor, optional local table, LZW code size, sub-blocks
            flags = data[at + 9]
            images += 1
            at += 10
            if flags & 0x80:
                local += 1
                at += 3 * 2 ** ((flags & 7) + 1)
            at = skip_sub_blocks(at + 1)
    return bool(packed & 0x80), local, images


@pytest.mark.parametrize("fmt, suffix", [("webp", ".webp"), ("apng", ".png")])
def test_animated_images_keep_frames_and_loop_count(tmp_path, loop, fmt, suffix):
    path = write_loop(loop, str(tmp_path / "clip"), format=fmt, loop_count=3, quality=100)
    assert path.endswith(suffix)
    with Image.open(path) as animation:
        assert animation.n_frames == FRAMES and animation.info["loop"] == 3
        animation.seek(5)
        rgb = np.asarray(animation.convert("RGB"), dtype=float)
    assert np.abs(rgb - loop[5].numpy() * 255).max() <= 1


def test_png_sequence_is_a_folder_of_exact_frames(tmp_path, loop):
    path = write_loop(loop, str(tmp_path / "frames"), format="png-sequence")
    names = sorted(os.listdir(path))
    assert len(names) == FRAMES and names[0] == "frame_00000.png"
    exact = (loop[7].numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(os.path.join(path, names[7]))), exact)


@pytest.mark.parametrize("fmt", ["mp4", "gif", "png-sequence"])
def test_interrupted_write_leaves_nothing(tmp_path, loop, fmt):
    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_loop(loop, str(tmp_path / "clip"), format=fmt, progress=interrupt)
    assert os.listdir(tmp_path) == []


def test_odd_sizes_are_padded_for_h264(tmp_path):
    frames = torch.rand(4, 33, 47, 3)
    path = write_loop(frames, str(tmp_path / "odd.mp4"))
    assert decoded_frames(path)[0].shape == (34, 48, 3)


def test_unwritable_target_names_the_input(tmp_path, loop):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(InputError) as error:
        write_loop(loop, str(blocker / "clip.mp4"), output_name="filename_prefix")
    assert error.value.input_name == "filename_prefix" and "cannot write" in str(error.value)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"fps": 0}, "fps"), ({"format": "avi"}, "format"), ({"repeat_cycles": 0}, "repeat_cycles")],
)
def test_bad_settings_name_the_input(tmp_path, loop, kwargs, name):
    with pytest.raises(InputError) as error:
        write_loop(loop, str(tmp_path / "clip"), **kwargs)
    assert error.value.input_name == name
    assert os.listdir(tmp_path) == []


def test_nan_frames_are_refused(tmp_path, loop):
    broken = loop.clone()
    broken[2, 3, 4, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        write_loop(broken, str(tmp_path / "clip.mp4"))
