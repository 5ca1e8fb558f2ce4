"""ODISESegment: vocabulary, label mapping, thresholds, real (tiny) CLIPSeg / Mask2Former / OneFormer
folders loaded through the real loading code, the clear errors, and the node inside ComfyUI."""

import json
import logging
import os
import shutil
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from comfy_inprocess import import_comfy
from text2cinemagraph.kernels import InputError
from text2cinemagraph.nodes.stages import segmentation as seg
from text2cinemagraph.nodes.stages import vocabulary
from text2cinemagraph.nodes.stages.directions import REGION_KINDS

ADE_LABELS = {0: "wall", 1: "sky", 2: "water", 3: "sea", 4: "river", 5: "waterfall, falls", 6: "tree", 7: "lake",
              8: "person, individual, someone, somebody, mortal, soul"}
COCO_LABELS = {0: "person", 1: "sky-other-merged", 2: "water-other", 3: "sea", 4: "river", 5: "tree-merged",
               6: "wall-stone", 7: "rock-merged"}
WORDS = ["the", "task", "is", "semantic", "water", "waterfall", "river", "ocean", "lake", "sea", "sky"]


# --- tiny models saved with save_pretrained ------------------------------------------------------


def write_tokenizer_files(folder):
    """A tiny CLIP BPE vocabulary: every letter, alone and word-final."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    with open(os.path.join(folder, "vocab.json"), "w") as handle:
        json.dump(vocab, handle)
    with open(os.path.join(folder, "merges.txt"), "w") as handle:
        handle.write("#version: 0.2\n")
    return len(vocab)


def tiny_tokenizer(folder):
    from transformers import CLIPTokenizer

    write_tokenizer_files(folder)
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), model_max_length=77)


def tiny_swin():
    from transformers import SwinConfig

    return SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                      window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])


def save_clipseg(folder, scratch):
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessor

    tokenizer = tiny_tokenizer(scratch)
    torch.manual_seed(0)
    config = CLIPSegConfig(
        text_config=dict(vocab_size=len(tokenizer.get_vocab()), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=32, extract_layers=(0, 1), reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=37,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(folder)
    image_processor = ViTImageProcessor(size={"height": 32, "width": 32})
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def save_mask2former(folder):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    torch.manual_seed(1)
    config = Mask2FormerConfig(
        backbone_config=tiny_swin(), feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
        encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=32, num_queries=6,
        id2label=ADE_LABELS, label2id={v: k for k, v in ADE_LABELS.items()},
    )
    Mask2FormerForUniversalSegmentation(config).save_pretrained(folder)
    # shortest edge 64, padded to 128 x 128: the padding must be cropped away again
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32,
                              pad_size={"height": 128, "width": 128}).save_pretrained(folder)


def save_oneformer(folder, scratch, hub_layout=False):
    """OneFormer; ``hub_layout`` writes the files as shi-labs/oneformer_* do (a top-level
    preprocessor_config.json naming a class_info_file on the Hub, vocab.json + merges.txt)."""
    from transformers import OneFormerConfig, OneFormerForUniversalSegmentation, OneFormerImageProcessor

    tokenizer = tiny_tokenizer(scratch)
    torch.manual_seed(2)
    config = OneFormerConfig(
        backbone_config=tiny_swin(), id2label=COCO_LABELS, label2id={v: k for k, v in COCO_LABELS.items()},
        num_queries=6, text_encoder_width=32, text_encoder_num_layers=1,
        text_encoder_vocab_size=len(tokenizer.get_vocab()),
        text_encoder_proj_layers=1, text_encoder_n_ctx=2, conv_dim=32, mask_dim=32, hidden_dim=32,
        encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=32,
        query_dec_layers=1,
    )
    OneFormerForUniversalSegmentation(config).save_pretrained(folder)
    image_processor = OneFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, num_text=2)
    if not hub_layout:
        from transformers import OneFormerProcessor

        OneFormerProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
        return
    image_processor.save_pretrained(folder)
    settings_path = os.path.join(folder, "preprocessor_config.json")
    with open(settings_path) as handle:
        settings = json.load(handle)
    settings.update(class_info_file="ade20k_panoptic.json", repo_path="shi-labs/oneformer_demo",
                    processor_class="OneFormerProcessor", max_seq_length=77, task_seq_length=77)
    with open(settings_path, "w") as handle:
        json.dump(settings, handle)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(scratch, name), folder)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as handle:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77}, handle)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``ComfyUI/models`` stand-in: text2cinemagraph/segmentation/<one folder per model>."""
    pytest.importorskip("transformers")
    base = tmp_path_factory.mktemp("models")
    root = base / "text2cinemagraph" / "segmentation"
    scratch = str(tmp_path_factory.mktemp("tokenizer"))
    save_clipseg(str(root / "clipseg-tiny"), scratch)
    save_mask2former(str(root / "mask2former-tiny"))
    save_oneformer(str(root / "oneformer-tiny"), scratch)
    save_oneformer(str(root / "shi-labs" / "oneformer-hub-layout"), scratch, hub_layout=True)
    (root / "not-a-model").mkdir()
    (root / "not-a-model" / "notes.txt").write_text("no config here")
    return SimpleNamespace(base=str(base), root=str(root), folder=lambda name: str(root / name))


