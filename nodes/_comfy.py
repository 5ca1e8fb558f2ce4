"""The pack's compatibility layer: every ComfyUI internal it touches goes through here.

Each import sits inside the function that needs it, so that the pack imports (and
its stages run) without ComfyUI installed. Where ComfyUI's API moved between
versions, the entry tries the current place first and the older one after; where
a piece is absent altogether it raises :class:`ComfyUIVersionError`, which names
the ComfyUI versions the pack supports, instead of failing somewhere deeper.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

CATEGORY = "Text2Cinemagraph"
OLDEST_COMFYUI = "0.3.48"  # V3 API and comfy_api.latest; pyproject's requires-comfyui
TESTED_COMFYUI = "0.3.75"


class ComfyUIVersionError(RuntimeError):
    """This ComfyUI lacks something the pack needs."""

    def __init__(self, what: str):
        super().__init__(
            f"Text2Cinemagraph: this ComfyUI has no {what}; the pack needs ComfyUI {OLDEST_COMFYUI} or newer "
            f"(tested with {TESTED_COMFYUI}). Update ComfyUI."
        )


def comfy_attribute(module: str, name: str) -> Any:
    """``module.name`` from ComfyUI, or :class:`ComfyUIVersionError` naming it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ComfyUIVersionError(f"{module}.{name}") from error


# --- the server -----------------------------------------------------------------------


def serve_files(route: str, find: Callable[[str], Optional[str]]) -> bool:
    """In a running ComfyUI server, answer ``GET route?name=NAME`` (and ``/api`` + route) with the file
    ``find(NAME)``, or 404 when it returns None. False (and nothing done) outside a server.

    The server module is looked up, not imported: ComfyUI's ``main.py`` has imported it and created
    ``PromptServer.instance`` before it loads node packs, and it adds their routes after.
    """
    instance = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if instance is None:
        return False
    from aiohttp import web  # a ComfyUI requirement

    async def answer(request):
        path = find(request.query.get("name", ""))
        return web.FileResponse(path) if path else web.Response(status=404, text="no such file")

    instance.routes.get(route)(answer)
    return True


# --- progress and interrupt ------------------------------------------------------------


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel (a no-op outside a server run)."""
    comfy_attribute("comfy.model_management", "throw_exception_if_processing_interrupted")()


def progress_callback(total: int) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` that drives the node's progress bar and stops on Cancel.

    The interrupt is checked on every call: newer ComfyUI throttles progress
    updates (at most one per 100 ms), so they no longer notice a Cancel in time.
    """
    bar = comfy_attribute("comfy.utils", "ProgressBar")(total)

    def update(done: int, of: int) -> None:
        check_interrupted()
        bar.update_absolute(done, of)

    return update


# --- devices -----------------------------------------------------------------------------------


def compute_device() -> torch.device:
    """The device ComfyUI computes on (the CPU under ``--cpu``)."""
    return comfy_attribute("comfy.model_management", "get_torch_device")()


# --- files: outputs and model folders -----------------------------------------------------


def output_target(filename_prefix: str, width: int, height: int, kind: str = "output") -> tuple[str, str, str]:
    """``(folder, file stem, subfolder)`` for the next numbered file in ComfyUI's ``kind``
    (``"output"`` or ``"temp"``) folder.

    Uses ComfyUI's own numbering, which refuses prefixes leading outside that folder.
    """
    import folder_paths

    root = folder_paths.get_temp_directory() if kind == "temp" else folder_paths.get_output_directory()
    folder, stem, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, root, width, height)
    return folder, f"{stem}_{counter:05}_", subfolder


def preview_entry(path: str, folder: str, subfolder: str) -> dict:
    return {"filename": os.path.relpath(path, folder), "subfolder": subfolder, "type": "output"}


def model_folder_paths(folder_name: str, default_subfolder: str) -> list[str]:
    """The absolute folders ComfyUI searches for the model kind ``folder_name``.

    Registers ``<ComfyUI models>/<default_subfolder>`` under that name the first
    time (idempotent); users add more places with ``folder_name: <path>`` in
    ``extra_model_paths.yaml``.
    """
    import folder_paths

    default = os.path.join(folder_paths.models_dir, *default_subfolder.split("/"))
    folder_paths.add_model_folder_path(folder_name, default)
    return folder_paths.get_folder_paths(folder_name)


def model_files(name: str) -> list[str]:
    """Files of ComfyUI model folder ``name`` (relative paths, sub-folders included)."""
    import folder_paths

    return folder_paths.get_filename_list(name)


def model_path(name: str, filename: str) -> str | None:
    """Full path of ``filename`` in model folder ``name``, or None."""
    import folder_paths

    return folder_paths.get_full_path(name, filename)


# --- core types ------------------------------------------------------------------------------


