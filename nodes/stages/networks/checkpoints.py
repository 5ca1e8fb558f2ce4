"""Reading, checking, building and converting the networks' weight files.

Weights load only from safetensors or through ``torch.load(...,
weights_only=True)``: a pickle that holds anything but tensors and plain
containers (i.e. one that could run code) is refused. The authors'
``latest_net_G.pth`` files are plain pickled state dicts and load as they are;
``convert_checkpoint`` turns them into safetensors with the architecture and
its sizes recorded in the file's metadata.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import asdict, fields
from typing import Iterable, Optional, Union

import torch
from torch import Tensor, nn

from ....kernels.errors import InputError
from ..files import atomic_write
from .flow_net import FlowNetConfig, SPADEXAttnUnet4MotionSD
from .frame_net import FrameNetConfig, SPADEUnet4SoftmaxSplating
from .hint_net import HintNetConfig, SPADEUnet4MaskMotion
from .layers import fold_spectral_norm

FLOW, HINT, FRAME = "flow", "hint", "frame"
KINDS = (FLOW, HINT, FRAME)
DESCRIPTIONS = {
    FLOW: "G_flow (SPADEXAttnUnet4MotionSD, the release's motion-pretrained/latest_net_G.pth)",
    HINT: "the direction-hint flow network (SPADEUnet4MaskMotion, motion-direction-pretrained/latest_net_G.pth)",
    FRAME: "G_frame (SPADEUnet4SoftmaxSplating, video-pretrained/latest_net_G.pth)",
}
CONFIG_TYPES = {FLOW: FlowNetConfig, HINT: HintNetConfig, FRAME: FrameNetConfig}
NETWORK_TYPES = {FLOW: SPADEXAttnUnet4MotionSD, HINT: SPADEUnet4MaskMotion, FRAME: SPADEUnet4SoftmaxSplating}
META_KIND, META_CONFIG = "t2c_kind", "t2c_config"
LISTED_KEYS = 6  # keys named per category in a mismatch message

Config = Union[FlowNetConfig, HintNetConfig, FrameNetConfig]


def build_network(kind: str, config: Optional[Config] = None, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """A network of ``kind`` (``flow``, ``hint`` or ``frame``); ``device="meta"`` allocates nothing."""
    config = config if config is not None else CONFIG_TYPES[kind]()
    with torch.device(device):
        return NETWORK_TYPES[kind](config)


def read_state_dict(path: str, name: str = "checkpoint") -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(state dict, metadata)`` of a ``.safetensors`` or pickled ``.pth``/``.pt`` file.

    Raises:
        InputError: the file is missing or unreadable, holds no state dict, or is a
            pickle carrying more than tensors (refused: unpickling it could run code).
    """
    if not os.path.isfile(path):
        raise InputError(name, f"no such file: {path!r}")
    if path.lower().endswith((".safetensors", ".sft")):
        return _read_safetensors(path, name)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:
            raise InputError(
                name, f"cannot read {os.path.basename(path)}: it is not a torch checkpoint of plain tensors"
            ) from error
        raise InputError(
            name,
            f"{os.path.basename(path)} is a pickle that calls or builds {found.group(1)}, not just tensors; "
            "it was refused because unpickling it could run arbitrary code. Use the authors' plain "
            "state-dict files or a .safetensors file",
        ) from error
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise InputError(name, f"cannot read {os.path.basename(path)} as a torch checkpoint: {_first_line(error)}")
    return _unwrap_state_dict(loaded, path, name), {}


