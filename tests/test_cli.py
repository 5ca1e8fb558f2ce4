"""The command line, on the bundled example."""

import os
import subprocess
import sys

import av
import pytest

from conftest import ASSETS, REPO
from text2cinemagraph.__main__ import main


def test_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "text2cinemagraph", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0 and "animate" in done.stdout


def test_animate_the_bundled_example(tmp_path, capsys):
    out = tmp_path / "loop.mp4"
    code = main(["animate", os.path.join(ASSETS, "lake.png"), "--mask", os.path.join(ASSETS, "lake_mask.png"),
                 "--direction", "left to right", "--frames", "8", "--out", str(out)])
    assert code == 0 and out.is_file()
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 8 and (frames[0].width, frames[0].height) == (512, 512)


def test_alpha_channel_is_the_mask(tmp_path):
    out = tmp_path / "loop.gif"
    assert main(["animate", os.path.join(ASSETS, "t2c_lake_masked.png"), "--frames", "4", "--out", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--direction", "diagonal"], "direction: unknown direction"),
        (["--frames", "0"], "frames: must be at least 1"),
        (["--mask", "missing.png"], "--mask: no such file"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, extra, words):
    args = ["animate", os.path.join(ASSETS, "lake.png"), "--mask", os.path.join(ASSETS, "lake_mask.png"),
            "--out", str(tmp_path / "x.mp4")]
    assert main(args + extra) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_a_loop_that_cannot_fit_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from text2cinemagraph.nodes.stages import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: 64 << 20)  # 64 MiB free
    out = tmp_path / "loop.mp4"
    code = main(["animate", os.path.join(ASSETS, "lake.png"), "--mask", os.path.join(ASSETS, "lake_mask.png"),
                 "--frames", "120", "--out", str(out)])
    message = capsys.readouterr().err
    assert code == 2 and "--frames" in message and "GiB" in message and "120 frames" in message
    assert not out.exists()


def test_the_nodes_refuse_a_loop_that_cannot_fit(monkeypatch):
    import torch
    from comfy_inprocess import import_comfy

    from text2cinemagraph.kernels import InputError
    from text2cinemagraph.nodes import motion as motion_nodes
    from text2cinemagraph.nodes.stages import memory

    import_comfy()
    monkeypatch.setattr(motion_nodes, "progress_callback", lambda total: None)
    flow = torch.zeros(2, 64, 64)
    flow[0, 20:40, 20:40] = 0.5
    (motion,) = motion_nodes.EulerIntegrate().integrate(flow, 8)
    assert motion.flow.device.type == "cpu" and motion.forward_stored.dtype == torch.int16
    monkeypatch.setattr(memory, "available_memory", lambda device: 1 << 10)
    with pytest.raises(InputError) as error:
        motion_nodes.EulerIntegrate().integrate(flow, 8)
    assert error.value.input_name == "frames" and "64x64" in str(error.value)
    with pytest.raises(InputError) as error:
        motion_nodes.SymmetricSplatFrameGen().render(torch.rand(1, 64, 64, 3), motion, "pixel")
    assert error.value.input_name == "frames" and "8 frames at 64x64" in str(error.value)


def test_the_nodes_leave_a_large_motion_to_the_render_which_integrates_it_in_parts(monkeypatch):
    """A motion larger than 1/16 of the frames is not kept between nodes; the frames are unchanged."""
    import torch
    from comfy_inprocess import import_comfy

    from text2cinemagraph.kernels import euler_integrate
    from text2cinemagraph.nodes import motion as motion_nodes
    from text2cinemagraph.nodes.stages import memory
    from text2cinemagraph.nodes.stages.frames import render_pixel_frames
    from text2cinemagraph.nodes.stages.resampled_frames import render_resampled_frames

    import_comfy()
    monkeypatch.setattr(motion_nodes, "progress_callback", lambda total: None)
    picture = torch.rand(1, 48, 48, 3, generator=torch.Generator().manual_seed(1))
    small, large = torch.zeros(2, 48, 48), torch.zeros(2, 48, 48)
    small[0, 20:24, 20:24] = 0.7  # 16 of 2304 pixels: a few bytes a frame, kept whole
    large[0, 8:40, 4:44], large[1, 8:40, 4:44] = 0.9, -0.4  # over half the picture: more than 1/16 of the frames
    for flow, whole in ((small, True), (large, False)):
        (motion,) = motion_nodes.EulerIntegrate().integrate(flow, 24)
        assert len(motion.stored_frames) == (25 if whole else 0)
        parts = []
        original = memory.render_part_frames
        monkeypatch.setattr(motion_nodes, "render_part_frames", lambda *a: parts.append(original(*a)) or parts[-1])
        (frames,) = motion_nodes.SymmetricSplatFrameGen().render(picture, motion, "pixel")
        assert (parts[0] > 24) == whole and 1 <= parts[0] <= 25
        assert torch.equal(frames, render_resampled_frames(picture, euler_integrate(flow, 24)))
        (splatted,) = motion_nodes.SymmetricSplatFrameGen().render(picture, motion, "pixel", pixel_render="splat")
        assert torch.equal(splatted, render_pixel_frames(picture, euler_integrate(flow, 24)))
