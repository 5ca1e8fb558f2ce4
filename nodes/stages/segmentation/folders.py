"""Model folders: where ComfyUI keeps them, what each backend needs in one, and the messages when
something is missing."""

from __future__ import annotations

import json
import os
import re
from typing import Sequence

from ....kernels.errors import InputError

NO_MODEL = "(no segmentation model installed - see tooltip)"
MODELS_SUBFOLDER = "text2cinemagraph/segmentation"  # under ComfyUI's models folder

# config.json "model_type" -> backend
_MODEL_TYPES = {"clipseg": "clipseg", "mask2former": "mask2former", "oneformer": "oneformer"}
WEIGHTS_SOURCES = {
    "clipseg": "the Hugging Face model CIDAS/clipseg-rd64-refined",
    "mask2former": "the Hugging Face model facebook/mask2former-swin-large-ade-semantic "
    "(or another Mask2Former checkpoint, e.g. facebook/mask2former-swin-large-coco-panoptic)",
    "oneformer": "the Hugging Face model shi-labs/oneformer_ade20k_swin_large (or shi-labs/oneformer_coco_swin_large)",
    "odise": "odise_label_coco_50e-b67d2efc.pth from the v1.0.0 release of github.com/NVlabs/ODISE",
}
EXPECTED_FILES = {
    "clipseg": "config.json, model.safetensors, preprocessor_config.json, and the tokenizer "
    "(vocab.json + merges.txt + tokenizer_config.json, or tokenizer.json)",
    "mask2former": "config.json, model.safetensors, preprocessor_config.json",
    "oneformer": "config.json, model.safetensors, preprocessor_config.json, and the tokenizer "
    "(vocab.json + merges.txt + tokenizer_config.json, or tokenizer.json)",
    "odise": "an ODISE checkpoint odise_label_coco_50e-b67d2efc.pth",
}
EXAMPLE_FOLDERS = {
    "clipseg": "clipseg-rd64-refined",
    "mask2former": "mask2former-swin-large-ade-semantic",
    "oneformer": "oneformer_ade20k_swin_large",
    "odise": "odise",
}
_WEIGHT_FILES = (
    "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"
)
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_ODISE_CHECKPOINT = re.compile(r"^odise_.*\.pth$")


def odise_checkpoint(folder: str) -> str | None:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    found = [n for n in names if _ODISE_CHECKPOINT.match(n) and os.path.isfile(os.path.join(folder, n))]
    return os.path.join(folder, found[0]) if found else None


def _is_model_dir(filenames: Sequence[str]) -> bool:
    return "config.json" in filenames or any(_ODISE_CHECKPOINT.match(n) for n in filenames)


def list_model_dirs(roots: Sequence[str], max_depth: int = 2) -> dict[str, str]:
    """``{name: folder}`` of the model folders under ``roots``: directories (up to ``max_depth``
    levels down, e.g. ``clipseg-rd64-refined`` or ``CIDAS/clipseg-rd64-refined``) holding a
    ``config.json`` or an ODISE checkpoint. Names use ``/``; the first root wins on a clash."""
    found: dict[str, str] = {}
    for root in roots:
        if not os.path.isdir(root):
            continue
        for folder, subfolders, filenames in os.walk(root, followlinks=True):
            relative = os.path.relpath(folder, root)
            depth = 0 if relative == "." else relative.count(os.sep) + 1
            if depth and _is_model_dir(filenames):
                found.setdefault(relative.replace(os.sep, "/"), folder)
                subfolders[:] = []
                continue
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) if depth < max_depth else []
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def missing_model_error(backend: str, roots: Sequence[str], name: str | None = None) -> InputError:
    """The one message for "no such model": where ComfyUI looks, what to put there, where to get it."""
    wanted = [backend] if backend in WEIGHTS_SOURCES else ["clipseg", "mask2former", "oneformer"]
    root = roots[0] if roots else os.path.join("ComfyUI", "models", *MODELS_SUBFOLDER.split("/"))
    where = " or ".join(roots) if roots else root
    recipes = "; ".join(
        f"{b}: a folder such as {os.path.join(root, EXAMPLE_FOLDERS[b])} holding {EXPECTED_FILES[b]} "
        f"(get {WEIGHTS_SOURCES[b]})"
        for b in wanted
    )
    head = f"{name!r} is not installed" if name and name != NO_MODEL else f"no model installed for backend {backend!r}"
    return InputError(
        "model",
        f"{head}. ComfyUI looks for segmentation models in {where} (one subfolder per model; add more places "
        f"with 't2c_segmentation: <path>' in extra_model_paths.yaml). {recipes}. "
        "Then refresh ComfyUI (press R) and pick the folder in 'model'",
    )