def picture(height=37, width=53, channels=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((1, height, width, channels), generator=generator)


# --- vocabulary ------------------------------------------------------------------------------------


@pytest.mark.parametrize("word, name", [
    ("water", "water"), ("Rivers", "river"), ("skies", "sky"), ("leaves", "leaf"), ("people", "person"),
    ("ocean", "sea"), ("Oceans", "sea"), ("falls", "waterfall"), ("WATERFALLS", "waterfall"), ("pond", "lake"),
    ("grass", "grass"), ("clouds", "cloud"), ("palm trees", "tree"), ("stormy seas", "sea"), ("night sky", "sky"),
    ("water-fall", "waterfall"), ("smoke", "smoke"), ("flames", "flame"),
])
def test_lookup_finds_synonyms_plurals_and_head_nouns(word, name):
    assert vocabulary.lookup(word).name == name


@pytest.mark.parametrize("word", ["", "foo", "glasses", "hydrant", "other"])
def test_lookup_of_unknown_words_is_none(word):
    assert vocabulary.lookup(word) is None


def test_vocabulary_data_is_consistent():
    classes = vocabulary.classes()
    assert len(classes) >= 40
    names = [c.name for c in classes]
    assert len(names) == len(set(names))
    for c in classes:
        assert c.group in vocabulary.GROUPS
        assert (c.region_kind in REGION_KINDS) if c.animatable else (c.region_kind is None and c.group == "static")
        for term in (*c.terms, *c.plurals):
            assert vocabulary.lookup(term, head_noun=False) is c, term  # every term belongs to one class only
    for word in seg.DEFAULT_VOCABULARY.split(","):
        assert vocabulary.lookup(word).group == "water" and vocabulary.is_animatable(word)
    for word in ("mountain", "rock", "building", "person"):
        assert not vocabulary.is_animatable(word)
    assert {c.name for c in vocabulary.classes_in_group("sky")} >= {"sky", "cloud"}
    assert vocabulary.plural("sky") == "skies" and vocabulary.plural("leaf") == "leaves"


def test_parse_vocabulary_splits_classes_and_synonyms():
    assert seg.parse_vocabulary(" water,  river ; sky,clouds;;\n smoke ,water") == [
        ["water", "river"], ["sky", "clouds"], ["smoke"],
    ]
    assert seg.parse_vocabulary(seg.DEFAULT_VOCABULARY) == [["water", "waterfall", "river", "ocean", "lake", "sea"]]


@pytest.mark.parametrize("text", ["", "   ", " ; , ;\n"])
def test_empty_vocabulary_is_refused(text):
    with pytest.raises(InputError) as error:
        seg.parse_vocabulary(text)
    assert error.value.input_name == "vocabulary" and "water" in str(error.value)


# --- label mapping ---------------------------------------------------------------------------------


def test_default_vocabulary_covers_every_ade_water_label():
    match = seg.match_labels(seg.parse_vocabulary(seg.DEFAULT_VOCABULARY), ADE_LABELS)
    assert match.label_ids == ((2, 3, 4, 5, 7),)  # water, sea (via ocean and sea), river, "waterfall, falls", lake
    assert match.unknown_words == ()


def test_classes_synonyms_plurals_and_unknown_words_map_onto_labels():
    classes = seg.parse_vocabulary("Oceans, foo; skies; people, trees; waterfall")
    match = seg.match_labels(classes, ADE_LABELS)
    assert match.label_ids == ((3,), (1,), (6, 8), (5,))
    assert match.unknown_words == ("foo",)
    assert match.all_ids == (1, 3, 5, 6, 8)


def test_coco_suffixes_and_compound_names_are_understood():
    match = seg.match_labels([["sky"], ["water"], ["trees"], ["stone"], ["wall"], ["lakes"]], COCO_LABELS)
    # "wall-stone" is a wall, not a stone; "rock-merged" is a rock (stone is its synonym); no lake label
    assert match.label_ids == ((1,), (2,), (5,), (7,), (6,), ())
    assert match.unknown_words == ("lakes",)


def test_words_outside_the_vocabulary_match_labels_literally():
    match = seg.match_labels([["tables", "chair"]], {0: "table", 1: "swivel chair", 2: "chair"})
    assert match.label_ids == ((0, 2),)


# --- probabilities and threshold on planted values -------------------------------------------------


def test_clipseg_class_probability_is_the_max_over_synonyms_and_thresholds_exactly():
    logits = torch.full((3, 8, 8), -6.0)
    logits[0, :4, :4] = 1.0  # "water": sigmoid 0.73 in the top-left quarter
    logits[1, :2, :8] = 3.0  # "waterfall" (synonym of water): 0.95 in the top two rows
    logits[2, 6:, 6:] = 0.0  # "sky" (class 1): 0.5 in the bottom-right corner
    probabilities = seg.clipseg_class_probabilities(logits, [0, 0, 1], 2)
    assert probabilities[0, 0, 7] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    assert probabilities[0, 3, 3] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item())
    union = probabilities.amax(0)
    classes = [["water", "waterfall"], ["sky"]]
    mask = seg.threshold_mask(probabilities, union, 0.6, classes)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:4, :4] = True
    expected[:2, :] = True
    assert torch.equal(mask, expected)
    assert seg.threshold_mask(probabilities, union, 0.5, classes)[7, 7]  # the sky corner reaches 0.5
    assert seg.threshold_mask(probabilities, union, 0.9, classes).sum() == 16