def _read_safetensors(path: str, name: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata
    except (SafetensorError, OSError) as error:
        raise InputError(name, f"cannot read {os.path.basename(path)} as safetensors: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _unwrap_state_dict(loaded: object, path: str, name: str) -> dict[str, Tensor]:
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise InputError(name, f"{os.path.basename(path)} holds no state dict (a dict of tensors)")
    others = [key for key, value in loaded.items() if not isinstance(value, Tensor)]
    if others:
        raise InputError(name, f"{os.path.basename(path)} holds non-tensor entries: {_listing(others)}")
    if all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}  # saved from DataParallel
    return dict(loaded)


def detect_kind(state: dict[str, Tensor]) -> Optional[str]:
    """Which of the three architectures a state dict belongs to, from its key names."""
    if any(key.startswith(("encoder.gblocks.", "projector.eblocks.")) for key in state):
        return FRAME
    if any(key.startswith(("attn_input_block_", "attn_middle_block.", "attn_output_block_")) for key in state):
        return FLOW
    conv1 = state.get("conv1.weight_orig", state.get("conv1.weight"))
    if conv1 is not None and conv1.ndim == 4 and any(key.startswith("dconv8.") for key in state):
        return HINT if conv1.shape[-1] == 4 else FLOW  # 4x4 stride-2 vs 3x3 convolutions
    return None


def _weight(state: dict[str, Tensor], prefix: str) -> Tensor:
    for suffix in (".weight_orig", ".weight"):
        if prefix + suffix in state:
            return state[prefix + suffix]
    raise KeyError(prefix + ".weight")


def _config_from_metadata(config_type: type, text: str, name: str, label: str) -> Config:
    """The sizes recorded by :func:`save_network`; a damaged record is refused, not guessed around."""
    try:
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(config_type)}
        return config_type(**{k: v for k, v in values.items() if k in known})
    except (ValueError, TypeError) as error:
        raise InputError(
            name,
            f"{label} has damaged metadata ({META_CONFIG}: {_first_line(error)}); convert or export the network "
            "again (python -m text2cinemagraph convert-checkpoint, or the training's latest_net_G.safetensors)",
        ) from None


def infer_config(
    kind: str,
    state: dict[str, Tensor],
    metadata: Optional[dict[str, str]] = None,
    name: str = "checkpoint",
    label: str = "the file",
) -> Config:
    """The sizes of the network a state dict was saved from.

    Safetensors written by this pack record them in their metadata; for the
    release's files they are read off the weight shapes (G_flow's head count,
    which shapes do not tell, is the release's 8).
    """
    config_type = CONFIG_TYPES[kind]
    if metadata and metadata.get(META_KIND) == kind and META_CONFIG in metadata:
        return _config_from_metadata(config_type, metadata[META_CONFIG], name, label)
    try:
        if kind == FLOW:
            conv1, dconv8 = state["conv1.weight"], state["dconv8.weight"]
            to_k = state["attn_input_block_1.transformer_blocks.0.attn2.to_k.weight"]
            return FlowNetConfig(
                channels_in=conv1.shape[1],
                channels_out=dconv8.shape[0],
                num_filters=conv1.shape[0],
                context_dim=to_k.shape[1],
                spade_hidden=state["spade_layer.mlp_shared.0.weight"].shape[0],
            )
        if kind == HINT:
            conv1, dconv8 = _weight(state, "conv1"), _weight(state, "dconv8")
            return HintNetConfig(
                channels_in=conv1.shape[1],
                channels_out=dconv8.shape[0],
                num_filters=conv1.shape[0],
                spade_hidden=state["spade_layer.mlp_shared.0.weight"].shape[0],
                spectral_norm="conv1.weight_orig" in state,
            )
        first = _weight(state, "encoder.gblocks.0.ch_a.2")
        decoder_in = _weight(state, "projector.eblocks.0.conv_aa")
        last = [key for key in state if key.startswith("projector.eblocks.") and ".conv_ab.weight" in key]
        out_channels = _weight(state, max(last, key=lambda k: int(k.split(".")[2])).rsplit(".", 1)[0]).shape[0]
        return FrameNetConfig(
            ngf=2 * first.shape[0],
            feature_channels=decoder_in.shape[1],
            channels_in=first.shape[1],
            channels_out=out_channels,
            spectral_norm="encoder.gblocks.0.ch_a.2.weight_orig" in state,
        )
    except (KeyError, IndexError, ValueError):
        return config_type()


