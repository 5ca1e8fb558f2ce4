"""Memory checks made before a render starts: estimates and a clear refusal when they cannot fit."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ...kernels.errors import InputError
from ...kernels.integrate import FRAME_BYTES, integrator_bytes, motion_bytes

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


def check_integration_memory(flow: Tensor, frames: int, device, stored_frames: Optional[int] = None) -> None:
    """Refuse (naming ``frames``) an integration of ``flow [2, H, W]`` whose motion (storing
    ``stored_frames`` frames, default all) cannot fit: twice the motion while it is built on
    ``device``, and the motion itself in RAM, where it is kept."""
    height, width = flow.shape[-2:]
    moving = int((flow != 0).any(dim=0).sum()) if flow.ndim == 3 else 0
    need = motion_bytes(moving, frames, height, width, stored_frames)
    what = f"the motion of {frames} frames at {width}x{height}"
    require_memory(2 * need, device, "frames", what)
    if torch.device(device).type != "cpu":
        require_memory(need, "cpu", "frames", what)


def check_render_memory(picture_shape: tuple[int, int, int], frames: int, moving: int, carried: int, device,
                        integrated_frames: int = 0) -> None:
    """Refuse (naming ``frames``) a render of ``frames`` frames of an ``[H, W, C]`` picture whose
    IMAGE batch cannot fit in RAM, or whose working memory (``carried`` channels splatted for
    ``moving`` pixels, and twice a part of ``integrated_frames`` frames of trajectories while the
    render integrates it) cannot fit on ``device``."""
    height, width, channels = picture_shape
    batch = frames * height * width * channels * 4
    require_memory(batch, "cpu", "frames", f"the IMAGE batch of {frames} frames at {width}x{height}")
    part = 0
    if integrated_frames:
        parts = -(-max(frames - 1, 1) // integrated_frames)
        part = 2 * motion_bytes(moving, frames, height, width, integrated_frames)
        part += integrator_bytes(moving, parts, integrated_frames)
    require_memory(render_bytes(height * width, moving, carried) + part, device, "frames",
                   f"rendering {frames} frames at {width}x{height}")