def test_nothing_above_threshold_names_threshold_vocabulary_and_the_best_probability():
    probabilities = torch.full((2, 4, 4), 0.1)
    probabilities[1, 2, 2] = 0.37
    with pytest.raises(InputError) as error:
        seg.threshold_mask(probabilities, probabilities.amax(0), 0.4, [["water", "river"], ["sky"]])
    message = str(error.value)
    assert error.value.input_name == "threshold"
    assert "0.370" in message and "water, river: 0.100" in message and "sky: 0.370" in message
    assert "vocabulary" in message and "below 0.370" in message


def test_semantic_label_probabilities_on_planted_queries():
    class_logits = torch.full((3, 4), -8.0)  # 3 queries, labels: water, sea, wall, then "no object"
    class_logits[0, 0] = 8.0  # query 0 is water
    class_logits[1, 2] = 8.0  # query 1 is wall
    class_logits[2, 3] = 8.0  # query 2 is nothing
    mask_logits = torch.full((3, 4, 6), -8.0)
    mask_logits[0, :, :3] = 8.0
    mask_logits[1, :, 3:] = 8.0
    mask_logits[2] = 8.0
    labels = seg.semantic_label_probabilities(class_logits, mask_logits)
    assert labels.shape == (3, 4, 6)
    assert torch.allclose(labels.sum(0), torch.ones(4, 6), atol=1e-4)
    water = seg.gather_classes(labels, [(0, 1)])[0]
    assert water[:, :3].min() > 0.99 and water[:, 3:].max() < 0.01


