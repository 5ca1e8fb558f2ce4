"""The three learned networks: release-compatible layouts, strict loading, refusals, flow predictions."""

import hashlib
import math
import os
import pickle
import sys
import types

import pytest
import torch

from text2cinemagraph.kernels import InputError
from text2cinemagraph.nodes.stages.networks import (
    FLOW_NORM,
    FlowNetConfig,
    FrameNetConfig,
    HintNetConfig,
    build_network,
    convert_checkpoint,
    detect_kind,
    fold_spectral_norm,
    infer_config,
    load_network,
    read_state_dict,
    save_network,
)
from text2cinemagraph.nodes.stages.networks.layers import PartialConv2d
from text2cinemagraph.nodes.stages.networks.predict import (
    direction_hint,
    learned_direction_flow,
    learned_flow,
    network_size,
)

# Computed from the authors' own class definitions (text2cinemagraph/text2cinemagraph, models/networks.py),
# instantiated with the options of their training commands (G_flow: --norm instance; hint network:
# --norm sync:spectral_instance; G_frame: --norm_G sync:spectral_instance, default --pconv and
# --refine_model_type): sha256 of the sorted "key:shape" lines of each state dict.
RELEASE_LAYOUT = {
    "flow": (281, 320_441_090, "805755b9701f6a6991dfbf6a3cb841521f3814313fc3e63454016c8646ac56ec"),
    "hint": (142, 15_565_826, "0830c7c8e289f7e988791e2dc0e73d3696ed13f14f169d06560d65144fb36427"),
    "frame": (452, 4_100_507, "a02faa2addf836af517a55ed4279e9387fadd5b53226a9c1e5e2e05ec51e75c9"),
}
FACTS_SIZE = {"flow": 320e6, "hint": 16e6, "frame": 4e6}  # "about ..." in the facts file

TINY = {
    "flow": FlowNetConfig(num_filters=32, context_dim=16, spade_hidden=8),  # release heads (8) and groups (32)
    "hint": HintNetConfig(num_filters=4, spade_hidden=8),
    "frame": FrameNetConfig(ngf=8, feature_channels=8),
}


