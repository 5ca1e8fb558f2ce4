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


def chunks_of(frames, size, pulled=None):
    """The batch as a generator of IMAGE chunks; ``pulled`` counts chunks handed out."""
    for start in range(0, len(frames), size):
        if pulled is not None:
            pulled.append(start)
        yield frames[start : start + size].clone()


@pytest.mark.parametrize("fmt", ["png-sequence", "apng", "webp", "mp4"])
def test_streamed_chunks_write_what_the_batch_writes(tmp_path, loop, fmt):
    batch = write_loop(loop, str(tmp_path / "batch"), format=fmt, quality=100)
    streamed = write_loop(chunks_of(loop, 5), str(tmp_path / "streamed"), format=fmt, quality=100)
    if fmt == "png-sequence":
        for name in sorted(os.listdir(batch)):
            assert open(os.path.join(batch, name), "rb").read() == open(os.path.join(streamed, name), "rb").read()
    elif fmt == "mp4":
        # x264 is not bit-reproducible here under load (2 of 60 identical single-threaded encodes of
        # random frames differed, 2026-12-08), so the frames are compared within a grey level: a frame
        # missing, repeated or out of order differs by about 80 on these random frames.
        first, second = decoded_frames(batch), decoded_frames(streamed)
        assert len(first) == len(second) == FRAMES
        assert all(np.abs(a.astype(np.int16) - b).mean() < 1.0 for a, b in zip(first, second))
    else:
        assert open(batch, "rb").read() == open(streamed, "rb").read()


def test_streamed_repeats_come_from_a_spool_that_is_removed(tmp_path, loop):
    path = write_loop(chunks_of(loop, 5), str(tmp_path / "seq"), format="png-sequence", repeat_cycles=3)
    names = sorted(os.listdir(path))
    assert len(names) == 3 * FRAMES
    first, third = (np.asarray(Image.open(os.path.join(path, names[i]))) for i in (4, 2 * FRAMES + 4))
    assert np.array_equal(first, third)
    assert np.array_equal(first, (loop[4].numpy() * 255).round().astype(np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["seq"]


@pytest.mark.parametrize("fmt", ["gif", "webp", "apng", "mp4", "png-sequence"])
def test_encoding_pulls_and_reports_frame_by_frame(tmp_path, loop, fmt):
    pulled, reports = [], []

    def progress(done, total):
        reports.append((done, total, len(pulled)))

    write_loop(chunks_of(loop, 1, pulled), str(tmp_path / "clip"), format=fmt, progress=progress, frame_count=FRAMES)
    assert [(done, total) for done, total, _ in reports] == [(n, FRAMES) for n in range(1, FRAMES + 1)]
    # when frame n is reported, at most the chunk after it has been produced: nothing is read ahead
    assert all(chunks <= done + 1 for done, _, chunks in reports)


@pytest.mark.parametrize("fmt", ["webp", "apng", "webm"])
def test_interrupt_stops_every_encoder(tmp_path, loop, fmt):
    calls = []

    def interrupt(done, total):
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_loop(loop, str(tmp_path / "clip"), format=fmt, progress=interrupt)
    assert calls == [1, 2, 3] and os.listdir(tmp_path) == []


@pytest.mark.parametrize("fps, delays", [(30, [3, 4, 3]), (25, [4, 4, 4]), (50, [2, 2, 2])])
def test_gif_delays_keep_the_exact_rate(tmp_path, loop, fps, delays):
    path = write_loop(loop, str(tmp_path / "clip.gif"), format="gif", fps=fps)
    stored = []
    with Image.open(path) as gif:
        for i in range(gif.n_frames):
            gif.seek(i)
            stored.append(gif.info["duration"] // 10)
    assert stored[:3] == delays
    assert sum(stored) == round(100 * FRAMES / fps)  # the loop lasts what the fps says, within 1/100 s


def test_gif_refuses_rates_players_cannot_show(tmp_path, loop):
    with pytest.raises(InputError) as error:
        write_loop(loop, str(tmp_path / "clip"), format="gif", fps=60)
    assert error.value.input_name == "fps" and "50" in str(error.value) and "webp" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_streamed_gif_palette_comes_from_the_first_chunk(tmp_path, loop):
    path = write_loop(chunks_of(loop, 4), str(tmp_path / "clip.gif"), format="gif")
    with Image.open(path) as gif:
        gif.seek(FRAMES - 1)
        rgb = np.asarray(gif.convert("RGB"), dtype=float)
    assert np.abs(rgb - loop[FRAMES - 1].numpy() * 255).mean() < 8
    assert gif_colour_tables(open(path, "rb").read()) == (True, 0, FRAMES)


def test_chunks_of_another_size_are_refused(tmp_path, loop):
    def mixed():
        yield loop[:2]
        yield torch.rand(2, 40, 64, 3)

    with pytest.raises(InputError) as error:
        write_loop(mixed(), str(tmp_path / "clip.mp4"))
    assert error.value.input_name == "frames" and "64x40" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_stale_partial_files_of_dead_writers_are_removed(tmp_path, loop):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale_file = tmp_path / f".clip.mp4.{dead_pid}.partial"
    stale_folder = tmp_path / f".seq.{dead_pid}.partial"  # a png sequence's
    stale_spool = tmp_path / f".clip.mp4.frames.{dead_pid}.partial"
    alive = tmp_path / f".other.mp4.{os.getpid()}.partial"
    foreign = tmp_path / "notes.partial"  # not a name the pack makes
    for path in (stale_file, stale_spool, alive, foreign):
        path.write_bytes(b"x")
    stale_folder.mkdir()
    (stale_folder / "frame_00000.png").write_bytes(b"x")
    write_loop(loop, str(tmp_path / "clip"))
    assert sorted(os.listdir(tmp_path)) == sorted(["clip.mp4", alive.name, foreign.name])


def test_a_killed_writer_leaves_a_partial_that_the_next_write_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time, torch\n"
        "from text2cinemagraph.nodes.stages.video import write_loop\n"
        "write_loop(torch.rand(50, 32, 32, 3), sys.argv[1], format='apng',\n"
        "           progress=lambda done, total: time.sleep(0.2))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "clip")])
    try:
        for _ in range(600):
            if any(name.endswith(".partial") for name in os.listdir(tmp_path)):
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert [name for name in os.listdir(tmp_path) if name.endswith(".partial")]
    write_loop(torch.rand(2, 32, 32, 3), str(tmp_path / "next"), format="gif")
    assert os.listdir(tmp_path) == ["next.gif"]


@pytest.mark.parametrize("fmt", ["apng", "gif", "png-sequence"])
def test_a_batch_is_never_copied_whole(tmp_path, fmt):
    """Frame by frame: the writer adds less than half of one uint8 copy of the batch (its own state is bounded)."""
    from peak_memory import peak_rss

    batch = torch.rand(96, 384, 384, 3)
    write_loop(batch[:2], str(tmp_path / "warm-up"), format=fmt)  # imports and encoder set-up
    with peak_rss() as memory:
        write_loop(batch, str(tmp_path / "clip"), format=fmt)
    uint8_copy = batch.numel()
    assert memory.added < uint8_copy / 2, f"{memory.added / 2**20:.1f} MiB added"
