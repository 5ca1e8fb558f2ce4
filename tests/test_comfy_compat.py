"""The compatibility layer (nodes/_comfy.py) against the real ComfyUI, imported in-process."""

from __future__ import annotations

import sys

import pytest
import torch

from comfy_inprocess import import_comfy
from text2cinemagraph.nodes import _comfy
from text2cinemagraph.nodes._comfy import ComfyUIVersionError


@pytest.fixture(scope="module", autouse=True)
def comfy():
    import_comfy()


def frames() -> torch.Tensor:
    return torch.rand(4, 8, 16, 3, generator=torch.Generator().manual_seed(0))


def test_video_output_is_core_video_from_comfy_api_latest():
    from comfy_api.latest import InputImpl

    pictures = frames()
    video = _comfy.video_output(pictures, 29.97)
    assert isinstance(video, InputImpl.VideoFromComponents)
    components = video.get_components()
    assert torch.equal(components.images, pictures)
    assert components.frame_rate == pytest.approx(29.97, abs=1e-3)


def test_video_output_falls_back_to_the_old_shims_then_names_the_version(monkeypatch):
    from comfy_api.latest import InputImpl

    monkeypatch.setitem(sys.modules, "comfy_api.latest", None)  # as in a ComfyUI without comfy_api.latest
    video = _comfy.video_output(frames(), 30)
    assert isinstance(video, InputImpl.VideoFromComponents)  # the shims re-export the same classes
    monkeypatch.setitem(sys.modules, "comfy_api.util", None)
    with pytest.raises(ComfyUIVersionError, match=r"comfy_api.util.VideoComponents.*0\.3\.48.*0\.3\.75"):
        _comfy.video_output(frames(), 30)


def test_a_missing_internal_names_itself_and_the_supported_versions():
    with pytest.raises(ComfyUIVersionError) as caught:
        _comfy.comfy_attribute("comfy.utils", "NoSuchHelper")
    assert "comfy.utils.NoSuchHelper" in str(caught.value) and _comfy.TESTED_COMFYUI in str(caught.value)


def test_progress_stops_on_cancel_even_between_throttled_updates():
    import comfy.model_management as mm
    import comfy.utils

    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append(value))
    try:
        progress = _comfy.progress_callback(10)
        progress(1, 10)
        mm.interrupt_current_processing(True)
        with pytest.raises(mm.InterruptProcessingException):
            progress(2, 10)
    finally:
        mm.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)
    assert seen == [1]  # the cancelled step was not reported as done
