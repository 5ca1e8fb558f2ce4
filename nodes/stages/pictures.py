"""Reading pictures and masks from files as IMAGE / MASK tensors (for the CLI)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...kernels.errors import InputError


def load_picture(path: str, name: str = "picture") -> tuple[Tensor, Tensor | None]:
    """``(image [H, W, 3] float 0..1, mask [H, W] or None)``.

    Like ComfyUI's LoadImage, a picture with an alpha channel also yields the
    mask ``1 - alpha`` (the mask editor paints by clearing alpha).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            picture = ImageOps.exif_transpose(opened)
            picture.load()
    except FileNotFoundError as error:
        raise InputError(name, f"no such file: {path!r}") from error
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(name, f"cannot read {path!r} as a picture: {error}") from error
    rgb = torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)
    mask = None
    if "A" in picture.getbands():
        alpha = np.asarray(picture.getchannel("A"), dtype=np.float32) / 255.0
        mask = 1.0 - torch.from_numpy(alpha)
    return rgb, mask


def load_mask(path: str, name: str = "mask") -> Tensor:
    """``[H, W]`` float 0..1 from a greyscale picture (white = moves)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            grey = np.asarray(opened.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError as error:
        raise InputError(name, f"no such file: {path!r}") from error
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(name, f"cannot read {path!r} as a picture: {error}") from error
    return torch.from_numpy(grey)
