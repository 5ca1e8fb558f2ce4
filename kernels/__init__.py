"""Numerics shared by the pipeline stages: bilinear sampling, Euler
integration and softmax splatting, all in pixel coordinates.

Every function runs in plain torch on any device; ``splat`` switches to a
CuPy CUDA kernel when its tensors live on a GPU and CuPy is installed.
"""

from .errors import InputError
from .integrate import Motion, euler_integrate, integrate_displacements
from .splat import splat_, splat_symmetric_, splat_torch_
from .warp import sample_bilinear

__all__ = [
    "InputError",
    "Motion",
    "euler_integrate",
    "integrate_displacements",
    "sample_bilinear",
    "splat_",
    "splat_symmetric_",
    "splat_torch_",
]
