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
local_files_only=True)``: nothing is ever download

The package's parts, each importing only those listed before it:
:mod:`.labels` (the vocabulary and the matching of model labels),
:mod:`.scores` (class probabilities, the mask, the preview),
:mod:`.folders` (finding and checking model folders),
:mod:`.backends` (the models and their loading cache) and
:mod:`.stage` (the entry point :func:`segment_picture`).
"""

from __future__ import annotations

from .backends import BACKENDS, ModelHost, device_host, forget_segmenter, load_segmenter, odise_available, require_odise
from .folders import (
    EXAMPLE_FOLDERS,
    EXPECTED_FILES,
    MODELS_SUBFOLDER,
    NO_MODEL,
    WEIGHTS_SOURCES,
    inspect_model_dir,
    list_model_dirs,
    missing_model_error,
    resolve_model,
)
from .labels import DEFAULT_VOCABULARY, LabelMatch, label_keys, match_labels, parse_vocabulary
from .scores import (
    clipseg_class_probabilities,
    gather_classes,
    normalise_scores,
    overlay_preview,
    resize_maps,
    semantic_label_probabilities,
    threshold_mask,
)
from .stage import DEFAULT_THRESHOLD, Segmentation, segment_picture

__all__ = [
    "BACKENDS", "DEFAULT_THRESHOLD", "DEFAULT_VOCABULARY", "EXAMPLE_FOLDERS", "EXPECTED_FILES", "LabelMatch",
    "MODELS_SUBFOLDER", "ModelHost", "NO_MODEL", "Segmentation", "WEIGHTS_SOURCES", "clipseg_class_probabilities",
    "device_host", "forget_segmenter", "gather_classes", "inspect_model_dir", "label_keys", "list_model_dirs",
    "load_segmenter", "match_labels", "missing_model_error", "normalise_scores", "odise_available",
    "overlay_preview", "parse_vocabulary", "require_odise", "resize_maps", "resolve_model", "segment_picture",
    "semantic_label_probabilities", "threshold_mask",
]