def resolve_model(name: str, roots: Sequence[str], backend: str) -> str:
    """The folder of the model named in the node's dropdown (or an existing absolute path)."""
    if name and name != NO_MODEL:
        if os.path.isabs(name) and os.path.isdir(name):
            return name
        folder = list_model_dirs(roots).get(name)
        if folder is not None:
            return folder
    raise missing_model_error(backend, roots, name)


def _missing_files(folder: str, backend: str) -> list[str]:
    present = set(os.listdir(folder))
    missing = []
    if not present & set(_WEIGHT_FILES):
        missing.append("model.safetensors (the weights)")
    if not present & set(_PROCESSOR_FILES):
        missing.append("preprocessor_config.json")
    if backend in ("clipseg", "oneformer"):
        if "tokenizer.json" not in present and not {"vocab.json", "merges.txt"} <= present:
            missing.append("the tokenizer (vocab.json + merges.txt, or tokenizer.json)")
    return missing


def inspect_model_dir(folder: str, backend: str) -> str:
    """Check that ``folder`` holds a complete model for ``backend``; returns the concrete backend
    (``auto`` is resolved through config.json's ``model_type``)."""
    if not os.path.isdir(folder):
        raise InputError("model", f"no such folder: {folder}; expected a model folder holding {_expected(backend)}")
    config_path = os.path.join(folder, "config.json")
    if backend == "odise" or (backend == "auto" and not os.path.isfile(config_path) and odise_checkpoint(folder)):
        if odise_checkpoint(folder) is None:
            raise InputError("model", f"{folder} holds no ODISE checkpoint: expected {_expected('odise')}")
        return "odise"
    if not os.path.isfile(config_path):
        raise InputError(
            "model",
            f"{folder} has no config.json, so it is not a Hugging Face model folder; expected {_expected(backend)}",
        )
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(
            "model", f"cannot read {config_path} ({error}): the download is incomplete or corrupted"
        ) from error
    model_type = config.get("model_type") if isinstance(config, dict) else None
    detected = _MODEL_TYPES.get(str(model_type))
    if detected is None:
        architectures = ", ".join(config.get("architectures") or []) if isinstance(config, dict) else ""
        raise InputError(
            "model",
            f"{folder} holds a {model_type!r} model ({architectures or 'unknown architecture'}), which is not a "
            f"segmentation model this node runs. Supported: CLIPSeg ({WEIGHTS_SOURCES['clipseg']}), Mask2Former "
            f"({WEIGHTS_SOURCES['mask2former']}), OneFormer ({WEIGHTS_SOURCES['oneformer']})",
        )
    if backend not in ("auto", detected):
        raise InputError(
            "model",
            f"{folder} holds a {detected} model but backend is {backend!r}: choose backend {detected!r} (or 'auto'), "
            f"or a {backend} model folder ({WEIGHTS_SOURCES.get(backend, '')})",
        )
    missing = _missing_files(folder, detected)
    if missing:
        raise InputError(
            "model",
            f"{folder} lacks {', '.join(missing)}; a {detected} folder needs {EXPECTED_FILES[detected]}. "
            f"Download the whole of {WEIGHTS_SOURCES[detected]}",
        )
    return detected


def _expected(backend: str) -> str:
    if backend in EXPECTED_FILES:
        return f"{EXPECTED_FILES[backend]} ({WEIGHTS_SOURCES[backend]})"
    return "; or ".join(f"{EXPECTED_FILES[b]} ({WEIGHTS_SOURCES[b]})" for b in ("clipseg", "mask2former", "oneformer"))


def folder_signature(folder: str) -> tuple:
    entries = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            stat = os.stat(path)
            entries.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)
