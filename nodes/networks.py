"""Node-side access to the learned networks: the model folder, dropdowns, a small cache.

The networks live in ComfyUI's ``models/text2cinemagraph/`` (model folder
``t2c_networks``; more folders can be added under that name in
``extra_model_paths.yaml``). The folder is registered the first time a node
asks for it, so importing the pack never touches ComfyUI.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator

from torch import nn

from ..kernels.errors import InputError

MODEL_FOLDER = "t2c_networks"
MODEL_SUBFOLDER = "text2cinemagraph"
EXTENSIONS = {".pth", ".pt", ".safetensors"}
NO_NETWORK = "(none: put the networks in models/text2cinemagraph)"
OTHER_MODELS = ("segmentation/",)  # sub-folders of models/text2cinemagraph that hold other models
RELEASE_FILES = {
    "flow": "motion-pretrained/latest_net_G.pth",
    "hint": "motion-direction-pretrained/latest_net_G.pth",
    "frame": "video-pretrained/latest_net_G.pth",
}
CACHE_SIZE = 2  # networks kept loaded (a flow and a frame network) until ComfyUI unloads them

_cache: dict[tuple, tuple[str, nn.Module]] = {}
_lock = threading.Lock()


def _folders() -> list[str]:
    from ._comfy import model_folder_paths

    return model_folder_paths(MODEL_FOLDER, MODEL_SUBFOLDER)


def network_choices() -> list[str]:
    """The dropdown of network files (a placeholder when there are none or without ComfyUI)."""
    try:
        _folders()
        from ._comfy import model_files

        files = [
            f
            for f in model_files(MODEL_FOLDER)
            if os.path.splitext(f)[1].lower() in EXTENSIONS and not f.replace(os.sep, "/").startswith(OTHER_MODELS)
        ]
    except ImportError:
        files = []
    return files or [NO_NETWORK]


def resolve_network_file(filename: str, input_name: str, kind: str) -> str:
    """Full path of a chosen network file, or one clear error naming the file and the folders."""
    folders = _folders()
    from ._comfy import model_path

    path = model_path(MODEL_FOLDER, filename) if filename and filename != NO_NETWORK else None
    if path is None:
        wanted = RELEASE_FILES[kind]
        chosen = "no file was chosen" if not filename or filename == NO_NETWORK else f"{filename!r} is not there"
        raise InputError(
            input_name,
            f"this method needs a network file ({wanted} from the authors' checkpoints, or a converted "
            f".safetensors) in {' or '.join(folders)}; {chosen}. See the README section 'Learned networks'",
        )
    return path


def load_cached(path: str, kinds: Iterable[str], input_name: str) -> tuple[tuple, str, nn.Module]:
    """``(cache key, kind, network)`` for inference, on the CPU, reusing the last loaded networks."""
    from .stages.networks import load_network
    from .stages.networks.checkpoints import DESCRIPTIONS

    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    kinds = tuple(kinds)
    with _lock:
        hit = _cache.pop(key, None)
        if hit is None:
            hit = load_network(path, kinds, name=input_name, device="cpu")
        while len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = hit
    if hit[0] not in kinds:
        wanted = " or ".join(DESCRIPTIONS[k] for k in kinds)
        raise InputError(input_name, f"{os.path.basename(path)} holds {DESCRIPTIONS[hit[0]]}, but this needs {wanted}")
    return key, hit[0], hit[1]


def _forget(key: tuple) -> None:
    """Drop a network ComfyUI unloaded, so that its memory is freed (it reloads from disk when next used)."""
    with _lock:
        _cache.pop(key, None)


@contextmanager
def network_on(filename: str, kind: str, input_name: str) -> Iterator[nn.Module]:
    """The network of ``kind`` chosen in a node's dropdown, on ComfyUI's device while the block runs.

    The network is one of ComfyUI's loaded models: ComfyUI makes room for it,
    and unloads it (dropping it from this cache) when it needs the memory.
    """
    from ._comfy import managed_model

    path = resolve_network_file(filename, input_name, kind)
    key, _, network = load_cached(path, (kind,), input_name)
    with managed_model(network, on_unload=lambda: _forget(key)):
        yield network