def test_resize_maps_crops_the_padding_before_resizing():
    maps = torch.zeros(1, 8, 8)
    maps[:, 6:, :] = 1.0  # padding rows
    maps[:, :, 4:] = 1.0  # padding columns
    resized = seg.resize_maps(maps, (30, 20), valid=(0.75, 0.5))
    assert resized.shape == (1, 30, 20) and resized.max() == 0


def test_overlay_tints_only_the_mask():
    image = torch.full((4, 5, 3), 0.5)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1, 2] = True
    overlay = seg.overlay_preview(image, mask, torch.rand(2, 4, 5))
    assert torch.equal(overlay[~mask], image[~mask]) and not torch.equal(overlay[1, 2], image[1, 2])


# --- real (tiny) models through the loading code --------------------------------------------------


def test_model_folders_are_listed_as_directories(models):
    listed = seg.list_model_dirs([models.root, os.path.join(models.base, "absent")])
    assert list(listed) == ["clipseg-tiny", "mask2former-tiny", "oneformer-tiny", "shi-labs/oneformer-hub-layout"]
    assert listed["clipseg-tiny"] == models.folder("clipseg-tiny")


@pytest.mark.parametrize("folder, backend, vocabulary_text", [
    ("clipseg-tiny", "clipseg", "water, waterfall; sky"),
    ("mask2former-tiny", "mask2former", "water, waterfall, river, ocean, lake, sea; sky"),
    ("oneformer-tiny", "oneformer", "water, sea, river; sky, clouds"),
    ("shi-labs/oneformer-hub-layout", "oneformer", "water; sky"),
])
def test_each_backend_segments_any_picture_size(models, folder, backend, vocabulary_text):
    image = picture(37, 53, channels=4)  # odd size, with an alpha channel
    path = seg.resolve_model(folder, [models.root], "auto")
    result = seg.segment_picture(image, vocabulary_text, "auto", path, threshold=0.0)
    assert result.backend == backend
    assert result.mask.shape == (37, 53) and result.overlay.shape == (37, 53, 3)
    assert result.probabilities.shape == (2, 37, 53) and result.probability.shape == (37, 53)
    assert 0 <= float(result.probability.min()) and float(result.probability.max()) <= 1
    assert torch.isfinite(result.overlay).all() and result.overlay.min() >= 0 and result.overlay.max() <= 1
    threshold = float(result.probability.median())
    again = seg.segment_picture(image, vocabulary_text, backend, path, threshold=threshold)
    assert torch.equal(again.mask.bool(), result.probability >= threshold)  # same picture, same model: same maps
    assert 0 < again.mask.sum() < again.mask.numel() or result.probability.min() == result.probability.max()
    inside = again.mask.bool()
    assert torch.equal(again.overlay[~inside], image[0, ..., :3][~inside])


def test_clipseg_with_planted_logits_masks_the_planted_region_at_picture_size(models, monkeypatch):
    path = models.folder("clipseg-tiny")
    segmenter = seg.load_segmenter(path, "clipseg")
    prompts = []

    def planted(input_ids, attention_mask, pixel_values):
        prompts.append(input_ids.shape[0])
        logits = torch.full((input_ids.shape[0], 32, 32), -4.0)
        logits[-1, 8:24, :16] = 4.0  # only the last prompt ("waterfall") finds something
        return SimpleNamespace(logits=logits)

    monkeypatch.setattr(segmenter.model, "forward", planted)
    result = seg.segment_picture(picture(64, 96), "water, waterfall", "clipseg", path, threshold=0.5)
    assert prompts == [2]
    mask = result.mask.bool()
    assert mask[20:44, 4:44].all()  # inside the planted block (rows 16..48, columns 0..48 at this size)
    assert not mask[:12].any() and not mask[52:].any() and not mask[:, 52:].any()
    assert float(result.probability.max()) == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item(), abs=1e-4)
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(64, 96), "water, waterfall", "clipseg", path, threshold=0.99)
    assert error.value.input_name == "threshold" and "0.982" in str(error.value)


