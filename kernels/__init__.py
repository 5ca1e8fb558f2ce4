"""Numerics shared by the pipeline stages: Euler integration and softmax
splatting, all in pixel coordinates.

Every function runs in plain torch on any device; ``splat_`` switches to a
CuPy CUDA kernel when its tensors live on a GPU and CuPy is installed.
"""

from .errors import InputError
from .integrate import Motion, euler_integrate
from .splat import splat_, splat_torch_

__all__ = ["InputError", "Motion", "euler_integrate", "splat_", "splat_torch_"]
