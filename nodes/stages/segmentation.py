"""Open-vocabulary segmentation of the natural twin: which pixels are water (or sky, smoke ...).

The paper segments the natural twin with ODISE and the vocabulary
"water, waterfall, river, ocean, lake, sea" (comma = synonyms of one class,
semicolon = separate classes, as in ODISE's demo). ODISE needs detectron2 and a
CUDA build, so it is one optional backend among four:

- ``clipseg``: CLIPSeg (transformers), one text prompt per word. The
  probability of a class is the MAXIMUM over its synonyms of CLIPSeg's sigmoid
  probability: a pixel belongs to the class when any synonym finds it (a mean
  would dilute "waterfall" with "lake" on a picture that shows only a lake).
- ``mask2former`` / ``oneformer``: a closed-set semantic or panoptic checkpoint
  (transformers) whose labels (``config.id2label``, ADE20K or COCO names) are
  mapped onto the vocabulary through :mod:`.vocabulary` (synonyms, plurals,
  COCO suffixes such as "-other-merged"). Words no label matches are reported.
- ``odise``: ODISE itself, when the ``odise`` package, detectron2 and an ODISE
  checkpoint are installed.

Every backend yields, per vocabulary class, a probability map in [0, 1] at the
picture's size; the mask is every pixel whose probability of belonging to one
of the classes reaches ``threshold``. For the label backends that probability
is the per-pixel share of the matched labels in the model's semantic scores
(Mask2Former's semantic inference: softmax class probabilities times sigmoid
mask probabilities, summed over queries; normalised over labels per pixel).

Models are Hugging Face folders loaded with ``from_pretrained(folder,
local_files_only=True)``: nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...kernels.errors import InputError
from . import vocabulary
from .inputs import single_picture

log = logging.getLogger("text2cinemagraph")

BACKENDS = ("auto", "clipseg", "mask2former", "oneformer", "odise")
DEFAULT_VOCABULARY = "water, waterfall, river, ocean, lake, sea"
DEFAULT_THRESHOLD = 0.4
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
_LABEL_FILLERS = {"other", "merged", "stuff"}
_PALETTE = torch.tensor(
    [[0.0, 0.55, 1.0], [1.0, 0.4, 0.1], [0.25, 0.9, 0.3], [1.0, 0.85, 0.0], [0.8, 0.3, 1.0], [0.0, 0.9, 0.85]]
)
_CLIPSEG_BATCH = 8
_reported_unknown: set[tuple[str, str]] = set()


# --- vocabulary and labels ---------------------------------------------------------------------


def parse_vocabulary(text: str) -> list[list[str]]:
    """ODISE-style vocabulary -> classes, each a list of synonyms.

    ``"water, river; sky, clouds"`` -> ``[["water", "river"], ["sky", "clouds"]]``.
    Semicolons (or new lines) separate classes, commas separate synonyms;
    repeated words are kept once.
    """
    classes, seen = [], set()
    for chunk in re.split(r"[;\n]", text or ""):
        words = []
        for word in chunk.split(","):
            word = " ".join(word.split())
            if word and word.lower() not in seen:
                seen.add(word.lower())
                words.append(word)
        if words:
            classes.append(words)
    if not classes:
        raise InputError(
            "vocabulary",
            f"is empty: name what to segment, e.g. {DEFAULT_VOCABULARY!r} (one class with synonyms) or "
            "'water, river; sky, clouds' (';' separates classes, ',' separates synonyms)",
        )
    return classes


def _term_keys(term: str, head_noun: bool = True) -> set[str]:
    """The keys under which a word matches: its vocabulary class, else its literal singular forms."""
    found = vocabulary.lookup(term, head_noun=head_noun)
    if found is not None:
        return {found.name}
    phrase = vocabulary.normalise(term)
    head, _, last = phrase.rpartition(" ")
    return {phrase} | {f"{head} {c}".strip() for c in vocabulary.singular_candidates(last)}


def label_keys(label: str) -> set[str]:
    """Keys of a dataset label such as ADE20K's ``"waterfall, falls"`` or COCO's ``"sky-other-merged"``.

    Commas separate synonyms (ADE20K). COCO's hyphenated names put the head
    noun first ("wall-brick" is a wall) and carry filler suffixes ("-other",
    "-merged", "-stuff"), which are dropped.
    """
    keys: set[str] = set()
    for part in label.split(","):
        raw = part.strip().lower()
        tokens = [t for t in re.split(r"[-_\s]+", raw) if t]
        if not tokens:
            continue
        kept = [t for t in tokens if t not in _LABEL_FILLERS] or tokens
        if "-" in raw or "_" in raw:
            keys |= _term_keys(" ".join(kept), head_noun=False) | _term_keys(kept[0], head_noun=False)
        else:
            keys |= _term_keys(" ".join(kept))
    return keys


@dataclass(frozen=True)
class LabelMatch:
    label_ids: tuple[tuple[int, ...], ...]  # per vocabulary class, the model labels it covers
    unknown_words: tuple[str, ...]  # words that match no label

    @property
    def all_ids(self) -> tuple[int, ...]:
        return tuple(sorted({i for ids in self.label_ids for i in ids}))


def match_labels(classes: Sequence[Sequence[str]], id2label: Mapping[int, str]) -> LabelMatch:
    """Which labels of a closed-set model each vocabulary class covers.

    A word matches a label when both name the same vocabulary class (synonyms,
    plurals: "ocean" matches ADE20K's "sea") or, for words outside the
    vocabulary, when their singular forms coincide ("tables" matches "table").
    """
    label_sets = {int(i): label_keys(str(name)) for i, name in id2label.items()}
    per_class, unknown = [], []
    for words in classes:
        ids: set[int] = set()
        for word in words:
            keys = _term_keys(word)
            hits = {i for i, label_set in label_sets.items() if label_set & keys}
            if not hits:
                unknown.append(word)
            ids |= hits
        per_class.append(tuple(sorted(ids)))
    return LabelMatch(tuple(per_class), tuple(unknown))


def _check_label_match(match: LabelMatch, classes, id2label: Mapping[int, str], model: str) -> None:
    """Raise when nothing matches; log each unknown word once per model."""
    if not match.all_ids:
        names = [str(id2label[i]) for i in sorted(id2label, key=int)]
        shown = "; ".join(names[:40]) + (f"; ... ({len(names)} labels)" if len(names) > 40 else "")
        words = ", ".join(w for ws in classes for w in ws)
        raise InputError(
            "vocabulary",
            f"none of the words ({words}) names a label of the model in {model}. Its labels: {shown}. "
            "Use some of these (synonyms and plurals are understood), or the clipseg backend, which takes any words",
        )
    fresh = [w for w in match.unknown_words if (model, w.lower()) not in _reported_unknown]
    if fresh:
        _reported_unknown.update((model, w.lower()) for w in fresh)
        words = ", ".join(map(repr, fresh))
        log.warning("ODISESegment: %s match no label of the model in %s and are ignored", words, model)


# --- probabilities -------------------------------------------------------------------------------


def clipseg_class_probabilities(logits: Tensor, prompt_class: Sequence[int], num_classes: int) -> Tensor:
    """``[P, h, w]`` CLIPSeg logits of P prompts -> ``[K, h, w]`` class probabilities.

    A class's probability is the maximum sigmoid probability over its prompts (synonyms).
    """
    probabilities = logits.float().sigmoid()
    owner = torch.as_tensor(list(prompt_class))
    out = probabilities.new_zeros((num_classes, *probabilities.shape[-2:]))
    for k in range(num_classes):
        rows = probabilities[owner == k]
        if len(rows):
            out[k] = rows.amax(0)
    return out


def semantic_label_probabilities(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-pixel distribution over the model's labels, ``[L, h, w]`` (sums to 1 where any query fires).

    ``class_logits`` ``[Q, L + 1]`` (the last column is "no object"), ``mask_logits``
    ``[Q, h, w]``. The scores are Mask2Former's semantic inference (as in the
    Mask2Former paper and transformers' ``post_process_semantic_segmentation``):
    ``sum_q softmax(class)_q,l * sigmoid(mask)_q``, then normalised over labels.
    """
    class_probabilities = class_logits.float().softmax(-1)[:, :-1]
    scores = torch.einsum("ql,qhw->lhw", class_probabilities, mask_logits.float().sigmoid())
    return normalise_scores(scores)


def normalise_scores(scores: Tensor) -> Tensor:
    """``[L, h, w]`` non-negative label scores -> a per-pixel distribution over labels."""
    scores = scores.float().clamp_min(0)
    return scores / scores.sum(0, keepdim=True).clamp_min(1e-6)


def gather_classes(label_probabilities: Tensor, label_ids: Sequence[Sequence[int]]) -> Tensor:
    """``[L, h, w]`` -> ``[K, h, w]``: each class's probability is the sum over its labels."""
    out = label_probabilities.new_zeros((len(label_ids), *label_probabilities.shape[-2:]))
    for k, ids in enumerate(label_ids):
        if ids:
            out[k] = label_probabilities[list(ids)].sum(0)
    return out.clamp(0, 1)


def resize_maps(maps: Tensor, size: tuple[int, int], valid: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """``[K, h, w]`` -> ``[K, H, W]`` bilinear; ``valid`` = the fractions of rows and columns that are
    picture (not padding) in the model input, cropped before resizing."""
    rows = max(1, round(maps.shape[-2] * valid[0]))
    cols = max(1, round(maps.shape[-1] * valid[1]))
    cropped = maps[:, :rows, :cols]
    if tuple(cropped.shape[-2:]) == tuple(size):
        return cropped.clone()
    return F.interpolate(cropped[None].float(), size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)


def _valid_fraction(pixel_mask: Tensor | None) -> tuple[float, float]:
    if pixel_mask is None:
        return 1.0, 1.0
    mask = pixel_mask.reshape(pixel_mask.shape[-2:]).bool()
    return float(mask.any(1).sum()) / mask.shape[0], float(mask.any(0).sum()) / mask.shape[1]


def threshold_mask(probabilities: Tensor, union: Tensor, threshold: float, classes: Sequence[Sequence[str]]) -> Tensor:
    """``[H, W]`` bool: pixels whose probability of belonging to one of the classes reaches ``threshold``.

    Raises when no pixel does: an empty mask would animate nothing.
    """
    mask = union >= threshold
    if not bool(mask.any()):
        best = [f"{', '.join(words)}: {float(p.max()):.3f}" for words, p in zip(classes, probabilities)]
        top = float(union.max())
        hint = f"lower threshold below {top:.3f}" if top > 0 else "check the picture"
        raise InputError(
            "threshold",
            f"no pixel reaches {threshold:.3f} for the vocabulary; the highest probabilities are "
            f"{'; '.join(best)}. Either {hint}, or change vocabulary to what the picture shows "
            "(the picture may contain none of these classes)",
        )
    return mask


def overlay_preview(picture: Tensor, mask: Tensor, probabilities: Tensor, opacity: float = 0.5) -> Tensor:
    """``[H, W, 3]``: the picture with the mask tinted, one colour per vocabulary class."""
    winner = probabilities.argmax(0) % len(_PALETTE)
    colours = _PALETTE.to(picture)[winner]
    alpha = opacity * mask.to(picture)[..., None]
    return picture * (1 - alpha) + colours * alpha


# --- model folders -----------------------------------------------------------------------------


def _odise_checkpoint(folder: str) -> str | None:
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
    if backend == "odise" or (backend == "auto" and not os.path.isfile(config_path) and _odise_checkpoint(folder)):
        if _odise_checkpoint(folder) is None:
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


def _folder_signature(folder: str) -> tuple:
    entries = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            stat = os.stat(path)
            entries.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


# --- backends ----------------------------------------------------------------------------------


def odise_available() -> bool:
    return importlib.util.find_spec("odise") is not None and importlib.util.find_spec("detectron2") is not None


def require_odise() -> None:
    if odise_available():
        return
    raise InputError(
        "backend",
        "'odise' needs the ODISE package (github.com/NVlabs/ODISE) and detectron2, which are not installed in "
        "ComfyUI's Python. Installing them needs an NVIDIA GPU with a CUDA toolkit: "
        "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
        "'git+https://github.com/NVlabs/ODISE.git', then put "
        f"{WEIGHTS_SOURCES['odise']} into models/{MODELS_SUBFOLDER}/odise/ (ODISE also fetches Stable Diffusion "
        "v1.3 and CLIP ViT-L/14-336 into its own caches on first use). Or choose backend 'clipseg', "
        "'mask2former' or 'oneformer', which need only transformers (see the README)",
    )


def _transformers():
    try:
        import transformers
    except ImportError as error:
        raise InputError(
            "backend", "needs the transformers package (pip install transformers; ComfyUI normally ships it)"
        ) from error
    return transformers


def _load(what: str, backend: str, folder: str, loader):
    try:
        return loader()
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - a third-party loader: reported by its cause below
        raise InputError("model", f"cannot load the {what} of the {backend} model in {folder}: {_load_failure(error, backend)}") from error


def _load_failure(error: Exception, backend: str) -> str:
    """Why a loader failed, and what to do: out of memory, a missing library, or a damaged download."""
    text = f"{type(error).__name__}: {str(error).strip()[:400]}"
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(error).lower():
        return f"out of memory ({text}). Close other models (ComfyUI's 'Unload models') or use a smaller model"
    if isinstance(error, ImportError):
        missing = getattr(error, "name", None) or str(error)
        return (
            f"a library it needs is missing ({text}). Install {missing!r} into ComfyUI's Python "
            "(pip install ...), or update transformers"
        )
    if isinstance(error, PermissionError):
        return f"a file cannot be read ({text}); check its permissions"
    return f"{text}. The file is probably incomplete or corrupted: download {WEIGHTS_SOURCES[backend]} again"


def _load_part(what: str, loader_class, folder: str, backend: str, **overrides):
    """A processor or tokenizer of the folder, offline."""
    return _load(
        what, backend, folder, lambda: loader_class.from_pretrained(folder, local_files_only=True, **overrides)
    )


def _load_weights(model_class, folder: str, backend: str):
    model, info = _load(
        "weights", backend, folder,
        lambda: model_class.from_pretrained(folder, local_files_only=True, output_loading_info=True),
    )
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("criterion.")]
    if missing:
        total = max(1, len(model.state_dict()))
        shown = ", ".join(missing[:5]) + (f" ... and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(
            "model",
            f"the weights in {folder} do not fit its config.json: they lack {len(missing)} of its {total} tensors "
            f"({shown}), which would be left random. "
            f"The folder mixes files of different models or the download is "
            f"incomplete: download {WEIGHTS_SOURCES[backend]} again",
        )
    return model.eval()


ModelHost = Callable[[torch.nn.Module], ContextManager[torch.device]]


def device_host(device: torch.device | str | None) -> ModelHost:
    """Run a cached model on ``device``, moving it back to the CPU afterwards (VRAM stays free for SD)."""

    @contextlib.contextmanager
    def host(model: torch.nn.Module) -> Iterator[torch.device]:
        target = torch.device("cpu") if device is None else torch.device(device)
        if target.type == "cpu":
            yield target
            return
        model.to(target)
        try:
            yield target
        finally:
            model.to("cpu")

    return host


def _pil(picture: Tensor):
    from PIL import Image

    array = (picture.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


class _ClipSeg:
    backend = "clipseg"

    def __init__(self, folder: str):
        tf = _transformers()
        self.folder = folder
        self.model = _load_weights(tf.CLIPSegForImageSegmentation, folder, "clipseg")
        self.tokenizer = _load_part("tokenizer", tf.CLIPTokenizer, folder, "clipseg")
        self.image_processor = _load_part("image processor", tf.ViTImageProcessor, folder, "clipseg")

    @torch.inference_mode()
    def probabilities(self, picture: Tensor, classes, host: ModelHost) -> tuple[Tensor, Tensor, tuple[str, ...]]:
        prompts = [word for words in classes for word in words]
        owner = [k for k, words in enumerate(classes) for _ in words]
        pixels = self.image_processor(images=[_pil(picture)], return_tensors="pt")["pixel_values"]
        logits = []
        with host(self.model) as on:
            for start in range(0, len(prompts), _CLIPSEG_BATCH):
                chunk = prompts[start : start + _CLIPSEG_BATCH]
                text = self.tokenizer(chunk, padding=True, truncation=True, return_tensors="pt")
                out = self.model(
                    input_ids=text["input_ids"].to(on),
                    attention_mask=text["attention_mask"].to(on),
                    pixel_values=pixels.expand(len(chunk), -1, -1, -1).to(on),
                )
                logits.append(out.logits.reshape(len(chunk), *out.logits.shape[-2:]).float().cpu())
        probabilities = clipseg_class_probabilities(torch.cat(logits), owner, len(classes))
        probabilities = resize_maps(probabilities, picture.shape[:2])
        return probabilities, probabilities.amax(0), ()


def _oneformer_image_processor(processor_class, folder: str, config):
    """OneFormer's image processor, offline.

    Its preprocessor_config.json names a ``class_info_file`` that the processor
    fetches from the Hub (shi-labs/oneformer_demo) when it is not local; the
    label metadata in it only serves training targets and instance
    post-processing. We hand it a local one written from ``config.id2label``.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="t2c_oneformer_") as scratch:
        info_path = os.path.join(scratch, "class_info.json")
        with open(info_path, "w", encoding="utf-8") as handle:
            json.dump({str(i): {"name": str(n), "isthing": 0} for i, n in config.id2label.items()}, handle)
        return _load_part("image processor", processor_class, folder, "oneformer", class_info_file=info_path)


class _MaskFormer:
    """Mask2Former or OneFormer: closed-set labels mapped onto the vocabulary."""

    def __init__(self, folder: str, backend: str):
        tf = _transformers()
        self.folder, self.backend = folder, backend
        if backend == "mask2former":
            self.model = _load_weights(tf.Mask2FormerForUniversalSegmentation, folder, backend)
            self.image_processor = _load_part("image processor", tf.Mask2FormerImageProcessor, folder, backend)
            self.tokenizer = None
        else:
            self.model = _load_weights(tf.OneFormerForUniversalSegmentation, folder, backend)
            self.image_processor = _oneformer_image_processor(tf.OneFormerImageProcessor, folder, self.model.config)
            self.tokenizer = _load_part("tokenizer", tf.CLIPTokenizer, folder, backend)
        self.id2label = {int(i): str(name) for i, name in self.model.config.id2label.items()}

    def _inputs(self, picture: Tensor) -> dict:
        if self.tokenizer is None:
            return dict(self.image_processor(images=[_pil(picture)], return_tensors="pt"))
        inputs = dict(self.image_processor(images=[_pil(picture)], task_inputs=["semantic"], return_tensors="pt"))
        # As transformers' OneFormerProcessor does: "the task is semantic", padded to the model's
        # task length, padding ids zeroed.
        tokens = self.tokenizer(
            ["the task is semantic"], padding="max_length", truncation=True,
            max_length=self.model.config.task_seq_len, return_tensors="pt",
        )
        inputs["task_inputs"] = tokens["input_ids"] * tokens["attention_mask"]
        return inputs

    @torch.inference_mode()
    def probabilities(self, picture: Tensor, classes, host: ModelHost) -> tuple[Tensor, Tensor, tuple[str, ...]]:
        match = match_labels(classes, self.id2label)
        _check_label_match(match, classes, self.id2label, self.folder)
        inputs = self._inputs(picture)
        valid = _valid_fraction(inputs.get("pixel_mask"))
        with host(self.model) as on:
            out = self.model(**{k: v.to(on) for k, v in inputs.items() if isinstance(v, Tensor)})
            labels = semantic_label_probabilities(out.class_queries_logits[0], out.masks_queries_logits[0]).cpu()
        maps = torch.cat([gather_classes(labels, match.label_ids), gather_classes(labels, [match.all_ids])])
        maps = resize_maps(maps, picture.shape[:2], valid)
        return maps[:-1], maps[-1], match.unknown_words


class _Odise:
    """ODISE (NVlabs) through its own API, as its demo/demo.py drives it. Needs CUDA; untested here."""

    backend = "odise"

    def __init__(self, checkpoint: str):
        from detectron2.config import instantiate
        from odise import model_zoo
        from odise.checkpoint import ODISECheckpointer
        from odise.config import instantiate_odise
        from odise.data import get_openseg_labels

        name = "caption" if "caption" in os.path.basename(checkpoint) else "label"
        config = model_zoo.get_config(f"Panoptic/odise_{name}_coco_50e.py", trained=False)
        config.model.overlap_threshold = 0  # demo/demo.py's settings
        config.model.clip_head.alpha = 0.35
        config.model.clip_head.beta = 0.65
        self.folder = os.path.dirname(checkpoint)
        self.augmentation = instantiate(config.dataloader.test.mapper).augmentations
        build = lambda: self._build(config, checkpoint, instantiate_odise, ODISECheckpointer)  # noqa: E731
        self.model = _load("weights", "odise", checkpoint, build)
        self.coco_labels = [list(words) for words in get_openseg_labels("coco_panoptic", True)]

    @staticmethod
    def _build(config, checkpoint, instantiate_odise, checkpointer):
        model = instantiate_odise(config.model)
        checkpointer(model).load(checkpoint)
        return model.eval()

    @torch.inference_mode()
    def probabilities(self, picture: Tensor, classes, host: ModelHost) -> tuple[Tensor, Tensor, tuple[str, ...]]:
        from detectron2.data import MetadataCatalog
        from detectron2.data import transforms as T
        from odise.modeling.wrapper import OpenPanopticInference

        # The user's classes first, then COCO's labels so that other things have somewhere to go;
        # COCO labels naming a vocabulary class count for it.
        labels = [list(words) for words in classes] + self.coco_labels
        coco = match_labels(classes, {i: ", ".join(words) for i, words in enumerate(self.coco_labels)})
        label_ids = [(k, *(len(classes) + i for i in ids)) for k, ids in enumerate(coco.label_ids)]
        metadata = MetadataCatalog.get(f"t2c_odise_{abs(hash(tuple(map(tuple, labels))))}")
        metadata.set(thing_classes=[w[0] for w in labels], stuff_classes=[w[0] for w in labels])
        wrapper = OpenPanopticInference(
            model=self.model, labels=labels, metadata=metadata, semantic_on=True, instance_on=False, panoptic_on=False
        ).eval()
        height, width = picture.shape[:2]
        array = np.asarray(_pil(picture))
        augmented = T.AugInput(array)
        T.AugmentationList(self.augmentation)(augmented)
        image = torch.as_tensor(augmented.image.astype("float32").transpose(2, 0, 1))
        with host(self.model):
            result = wrapper([{"image": image, "height": height, "width": width}])[0]
        probabilities = normalise_scores(result["sem_seg"].float().cpu())
        every_id = sorted({i for ids in label_ids for i in ids})
        maps = torch.cat([gather_classes(probabilities, label_ids), gather_classes(probabilities, [every_id])])
        maps = resize_maps(maps, (height, width))
        return maps[:-1], maps[-1], ()


_cache: dict[tuple, object] = {}


def load_segmenter(folder: str, backend: str):
    """The segmenter of a checked model folder (one kept in memory, reloaded when its files change)."""
    key = (backend, os.path.realpath(folder), _folder_signature(folder))
    if key not in _cache:
        _cache.clear()
        if backend == "clipseg":
            _cache[key] = _ClipSeg(folder)
        elif backend in ("mask2former", "oneformer"):
            _cache[key] = _MaskFormer(folder, backend)
        else:
            try:
                _cache[key] = _Odise(_odise_checkpoint(folder))
            except ImportError as error:
                raise InputError(
                    "backend", f"ODISE is installed but does not import ({error}); see its install notes"
                ) from error
    return _cache[key]


def forget_segmenter() -> None:
    """Drop the cached segmenter (ComfyUI unloaded its model: free the memory; reload when next used)."""
    _cache.clear()


# --- the stage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segmentation:
    mask: Tensor  # [H, W] float 0/1: the union of the matched classes
    overlay: Tensor  # [H, W, 3] the picture with the mask tinted
    probabilities: Tensor  # [K, H, W] per vocabulary class
    probability: Tensor  # [H, W] of belonging to any of the classes (mask = probability >= threshold)
    classes: tuple[tuple[str, ...], ...]
    backend: str
    unknown_words: tuple[str, ...] = ()


def _rgb(image: Tensor) -> Tensor:
    picture = single_picture(image).float().cpu()
    if picture.shape[-1] == 1:
        return picture.expand(-1, -1, 3)
    return picture[..., :3]


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise InputError("threshold", f"is {threshold}; it is a probability between 0 and 1 (0.4 is a good start)")
    return threshold


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError("backend", f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def segment_picture(
    image: Tensor,
    vocabulary_text: str | Sequence[Sequence[str]] = DEFAULT_VOCABULARY,
    backend: str = "auto",
    model_dir: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    device: torch.device | str | None = None,
    model_roots: Sequence[str] = (),
    host: ModelHost | None = None,
) -> Segmentation:
    """Segment the vocabulary's classes in a picture.

    Args:
        image: ``[1, H, W, C]`` or ``[H, W, C]`` float 0..1 (any size; C = 1, 3 or 4).
        vocabulary_text: ``"water, river; sky"`` or ready classes ``[["water", "river"], ["sky"]]``.
        backend: one of :data:`BACKENDS`; ``auto`` follows the folder's config.json.
        model_dir: the model folder (a Hugging Face folder, or one holding an ODISE checkpoint).
        threshold: minimum probability of a masked pixel.
        device: where to run (the model is cached on the CPU).
        host: instead of ``device``, how to run the model (ComfyUI's model management in the node).
        model_roots: where models are looked for, named in the message when ``model_dir`` is None.

    Returns:
        :class:`Segmentation` with ``mask`` ``[H, W]`` at the picture's size.
    """
    picture = _rgb(image)
    if isinstance(vocabulary_text, str):
        classes = parse_vocabulary(vocabulary_text)
    else:
        classes = parse_vocabulary("; ".join(", ".join(words) for words in vocabulary_text))
    threshold = _check_threshold(threshold)
    backend = _check_backend(backend)
    if backend == "odise":
        require_odise()
    if model_dir is None:
        raise missing_model_error(backend, model_roots)
    concrete = inspect_model_dir(model_dir, backend)
    if concrete == "odise":
        require_odise()
    segmenter = load_segmenter(model_dir, concrete)
    probabilities, union, unknown = segmenter.probabilities(picture, classes, host or device_host(device))
    mask = threshold_mask(probabilities, union, threshold, classes)
    return Segmentation(
        mask=mask.float(),
        overlay=overlay_preview(picture, mask, probabilities),
        probabilities=probabilities,
        probability=union,
        classes=tuple(tuple(words) for words in classes),
        backend=concrete,
        unknown_words=tuple(unknown),
    )
