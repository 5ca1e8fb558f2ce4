"""Outputs carry their workflow, read back where ComfyUI's frontend reads it; LoopVideoWriter as a node.

The container readers here follow the frontend's parsers (frontend 1.32.9, assets
``index-*.js``: ``getFromIsobmffFile``, ``getFromWebmFile``, ``getWebpMetadata``,
``getFromPngFile``); tests/test_browser_drop.py drops the files on the real editor.
"""

from __future__ import annotations

import json
import os
import struct

import av
import pytest
import torch
from PIL import Image

from text2cinemagraph.kernels import InputError
from text2cinemagraph.nodes.stages.video import write_loop

PROMPT = {"3": {"class_type": "LoopVideoWriter", "inputs": {"fps": 30.0, "note": "naïve ünïcode"}}}
WORKFLOW = {"last_node_id": 3, "nodes": [{"id": 3, "type": "LoopVideoWriter"}], "links": [], "version": 0.4}
METADATA = {"prompt": PROMPT, "workflow": WORKFLOW}


@pytest.fixture(scope="module")
def frames():
    torch.manual_seed(0)
    return torch.rand(6, 32, 48, 3)


def isobmff_metadata(data: bytes) -> dict:
    """moov/udta/meta: mdta names in `keys`, JSON values in `ilst` items (as the frontend reads mp4)."""

    def boxes(start, end):
        while start + 8 <= end:
            size, kind = struct.unpack(">I4s", data[start : start + 8])
            yield kind, start + 8, start + size
            start += size

    def child(kind, start, end, skip=0):
        return next((b, e) for k, b, e in boxes(start + skip, end) if k == kind)

    moov = child(b"moov", 0, len(data))
    udta = child(b"udta", *moov)
    meta = child(b"meta", *udta, skip=0)
    meta = (meta[0] + 4, meta[1])  # full box: version and flags
    keys_start, keys_end = child(b"keys", *meta)
    names, at = {}, keys_start + 8
    for index in range(1, struct.unpack(">I", data[keys_start + 4 : keys_start + 8])[0] + 1):
        size = struct.unpack(">I", data[at : at + 4])[0]
        names[index] = data[at + 8 : at + size].decode()
        at += size
    found = {}
    for kind, start, end in boxes(*child(b"ilst", *meta)):
        value_start, value_end = child(b"data", start, end)
        name = names[struct.unpack(">I", kind)[0]]
        if name.lower() in ("prompt", "workflow"):  # the frontend parses JSON for these two keys only
            found[name] = json.loads(data[value_start + 8 : value_end].decode())
    return found, moov[0]


def webm_tags(data: bytes) -> dict:
    """EBML SimpleTag (0x67C8) -> TagName (0x45A3) / TagString (0x4487), as the frontend scans them."""

    def element(at, ident):
        at = data.index(ident, at) + len(ident)
        first = data[at]
        length = next(n for n in range(1, 9) if first & (0x80 >> (n - 1)))
        size = int.from_bytes(bytes([first & (0xFF >> length)]) + data[at + 1 : at + length], "big")
        return at + length, at + length + size

    tags, at = {}, 0
    while True:
        try:
            start, end = element(at, b"\x67\xc8")
        except ValueError:
            return tags
        name = data[slice(*element(start, b"\x45\xa3"))].decode()
        tags[name] = data[slice(*element(start, b"\x44\x87"))].decode().rstrip("\0")
        at = end


def test_mp4_carries_the_workflow_in_mdta_keys_near_the_start(tmp_path, frames):
    path = write_loop(frames, str(tmp_path / "clip"), format="mp4", metadata=METADATA)
    data = open(path, "rb").read()
    found, moov_at = isobmff_metadata(data)
    assert found == METADATA
    assert moov_at < data.index(b"mdat")  # faststart: the frontend reads only the first 64 MiB
    with av.open(path) as container:
        assert json.loads(container.metadata["workflow"]) == WORKFLOW


def test_webm_carries_the_workflow_in_upper_case_tags(tmp_path, frames):
    path = write_loop(frames, str(tmp_path / "clip"), format="webm", metadata=METADATA)
    data = open(path, "rb").read()
    tags = webm_tags(data[: 2 * 1024 * 1024])  # the frontend reads the first 2 MiB
    # the frontend parses JSON only for the tag names PROMPT and WORKFLOW, exactly
    assert json.loads(tags["PROMPT"]) == PROMPT and json.loads(tags["WORKFLOW"]) == WORKFLOW


def test_webp_carries_the_workflow_in_exif_as_core_does(tmp_path, frames):
    path = write_loop(frames, str(tmp_path / "clip"), format="webp", metadata=METADATA)
    with Image.open(path) as webp:
        exif = webp.getexif()
        assert webp.n_frames == len(frames)
    assert exif[0x0110] == "prompt:" + json.dumps(PROMPT)
    assert exif[0x010F] == "workflow:" + json.dumps(WORKFLOW)


