"""Reading pictures and masks from files as IMAGE / MASK tensors (for the CLI).

Follows ComfyUI's LoadImage (``nodes.py``): EXIF orientation applied, the mask
is ``1 - alpha``, and palette or colour-key transparency counts as alpha. Two
places where LoadImage itself goes wrong are done right here: 16-bit greyscale
is scaled from 0..65535 (not clipped to white), and Pillow's decompression-bomb
refusal becomes a message naming the input.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...kernels.errors import InputError

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # Pillow's modes of 16-bit greyscale


def _open(path: str, name: str):
    """The picture in ``path``, decoded and turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            upright = ImageOps.exif_transpose(opened)
            upright.load()
            return upright
    except FileNotFoundError as error:
        raise InputError(name, f"no such file: {path!r}") from error
    except Image.DecompressionBombError as error:
        raise InputError(
            name,
            f"{path!r} is too large to open safely ({error}); scale it down to at most "
            f"{Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels",
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(name, f"cannot read {path!r} as a picture (PNG, JPEG, WebP, ...): {error}") from error


def _grey(picture) -> np.ndarray:
    """``[H, W]`` float32 0..1 luminance; 16-bit greyscale keeps its full range."""
    if picture.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(picture, dtype=np.float32)
        return np.clip(values / 65535.0, 0.0, 1.0)
    return np.asarray(picture.convert("L"), dtype=np.float32) / 255.0


def _rgb(picture) -> np.ndarray:
    if picture.mode in _HIGH_DEPTH_MODES:
        return np.repeat(_grey(picture)[..., None], 3, axis=-1)
    return np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0


def _alpha(picture) -> np.ndarray | None:
    """``[H, W]`` alpha 0..1, from an alpha channel or from palette / colour-key transparency."""
    if "A" in picture.getbands():
        return np.asarray(picture.getchannel("A"), dtype=np.float32) / 255.0
    if "transparency" in picture.info:
        return np.asarray(picture.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return None


def load_picture(path: str, name: str = "picture") -> tuple[Tensor, Tensor | None]:
    """``(image [H, W, 3] float 0..1, mask [H, W] or None)``.

    Like ComfyUI's LoadImage, a picture with transparency also yields the mask
    ``1 - alpha`` (the mask editor paints by clearing alpha).
    """
    picture = _open(path, name)
    rgb = torch.from_numpy(np.ascontiguousarray(_rgb(picture)))
    alpha = _alpha(picture)
    mask = None if alpha is None else 1.0 - torch.from_numpy(np.ascontiguousarray(alpha))
    return rgb, mask


def load_mask(path: str, name: str = "mask") -> Tensor:
    """``[H, W]`` float 0..1 from a greyscale picture (white = moves), upright as its EXIF says."""
    return torch.from_numpy(np.ascontiguousarray(_grey(_open(path, name))))