def test_mask2former_padding_is_cropped_before_resizing_to_the_picture(models, monkeypatch):
    path = models.folder("mask2former-tiny")
    segmenter = seg.load_segmenter(path, "mask2former")
    shapes = []

    def planted(pixel_values, pixel_mask):
        # A 37x53 picture becomes 64x96 inside a 128x128 padded input: masks at 1/4 are 32x32 with
        # the picture in rows < 16 and columns < 24.
        shapes.append(tuple(pixel_values.shape))
        class_logits = torch.full((1, 2, len(ADE_LABELS) + 1), -10.0)
        class_logits[0, 0, 2] = 10.0  # query 0: water
        class_logits[0, 1, 0] = 10.0  # query 1: wall
        water = torch.zeros(32, 32, dtype=torch.bool)
        water[16:, :] = True  # all padding is "water"
        water[:, 24:] = True
        water[:8, :12] = True  # and the top-left quarter of the picture
        mask_logits = torch.stack([water, ~water]).float().mul(20).sub(10)[None]
        return SimpleNamespace(class_queries_logits=class_logits, masks_queries_logits=mask_logits)

    monkeypatch.setattr(segmenter.model, "forward", planted)
    result = seg.segment_picture(picture(37, 53), "lake, water", "mask2former", path, threshold=0.5)
    assert shapes == [(1, 3, 128, 128)]
    mask = result.mask.bool()
    assert mask[:15, :22].all()  # the top-left quarter (18.5 x 26.5 px), away from its blurred edge
    assert not mask[22:].any() and not mask[:, 31:].any()  # the padding's water does not leak in


def test_unknown_words_are_reported_once_and_nothing_matching_is_an_error(models, caplog):
    path = models.folder("mask2former-tiny")
    with caplog.at_level(logging.WARNING, logger="text2cinemagraph"):
        for _ in range(2):
            result = seg.segment_picture(picture(), "water, lava flow; zebra", "mask2former", path, threshold=0.0)
    assert result.unknown_words == ("lava flow", "zebra")
    reports = [r.getMessage() for r in caplog.records if "match no label" in r.getMessage()]
    assert len(reports) == 1 and "'zebra'" in reports[0] and "'lava flow'" in reports[0]
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), "zebra; unicorn", "mask2former", path)
    message = str(error.value)
    assert error.value.input_name == "vocabulary" and "zebra" in message and "waterfall, falls" in message


def test_missing_model_message_says_where_what_and_from_where(models):
    with pytest.raises(InputError) as error:
        seg.resolve_model(seg.NO_MODEL, [models.root], "clipseg")
    message = str(error.value)
    assert error.value.input_name == "model"
    assert models.root in message and os.path.join(models.root, "clipseg-rd64-refined") in message
    for expected in ("config.json", "model.safetensors", "preprocessor_config.json", "CIDAS/clipseg-rd64-refined",
                     "extra_model_paths.yaml"):
        assert expected in message
    with pytest.raises(InputError) as error:
        seg.resolve_model("gone-model", [models.root], "auto")
    message = str(error.value)
    assert "'gone-model' is not installed" in message
    for expected in ("CIDAS/clipseg-rd64-refined", "facebook/mask2former-swin-large-ade-semantic",
                     "shi-labs/oneformer_ade20k_swin_large"):
        assert expected in message
    with pytest.raises(InputError, match="model: no model installed for backend 'auto'"):
        seg.segment_picture(picture(), "water", "auto", None, model_roots=[models.root])