@pytest.mark.parametrize("fmt", ["apng", "png-sequence"])
def test_png_outputs_carry_the_workflow_in_text_chunks(tmp_path, frames, fmt):
    path = write_loop(frames, str(tmp_path / "clip"), format=fmt, metadata=METADATA)
    files = [os.path.join(path, name) for name in sorted(os.listdir(path))] if fmt == "png-sequence" else [path]
    for file in files:
        with Image.open(file) as png:
            png.load()
            assert json.loads(png.text["prompt"]) == PROMPT and json.loads(png.text["workflow"]) == WORKFLOW
    with Image.open(files[0]) as png:
        assert getattr(png, "n_frames", 1) == (len(frames) if fmt == "apng" else 1)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "webp", "apng", "gif"])
def test_no_metadata_means_none_written(tmp_path, frames, fmt):
    path = write_loop(frames, str(tmp_path / "clip"), format=fmt)
    data = open(path, "rb").read()
    assert b"workflow" not in data and b"WORKFLOW" not in data


# ---------------------------------------------------------------- the node inside ComfyUI


@pytest.fixture
def comfy_output(tmp_path):
    from comfy_inprocess import import_comfy

    import_comfy()
    import folder_paths
    from comfy.cli_args import args

    previous, disabled = folder_paths.get_output_directory(), args.disable_metadata
    folder_paths.set_output_directory(str(tmp_path))
    yield tmp_path
    folder_paths.set_output_directory(previous)
    args.disable_metadata = disabled


def run_node(frames, format="webp", filename_prefix="t2c/loop", **hidden):
    from text2cinemagraph.nodes.video import LoopVideoWriter

    return LoopVideoWriter().write(frames, 24.0, format, filename_prefix, 0, 1, 90, **hidden)


@pytest.mark.parametrize("disable", [False, True])
def test_node_embeds_hidden_prompt_and_workflow_unless_disabled(comfy_output, frames, disable):
    from comfy.cli_args import args

    args.disable_metadata = disable
    result = run_node(frames, "apng", prompt=PROMPT, extra_pnginfo={"workflow": WORKFLOW})
    entry = result["ui"]["images"][0]
    with Image.open(comfy_output / entry["subfolder"] / entry["filename"]) as png:
        png.load()
        texts = dict(png.text)
    assert texts == ({} if disable else {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW)})


def test_png_sequence_preview_puts_the_folder_in_subfolder(comfy_output, frames):
    result = run_node(frames, "png-sequence")
    entries = result["ui"]["images"]
    assert result["ui"]["animated"] == [False] and len(entries) == len(frames)
    for entry in entries:
        assert "/" not in entry["filename"] and os.sep not in entry["filename"]
        # what /view does: join output folder, subfolder and the base name of filename
        assert os.path.isfile(os.path.join(comfy_output, entry["subfolder"], os.path.basename(entry["filename"])))
    assert entries[0]["subfolder"] == "t2c/loop_00001_"


@pytest.mark.parametrize("prefix", ["", "   ", "t2c/", ".hidden"])
def test_empty_or_hidden_prefix_is_refused(comfy_output, frames, prefix):
    with pytest.raises(InputError) as error:
        run_node(frames, filename_prefix=prefix)
    assert error.value.input_name == "filename_prefix"
    assert list(comfy_output.rglob("*")) == []


def test_prefix_leaving_the_output_folder_names_filename_prefix(comfy_output, frames):
    with pytest.raises(InputError) as error:
        run_node(frames, filename_prefix="../../escape/loop")
    assert error.value.input_name == "filename_prefix" and "output folder" in str(error.value)
    assert not (comfy_output.parent.parent / "escape").exists()


def test_gif_over_50_fps_is_refused_before_writing(comfy_output, frames):
    from text2cinemagraph.nodes.video import LoopVideoWriter

    with pytest.raises(InputError) as error:
        LoopVideoWriter().write(frames, 120.0, "gif", "t2c/loop", 0, 1, 90)
    assert error.value.input_name == "fps"
    assert list(comfy_output.rglob("*")) == []


def test_webp_of_identical_frames_still_carries_the_workflow(tmp_path):
    """libwebp writes a simple (still) WebP when all frames are equal; it gets a VP8X header for the EXIF."""
    path = write_loop(torch.full((4, 32, 48, 3), 0.25), str(tmp_path / "still"), format="webp", metadata=METADATA)
    with Image.open(path) as webp:
        assert webp.size == (48, 32)
        assert webp.getexif()[0x010F] == "workflow:" + json.dumps(WORKFLOW)
        assert abs(int(webp.convert("RGB").getpixel((5, 5))[0]) - 64) <= 2
