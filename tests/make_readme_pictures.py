"""Renders the README's comparison of the weight-free renders, ``workflows/readme/renders_frames.jpg`` and
``workflows/readme/renders_detail.png``, and its before/after of looping a clip,
``workflows/readme/loop_clip_strip.jpg`` (:func:`loop_strip`) and of the bundled camera clip,
``workflows/readme/tree_loop_strip.jpg`` (:func:`tree_strip`), from the code (like the thumbnails: run on request,
``python -P tests/make_readme_pictures.py``; the tests never write into the repository).

The bundled photograph ``evening_glow`` with its water mask, ``procedural`` flow ``left to right``
at 0.5 px/frame (seed 0), 60 frames: frames 0, N/4, N/2 and 3N/4 of the splatting render (top row)
and of the resampling render (bottom row), cropped to the water, and detail(t) of both
(:func:`motion_measure.detail_curve`, as ``benchmark_render_quality.py`` measures it).
"""

from __future__ import annotations

import os
import sys

import torch
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import conftest  # noqa: E402,F401  (``text2cinemagraph`` is this checkout, as in the tests)
from benchmark_render_quality import load  # noqa: E402
from motion_measure import detail_curve  # noqa: E402
from text2cinemagraph.kernels import euler_integrate  # noqa: E402
from text2cinemagraph.kernels.morphology import erode  # noqa: E402
from text2cinemagraph.nodes.stages.procedural_flow import procedural_flow  # noqa: E402
from text2cinemagraph.nodes.stages.frames import render_frames  # noqa: E402
from text2cinemagraph.nodes.stages.renders import render_method  # noqa: E402

PHOTOGRAPH = "evening_glow"
DOCS = os.path.join(os.path.dirname(HERE), "workflows", "readme")  # the top level is fixed: no docs/ folder
FRAMES, CROP, ZOOM = 60, (slice(196, 266), slice(150, 350)), 2  # rows, cols of the water shown, enlarged
COLOURS = {"splat": (200, 80, 60), "resample": (40, 110, 200)}


