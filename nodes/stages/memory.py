"""Memory checks made before a render starts: estimates and a clear refusal when they cannot fit."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ...kernels.errors import InputError
from ...kernels.integrate import FRAME_BYTES, Motion, integrator_bytes, motion_bytes

GIB = 1024**3
BYTES_PER_SOURCE = 200  # plan and accumulator buffers per moving pixel (two copies), beyond its values
BYTES_PER_WINDOW_PIXEL = 48  # still sums, accumulator, colours and masks per window pixel, beyond channels
# Trajectories held next to a loop's IMAGE batch, as a fraction of it (BENCHMARKS.md, node chain):
KEPT_MOTION_SHARE = 16  # a motion kept between nodes (it outlives the render in ComfyUI's cache)
RENDER_MOTION_SHARE = 8  # a part the render integrates (freed when the render ends)


def render_bytes(window_pixels: int, moving_pixels: int, channels: int) -> int:
    """Working memory of a render (plan, accumulator, finisher) for ``channels`` carried channels."""
    carried = channels + 1
    return moving_pixels * (BYTES_PER_SOURCE + 16 * carried) + window_pixels * (BYTES_PER_WINDOW_PIXEL + 20 * carried)


def available_memory(device) -> int:
    """Bytes that can still be allocated on ``device`` (free VRAM on a GPU, available RAM otherwise)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def require_memory(needed: int, device, input_name: str, what: str) -> None:
    """Raise :class:`InputError` on ``input_name`` before a run that cannot fit in ``device``'s memory."""
    free = available_memory(device)
    if needed > free:
        kind = "GPU" if torch.device(device).type == "cuda" else "RAM"
        raise InputError(
            input_name,
            f"{what} needs about {needed / GIB:.1f} GiB of {kind} but only {free / GIB:.1f} GiB is available; "
            "use fewer frames or a smaller picture",
        )


def motion_part_frames(moving: int, picture_shape: tuple[int, int, int], frames: int, share: int) -> int:
    """Frames of trajectories to hold at once for a loop of ``frames`` frames of an ``[H, W, C]``
    picture with ``moving`` moving pixels, so that they take at most ``1 / share`` of the loop's
    IMAGE batch: all ``N + 1`` when they fit, fewer otherwise (at least 1)."""
    height, width, channels = picture_shape
    budget = frames * height * width * channels * 4 // share
    return max(1, min(frames + 1, budget // max(FRAME_BYTES * moving, 1)))


def frames_to_keep(flow: Tensor, frames: int, device) -> Optional[range]:
    """The frames EulerIntegrate stores of ``flow [2, H, W]``'s loop: all (``None``) when they take
    at most ``1 / KEPT_MOTION_SHARE`` of the loop's IMAGE batch, else none (``range(0)``: the render
    integrates the loop in parts). Refuses (naming ``frames``) a motion that cannot fit: twice the
    motion while it is built on ``device``, and the motion itself in RAM, where it is kept."""
    height, width = flow.shape[-2:]
    moving = int((flow != 0).any(dim=0).sum()) if flow.ndim == 3 else 0
    whole = motion_part_frames(moving, (height, width, 3), frames, KEPT_MOTION_SHARE) > frames
    need = motion_bytes(moving, frames, height, width, None if whole else 0)
    what = f"the motion of {frames} frames at {width}x{height}"
    require_memory(2 * need, device, "frames", what)
    if torch.device(device).type != "cpu":
        require_memory(need, "cpu", "frames", what)
    return None if whole else range(0)


def render_part_frames(picture_shape: tuple[int, int, int], motion: Motion, carried: int, device) -> int:
    """Frames of trajectories a render of ``motion`` integrates at once where the motion does not store
    them (``1 / RENDER_MOTION_SHARE`` of the IMAGE batch). Refuses (naming ``frames``) a render of an
    ``[H, W, C]`` picture whose IMAGE batch cannot fit in RAM, or whose working memory (``carried``
    channels splatted, and twice a part of the trajectories while it is integrated) cannot fit on
    ``device``."""
    height, width, channels = picture_shape
    frames, moving = motion.num_frames, motion.sources.numel()
    part_frames = motion_part_frames(moving, picture_shape, frames, RENDER_MOTION_SHARE)
    batch = frames * height * width * channels * 4
    require_memory(batch, "cpu", "frames", f"the IMAGE batch of {frames} frames at {width}x{height}")
    integrating = 0
    if len(motion.stored_frames) <= frames:  # not whole
        parts = -(-max(frames - 1, 1) // part_frames)
        integrating = 2 * motion_bytes(moving, frames, height, width, part_frames)
        integrating += integrator_bytes(moving, parts, part_frames)
    require_memory(render_bytes(height * width, moving, carried) + integrating, device, "frames",
                   f"rendering {frames} frames at {width}x{height}")
    return part_frames
