"""Clips as sources of frames that can be read more than once: an IMAGE batch in memory, or a file.

The loop stages (:mod:`.clip_loop`) read a clip in a few passes, one frame at a
time, so a clip on disk is decoded again for each pass and never held whole:
memory holds a frame or two, whatever the clip's length. Every frame is
``[H, W, C]`` float32 in ``[0, 1]`` on the CPU; every pass checks the frames
(one size, finite values), so a bad frame is refused before anything is written.
"""

from __future__ import annotations

import os
from typing import Iterator, Protocol

import numpy as np
import torch
from torch import Tensor

from ...kernels.errors import InputError
from .inputs import require_finite
from .pictures import load_picture

MIN_FRAMES = 8  # fewer frames hold no loop worth choosing, and no average motion worth trusting
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class Clip(Protocol):
    """A clip of ``count`` frames ``[height, width, channels]`` that can be read in several passes."""

    name: str  # the input to name in errors
    count: int
    height: int
    width: int
    channels: int

    def frames(self, indices: range) -> Iterator[tuple[int, Tensor]]:
        """``(index, frame)`` for the frames whose index lies in ``indices``, in order, each
        ``[H, W, C]`` float32 CPU (a pass that stops early reads no further)."""
        ...


def _check_count(count: int, name: str) -> None:
    if count < MIN_FRAMES:
        raise InputError(
            name,
            f"has {count} frame(s); a loop is made from a clip of at least {MIN_FRAMES} frames "
            "(for a single picture use FlowPredictor or MotionBrush instead)",
        )


class TensorClip:
    """An IMAGE batch ``[N, H, W, C]`` (C = 1, 3 or 4) as a :class:`Clip`."""

    def __init__(self, batch: Tensor, name: str = "images"):
        if not isinstance(batch, Tensor) or batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise InputError(name, f"expected an [N, H, W, C] IMAGE batch (C = 1, 3 or 4), got {shape}")
        _check_count(batch.shape[0], name)
        if not torch.isfinite(batch.sum()):  # values in 0..1 sum to a finite number: the full check only then
            require_finite(batch, name, "every frame of the clip")
        self.batch, self.name = batch, name
        self.count, self.height, self.width, self.channels = batch.shape

    def frames(self, indices: range) -> Iterator[tuple[int, Tensor]]:
        for index in indices:
            yield index, self.batch[index].float().cpu()


class FileClip:
    """A video file (anything PyAV decodes: mp4, webm, gif, webp, ...) or a folder of pictures, read
    again for each pass. Opening decodes it once, to count the frames and check them."""

    def __init__(self, path: str, name: str = "CLIP"):
        self.path, self.name = path, name
        if not os.path.exists(path):
            raise InputError(name, f"no such file or folder: {path!r}")
        self.fps: float | None = None  # the video's average frame rate (None for a folder of pictures)
        count, size = 0, None
        for frame in self._decoded():
            size = self._check(frame, count, size)
            count += 1
        _check_count(count, name)
        self.count, (self.height, self.width, self.channels) = count, size

    def _pictures(self) -> list[str]:
        names = sorted(f for f in os.listdir(self.path) if f.lower().endswith(PICTURE_EXTENSIONS))
        return [os.path.join(self.path, f) for f in names]

    def _decoded(self) -> Iterator[Tensor]:
        if os.path.isdir(self.path):
            for picture in self._pictures():
                yield load_picture(picture, self.name)[0]
            return
        import av

        try:
            with av.open(self.path) as container:
                rate = container.streams.video[0].average_rate if container.streams.video else None
                self.fps = float(rate) if rate else None
                for frame in container.decode(video=0):
                    yield torch.from_numpy(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)
        except (av.error.FFmpegError, IndexError) as error:  # IndexError: no video stream
            raise InputError(self.name, f"cannot read {self.path!r} as a video: {error}") from error

    def _check(self, frame: Tensor, index: int, size) -> tuple[int, int, int]:
        if size is not None and tuple(frame.shape) != size:
            raise InputError(
                self.name,
                f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but the first is {size[1]}x{size[0]}; "
                "every frame of a clip must have one size",
            )
        require_finite(frame, self.name, f"frame {index}")
        return tuple(frame.shape)

    def frames(self, indices: range) -> Iterator[tuple[int, Tensor]]:
        size = (self.height, self.width, self.channels)
        for index, frame in enumerate(self._decoded()):
            if index >= indices.stop:
                return
            if index in indices:
                self._check(frame, index, size)
                yield index, frame


def clip_frame(clip: Clip, index: int, name: str = "reference") -> Tensor:
    """Frame ``index`` of ``clip`` (negative counts from the end), or an error naming ``name``."""
    if not -clip.count <= index < clip.count:
        raise InputError(name, f"is {index} but the clip has frames 0..{clip.count - 1}")
    index %= clip.count
    return next(clip.frames(range(index, index + 1)))[1]