def test_folder_of_the_wrong_kind_is_refused(models, tmp_path):
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), "water", "mask2former", models.folder("clipseg-tiny"))
    assert error.value.input_name == "model"
    assert "holds a clipseg model but backend is 'mask2former'" in str(error.value)
    with pytest.raises(InputError, match="has no config.json"):
        seg.segment_picture(picture(), "water", "auto", models.folder("not-a-model"))
    with pytest.raises(InputError, match="no such folder"):
        seg.segment_picture(picture(), "water", "clipseg", str(tmp_path / "nowhere"))
    clip = tmp_path / "clip-vit"
    clip.mkdir()
    (clip / "config.json").write_text(json.dumps({"model_type": "clip", "architectures": ["CLIPModel"]}))
    with pytest.raises(InputError, match="holds a 'clip' model \\(CLIPModel\\), which is not a segmentation model"):
        seg.segment_picture(picture(), "water", "auto", str(clip))
    (clip / "config.json").write_text("{ not json")
    with pytest.raises(InputError, match="config.json .*incomplete or corrupted"):
        seg.segment_picture(picture(), "water", "auto", str(clip))


def copy_model(models, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(models.folder(name), target)
    return target


def test_corrupted_or_foreign_weights_and_missing_files_are_reported(models, tmp_path):
    broken = copy_model(models, "mask2former-tiny", tmp_path)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), "water", "auto", str(broken))
    assert error.value.input_name == "model" and "corrupted" in str(error.value) and str(broken) in str(error.value)

    foreign = copy_model(models, "oneformer-tiny", tmp_path)
    shutil.copy(models.folder("clipseg-tiny") + "/model.safetensors", foreign / "model.safetensors")
    with pytest.raises(InputError, match="do not fit its config.json"):
        seg.segment_picture(picture(), "water", "auto", str(foreign))

    incomplete = copy_model(models, "clipseg-tiny", tmp_path)
    (incomplete / "processor_config.json").unlink()
    (incomplete / "tokenizer.json").unlink()
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), "water", "auto", str(incomplete))
    assert "lacks preprocessor_config.json, the tokenizer" in str(error.value)


@pytest.mark.parametrize("kwargs, name", [
    (dict(threshold=1.5), "threshold"),
    (dict(backend="sam"), "backend"),
    (dict(vocabulary_text=" ; "), "vocabulary"),
])
def test_bad_settings_are_refused_before_any_model_loads(kwargs, name):
    settings = dict(vocabulary_text="water", backend="auto", model_dir="/nowhere", threshold=0.4)
    settings.update(kwargs)
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), **settings)
    assert error.value.input_name == name


def test_a_batch_of_pictures_is_refused():
    with pytest.raises(InputError) as error:
        seg.segment_picture(torch.rand(2, 8, 8, 3), "water", "auto", "/nowhere")
    assert error.value.input_name == "image"


@pytest.mark.skipif(seg.odise_available(), reason="ODISE is installed here")
def test_odise_backend_without_the_package_says_how_to_install(models):
    with pytest.raises(InputError) as error:
        seg.segment_picture(picture(), "water", "odise", models.folder("clipseg-tiny"))
    message = str(error.value)
    assert error.value.input_name == "backend"
    for expected in ("NVlabs/ODISE", "detectron2", "pip install", "odise_label_coco_50e-b67d2efc.pth", "clipseg"):
        assert expected in message


# --- the node with ComfyUI's folder registry -------------------------------------------------------


def fake_folder_paths(models_dir):
    """The part of ComfyUI's folder_paths the node uses, with ComfyUI's semantics."""
    module = types.ModuleType("folder_paths")
    module.models_dir = models_dir
    module.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        paths = module.folder_names_and_paths.setdefault(name, ([], set()))[0]
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    module.add_model_folder_path = add_model_folder_path
    module.get_folder_paths = lambda name: list(module.folder_names_and_paths[name][0])
    return module