def _listing(keys: Iterable[str]) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f" ... and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else "")


def state_dict_differences(expected: dict[str, Tensor], state: dict[str, Tensor]) -> list[str]:
    """What differs between a network's state dict and a file's, one phrase per category (empty if none)."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} (file {list(state[key].shape)}, network {list(expected[key].shape)})"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} keys with other shapes: {_listing(shapes)}")
    return problems


def check_state_dict(network: nn.Module, state: dict[str, Tensor], name: str, file_label: str) -> None:
    """Raise one :class:`InputError` listing every missing, unexpected and reshaped key."""
    problems = state_dict_differences(network.state_dict(), state)
    if problems:
        raise InputError(
            name,
            f"{file_label} does not fit {type(network).__name__} ({sum(p.numel() for p in network.parameters()):,} "
            f"parameters): " + "; ".join(problems),
        )


def load_network(
    path: str,
    kinds: Iterable[str] = KINDS,
    name: str = "checkpoint",
    device: Union[str, torch.device] = "cpu",
    for_training: bool = False,
) -> tuple[str, nn.Module]:
    """``(kind, network)`` with the weights of ``path``, strictly checked.

    Args:
        kinds: the architectures the caller accepts; another one is refused with
            a message naming what the file is and what is wanted.
        for_training: keep spectral normalisation and training mode; otherwise
            the network is in evaluation mode with spectral norms folded.
    """
    kinds = tuple(kinds)
    state, metadata = read_state_dict(path, name)
    label = os.path.basename(path)
    kind = metadata.get(META_KIND) if metadata.get(META_KIND) in KINDS else detect_kind(state)
    if kind is None:
        wanted = " or ".join(DESCRIPTIONS[k] for k in kinds)
        raise InputError(name, f"{label} is none of the Text2Cinemagraph networks; expected {wanted}")
    if kind not in kinds:
        wanted = " or ".join(DESCRIPTIONS[k] for k in kinds)
        raise InputError(name, f"{label} holds {DESCRIPTIONS[kind]}, but this needs {wanted}")
    network = build_network(kind, infer_config(kind, state, metadata, name, label), device="meta")
    check_state_dict(network, state, name, label)
    network.load_state_dict(state, strict=True, assign=True)
    network = network.float().to(device)
    if not for_training:
        network.eval()
        fold_spectral_norm(network)
        network.requires_grad_(False)
    return kind, network


def save_network(network: nn.Module, kind: str, path: str) -> None:
    """Write ``network``'s state dict as safetensors, with its kind and sizes as metadata."""
    from safetensors.torch import save_file

    state = {key: value.detach().cpu().contiguous().clone() for key, value in network.state_dict().items()}
    with atomic_write(path) as partial:
        save_file(state, partial, metadata=_metadata(kind, network.config))


def _metadata(kind: str, config: Config) -> dict[str, str]:
    return {META_KIND: kind, META_CONFIG: json.dumps(asdict(config))}


def convert_checkpoint(source: str, target: str) -> tuple[str, int]:
    """Convert a pickled state dict to safetensors after checking it fits its network.

    Returns:
        ``(kind, number of tensors)``.
    """
    state, metadata = read_state_dict(source, "IN")
    label = os.path.basename(source)
    kind = detect_kind(state)
    if kind is None:
        raise InputError("IN", f"{label} is none of the Text2Cinemagraph networks ({', '.join(DESCRIPTIONS.values())})")
    config = infer_config(kind, state, metadata, "IN", label)
    check_state_dict(build_network(kind, config, device="meta"), state, "IN", label)
    if not target.lower().endswith(".safetensors"):
        raise InputError("OUT", f"must end in .safetensors, got {target!r}")
    from safetensors.torch import save_file

    with atomic_write(target) as partial:
        save_file({k: v.contiguous().clone() for k, v in state.items()}, partial, metadata=_metadata(kind, config))
    return kind, len(state)