def frames_sheet(videos: dict, picture: torch.Tensor) -> Image.Image:
    """One row per render, frames 0, N/4, N/2, 3N/4 of the crop (pixels enlarged ``ZOOM`` times), a
    title over each row."""
    rows, cols = CROP
    shown = [0, FRAMES // 4, FRAMES // 2, 3 * FRAMES // 4]
    height, width = ZOOM * (rows.stop - rows.start), ZOOM * (cols.stop - cols.start)
    sheet = Image.new("RGB", (4 * width + 30, len(videos) * (height + 22)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (render, video) in enumerate(videos.items()):
        top = r * (height + 22)
        draw.text((4, top + 4), f"{render}: frames " + ", ".join(map(str, shown)), fill=(0, 0, 0))
        for c, n in enumerate(shown):
            frame = picture if n == 0 else video[n]
            tile = (frame[rows, cols].clamp(0, 1) * 255).round().byte().numpy()
            tile = Image.fromarray(tile).resize((width, height), Image.NEAREST)
            sheet.paste(tile, (c * (width + 10), top + 20))
    return sheet


def detail_plot(curves: dict) -> Image.Image:
    """detail(t), t = 0 .. N, of each render on axes from 0.5 to 1.1."""
    size, margin, low, high = (640, 300), 40, 0.5, 1.1
    plot = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(plot)
    right, bottom = size[0] - 10, size[1] - margin

    def point(t: int, value: float) -> tuple[float, float]:
        x = margin + (right - margin) * t / FRAMES
        return x, bottom - (bottom - 10) * (value - low) / (high - low)

    for level in (0.6, 0.7, 0.8, 0.9, 1.0):
        y = point(0, level)[1]
        draw.line((margin, y, right, y), fill=(225, 225, 225))
        draw.text((4, y - 6), f"{level:.1f}", fill=(0, 0, 0))
    draw.line((margin, 10, margin, bottom, right, bottom), fill=(0, 0, 0))
    draw.text((right - 150, bottom + 12), f"frame t (N = {FRAMES})", fill=(0, 0, 0))
    for i, (render, curve) in enumerate(curves.items()):
        draw.line([point(t, float(v)) for t, v in enumerate(curve)], fill=COLOURS[render], width=2)
        draw.text((margin + 12, bottom - 40 - 14 * i), f"{render}: min {float(curve.min()):.2f}",
                  fill=COLOURS[render])
    return plot


CLIP_FRAMES, CLIP_WIDTH, DIFFERENCE_GAIN = 48, 256, 8


def loop_strip() -> Image.Image:
    """Before/after of looping a clip (issue 23): the example clip (T2CExampleClip, the lake, whose whole
    frame flickers and drifts), LoopClip's loop and ClipFlow's eulerian loop (:func:`strip`)."""
    from text2cinemagraph.nodes.examples import T2CExampleClip
    from text2cinemagraph.nodes.stages.clip_loop import clip_flow, loop_clip
    from text2cinemagraph.nodes.stages.clips import TensorClip

    clip, _ = T2CExampleClip().make("lake", CLIP_FRAMES, CLIP_WIDTH)
    chunks, _, _ = loop_clip(TensorClip(clip))
    flow, found = clip_flow(TensorClip(clip))
    return strip({"the clip": clip, "loop (its own frames)": torch.cat(list(chunks())),
                  "eulerian loop": render_frames(found.reference, euler_integrate(flow, CLIP_FRAMES),
                                                 render_method("resample"))})


def tree_strip() -> Image.Image:
    """The bundled camera clip (a tree in the wind, ``tree_in_wind.mp4``) and LoopClip's loop of it (:func:`strip`)."""
    from text2cinemagraph.nodes.stages.clip_loop import loop_clip
    from text2cinemagraph.nodes.stages.clips import FileClip

    clip = FileClip(os.path.join(os.path.dirname(HERE), "workflows", "assets", "tree_in_wind.mp4"))
    chunks, _, _ = loop_clip(clip)
    return strip({"the camera clip": torch.stack([frame for _, frame in clip.frames(range(clip.count))]),
                  "loop (its own frames)": torch.cat(list(chunks()))})


def strip(rows: dict) -> Image.Image:
    """One row per video ``[N, H, W, 3]``: frames 0, N/4, N/2, 3N/4, and the largest ``|frame t - frame 0|``
    over the frames times ``DIFFERENCE_GAIN`` (black where nothing ever changes)."""
    height, width = next(iter(rows.values())).shape[1:3]
    sheet = Image.new("RGB", (5 * width + 16, len(rows) * (height + 22)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, video) in enumerate(rows.items()):
        top, n = r * (height + 22), video.shape[0]
        shown = [0, n // 4, n // 2, 3 * n // 4]
        draw.text((4, top + 4), f"{title}: frames " + ", ".join(map(str, shown))
                  + f"; largest |frame t - frame 0| x{DIFFERENCE_GAIN}", fill=(0, 0, 0))
        tiles = [video[k] for k in shown] + [((video - video[0]).abs().amax(dim=0) * DIFFERENCE_GAIN)]
        for c, tile in enumerate(tiles):
            pixels = (tile.clamp(0, 1) * 255).round().byte().numpy()
            sheet.paste(Image.fromarray(pixels), (c * (width + 4), top + 20))
    return sheet


def main() -> None:
    torch.set_num_threads(1)
    os.makedirs(DOCS, exist_ok=True)
    loop_strip().save(os.path.join(DOCS, "loop_clip_strip.jpg"), quality=88)
    tree_strip().save(os.path.join(DOCS, "tree_loop_strip.jpg"), quality=88)
    picture, mask = load(PHOTOGRAPH)
    flow, _ = procedural_flow(mask, "left to right", 0.5, "generic", 0)
    motion = euler_integrate(flow, FRAMES)
    region = erode(mask[0] > 0.5, 7)
    videos = {render: render_frames(picture, motion, render_method(render)) for render in ("splat", "resample")}
    curves = {render: detail_curve(torch.cat((video, picture[None])), picture, region)
              for render, video in videos.items()}
    os.makedirs(DOCS, exist_ok=True)
    frames_sheet(videos, picture).save(os.path.join(DOCS, "renders_frames.jpg"), quality=90)
    detail_plot(curves).save(os.path.join(DOCS, "renders_detail.png"))
    print(f"wrote {DOCS}/loop_clip_strip.jpg, tree_loop_strip.jpg, renders_frames.jpg, renders_detail.png")


if __name__ == "__main__":
    main()
