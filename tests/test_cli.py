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
