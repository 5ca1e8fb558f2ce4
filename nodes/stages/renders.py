"""The render methods by name: each a :class:`.frames.RenderMethod` for :func:`.frames.render_frames`.

``resample`` (:mod:`.resampled_frames`, the default) and ``splat``
(:mod:`.frames`) need no weights (:data:`PIXEL_RENDERS`); ``learned``
(:mod:`.learned_frames`) takes G_frame as ``network``.
"""

from __future__ import annotations

from ...kernels.errors import InputError
from .frames import RenderMethod, SplatRender
from .learned_frames import LearnedRender
from .resampled_frames import ResampleRender

RENDERS = {"resample": ResampleRender, "splat": SplatRender, "learned": LearnedRender}
PIXEL_RENDERS = ("resample", "splat")  # the weight-free ones, the default first


def render_method(name: str, input_name: str = "pixel_render", **options) -> RenderMethod:
    """The method ``name`` of :data:`RENDERS` made with ``options`` (``learned``: ``network=``)."""
    if name not in RENDERS:
        raise InputError(input_name, f"unknown render {name!r}; valid: {', '.join(RENDERS)}")
    return RENDERS[name](**options)
