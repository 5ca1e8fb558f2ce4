"""Writing a loop of frames as a video or animated image: streamed, atomic, with its workflow.

Frames come as one IMAGE batch or as an iterable of IMAGE chunks, and are
converted and encoded one at a time: memory holds one uint8 frame (plus the
encoder's state), never a second copy of the loop. Every format is written
through :func:`.files.atomic_write`: under a hidden ``.partial`` name beside the
target, renamed into place only when complete; partial files that a killed
process left behind are removed on the next write into that folder. mp4/webm/webp go through PyAV (libx264,
libvpx-vp9, libwebp_anim); gif and apng through the streaming writers of
:mod:`.animated_images`; a png sequence through Pillow.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ...kernels.errors import InputError
from . import animated_images
from .files import atomic_write, partial_path

log = logging.getLogger("text2cinemagraph")

Frames = Union[Tensor, Iterable[Tensor]]
ProgressFn = Callable[[int, int], None]

# GIF delays are whole 1/100 s, and browsers play delays under 2/100 s as 10/100 s
# (Chromium and Firefox both clamp), so 50 fps is the fastest GIF that plays as written.
GIF_MAX_FPS = 50.0


@dataclass(frozen=True)
class VideoFormat:
    """How one choice of the ``format`` input is written."""

    extension: str  # "" for a folder of files
    writer: str  # "av", "gif", "apng" or "png-sequence"
    codec: str = ""
    container: str = ""
    pix_fmt: str = "yuv420p"
    container_options: tuple[tuple[str, str], ...] = ()
    max_fps: float = float("inf")
    max_fps_reason: str = ""


FORMATS: dict[str, VideoFormat] = {
    # use_metadata_tags: the workflow goes into moov/udta/meta as mdta keys, which ComfyUI's
    # frontend reads (as core SaveVideo writes it); faststart puts that box at the front.
    "mp4": VideoFormat(
        "mp4", "av", "libx264", "mp4", container_options=(("movflags", "use_metadata_tags+faststart"),)
    ),
    "webm": VideoFormat("webm", "av", "libvpx-vp9", "webm"),
    "gif": VideoFormat(
        "gif",
        "gif",
        max_fps=GIF_MAX_FPS,
        max_fps_reason="GIF stores frame delays in hundredths of a second and browsers play delays under "
        "2/100 s at 10 fps",
    ),
    "webp": VideoFormat("webp", "av", "libwebp_anim", "webp", pix_fmt="bgra"),
    "apng": VideoFormat("png", "apng"),
    "png-sequence": VideoFormat("", "png-sequence"),
}

# ---------------------------------------------------------------- frames in


def frame_to_uint8(frame: Tensor, index: int) -> np.ndarray:
    """One IMAGE frame ``[H, W, C]`` float in ``[0, 1]`` -> ``[H, W, 3]`` uint8 RGB."""
    if not torch.isfinite(frame).all():
        raise InputError("frames", f"frame {index} contains NaN or infinite values")
    rgb = frame[..., :3] if frame.shape[-1] >= 3 else frame[..., :1].expand(*frame.shape[:2], 3)
    return rgb.mul(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8).contiguous().cpu().numpy()


def _check_chunk(chunk: Any, size: Optional[tuple[int, int]]) -> tuple[int, int]:
    if not isinstance(chunk, Tensor) or chunk.ndim != 4 or chunk.shape[0] == 0 or chunk.shape[-1] not in (1, 3, 4):
        shape = tuple(chunk.shape) if isinstance(chunk, Tensor) else type(chunk).__name__
        raise InputError("frames", f"expected non-empty [N, H, W, C] IMAGE chunks (C = 1, 3 or 4), got {shape}")
    if size is not None and tuple(chunk.shape[1:3]) != size:
        raise InputError(
            "frames", f"all frames must have one size: got {chunk.shape[2]}x{chunk.shape[1]} after {size[1]}x{size[0]}"
        )
    return tuple(chunk.shape[1:3])


def _first_chunk(frames: Frames) -> tuple[Tensor, Iterator[Tensor]]:
    """The first IMAGE chunk and an iterator over all chunks (that one included)."""
    if isinstance(frames, Tensor):
        _check_chunk(frames, None)
        return frames, iter((frames,))
    chunks = iter(frames)
    first = next(chunks, None)
    if first is None:
        raise InputError("frames", "no frames were given")
    _check_chunk(first, None)
    return first, itertools.chain((first,), chunks)


def _uint8_frames(chunks: Iterable[Tensor], size: tuple[int, int]) -> Iterator[np.ndarray]:
    index = 0
    for chunk in chunks:
        _check_chunk(chunk, size)
        for frame in chunk:
            yield frame_to_uint8(frame, index)
            index += 1


def _repeat_cycles(frames: Frames, chunks: Iterator[Tensor], size, cycles: int, spool: str) -> Iterator[np.ndarray]:
    """The frames of ``cycles`` cycles. A batch is re-read; streamed chunks are spooled to disk once."""
    if isinstance(frames, Tensor):
        for _ in range(cycles):
            yield from _uint8_frames((frames,), size)
        return
    if cycles == 1:
        yield from _uint8_frames(chunks, size)
        return
    with open(spool, "w+b") as file:
        count = 0
        for frame in _uint8_frames(chunks, size):
            file.write(frame.data)
            count += 1
            yield frame
        shape = (size[0], size[1], 3)
        for _ in range(cycles - 1):
            file.seek(0)
            for _ in range(count):
                buffer = np.empty(shape, np.uint8)
                file.readinto(memoryview(buffer).cast("B"))
                yield buffer


def _palette_sample(first: Tensor, max_frames: int = 16, max_pixels: int = 1 << 16) -> np.ndarray:
    """Frames spread over ``first`` (the batch, or the first streamed chunk), thinned to ``max_pixels``."""
    picks = first[:: max(1, len(first) // max_frames)][:max_frames]
    height, width = first.shape[1:3]
    stride = max(1, int(np.ceil(np.sqrt(len(picks) * height * width / max_pixels))))
    return np.stack([frame_to_uint8(f[::stride, ::stride], i) for i, f in enumerate(picks)])


def _counted(frames: Iterator[np.ndarray], total: int, progress: Optional[ProgressFn]) -> Iterator[np.ndarray]:
    """Pass frames on; ``progress(done, total)`` once each has been consumed (encoded)."""
    for done, frame in enumerate(frames, 1):
        yield frame
        if progress is not None:
            progress(done, total)


# ---------------------------------------------------------------- encoders


@dataclass(frozen=True)
class EncodeSettings:
    fps: float
    loop_count: int
    quality: int
    metadata: Optional[Mapping[str, Any]]
    palette_sample: Optional[np.ndarray] = None


def _crf(quality: int, worst: int) -> int:
    """Map quality 0..100 to a constant-rate factor (0 best .. ``worst``)."""
    return int(round(min(worst, 8 + (100 - quality) * 0.45 * worst / 51)))


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad odd sizes by one edge pixel (yuv420p needs even width and height)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frame


def _codec_options(fmt: VideoFormat, quality: int) -> dict[str, str]:
    if fmt.codec == "libx264":
        # One thread: x264's frame threads made 3 in 80 identical encodes differ (2026-12-07).
        return {"crf": str(_crf(quality, 51)), "threads": "1"}
    if fmt.codec == "libvpx-vp9":
        return {"crf": str(_crf(quality, 63)), "b": "0"}  # b=0: constant quality
    return {"quality": str(quality), "lossless": "1" if quality >= 100 else "0"}  # libwebp_anim


# x264's lookahead holds about 20 MiB per 4K frame; its default depth (40 frames) costs
# 0.8 GiB more peak memory at 3840x2160 than 10 frames (measured 2026-11-30, PyAV 18).
LARGE_FRAME_PIXELS = 1920 * 1080
LARGE_FRAME_LOOKAHEAD = "10"


def _size_options(fmt: VideoFormat, width: int, height: int) -> dict[str, str]:
    """Codec options that depend on the frame size: a short x264 lookahead above 1080p."""
    if fmt.codec == "libx264" and width * height > LARGE_FRAME_PIXELS:
        return {"rc-lookahead": LARGE_FRAME_LOOKAHEAD}
    return {}


def _write_av(path: str, fmt: VideoFormat, frames: Iterator[np.ndarray], settings: EncodeSettings) -> None:
    import av

    options = dict(fmt.container_options)
    if fmt.container == "webp":
        options["loop"] = str(settings.loop_count)
    rate = Fraction(settings.fps).limit_denominator(1001)
    with av.open(path, mode="w", format=fmt.container, options=options) as container:
        if fmt.container != "webp":  # webp's muxer has no tags: EXIF is appended below
            for key, text in animated_images.metadata_texts(settings.metadata):
                container.metadata[key] = text
        stream = container.add_stream(fmt.codec, rate=rate, options=_codec_options(fmt, settings.quality))
        stream.pix_fmt = fmt.pix_fmt
        if fmt.container == "webp":
            stream.time_base = Fraction(1, 1000)  # webp durations are whole ms: keep the running sum exact
        even = fmt.pix_fmt == "yuv420p"
        for index, frame in enumerate(frames):
            if index == 0:
                height, width = frame.shape[:2]
                if even and (height % 2 or width % 2):
                    log.info("text2cinemagraph: padding %dx%d frames to even sizes for yuv420p", width, height)
                stream.height, stream.width = (height + height % 2, width + width % 2) if even else (height, width)
                stream.codec_context.options = {**stream.codec_context.options, **_size_options(fmt, width, height)}
            video_frame = av.VideoFrame.from_ndarray(_even(frame) if even else frame, format="rgb24")
            if fmt.container == "webp":
                video_frame.pts, video_frame.time_base = round(1000 * index / settings.fps), stream.time_base
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    if fmt.container == "webp":
        exif = animated_images.webp_exif(settings.metadata)
        animated_images.append_webp_exif(path, exif, frame.shape[1], frame.shape[0])


def _write_gif(file: BinaryIO, frames: Iterator[np.ndarray], settings: EncodeSettings) -> None:
    palette = animated_images.shared_palette(settings.palette_sample)
    animated_images.write_gif(file, frames, palette, settings.fps, settings.loop_count)


def _write_png_sequence(folder: str, frames: Iterator[np.ndarray], settings: EncodeSettings) -> None:
    from PIL import Image

    info = animated_images.png_text_info(settings.metadata)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"frame_{index:05d}.png"), compress_level=4, pnginfo=info)


def _encode(temporary: str, fmt: VideoFormat, frames: Iterator[np.ndarray], settings: EncodeSettings) -> None:
    if fmt.writer == "av":
        _write_av(temporary, fmt, frames, settings)
    elif fmt.writer == "png-sequence":
        _write_png_sequence(temporary, frames, settings)
    else:
        with open(temporary, "wb") as file:
            if fmt.writer == "gif":
                _write_gif(file, frames, settings)
            else:
                animated_images.write_apng(file, frames, settings.fps, settings.loop_count, settings.metadata)


# ---------------------------------------------------------------- entry point


def check_settings(format: str, fps: float, repeat_cycles: int = 1, loop_count: int = 0) -> VideoFormat:
    """The :class:`VideoFormat` for ``format``, after checking the settings against it."""
    if format not in FORMATS:
        raise InputError("format", f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    fmt = FORMATS[format]
    if not (fps > 0):
        raise InputError("fps", f"must be positive, got {fps}")
    if fps > fmt.max_fps:
        raise InputError(
            "fps",
            f"is {fps:g}, but a {format} plays at most {fmt.max_fps:g} fps ({fmt.max_fps_reason}); "
            f"set fps to {fmt.max_fps:g} or less, or choose webp, apng or mp4 for faster loops",
        )
    if repeat_cycles < 1:
        raise InputError("repeat_cycles", f"must be at least 1, got {repeat_cycles}")
    if loop_count < 0:
        raise InputError("loop_count", f"must be 0 (forever) or more, got {loop_count}")
    return fmt


def write_loop(
    frames: Frames,
    path: str,
    format: str = "mp4",
    fps: float = 30.0,
    loop_count: int = 0,
    repeat_cycles: int = 1,
    quality: int = 90,
    output_name: str = "output",
    progress: Optional[ProgressFn] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    frame_count: Optional[int] = None,
) -> str:
    """Write a loop to ``path`` (extension added if missing), atomically, one frame at a time.

    Args:
        frames: one cycle of the loop: an IMAGE ``[N, H, W, C]`` float in ``[0, 1]``, or an
            iterable of such chunks ``[n, H, W, C]`` yielded in order (streamed: never held
            together). A gif's shared palette comes from frames spread over the batch, or
            over the first chunk when streamed.
        path: target file (a folder for ``png-sequence``).
        format: a key of :data:`FORMATS`.
        fps: frames per second, > 0 (gif: at most :data:`GIF_MAX_FPS`).
        loop_count: plays of an animated gif/webp/apng; 0 = forever.
        repeat_cycles: how many times the cycle is written into the file (streamed chunks
            are kept in a hidden spool file beside the target for the repeats).
        quality: 0..100 (crf for mp4/webm, quality for webp; 100 = lossless webp).
        output_name: the input to name in errors about the target.
        progress: ``progress(done, total)`` after each encoded frame; may raise to stop.
            ``total`` is 0 when streamed chunks come without ``frame_count``.
        metadata: ``{key: JSON-able}`` (ComfyUI: ``prompt``, ``workflow``) embedded where the
            format allows: mp4/webm container tags, webp EXIF, apng/png tEXt; not in gif.
        frame_count: frames per cycle when ``frames`` is an iterable, for ``progress``.

    Returns:
        The path written.
    """
    fmt = check_settings(format, fps, repeat_cycles, loop_count)
    first, chunks = _first_chunk(frames)
    size = _check_chunk(first, None)
    per_cycle = first.shape[0] if isinstance(frames, Tensor) else (frame_count or 0)
    if fmt.extension and not path.lower().endswith("." + fmt.extension):
        path = f"{path}.{fmt.extension}"
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise InputError(output_name, f"cannot write into {folder!r}: {error.strerror or error}") from error
    if fmt.writer == "png-sequence" and os.path.exists(path):
        raise InputError(output_name, f"{path!r} already exists")
    settings = EncodeSettings(fps, loop_count, quality, metadata, _palette_sample(first) if fmt.writer == "gif" else None)
    del first
    spool = partial_path(path + ".frames") if not isinstance(frames, Tensor) and repeat_cycles > 1 else None
    with atomic_write(path) as temporary:
        try:
            if fmt.writer == "png-sequence":
                os.makedirs(temporary)
            stream = _repeat_cycles(frames, chunks, size, repeat_cycles, spool)
            _encode(temporary, fmt, _counted(stream, per_cycle * repeat_cycles, progress), settings)
        finally:
            if spool is not None and os.path.exists(spool):
                os.remove(spool)
    return path
