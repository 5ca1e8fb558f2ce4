"""Memory checks made before a render starts: estimates and a clear refusal when they cannot fit."""

from __future__ import annotations

import torch

from ...kernels.errors import InputError

GIB = 1024**3
BYTES_PER_SOURCE = 200  # plan and accumulator buffers per moving pixel (two copies), beyond its values
BYTES_PER_WINDOW_PIXEL = 48  # still sums, accumulator, colours and masks per window pixel, beyond channels


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
