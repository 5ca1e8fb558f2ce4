"""The segmentation models (CLIPSeg, Mask2Former / OneFormer, ODISE), how they are loaded, and the
one kept in memory."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from typing import Callable, ContextManager, Iterator

import numpy as np
import torch
from torch import Tensor

from ....kernels.errors import InputError
from .folders import MODELS_SUBFOLDER, WEIGHTS_SOURCES, folder_signature, odise_checkpoint
from .labels import check_label_match, match_labels
from .scores import (
    clipseg_class_probabilities,
    gather_classes,
    normalise_scores,
    resize_maps,
    semantic_label_probabilities,
    valid_fraction,
)

BACKENDS = ("auto", "clipseg", "mask2former", "oneformer", "odise")
_CLIPSEG_BATCH = 8


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
        check_label_match(match, classes, self.id2label, self.folder)
        inputs = self._inputs(picture)
        valid = valid_fraction(inputs.get("pixel_mask"))
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
    key = (backend, os.path.realpath(folder), folder_signature(folder))
    if key not in _cache:
        _cache.clear()
        if backend == "clipseg":
            _cache[key] = _ClipSeg(folder)
        elif backend in ("mask2former", "oneformer"):
            _cache[key] = _MaskFormer(folder, backend)
        else:
            try:
                _cache[key] = _Odise(odise_checkpoint(folder))
            except ImportError as error:
                raise InputError(
                    "backend", f"ODISE is installed but does not import ({error}); see its install notes"
                ) from error
    return _cache[key]


def forget_segmenter() -> None:
    """Drop the cached segmenter (ComfyUI unloaded its model: free the memory; reload when next used)."""
    _cache.clear()
