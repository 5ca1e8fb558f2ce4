"""``python -m text2cinemagraph loop CLIP``: both methods on a generated clip, written losslessly, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from test_clip_loop import seam_ratio, synthetic
from text2cinemagraph.__main__ import main
from text2cinemagraph.nodes.stages.video import write_loop

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    """A 24-frame 64 px clip as an animated png (lossless: its frames are exactly the clip, in 8 bits)."""
    clip, region = synthetic((1.0, 0.5), frames=24, size=64)
    folder = tmp_path_factory.mktemp("clip")
    return write_loop(clip, str(folder / "clip.png"), format="apng"), (clip * 255).round() / 255, region


def read_apng(path) -> torch.Tensor:
    frames = []
    with Image.open(path) as picture:
        for index in range(picture.n_frames):
            picture.seek(index)
            frames.append(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(frames))


@pytest.mark.parametrize("method, frames, expected", [("eulerian", 16, 16), ("loop", 12, 12), ("loop", 0, None)])
def test_loop_command_writes_a_seamless_loop_with_a_frozen_background(clip_file, tmp_path, method, frames, expected):
    path, clip, _ = clip_file
    out, mask_path = tmp_path / "loop.png", tmp_path / "mask.png"
    code = main(["loop", path, "--method", method, "--frames", str(frames), "--reference", "3", "--blend", "4",
                 "--save-mask", str(mask_path), "--out", str(out)])
    assert code == 0
    loop = read_apng(out)
    region = torch.from_numpy(np.asarray(Image.open(mask_path)) > 127)
    if expected is not None:
        assert loop.shape[0] == expected
    else:
        assert 12 <= loop.shape[0] <= 24 - 4 - 2
    still = ~region
    assert (loop[:, still] == clip[3][still]).all()
    assert seam_ratio(loop, region) <= 1.5


def test_the_loop_plays_at_the_clips_frame_rate(tmp_path):
    import av

    clip, _ = synthetic((1.0, 0.5), frames=16, size=64)
    source = write_loop(clip, str(tmp_path / "clip.mp4"), fps=24.0)
    out = tmp_path / "loop.mp4"
    assert main(["loop", source, "--method", "loop", "--blend", "2", "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        assert float(container.streams.video[0].average_rate) == 24.0


def test_a_given_mask_is_used(clip_file, tmp_path):
    path, clip, region = clip_file
    mask = tmp_path / "given.png"
    Image.fromarray(region.numpy().astype(np.uint8) * 255).save(mask)
    out, saved = tmp_path / "loop.png", tmp_path / "saved.png"
    args = ["loop", path, "--mask", str(mask), "--method", "loop", "--save-mask", str(saved), "--out", str(out)]
    assert main(args) == 0
    assert np.array_equal(np.asarray(Image.open(saved)) > 127, region.numpy())


def _frames_folder(folder, sizes):
    folder.mkdir()
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(np.full((height, width, 3), 10 * i, np.uint8)).save(folder / f"f{i:03d}.png")
    return str(folder)


@pytest.mark.parametrize("case, words", [
    ("two frames", "CLIP: has 2 frame(s)"),
    ("sizes", "CLIP: frame 4 is 30x32 but the first is 32x32"),
    ("mask size", "--mask: is 16x16 but the clip is 64x64"),
    ("still", "CLIP: nothing moves"),
    ("too long", "--frames: is 60, but this clip of 24 frames holds loops of"),
    ("reference", "--reference: is 99 but the clip has frames 0..23"),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(clip_file, tmp_path, capsys, case, words):
    path, _, _ = clip_file
    extra = []
    if case == "two frames":
        path = _frames_folder(tmp_path / "two", [(32, 32)] * 2)
    elif case == "sizes":
        path = _frames_folder(tmp_path / "sizes", [(32, 32)] * 4 + [(32, 30)] + [(32, 32)] * 5)
    elif case == "still":
        path = _frames_folder(tmp_path / "still", [(32, 32)] * 9)
    elif case == "mask size":
        Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "small.png")
        extra = ["--mask", str(tmp_path / "small.png")]
    elif case == "too long":
        extra = ["--method", "loop", "--frames", "60"]
    elif case == "reference":
        extra = ["--reference", "99"]
    out = tmp_path / "out" / "loop.mp4"
    assert main(["loop", path, *extra, "--save-mask", str(tmp_path / "out" / "mask.png"), "--out", str(out)]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_eulerian_loop_longer_than_memory_allows_is_refused(clip_file, tmp_path, capsys, monkeypatch):
    from text2cinemagraph.nodes.stages import memory

    path, _, _ = clip_file
    monkeypatch.setattr(memory, "available_memory", lambda device: 1 << 20)  # 1 MiB free
    out = tmp_path / "loop.mp4"
    assert main(["loop", path, "--frames", "100000", "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "--frames" in message and "100000 frames" in message and "GiB" in message
    assert not out.exists()