def layout_digest(state):
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(state.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def full_size():
    return {kind: build_network(kind, device="meta") for kind in RELEASE_LAYOUT}


def tiny(kind, seed=0):
    torch.manual_seed(seed)
    network = build_network(kind, TINY[kind])
    if kind != "flow":
        network.train()
        for _ in range(4):  # power iterations: spectral norms estimated as after training
            run(network, kind, tiny_inputs(kind, seed=seed + 10))
    with torch.no_grad():  # non-trivial normalisation statistics, so that loading them matters
        for name, buffer in network.named_buffers():
            if name.endswith("stored_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("stored_var"):
                buffer.uniform_(0.5, 1.5)
    return network


def tiny_inputs(kind, seed=1):
    generator = torch.Generator().manual_seed(seed)
    if kind == "flow":
        x = torch.rand(1, 4, 64, 64, generator=generator) * 2 - 1
        x[:, 3] = (x[:, 3] > 0).float()
        return (x, torch.randn(1, 77, 16, generator=generator))
    if kind == "hint":
        x = torch.rand(1, 6, 256, 256, generator=generator) * 2 - 1
        x[:, 3] = (x[:, 3] > 0).float()
        x[:, 4:] /= FLOW_NORM
        return (x,)
    return (torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1,)


def run(network, kind, inputs):
    with torch.no_grad():
        if kind == "frame":
            features, z = network.encode(*inputs)
            return torch.cat((features.flatten(), z.flatten(), network.decode(features).flatten()))
        return network(*inputs)


@pytest.mark.parametrize("kind", list(RELEASE_LAYOUT))
def test_full_size_layout_is_the_releases(full_size, kind):
    network = full_size[kind]
    count, parameters, digest = RELEASE_LAYOUT[kind]
    state = network.state_dict()
    assert len(state) == count
    assert sum(p.numel() for p in network.parameters()) == parameters
    assert abs(parameters - FACTS_SIZE[kind]) / FACTS_SIZE[kind] < 0.05
    assert layout_digest(state) == digest
    assert detect_kind(state) == kind
    assert infer_config(kind, state) == build_network(kind, device="meta").config


def test_g_flow_stages_have_the_papers_widths_and_sizes(full_size):
    network = full_size["flow"]
    x = torch.empty(1, 4, 512, 512, device="meta")
    context = torch.empty(1, 77, 768, device="meta")
    features = network.encode(x, context)
    assert [tuple(f.shape[1:]) for f in features] == [
        (320, 256, 256), (320, 128, 128), (640, 64, 64), (640, 32, 32),
        (640, 32, 32), (1280, 16, 16), (1280, 16, 16), (1280, 8, 8),
    ]
    assert network(x, context).shape == (1, 2, 512, 512)
    state = network.state_dict()
    block = "attn_output_block_1.transformer_blocks.0."
    assert state[block + "attn2.to_k.weight"].shape == (640, 768)
    assert state[block + "ff.net.0.proj.weight"].shape == (5120, 640)  # GEGLU
    assert state["attn_middle_block.proj_in.weight"].shape == (1280, 1280, 1, 1)
    assert state["spade_layer8_7.mlp_shared.0.weight"].shape == (128, 4, 3, 3)
    assert not any(".attn1." in key or ".norm1." in key for key in state)  # no self-attention
    assert len(network.frozen_parameter_names()) == 18  # to_q and to_k of the nine blocks


def test_hint_network_is_eight_stride_two_spectral_convolutions(full_size):
    state = full_size["hint"].state_dict()
    widths = [state[f"conv{i}.weight_orig"].shape for i in range(1, 9)]
    assert [w[0] for w in widths] == [32, 64, 128, 256, 256, 256, 256, 256]
    assert all(w[2:] == (4, 4) for w in widths) and widths[0][1] == 6
    assert state["spade_layer.mlp_shared.0.weight"].shape[1] == 6  # SPADE on all six input channels
    out = full_size["hint"](torch.empty(1, 6, 512, 512, device="meta"))
    assert out.shape == (1, 2, 512, 512)


def test_g_frame_encoder_and_decoder_widths(full_size):
    state = full_size["frame"].state_dict()
    encoder = [state[f"encoder.gblocks.{i}.ch_a.2.weight_orig"].shape[0] for i in range(8)]
    decoder = [state[f"projector.eblocks.{i}.conv_aa.weight_orig"].shape[0] for i in range(8)]
    assert encoder == [32, 32, 32, 64, 64, 64, 64, 65]  # the extra channel is Z
    assert decoder == [64, 128, 256, 256, 128, 128, 128, 3]
    features, z = full_size["frame"].encode(torch.empty(1, 3, 512, 512, device="meta"))
    assert features.shape == (1, 64, 512, 512) and z.shape == (1, 1, 512, 512)


@pytest.mark.parametrize("kind", list(TINY))
def test_release_style_pth_loads_strictly_and_computes_the_same(tmp_path, kind):
    network = tiny(kind).eval()
    inputs = tiny_inputs(kind)
    expected = run(network, kind, inputs)
    path = tmp_path / "latest_net_G.pth"
    torch.save(network.state_dict(), path)  # a plain pickled state dict, like the release's files
    loaded_kind, loaded = load_network(str(path), name="flow_model")
    assert loaded_kind == kind and not loaded.training
    assert not any(p.is_meta for p in loaded.parameters()) and not any(b.is_meta for b in loaded.buffers())
    assert not any(name.endswith("_orig") for name, _ in loaded.named_parameters())  # spectral norms folded
    got = run(loaded, kind, inputs)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    assert got.abs().max() > 0  # not a degenerate comparison


@pytest.mark.parametrize("kind", ["hint", "frame"])
def test_folding_spectral_norm_keeps_the_evaluation_output(kind):
    network = tiny(kind).eval()
    inputs = tiny_inputs(kind)
    before = run(network, kind, inputs)
    fold_spectral_norm(network)
    assert not any("weight_orig" in key for key in network.state_dict())
    assert torch.allclose(run(network, kind, inputs), before, atol=1e-5, rtol=1e-4)


def test_outputs_are_tanh_bounded_and_shaped():
    for kind in ("flow", "hint"):
        out = run(tiny(kind).eval(), kind, tiny_inputs(kind))
        assert out.shape[1] == 2 and out.abs().max() <= 1.0
    frame = tiny("frame").eval()
    features, z = frame.encode(tiny_inputs("frame")[0])
    assert features.shape == (1, 8, 32, 32) and z.shape == (1, 1, 32, 32)
    decoded = frame.decode(features)
    assert decoded.shape == (1, 3, 32, 32) and decoded.abs().max() <= 1.0


def test_partial_convolution_matches_the_all_ones_mask_kernel():
    torch.manual_seed(3)
    conv = PartialConv2d(5, 4, 3, padding=1)
    x = torch.randn(2, 5, 9, 11)
    mask = (torch.rand(2, 5, 9, 11) > 0.4).float()
    mask[:, :, 2:7, 3:9] = 0.0  # a hole wider than the kernel
    out, new_mask = conv(x, mask)
    # Reference: the definition with a [out, in, 3, 3] kernel of ones.
    coverage = torch.nn.functional.conv2d(mask, torch.ones(4, 5, 3, 3), padding=1)
    valid = coverage.clamp(0, 1)
    raw = torch.nn.functional.conv2d(x * mask, conv.weight, padding=1)
    expected = (raw * (45.0 / (coverage + 1e-8)) * valid + conv.bias.view(1, -1, 1, 1)) * valid
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(new_mask.expand_as(valid), valid)
    assert (valid == 0).any() and torch.equal(out[valid == 0], torch.zeros_like(out[valid == 0]))


def test_safetensors_conversion_round_trip(tmp_path):
    network = tiny("frame").eval()
    source = tmp_path / "latest_net_G.pth"
    torch.save(network.state_dict(), source)
    target = tmp_path / "converted" / "g_frame.safetensors"
    kind, count = convert_checkpoint(str(source), str(target))
    assert kind == "frame" and count == len(network.state_dict())
    state, metadata = read_state_dict(str(target))
    assert metadata["t2c_kind"] == "frame" and set(state) == set(network.state_dict())
    _, loaded = load_network(str(target))
    assert loaded.config == TINY["frame"]  # sizes come back from the metadata
    inputs = tiny_inputs("frame")
    assert torch.allclose(run(loaded, "frame", inputs), run(network, "frame", inputs), atol=1e-5, rtol=1e-4)


def test_heads_survive_a_save_in_safetensors(tmp_path):
    torch.manual_seed(0)
    config = FlowNetConfig(num_filters=32, heads=2, context_dim=16, spade_hidden=8, norm_groups=8)
    network = build_network("flow", config).eval()
    path = tmp_path / "g_flow.safetensors"
    save_network(network, "flow", str(path))
    _, loaded = load_network(str(path), ["flow"])
    assert loaded.config == config  # heads and groups: not the release's, which the shapes cannot tell
    inputs = tiny_inputs("flow")
    assert torch.allclose(run(loaded, "flow", inputs), run(network, "flow", inputs), atol=1e-5)


def test_data_parallel_prefix_is_accepted(tmp_path):
    network = tiny("hint")
    path = tmp_path / "prefixed.pth"
    torch.save({"module." + k: v for k, v in network.state_dict().items()}, path)
    assert load_network(str(path), ["hint"])[0] == "hint"


def test_mismatched_keys_give_one_message_listing_what_differs(tmp_path):
    state = tiny("frame").state_dict()
    del state["projector.eblocks.3.conv_aa.bias"]
    state["projector.eblocks.9.conv_aa.bias"] = torch.zeros(3)
    state["encoder.gblocks.1.ch_a.2.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as caught:
        load_network(str(path), name="frame_model")
    message = str(caught.value)
    assert message.startswith("frame_model: broken.pth does not fit SPADEUnet4SoftmaxSplating")
    assert "1 missing keys: projector.eblocks.3.conv_aa.bias" in message
    assert "1 unexpected keys: projector.eblocks.9.conv_aa.bias" in message
    assert "1 keys with other shapes: encoder.gblocks.1.ch_a.2.bias (file [7], network [4])" in message


def test_long_key_lists_are_truncated(tmp_path):
    state = tiny("hint").state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("spade_layer8_")}
    path = tmp_path / "half.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as caught:
        load_network(str(path))
    message = str(caught.value)
    assert "48 missing keys" in message and "... and 42 more" in message
    assert len(message) < 1000


def test_wrong_network_for_the_method_is_named(tmp_path):
    path = tmp_path / "video.pth"
    torch.save(tiny("frame").state_dict(), path)
    with pytest.raises(InputError) as caught:
        load_network(str(path), ["flow"], name="flow_model")
    assert "holds G_frame" in str(caught.value) and "needs G_flow" in str(caught.value)
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="none of the Text2Cinemagraph networks"):
        load_network(str(other))


class _Payload:
    """Unpickling this runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_carrying_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "was_run"
    path = tmp_path / "latest_net_G.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(InputError) as caught:
        read_state_dict(str(path), "flow_model")
    assert "refused" in str(caught.value) and "arbitrary code" in str(caught.value)
    assert not marker.exists()
    with pytest.raises(InputError, match="refused"):
        convert_checkpoint(str(path), str(tmp_path / "out.safetensors"))
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_unreadable_files_are_reported(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_state_dict(str(tmp_path / "missing.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="cannot read garbage.pth"):
        read_state_dict(str(garbage))
    raw = tmp_path / "list.pth"
    with open(raw, "wb") as handle:
        pickle.dump([1, 2, 3], handle, protocol=2)
    with pytest.raises(InputError):
        read_state_dict(str(raw))


def test_network_size_keeps_the_aspect_on_the_grid():
    assert network_size(512, 512, 64) == (512, 512)
    assert network_size(1024, 1536, 64) == (512, 768)
    assert network_size(300, 200, 256) == (768, 512)


def picture_and_mask(height=96, width=128):
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(1, height, width, 3, generator=generator)
    mask = torch.zeros(1, height, width)
    mask[0, 40:80, 20:100] = 1.0
    return image, mask


def test_learned_flow_is_clamped_scaled_and_zero_outside_the_mask():
    network = tiny("flow").eval()
    # Make the raw prediction large, so that the clamp is what bounds it.
    with torch.no_grad():
        network.dconv8.bias.copy_(torch.tensor([5.0, -5.0]))
    image, mask = picture_and_mask()
    conditioning = [[torch.randn(1, 77, 16), {"pooled_output": torch.zeros(1, 16)}]]
    flow = learned_flow(network, image, mask, conditioning, speed=0.5, clamp=1.0)
    assert flow.shape == (2, 96, 128) and flow.dtype == torch.float32
    assert torch.equal(flow[:, mask[0] == 0], torch.zeros(2, int((mask[0] == 0).sum())))
    net_h, net_w = network_size(96, 128, 64)  # 512 x 704 -> back to 96 x 128
    assert flow[0].abs().max() <= 0.5 * 128 / net_w + 1e-6 and flow[1].abs().max() <= 0.5 * 96 / net_h + 1e-6
    assert flow[0, 60, 60] > 0.9 * 0.5 * 128 / net_w  # saturated at the clamp
    unclamped = learned_flow(network, image, mask, conditioning, speed=0.5, clamp=0.0)
    assert unclamped.abs().max() > 2 * flow.abs().max()


def test_learned_flow_needs_an_sd1_conditioning():
    network = tiny("flow").eval()
    image, mask = picture_and_mask()
    with pytest.raises(InputError, match="conditioning: method 'learned' needs"):
        learned_flow(network, image, mask, None)
    with pytest.raises(InputError, match="2048-dimensional tokens"):
        learned_flow(network, image, mask, [[torch.zeros(1, 77, 2048), {}]])
    with pytest.raises(InputError, match="^speed"):
        learned_flow(network, image, mask, [[torch.zeros(1, 77, 16), {}]], speed=-1.0)


def test_direction_hint_is_the_unit_vector_divided_by_64():
    regions = torch.zeros(2, 16, 16, dtype=torch.bool)
    regions[0, :8] = True
    regions[1, 10:] = True
    hint = direction_hint(regions, [0.0, 90.0], (16, 16))
    assert torch.allclose(hint[0, :, 2, 2], torch.tensor([1.0, 0.0]) / 64, atol=1e-7)
    assert torch.allclose(hint[0, :, 12, 2], torch.tensor([0.0, -1.0]) / 64, atol=1e-7)  # upwards is -y
    assert torch.equal(hint[0, :, 9, 2], torch.zeros(2))
    release = direction_hint(regions, [0.0, 90.0], (16, 16), "release")  # the release's inference
    assert torch.allclose(release, hint * 64, atol=1e-6)
    with pytest.raises(InputError, match="^hint_scale"):
        direction_hint(regions, [0.0], (16, 16), "unit")


def test_release_hint_scale_changes_the_learned_direction_flow():
    network = tiny("hint")
    image, mask = picture_and_mask(64, 64)
    flows = {scale: learned_direction_flow(network, image, mask, "left to right", "generic", 0, clamp=None,
                                           hint_scale=scale)[0] for scale in ("training", "release")}
    assert not torch.allclose(flows["training"], flows["release"])


def test_learned_direction_uses_the_phrase_and_is_seeded():
    network = tiny("hint").eval()
    image, mask = picture_and_mask()
    flow, angles = learned_direction_flow(network, image, mask, "in upwards, right to left direction", "generic", 7)
    assert 100 <= angles[0] <= 135
    again, same = learned_direction_flow(network, image, mask, "upwards, right to left", "generic", 7)
    assert same == angles and torch.equal(again, flow)
    assert torch.equal(flow[:, mask[0] == 0], torch.zeros(2, int((mask[0] == 0).sum())))
    assert flow.abs().max() <= 0.3 * 128 / 256 + 1e-6 and flow.abs().max() > 0
    with pytest.raises(InputError, match="direction"):
        learned_direction_flow(network, image, mask, "sideways", "generic", 0)


def test_learned_direction_gives_each_region_its_hint():
    image, _ = picture_and_mask()
    masks = torch.zeros(2, 96, 128)
    masks[0, 10:40, 10:60] = 1.0
    masks[1, 60:90, 70:120] = 1.0
    seen = []

    class Recorder(torch.nn.Module):
        config = HintNetConfig()

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append(x)
            return x[:, 4:6] * 0  # no motion

    learned_direction_flow(Recorder(), image, masks, "left to right; downwards", "generic", 0)
    hint = seen[0][0, 4:6] * FLOW_NORM
    first, second = hint[:, 100, 150], hint[:, 400, 500]  # network scale: 512 x 768
    assert first[0] > 0.98 and abs(first[1]) < 0.2
    assert second[1] > 0.98 and abs(second[0]) < 0.2
    assert math.isclose(float(seen[0][0, 3].max()), 1.0) and float(seen[0][0, :3].abs().max()) <= 1.0


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A stand-in for ComfyUI's folder_paths with an empty models folder, and ComfyUI on the CPU."""
    from comfy_inprocess import import_comfy
    from text2cinemagraph.nodes import motion, networks

    import_comfy()  # the networks run as ComfyUI's loaded models

    fake = types.ModuleType("folder_paths")
    fake.models_dir = str(tmp_path / "models")
    fake.folder_names_and_paths = {}
    fake.get_folder_paths = lambda name: list(fake.folder_names_and_paths[name][0])

    def files(name):
        out = []
        for folder in fake.folder_names_and_paths[name][0]:
            for root, _, names in os.walk(folder):
                out += [os.path.relpath(os.path.join(root, n), folder) for n in names]
        return sorted(out)

    def full_path(name, filename):
        for folder in fake.folder_names_and_paths.get(name, ([], None))[0]:
            if os.path.isfile(os.path.join(folder, filename)):
                return os.path.join(folder, filename)
        return None

    def add_model_folder_path(name, path):
        paths = fake.folder_names_and_paths.setdefault(name, ([], set()))[0]
        if path not in paths:
            paths.append(path)

    fake.get_filename_list, fake.get_full_path, fake.add_model_folder_path = files, full_path, add_model_folder_path
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    monkeypatch.setattr(motion, "compute_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(motion, "progress_callback", lambda total: None)
    networks._cache.clear()
    yield tmp_path / "models" / "text2cinemagraph"
    networks._cache.clear()


def test_flow_predictor_keeps_procedural_and_offers_the_learned_methods(models_dir):
    from text2cinemagraph.nodes.motion import FlowPredictor

    spec = FlowPredictor.INPUT_TYPES()
    assert spec["required"]["method"][0] == ["procedural", "learned", "learned_direction"]
    assert set(spec["optional"]) == {"flow_model", "conditioning", "motion_hint", "learned_clamp", "hint_scale"}
    assert all(entry[1]["tooltip"] for entry in spec["optional"].values())
    assert spec["optional"]["flow_model"][0] == ["(none: put the networks in models/text2cinemagraph)"]
    assert FlowPredictor.VALIDATE_INPUTS(flow_model="whatever.pth") is True
    image, mask = picture_and_mask(64, 64)
    flow, preview = FlowPredictor().predict(image, mask, "procedural", "left to right", 0.5, "generic", 0)
    assert flow.shape == (2, 64, 64) and preview.shape == (1, 64, 64, 3)


def test_missing_network_file_names_the_file_and_the_folder(models_dir):
    from text2cinemagraph.nodes.motion import FlowPredictor

    image, mask = picture_and_mask(64, 64)
    with pytest.raises(InputError) as caught:
        FlowPredictor().predict(image, mask, "learned", "auto", 0.5, "generic", 0, flow_model="latest_net_G.pth")
    message = str(caught.value)
    assert message.startswith("flow_model: ")
    assert "motion-pretrained/latest_net_G.pth" in message and str(models_dir) in message
    assert "'latest_net_G.pth' is not there" in message


def test_flow_predictor_runs_the_network_chosen_in_the_dropdown(models_dir):
    from text2cinemagraph.nodes.motion import FlowPredictor

    (models_dir / "motion-pretrained").mkdir(parents=True)
    (models_dir / "motion-direction-pretrained").mkdir(parents=True)
    torch.save(tiny("flow").state_dict(), models_dir / "motion-pretrained" / "latest_net_G.pth")
    torch.save(tiny("hint").state_dict(), models_dir / "motion-direction-pretrained" / "latest_net_G.pth")
    (models_dir / "segmentation" / "clipseg").mkdir(parents=True)  # another kind of model, not listed
    (models_dir / "segmentation" / "clipseg" / "model.safetensors").write_bytes(b"")
    (models_dir / "notes.txt").write_text("not a network")
    spec = FlowPredictor.INPUT_TYPES()
    choices = spec["optional"]["flow_model"][0]
    assert choices == ["motion-direction-pretrained/latest_net_G.pth", "motion-pretrained/latest_net_G.pth"]
    image, mask = picture_and_mask(64, 64)
    conditioning = [[torch.randn(1, 77, 16), {}]]
    node = FlowPredictor()
    flow, preview = node.predict(
        image, mask, "learned", "auto", 0.5, "generic", 0, flow_model=choices[1], conditioning=conditioning
    )
    assert flow.shape == (2, 64, 64) and flow.abs().max() > 0 and preview.shape == (1, 64, 64, 3)
    assert torch.equal(flow[:, mask[0] == 0], torch.zeros(2, int((mask[0] == 0).sum())))
    import comfy.model_management as management
    from text2cinemagraph.nodes import networks

    ((_, network),) = networks._cache.values()
    assert any(loaded.model.model.network is network for loaded in management.current_loaded_models)
    management.unload_all_models()  # ComfyUI needs the memory: the pack's cache lets G_flow go
    assert networks._cache == {}
    flow, _ = node.predict(image, mask, "learned_direction", "downwards", 0.3, "generic", 0, flow_model=choices[0])
    assert flow.abs().max() > 0
    with pytest.raises(InputError, match="holds the direction-hint flow network.*needs G_flow"):
        node.predict(image, mask, "learned", "auto", 0.5, "generic", 0, flow_model=choices[0],
                     conditioning=conditioning)


def test_convert_checkpoint_command(tmp_path, capsys):
    from text2cinemagraph.__main__ import main

    source = tmp_path / "latest_net_G.pth"
    torch.save(tiny("hint").state_dict(), source)
    target = tmp_path / "hint.safetensors"
    assert main(["convert-checkpoint", str(source), str(target)]) == 0
    assert load_network(str(target), ["hint"])[0] == "hint"
    evil = tmp_path / "evil.pth"
    torch.save({"payload": _Payload(tmp_path / "was_run")}, evil)
    assert main(["convert-checkpoint", str(evil), str(tmp_path / "evil.safetensors")]) == 2
    assert "refused" in capsys.readouterr().err and not (tmp_path / "was_run").exists()