def video_output(frames: torch.Tensor, fps: float):
    """A core ``VIDEO`` value of ``frames`` ``[N, H, W, 3]`` at ``fps``.

    ``comfy_api.latest`` is the current home of the video types; ComfyUI keeps
    ``comfy_api.input_impl`` / ``comfy_api.util`` only as compatibility shims,
    tried second. Neither present: :class:`ComfyUIVersionError`, never a silent None.
    """
    rate = Fraction(fps).limit_denominator(1001)
    try:
        latest = importlib.import_module("comfy_api.latest")
        components, from_components = latest.Types.VideoComponents, latest.InputImpl.VideoFromComponents
    except (ImportError, AttributeError):
        components = comfy_attribute("comfy_api.util", "VideoComponents")
        from_components = comfy_attribute("comfy_api.input_impl", "VideoFromComponents")
    return from_components(components(images=frames, frame_rate=rate))


def video_frames(video) -> torch.Tensor:
    """The frames ``[N, H, W, C]`` of a core ``VIDEO`` value (its ``get_components().images``)."""
    try:
        return video.get_components().images
    except AttributeError as error:
        raise ComfyUIVersionError("VIDEO with get_components() (comfy_api VideoInput)") from error


# --- the pack's own networks inside ComfyUI's model management ---------------------------
# G_flow, G_frame, the hint network and the segmentation models are wrapped in a
# ModelPatcher and loaded with load_models_gpu, so ComfyUI counts them, makes room
# for them, and unloads them when it needs the memory (or on "Unload models").


class _Held(nn.Module):
    """A plain holder: ModelPatcher sets attributes (``device``) that some models define as read-only."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network


@contextmanager
def managed_model(module: nn.Module, on_unload: Optional[Callable[[], None]] = None) -> Iterator[torch.device]:
    """Run ``module`` on ComfyUI's device as one of ComfyUI's loaded models; yields that device.

    ``module`` stays loaded after the block until ComfyUI unloads it; ``on_unload``
    runs then, so a cache of the pack can drop it and its memory is really freed.
    """
    import comfy.model_management
    import comfy.model_patcher
    from comfy.patcher_extension import CallbacksMP

    patcher = getattr(module, "_t2c_patcher", None)
    if patcher is None:
        patcher = comfy.model_patcher.ModelPatcher(
            _Held(module),
            load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device(),
        )
        if on_unload is not None:
            patcher.add_callback(CallbacksMP.ON_DETACH, lambda _patcher, _unpatch_all: on_unload())
        module._t2c_patcher = patcher  # one patcher per module: ComfyUI tracks it by identity
    comfy.model_management.load_models_gpu([patcher], force_full_load=True)  # plain modules: all or nothing
    # ComfyUI moves the modules that hold parameters; buffers of parameter-free modules follow here
    patcher.model.to(patcher.load_device)
    yield patcher.load_device


# ---------------------------------------------------------------- metadata (LoopVideoWriter)

def metadata_disabled() -> bool:
    """True when ComfyUI runs with ``--disable-metadata`` (outputs carry no prompt or workflow)."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return False
    return bool(getattr(args, "disable_metadata", False))


# --- sampler internals ----------------------------------------------------------------------
# The twin pass reaches into ComfyUI's sampling at the points below; everything else it does
# goes through ModelPatcher's public setters.


def diffusion_model_call(executor, args: tuple, kwargs: dict):
    """The arguments of a ``WrappersMP.DIFFUSION_MODEL`` wrapper's call, by name.

    Returns an ``inspect.BoundArguments`` of the UNet's ``_forward`` (``x``, ``timesteps``,
    ``context``, ``y``, ``control``, ``transformer_options``, ``kwargs``); change its
    ``arguments`` and call ``executor(*bound.args, **bound.kwargs)``.
    """
    import inspect

    needed = ("x", "timesteps", "context", "transformer_options")
    what = "UNet wrapper call with the arguments " + ", ".join(needed)
    try:
        bound = inspect.signature(executor.original).bind(*args, **kwargs)
    except (AttributeError, TypeError) as error:
        raise ComfyUIVersionError(what) from error
    if not all(name in bound.signature.parameters for name in needed):
        raise ComfyUIVersionError(what)
    if "transformer_options" not in bound.arguments:
        bound.arguments["transformer_options"] = {}
    return bound


def refuse_split_evaluation(model_options: dict) -> None:
    """Raise when ComfyUI evaluates the batch on per-device model clones (multi-GPU mode).

    The twin pass's hooks live on the main model's modules and each UNet call must see both
    images together; a split evaluation would silently skip the injection.
    """
    if model_options.get("multigpu_clones"):
        raise RuntimeError(
            "Text2Cinemagraph: the twin pass cannot run with ComfyUI's multi-GPU split evaluation "
            "(the two images must be evaluated together on one device); disable the MultiGPU node or "
            "option for this sampler"
        )
