"""Writing a loop of frames as a video or animated image, atomically.

Every format writes to a hidden temporary name beside the target and renames
it into place only when the whole file is written, so an interrupted or failed
write leaves no partial file behind. mp4/webm go through PyAV (libx264,
libvpx-vp9); gif, webp and apng through Pillow (gif with one palette shared by
all frames, so colours do not flicker).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ...kernels.errors import InputError

log = logging.getLogger("text2cinemagraph")


@dataclass(frozen=True)
class VideoFormat:
    extension: str
    writer: str  # "av", "pillow" or "png-sequence"
    codec: str = ""
    container: str = ""
    pillow_format: str = ""


FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "av", codec="libx264", container="mp4"),
    "webm": VideoFormat("webm", "av", codec="libvpx-vp9", container="webm"),
    "gif": VideoFormat("gif", "pillow", pillow_format="GIF"),
    "webp": VideoFormat("webp", "pillow", pillow_format="WEBP"),
    "apng": VideoFormat("png", "pillow", pillow_format="PNG"),
    "png-sequence": VideoFormat("", "png-sequence"),
}


def frames_to_uint8(frames: Tensor) -> np.ndarray:
    """IMAGE ``[N, H, W, C]`` float in ``[0, 1]`` -> ``[N, H, W, 3]`` uint8 RGB."""
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise InputError("frames", f"expected a non-empty [N, H, W, C] IMAGE batch, got shape {tuple(frames.shape)}")
    if not torch.isfinite(frames).all():
        raise InputError("frames", "contain NaN or infinite values")
    rgb = frames[..., :3] if frames.shape[-1] >= 3 else frames[..., :1].expand(*frames.shape[:3], 3)
    return (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()


def _crf(quality: int, worst: int) -> int:
    """Map quality 0..100 to a constant-rate factor (0 best .. ``worst``)."""
    return int(round(min(worst, 8 + (100 - quality) * 0.45 * worst / 51)))


def _even(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        log.info("text2cinemagraph: padding %dx%d frames by one edge pixel for yuv420p", width, height)
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _write_av(path: str, fmt: VideoFormat, frames: np.ndarray, fps: float, cycles: int, quality: int, tick) -> None:
    import av

    frames = _even(frames)
    worst = 51 if fmt.codec == "libx264" else 63
    options = {"crf": str(_crf(quality, worst))}
    if fmt.codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality
    with av.open(path, mode="w", format=fmt.container) as container:
        stream = container.add_stream(fmt.codec, rate=Fraction(fps).limit_denominator(1001), options=options)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for _ in range(cycles):
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                tick()
        container.mux(stream.encode())


def _shared_palette(frames: np.ndarray):
    """One 256-colour palette for the whole loop, from up to 16 frames."""
    from PIL import Image

    picks = frames[:: max(1, len(frames) // 16)][:16]
    mosaic = Image.fromarray(np.concatenate(list(picks), axis=0))
    return mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def _write_pillow(
    path: str, fmt: VideoFormat, frames: np.ndarray, fps: float, cycles: int, loop_count: int, quality: int, tick
) -> None:
    from PIL import Image

    palette = None
    if fmt.pillow_format == "GIF":
        palette = _shared_palette(frames)
        images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    else:
        images = [Image.fromarray(f) for f in frames]
    for _ in images:
        tick()
    images = images * cycles
    options = {"save_all": True, "append_images": images[1:], "duration": int(round(1000.0 / fps))}
    if fmt.pillow_format == "GIF":
        # GIF's NETSCAPE count is repeats after the first play; absent = play once.
        if loop_count != 1:
            options["loop"] = max(0, loop_count - 1) if loop_count else 0
        options["optimize"] = False
        options["palette"] = bytes(palette.getpalette())  # one global table, no local ones
    else:
        options["loop"] = loop_count
    if fmt.pillow_format == "WEBP":
        options.update(quality=quality, lossless=quality >= 100, method=4)
    images[0].save(path, format=fmt.pillow_format, **options)


def _write_png_sequence(folder: str, frames: np.ndarray, tick) -> None:
    from PIL import Image

    os.makedirs(folder)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"frame_{i:05d}.png"), compress_level=4)
        tick()


def _make_readable(path: str) -> None:
    """Give the finished file the permissions a plain ``open()`` would (mkstemp makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


def write_loop(
    frames: Tensor,
    path: str,
    format: str = "mp4",
    fps: float = 30.0,
    loop_count: int = 0,
    repeat_cycles: int = 1,
    quality: int = 90,
    output_name: str = "output",
    progress: Optional[Callable[[int, int], None]] = None,
) -> str:
    """Write ``frames`` to ``path`` (extension added if missing), atomically.

    Args:
        frames: IMAGE ``[N, H, W, C]`` float in ``[0, 1]``, one cycle of the loop.
        path: target file (a folder for ``png-sequence``).
        format: a key of :data:`FORMATS`.
        fps: frames per second, > 0.
        loop_count: plays of an animated gif/webp/apng; 0 = forever.
        repeat_cycles: how many times the cycle is written into the file.
        quality: 0..100 (crf for mp4/webm, quality for webp).
        output_name: the input to name in errors about the target.
        progress: ``progress(done, total)`` per encoded frame; may raise to stop.

    Returns:
        The path written.
    """
    if format not in FORMATS:
        raise InputError("format", f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    if not (fps > 0):
        raise InputError("fps", f"must be positive, got {fps}")
    if repeat_cycles < 1:
        raise InputError("repeat_cycles", f"must be at least 1, got {repeat_cycles}")
    if loop_count < 0:
        raise InputError("loop_count", f"must be 0 (forever) or more, got {loop_count}")
    fmt = FORMATS[format]
    pixels = frames_to_uint8(frames)
    if fmt.extension and not path.lower().endswith("." + fmt.extension):
        path = f"{path}.{fmt.extension}"
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=folder)
        os.close(handle)
    except OSError as error:
        raise InputError(output_name, f"cannot write into {folder!r}: {error.strerror or error}") from error

    total = len(pixels) * (repeat_cycles if fmt.writer == "av" else 1)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    try:
        if fmt.writer == "av":
            _write_av(temporary, fmt, pixels, fps, repeat_cycles, quality, tick)
        elif fmt.writer == "pillow":
            _write_pillow(temporary, fmt, pixels, fps, repeat_cycles, loop_count, quality, tick)
        else:
            os.remove(temporary)
            _write_png_sequence(temporary, pixels, tick)
        if fmt.writer == "png-sequence" and os.path.isdir(path):
            raise InputError(output_name, f"{path!r} already exists")
        _make_readable(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