def test_node_lists_model_folders_and_segments_through_them(models, monkeypatch, tmp_path):
    from text2cinemagraph.nodes import segment as node_module

    fake = fake_folder_paths(models.base)
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    import_comfy()  # the node runs its model through ComfyUI's model management
    import comfy.model_management as management

    spec = node_module.ODISESegment.INPUT_TYPES()["required"]
    assert fake.get_folder_paths("t2c_segmentation") == [models.root]
    assert spec["model"][0] == ["clipseg-tiny", "mask2former-tiny", "oneformer-tiny", "shi-labs/oneformer-hub-layout"]
    assert spec["backend"][0] == list(seg.BACKENDS)
    assert all(options.get("tooltip") for _, options in spec.values())
    mask, overlay = node_module.ODISESegment().segment(picture(40, 30), "water; sky", "auto", "mask2former-tiny", 0.0)
    assert mask.shape == (1, 40, 30) and overlay.shape == (1, 40, 30, 3)
    (segmenter,) = seg.backends._cache.values()
    assert any(loaded.model.model.network is segmenter.model for loaded in management.current_loaded_models)
    management.unload_all_models()  # ComfyUI frees memory: the pack's cache lets the model go
    assert seg.backends._cache == {}

    empty = fake_folder_paths(str(tmp_path))
    monkeypatch.setitem(sys.modules, "folder_paths", empty)
    assert node_module.ODISESegment.INPUT_TYPES()["required"]["model"][0] == [seg.NO_MODEL]
    with pytest.raises(InputError) as error:
        node_module.ODISESegment().segment(picture(), "water", "clipseg", seg.NO_MODEL, 0.4)
    assert os.path.join(str(tmp_path), "text2cinemagraph", "segmentation") in str(error.value)
    with pytest.raises(InputError, match="vocabulary: is empty"):
        node_module.ODISESegment().segment(picture(), ";", "clipseg", seg.NO_MODEL, 0.4)

    monkeypatch.setitem(sys.modules, "folder_paths", None)  # no ComfyUI at all: the inputs still read
    assert node_module.ODISESegment.INPUT_TYPES()["required"]["model"][0] == [seg.NO_MODEL]


# --- inside a real ComfyUI server ------------------------------------------------------------------


def test_node_in_comfyui_has_tooltips_dropdowns_and_the_missing_model_message(comfy_server):
    info = comfy_server.get_json("/object_info/ODISESegment")["ODISESegment"]
    assert info["display_name"] == "T2C ODISE Segment" and info["category"] == "Text2Cinemagraph"
    assert info["output"] == ["MASK", "IMAGE"] and len(info["output_tooltips"]) == 2
    required = info["input"]["required"]
    assert list(required) == ["image", "vocabulary", "backend", "model", "threshold"]
    for name, spec in required.items():
        assert len(spec) > 1 and spec[1].get("tooltip"), f"ODISESegment.{name} has no tooltip"
    assert required["backend"][0] == list(seg.BACKENDS)
    assert required["vocabulary"][1]["default"] == seg.DEFAULT_VOCABULARY
    comfy_root = os.path.realpath(comfy_server.comfy_root)
    models_folder = os.path.join(comfy_root, "models", "text2cinemagraph", "segmentation")
    assert models_folder in required["model"][1]["tooltip"]
    if required["model"][0] != [seg.NO_MODEL]:
        pytest.skip("this ComfyUI has segmentation models installed; the missing-model run needs none")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "lake.png"}},
        "2": {"class_type": "ODISESegment", "inputs": {
            "image": ["1", 0], "vocabulary": seg.DEFAULT_VOCABULARY, "backend": "auto", "model": seg.NO_MODEL,
            "threshold": 0.4}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }
    response = comfy_server.queue(prompt)
    assert response.status_code == 200, response.text
    entry = comfy_server.wait(response.json()["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["node_type"] == "ODISESegment"
    message = errors[0]["exception_message"]
    assert message.startswith("model: no model installed") and models_folder in message
    assert "CIDAS/clipseg-rd64-refined" in message
